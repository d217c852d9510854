// Model Resolver sidebar: glue to ComfyUI's own UI beyond the tab — opening the tab, a "Resolve with
// Model Resolver" button in ComfyUI's missing-models dialog, and "Find this model" in a loader node's
// context menu. Exports functions only; nothing runs on import.
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

// ComfyUI's missing-models dialog: frontend 1.27 lists the models in a `.comfy-missing-models` listbox.
const DIALOG_LIST = ".comfy-missing-models";
export const DIALOG_BUTTON_ATTR = "data-cmr-dialog";

function dialogOf(list) {
  return list.closest(".p-dialog, [role=dialog]") || list.parentElement;
}

/** Add the offer to one open missing-models dialog (once). Returns the button, or null. */
export function offerInDialog(doc, list, onResolve) {
  const dialog = dialogOf(list);
  if (!dialog || dialog.querySelector(`[${DIALOG_BUTTON_ATTR}]`)) return null;
  const box = doc.createElement("div");
  box.setAttribute(DIALOG_BUTTON_ATTR, "");
  box.style.cssText = "display:flex;gap:0.75rem;align-items:center;flex-wrap:wrap;margin:0.75rem 0;padding:0.6rem 0.75rem;"
    + "border:1px solid var(--p-primary-color,#3b82f6);border-radius:6px;";
  const text = doc.createElement("span");
  text.textContent = "Model Resolver finds a source for every missing model — also those without a link here — "
    + "and downloads them into the right folders.";
  text.style.cssText = "flex:1 1 16rem;font-size:0.875rem;";
  const btn = doc.createElement("button");
  btn.type = "button";
  btn.className = "p-button p-component p-button-sm";
  btn.setAttribute("data-cmr", "resolve-from-dialog");
  btn.innerHTML = '<span class="p-button-icon pi pi-search" aria-hidden="true"></span><span class="p-button-label"></span>';
  btn.querySelector(".p-button-label").textContent = "Resolve with Model Resolver";
  btn.addEventListener("click", () => {
    const close = dialog.querySelector(".p-dialog-close-button, .p-dialog-header-close, [aria-label=Close], [aria-label=close]");
    try { close?.click(); } catch { /* the dialog may already be gone */ }
    onResolve();
  });
  box.append(text, btn);
  list.parentElement.insertBefore(box, list);
  return btn;
}

/** Watch the page for ComfyUI's missing-models dialog; returns a function that stops watching. */
export function watchMissingModelsDialog(doc, onResolve) {
  const scan = (root) => {
    const lists = root.matches?.(DIALOG_LIST) ? [root] : [...(root.querySelectorAll?.(DIALOG_LIST) || [])];
    for (const list of lists) offerInDialog(doc, list, onResolve);
  };
  const view = doc.defaultView;
  if (!view?.MutationObserver) return () => {};
  const observer = new view.MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) if (n.nodeType === 1) scan(n);
  });
  observer.observe(doc.body, { childList: true, subtree: true });
  scan(doc.body);
  return () => observer.disconnect();
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
