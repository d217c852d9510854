// Model Resolver sidebar: what the user does to the workflow and the files — relink, move, embed sources,
// "Find this model" from a node's menu — and the token settings. A factory over the controller's state and
// helpers; nothing runs on import.
import { applyEmbed, locate, moveBody, relinkRef, sourceFor, widgetValue } from "./cmr_logic.js";
import { openTab } from "./cmr_comfy.js";

export function createEditActions({ app, state, call, infoOf, render, toast, markDirty, analyze, resolveMissing,
  refreshCombos, allItems }) {
  // ---- relink / embed ----------------------------------------------------------------------------------
  /** Relink, and report only what happened: widgets changed, and for each reference left as it was, why. */
  function relinkItems(items) {
    let changed = 0;
    let failed = 0;
    for (const item of items) {
      const reasons = [];
      for (const ref of item.refs) {
        if (!ref.relink_value) continue;
        const r = relinkRef(app.graph, ref, ref.relink_value);
        changed += r.changed;
        if (r.reason) reasons.push(r.reason);
      }
      if (reasons.length) {
        failed++;
        state.itemErrors.set(item.key, { message: `Not relinked: ${reasons.join(" ")}`, hint: null, kind: "relink" });
      } else {
        state.itemErrors.delete(item.key);
      }
    }
    const values = `${changed} widget value${changed === 1 ? "" : "s"}`;
    if (changed) markDirty();
    if (changed && !failed) {
      toast("success", "Relinked", `${values} updated`);
      state.notice = `Relinked: ${values} updated`;
    } else if (changed) {
      toast("warn", "Partly relinked", `${values} updated; ${failed} model${failed === 1 ? " was" : "s were"} not (see the panel).`);
      state.notice = `Partly relinked: ${values} updated`;
    } else {
      const why = [...state.itemErrors.values()].find((e) => e.kind === "relink")?.message || "The nodes no longer hold the old value.";
      toast("warn", "Nothing relinked", why);
      state.notice = `Nothing relinked. ${why}`;
    }
    render();
    analyze({ force: true });
  }

  async function move(item) {
    state.itemErrors.delete(item.key);
    try {
      const res = await call("POST", "/move", moveBody(item));
      toast("success", "Model moved", `${item.filename} is now in ${res.folder}.`);
      state.notice = `Moved ${item.filename} into ${res.folder}`;
      await refreshCombos();
      analyze({ force: true });
    } catch (e) {
      state.itemErrors.set(item.key, infoOf(e));
    }
    render();
  }

  /** From a node's context menu: open the tab on this node's missing model, and look up its sources. */
  function findModel(item) {
    state.focusKey = item.key;
    openTab(app);
    render();
    resolveMissing();
  }

  /** Node menu entries: one per missing model of this node (also a loader inside a subgraph). */
  function menuItemsFor(node) {
    if (!node || !state.groups) return [];
    const isThis = (ref) => { try { return locate(app.graph, ref).node === node; } catch { return false; } };
    return state.groups.missing.filter((item) => item.refs.some(isThis)).map((item) => ({
      content: `Find this model: ${String(item.filename).replace(/\\/g, "/").split("/").pop()} (Model Resolver)`,
      callback: () => findModel(item),
    }));
  }

  function embed() {
    const { nodes } = applyEmbed(app.graph, allItems(), (ref) => widgetValue(app.graph, ref) ?? ref.filename,
      (item) => state.sources.get(item.key) ?? sourceFor(item));
    if (nodes) {
      markDirty();
      toast("success", "Sources embedded", `properties.models written on ${nodes} loader node${nodes === 1 ? "" : "s"}. Save the workflow to keep them.`);
      state.notice = `Embedded sources on ${nodes} nodes`;
    } else {
      toast("warn", "Nothing to embed", "No download source is known for these models yet.");
    }
    render();
  }

  // ---- settings -------------------------------------------------------------------------------------------
  async function toggleSettings(open = !state.settingsOpen) {
    state.settingsOpen = open;
    state.settingsMessage = null;
    render();
    if (open) {
      try {
        state.config = await call("GET", "/config");
      } catch (e) {
        state.settingsMessage = { error: true, text: infoOf(e).message };
      }
      render();
      state.container?.querySelector?.("#cmr-set-hf_token")?.focus?.();
    }
  }

  async function saveSettings(data) {
    if (!Object.keys(data).length) {
      state.settingsMessage = { error: true, text: "Nothing to save: paste a token first." };
      render();
      return;
    }
    try {
      state.config = await call("PATCH", "/config", data);
      state.settingsMessage = { error: false, text: "Saved. Tokens are stored in ComfyUI's user folder and never shown again." };
      // models that needed a login are looked up again
      for (const [key, row] of state.resolved) {
        if (row.status === "auth_required" || row.candidates?.[0]?.requires_auth) state.resolved.delete(key);
      }
      state.resolveError = null;
      render();
      resolveMissing();
    } catch (e) {
      state.settingsMessage = { error: true, text: infoOf(e).message };
      render();
    }
  }

  return { relinkItems, move, findModel, menuItemsFor, embed, toggleSettings, saveSettings };
}
