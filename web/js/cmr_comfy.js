// Model Resolver sidebar: glue to ComfyUI's own UI beyond the tab — opening the tab, toasts, the graph's
// dirty mark, refreshing model lists, a "Resolve with Model Resolver" button in ComfyUI's missing-models
// dialog, and "Find this model" in a loader node's context menu. Exports functions only; nothing runs on import.
import { TAB_ID } from "./cmr_logic.js";

/** Open our sidebar tab (never toggles it closed when it is already open). */
export function openTab(app) {
  const em = app.extensionManager;
  const store = em?.sidebarTab;
  const active = store?.activeSidebarTabId ?? store?.activeSidebarTab?.id ?? null;
  if (active === TAB_ID) return true;
  try {
    if (typeof store?.toggleSidebarTab === "function") { store.toggleSidebarTab(TAB_ID); return true; }
  } catch { /* fall through to the command */ }
  try {
    em?.command?.execute?.(`Workspace.ToggleSidebarTab.${TAB_ID}`);
    return true;
  } catch {
    return false;
  }
}

export function showToast(app, severity, summary, detail) {
  try { app.extensionManager?.toast?.add?.({ severity, summary, detail, life: 5000 }); } catch { /* no toast service */ }
}

/** Tell ComfyUI the graph changed (redraw, and the workflow's unsaved-changes mark). */
export function markGraphDirty(app) {
  try { app.graph?.setDirtyCanvas?.(true, true); } catch { /* ignore */ }
  try { app.canvas?.setDirty?.(true, true); } catch { /* ignore */ }
  try { app.extensionManager?.workflow?.activeWorkflow?.changeTracker?.checkState?.(); } catch { /* ignore */ }
}

/** Refresh the loaders' model lists (new files on disk) without a restart. */
export async function refreshModelLists(app) {
  try {
    if (typeof app.refreshComboInNodes === "function") return await app.refreshComboInNodes();
  } catch (e) {
    console.warn("[Model Resolver] refreshComboInNodes failed", e);
  }
  try {
    return await app.extensionManager?.command?.execute?.("Comfy.RefreshNodeDefinitions");
  } catch (e) {
    console.warn("[Model Resolver] could not refresh node definitions", e);
  }
  return undefined;
}

// ComfyUI's missing-models dialog: frontend 1.27 lists the models in a `.comfy-missing-models` listbox;
// newer frontends (1.58) show an "N issues found" overlay (`data-testid=error-overlay`) instead, for any
// problem: there the offer appears only when our analysis found models to fix.
const DIALOG_LIST = ".comfy-missing-models";
const ERROR_OVERLAY = "[data-testid=error-overlay]";
export const DIALOG_BUTTON_ATTR = "data-cmr-dialog";

function offerBox(doc, textContent, onClick, compact) {
  const box = doc.createElement("div");
  box.setAttribute(DIALOG_BUTTON_ATTR, "");
  box.style.cssText = compact
    ? "display:flex;gap:0.5rem;align-items:center;justify-content:space-between;flex-wrap:wrap;pointer-events:auto;"
    : "display:flex;gap:0.75rem;align-items:center;flex-wrap:wrap;margin:0.75rem 0;padding:0.6rem 0.75rem;"
      + "border:1px solid var(--p-primary-color,#3b82f6);border-radius:6px;";
  const text = doc.createElement("span");
  text.textContent = textContent;
  text.style.cssText = compact ? "font-size:0.8rem;" : "flex:1 1 16rem;font-size:0.875rem;";
  const btn = doc.createElement("button");
  btn.type = "button";
  btn.className = "p-button p-component p-button-sm";
  // styled here too: newer frontends ship no PrimeVue button theme
  btn.style.cssText = "display:inline-flex;align-items:center;gap:0.4rem;padding:0.3rem 0.7rem;border-radius:6px;cursor:pointer;"
    + "border:1px solid var(--p-primary-color,#3b82f6);background:var(--p-primary-color,#3b82f6);color:#fff;font:inherit;font-size:0.8rem;";
  btn.setAttribute("data-cmr", "resolve-from-dialog");
  btn.innerHTML = '<span class="p-button-icon pi pi-search" aria-hidden="true"></span><span class="p-button-label"></span>';
  btn.querySelector(".p-button-label").textContent = "Resolve with Model Resolver";
  btn.addEventListener("click", onClick);
  box.append(text, btn);
  return box;
}

/** Add the offer to one open missing-models dialog (once). Returns the button, or null. */
export function offerInDialog(doc, list, onResolve) {
  const dialog = list.closest(".p-dialog, [role=dialog]") || list.parentElement;
  if (!dialog || dialog.querySelector(`[${DIALOG_BUTTON_ATTR}]`)) return null;
  const box = offerBox(doc, "Model Resolver finds a source for every missing model — also those without a link here — "
    + "and downloads them into the right folders.", () => {
    const close = dialog.querySelector(".p-dialog-close-button, .p-dialog-header-close, [aria-label=Close], [aria-label=close]");
    try { close?.click(); } catch { /* the dialog may already be gone */ }
    onResolve();
  }, false);
  list.parentElement.insertBefore(box, list);
  return box.querySelector("button");
}

/** Keep the offer under ComfyUI's "issues found" overlay in step with `summary()` (models to fix, or ""). */
export function offerInOverlay(doc, overlay, onResolve, summary) {
  const text = summary();
  const box = overlay.querySelector(`[${DIALOG_BUTTON_ATTR}]`);
  if (box && !text) box.remove();
  if (box && text && box.firstChild.textContent !== text) box.firstChild.textContent = text; // (no mutation when unchanged)
  if (box || !text) return null;
  const added = offerBox(doc, text, onResolve, true);
  overlay.append(added);
  return added.querySelector("button");
}

/**
 * Watch the page for ComfyUI's missing-models dialog or issues overlay. `summary()` gives the overlay's
 * line ("Model Resolver: 6 models to fix") or "" when nothing is missing. Returns `{stop, rescan}`;
 * call rescan after an analysis (the overlay appears before our analysis has answered).
 */
export function watchMissingModelsDialog(doc, onResolve, summary = () => "") {
  const scan = (root) => {
    const all = (sel) => (root.matches?.(sel) ? [root] : [...(root.querySelectorAll?.(sel) || [])]);
    for (const list of all(DIALOG_LIST)) offerInDialog(doc, list, onResolve);
    for (const overlay of all(ERROR_OVERLAY)) offerInOverlay(doc, overlay, onResolve, summary);
  };
  const view = doc.defaultView;
  if (!view?.MutationObserver) return { stop() {}, rescan() {} };
  const observer = new view.MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) if (n.nodeType === 1) scan(n);
      // the frontend re-renders inside its overlay (the issue count changes) and may drop our offer
      const host = r.target?.closest?.(`${ERROR_OVERLAY}, ${DIALOG_LIST}`);
      if (host && r.removedNodes.length) scan(host);
    }
  });
  observer.observe(doc.body, { childList: true, subtree: true });
  scan(doc.body);
  return { stop: () => observer.disconnect(), rescan: () => scan(doc.body) };
}

/**
 * The node context menu: `itemsFor(node)` gives our entries (LiteGraph menu options). Frontends with
 * the `getNodeMenuItems` extension hook call the extension; older ones (1.27) ask each node type's
 * `getExtraMenuOptions`, which we chain in `beforeRegisterNodeDef`.
 */
export function nodeMenuHooks(app, itemsFor) {
  const hasHook = typeof app.collectNodeMenuItems === "function";
  return {
    getNodeMenuItems(node) {
      return hasHook ? itemsFor(node) : [];
    },
    beforeRegisterNodeDef(nodeType) {
      if (hasHook || !nodeType?.prototype) return;
      const previous = nodeType.prototype.getExtraMenuOptions;
      nodeType.prototype.getExtraMenuOptions = function (canvas, options) {
        const result = previous?.apply(this, arguments);
        try {
          const ours = itemsFor(this);
          if (ours.length && Array.isArray(options)) options.push(null, ...ours);
        } catch (e) {
          console.warn("[Model Resolver] node menu", e);
        }
        return result;
      };
    },
  };
}
