// Model Resolver sidebar: DOM rendering. Exports functions only; nothing runs on import
// (ComfyUI imports every .js under WEB_DIRECTORY). Colours come from the ComfyUI/PrimeVue theme
// variables; PrimeVue classes are used where ComfyUI ships their styles, with zero-specificity
// fallbacks (`:where`) so the theme always wins.
import {
  authNeeded, describeCandidate, describeError, downloadableItems, progressInfo, sourceName, ACTIVE_STATES,
} from "./cmr_logic.js";

const STYLE_ID = "cmr-model-resolver-style";

const CSS = `
.cmr-panel { display: flex; flex-direction: column; gap: 0.5rem; height: 100%; overflow-y: auto; padding: 0 0.75rem 1rem;
  color: var(--p-text-color, var(--input-text, #ddd)); font-size: 0.875rem; box-sizing: border-box; }
.cmr-header { display: flex; align-items: center; justify-content: space-between; gap: 0.5rem; padding: 0.75rem 0 0.25rem;
  position: sticky; top: 0; background: var(--p-content-background, var(--comfy-menu-bg, #202020)); z-index: 1; }
.cmr-title { font-weight: 700; text-transform: uppercase; letter-spacing: 0.02em; margin: 0; font-size: 0.875rem;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; min-width: 0; }
.cmr-toolbar { display: flex; gap: 0.25rem; flex-wrap: nowrap; align-items: center; flex-shrink: 0; }
.cmr-actions { display: flex; gap: 0.375rem; flex-wrap: wrap; align-items: center; }
.cmr-summary { color: var(--p-text-muted-color, var(--descrip-text, #999)); margin: 0; }
.cmr-group { border-top: 1px solid var(--p-content-border-color, var(--border-color, #444)); padding-top: 0.5rem; }
.cmr-group > h3 { font-size: 0.8rem; margin: 0 0 0.375rem; display: flex; align-items: center; gap: 0.375rem; font-weight: 600; }
.cmr-list { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 0.375rem; }
.cmr-item { border: 1px solid var(--p-content-border-color, var(--border-color, #444)); border-radius: 6px; padding: 0.5rem;
  background: var(--p-content-background, var(--comfy-menu-bg, #202020)); display: flex; flex-direction: column; gap: 0.3rem; }
.cmr-item.cmr-inactive { opacity: 0.7; }
.cmr-name { font-weight: 600; word-break: break-all; }
.cmr-meta, .cmr-muted { color: var(--p-text-muted-color, var(--descrip-text, #999)); font-size: 0.75rem; word-break: break-word; }
.cmr-candidate { border-left: 3px solid var(--p-primary-color, #3b82f6); padding-left: 0.5rem; display: flex; flex-direction: column; gap: 0.15rem; }
.cmr-candidate.cmr-alt { border-left-color: var(--p-content-border-color, var(--border-color, #555)); }
.cmr-reasons { margin: 0; padding-left: 1rem; color: var(--p-text-muted-color, var(--descrip-text, #999)); font-size: 0.75rem; }
.cmr-error { color: var(--p-red-400, var(--error-text, #f87171)); font-size: 0.8rem; }
.cmr-warn { color: var(--p-orange-400, #fb923c); font-size: 0.8rem; }
.cmr-ok { color: var(--p-green-400, #4ade80); }
.cmr-hint { font-size: 0.75rem; color: var(--p-text-muted-color, var(--descrip-text, #aaa)); }
.cmr-settings { display: flex; flex-direction: column; gap: 0.5rem; padding: 0.5rem; border-radius: 6px;
  border: 1px solid var(--p-content-border-color, var(--border-color, #444)); }
.cmr-settings label { display: flex; flex-direction: column; gap: 0.2rem; font-size: 0.8rem; }
.cmr-visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
:where(.cmr-panel) .cmr-input { padding: 0.35rem 0.5rem; border-radius: 4px; font: inherit;
  border: 1px solid var(--p-inputtext-border-color, var(--border-color, #555));
  background: var(--p-inputtext-background, var(--comfy-input-bg, #111)); color: var(--p-inputtext-color, var(--input-text, #ddd)); }
:where(.cmr-panel) .cmr-btn { display: inline-flex; align-items: center; gap: 0.3rem; cursor: pointer; font: inherit; font-size: 0.8rem;
  padding: 0.3rem 0.6rem; border-radius: 6px; border: 1px solid var(--p-button-primary-border-color, var(--p-primary-color, #3b82f6));
  background: var(--p-button-primary-background, var(--p-primary-color, #3b82f6)); color: var(--p-button-primary-color, #fff); }
:where(.cmr-panel) .cmr-btn.p-button-secondary, :where(.cmr-panel) .cmr-btn.p-button-text {
  background: var(--p-button-secondary-background, transparent); color: var(--p-text-color, var(--input-text, #ddd));
  border-color: var(--p-content-border-color, var(--border-color, #555)); }
:where(.cmr-panel) .cmr-btn:disabled { opacity: 0.5; cursor: default; }
.cmr-btn:focus-visible, .cmr-input:focus-visible { outline: 2px solid var(--p-focus-ring-color, var(--p-primary-color, #3b82f6)); outline-offset: 1px; }
:where(.cmr-panel) .cmr-progress { position: relative; height: 0.9rem; border-radius: 4px; overflow: hidden;
  background: var(--p-progressbar-background, var(--comfy-input-bg, #333)); }
:where(.cmr-panel) .cmr-progress .p-progressbar-value { height: 100%; background: var(--p-progressbar-value-background, var(--p-primary-color, #3b82f6)); transition: width 0.2s; }
.cmr-progress.cmr-indeterminate .p-progressbar-value { width: 30% !important; animation: cmr-slide 1.2s infinite linear; }
@keyframes cmr-slide { from { margin-left: -30%; } to { margin-left: 100%; } }
:where(.cmr-panel) .cmr-tag { display: inline-block; padding: 0.05rem 0.4rem; border-radius: 4px; font-size: 0.7rem; font-weight: 600;
  background: var(--p-content-hover-background, var(--comfy-input-bg, #333)); color: var(--p-text-color, var(--input-text, #ddd)); }
.cmr-tag.cmr-tag-missing { background: var(--p-red-500, #b91c1c); color: #fff; }
.cmr-tag.cmr-tag-relocated { background: var(--p-orange-500, #c2410c); color: #fff; }
.cmr-tag.cmr-tag-present { background: var(--p-green-600, #15803d); color: #fff; }
.cmr-tag.cmr-tag-pickle { background: var(--p-orange-600, #9a3412); color: #fff; }
.cmr-empty { color: var(--p-text-muted-color, var(--descrip-text, #999)); font-style: italic; }
`;

/** Create an element: h("div", {class: "x", onclick: fn, "aria-label": "…"}, child, "text", …). */
export function h(doc, tag, attrs = {}, ...children) {
  const el = doc.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof doc.defaultView.Node ? c : doc.createTextNode(String(c)));
  }
  return el;
}

export function ensureStyle(doc) {
  if (doc.getElementById(STYLE_ID)) return;
  doc.head.append(h(doc, "style", { id: STYLE_ID, text: CSS }));
}

function button(doc, label, onclick, { severity = "", icon = "", aria = null, disabled = false, key = null } = {}) {
  const cls = `cmr-btn p-button p-component p-button-sm${severity ? ` p-button-${severity}` : ""}`;
  return h(doc, "button", { type: "button", class: cls, onclick, "aria-label": aria, disabled, "data-key": key },
    icon ? h(doc, "span", { class: `p-button-icon ${icon}`, "aria-hidden": "true" }) : null,
    h(doc, "span", { class: "p-button-label", text: label }));
}

function tag(doc, text, kind) {
  return h(doc, "span", { class: `cmr-tag p-tag p-component cmr-tag-${kind}` }, h(doc, "span", { class: "p-tag-label", text }));
}

const PICKLE_NOTE = "Pickle format: loading this file can run code. Prefer a .safetensors version from a source you trust.";

/** The name line of an item: the file name, then its warnings as tags. */
function nameLine(doc, item) {
  return h(doc, "div", { class: "cmr-name" }, item.filename, " ",
    item.pickle ? h(doc, "span", { title: PICKLE_NOTE, "aria-label": PICKLE_NOTE, "data-pickle": "true" }, tag(doc, "pickle", "pickle")) : null,
    item.inactive ? tag(doc, "bypassed", "info") : null);
}

function usedBy(item) {
  const nodes = item.refs.map((r) => {
    const where = r.subgraph_path?.length ? ` in subgraph ${r.subgraph_path.map((p) => String(p).startsWith("def:") ? "(unused)" : `#${p}`).join(" › ")}` : "";
    return `${r.node_type} #${r.node_id}${where}${r.active === false ? " (bypassed)" : ""}`;
  });
  const unique = [...new Set(nodes)];
  return `${item.folder ?? "unknown folder"} · ${unique.slice(0, 3).join(", ")}${unique.length > 3 ? ` +${unique.length - 3} more` : ""}`;
}

/** The progress block of a job (also used to update it in place). */
export function progressBlock(doc, job, onCancel) {
  const info = progressInfo(job);
  const indeterminate = info.percent === null && ACTIVE_STATES.has(job.state);
  const bar = h(doc, "div", {
    class: `cmr-progress p-progressbar p-component ${indeterminate ? "cmr-indeterminate p-progressbar-indeterminate" : "p-progressbar-determinate"}`,
    role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-valuenow": info.percent === null ? null : Math.floor(info.percent), "aria-valuetext": info.text,
    "aria-label": `Download of ${job.filename}`,
  }, h(doc, "div", { class: "p-progressbar-value", style: { width: `${info.percent ?? 0}%` } }));
  const err = job.state === "failed" && job.error ? describeError(job.error) : null;
  return h(doc, "div", { class: "cmr-job", "data-job": job.id },
    job.state === "completed" || job.state === "cancelled" ? null : bar,
    h(doc, "div", { class: "cmr-actions" },
      h(doc, "span", { class: `cmr-meta cmr-progress-text${job.state === "completed" ? " cmr-ok" : ""}`, text: info.text }),
      ACTIVE_STATES.has(job.state) && onCancel
        ? button(doc, "Cancel", () => onCancel(job), { severity: "secondary", icon: "pi pi-times", aria: `Cancel download of ${job.filename}` })
        : null),
    err ? h(doc, "div", { class: "cmr-error", role: "alert" }, err.message) : null,
    err?.hint ? h(doc, "div", { class: "cmr-hint" }, err.hint) : null);
}

function candidateBlock(doc, c, { alt = false } = {}) {
  const d = describeCandidate(c);
  return h(doc, "div", { class: `cmr-candidate${alt ? " cmr-alt" : ""}` },
    h(doc, "div", {},
      h(doc, "strong", { text: d.source }), " · ", d.size,
      d.confidence ? ` · ${d.confidence} match` : "",
      d.gated ? h(doc, "span", { class: "cmr-warn", text: " · needs login" }) : null),
    d.where ? h(doc, "div", { class: "cmr-meta", title: d.url, text: d.where }) : null,
    d.reasons.length ? h(doc, "ul", { class: "cmr-reasons", "aria-label": "Why this source" },
      d.reasons.map((r) => h(doc, "li", { text: r }))) : null);
}

function missingItem(doc, item, vm, actions) {
  const job = vm.jobsByItem.get(item.key) || null;
  const busy = job && ACTIVE_STATES.has(job.state);
  const cands = item.candidates || [];
  const best = cands[0];
  const auth = authNeeded(item);
  const expanded = vm.expanded.has(item.key);
  const altId = `cmr-alt-${safeId(item.key)}`;
  const parts = [
    nameLine(doc, item),
    h(doc, "div", { class: "cmr-meta", text: usedBy(item) }),
  ];
  if (item.candidates === null) {
    parts.push(h(doc, "div", { class: "cmr-muted", text: vm.resolving ? "Looking for download sources…" : (vm.resolveError ? "Sources unavailable." : "") }));
  } else if (!best) {
    parts.push(h(doc, "div", { class: "cmr-warn" }, item.message || "No download source found."));
    if (item.resolution === "auth_required" && auth) parts.push(tokenHint(doc, auth, actions));
  } else {
    parts.push(candidateBlock(doc, best));
    if (auth) parts.push(tokenHint(doc, auth, actions));
    if (!item.certain && !auth) {
      parts.push(h(doc, "div", { class: "cmr-hint", text: cands.length > 1
        ? "Several candidates and none is certain: check the best match (or an alternative) before downloading."
        : "Not certain: check this match before downloading." }));
    }
    const row = h(doc, "div", { class: "cmr-actions" },
      button(doc, item.certain ? "Download" : "Download best match", () => actions.download(item, null), {
        icon: "pi pi-download", disabled: busy, aria: `Download ${item.filename} from ${sourceName(best.source)}`, key: `dl:${item.key}` }),
      cands.length > 1 ? h(doc, "button", {
        type: "button", class: "cmr-btn p-button p-component p-button-sm p-button-text",
        "aria-expanded": expanded ? "true" : "false", "aria-controls": altId, "data-key": `alt:${item.key}`,
        onclick: () => actions.toggleAlternatives(item.key),
      }, `${expanded ? "Hide" : "Show"} ${cands.length - 1} alternative${cands.length > 2 ? "s" : ""}`) : null);
    parts.push(row);
    if (cands.length > 1 && expanded) {
      parts.push(h(doc, "div", { id: altId, class: "cmr-list" }, cands.slice(1).map((c) =>
        h(doc, "div", { class: "cmr-item" }, candidateBlock(doc, c, { alt: true }),
          h(doc, "div", { class: "cmr-actions" }, button(doc, "Download this one", () => actions.download(item, c), {
            severity: "secondary", icon: "pi pi-download", disabled: busy,
            aria: `Download ${item.filename} from ${sourceName(c.source)} ${c.url}` })))) ));
    }
  }
  if (job) parts.push(progressBlock(doc, job, actions.cancel));
  if (vm.itemErrors.has(item.key)) {
    const e = vm.itemErrors.get(item.key);
    parts.push(h(doc, "div", { class: "cmr-error", role: "alert", text: e.message }));
    if (e.hint) parts.push(h(doc, "div", { class: "cmr-hint", text: e.hint }));
  }
  return h(doc, "li", { class: `cmr-item${item.inactive ? " cmr-inactive" : ""}`, "data-item": item.key, "data-status": "missing" }, parts);
}

function tokenHint(doc, token, actions) {
  return h(doc, "div", { class: "cmr-hint", role: "note" },
    `This source needs a ${token.label}. Set it in `,
    h(doc, "a", { href: "#", onclick: (e) => { e.preventDefault(); actions.openSettings(); }, text: "Settings" }),
    ` (or ${token.env} before starting ComfyUI); create one at ${token.where}.`);
}

function relocatedItem(doc, item, actions) {
  const canRelink = Boolean(item.relinkValue);
  return h(doc, "li", { class: "cmr-item", "data-item": item.key, "data-status": "relocated" },
    nameLine(doc, item),
    h(doc, "div", { class: "cmr-meta", text: usedBy(item) }),
    canRelink
      ? h(doc, "div", {}, "Found as ", h(doc, "code", { text: item.relinkValue }))
      : h(doc, "div", { class: "cmr-warn" }, `Found in another folder: ${item.localPath ?? "?"}. Move it into ${item.folder} to use it.`),
    canRelink ? h(doc, "div", { class: "cmr-actions" }, button(doc, "Relink", () => actions.relink(item), {
      icon: "pi pi-link", aria: `Relink ${item.filename} to ${item.relinkValue}`, key: `relink:${item.key}` })) : null);
}

function presentItem(doc, item) {
  return h(doc, "li", { class: "cmr-item", "data-item": item.key, "data-status": "present" },
    nameLine(doc, item),
    h(doc, "div", { class: "cmr-meta", text: usedBy(item) }));
}

function group(doc, id, title, kind, items, renderItem, extra = null) {
  return h(doc, "section", { class: "cmr-group", "aria-labelledby": `cmr-h-${id}`, "data-group": id },
    h(doc, "h3", { id: `cmr-h-${id}` }, tag(doc, String(items.length), kind), title, extra),
    items.length ? h(doc, "ul", { class: "cmr-list" }, items.map(renderItem))
      : h(doc, "p", { class: "cmr-empty", text: "None" }));
}

function settingsForm(doc, vm, actions) {
  const cfg = vm.config || {};
  const isSet = (f) => Boolean(cfg[f]?.set);
  const field = (name, label, token) => {
    const id = `cmr-set-${name}`;
    return h(doc, "label", { for: id },
      h(doc, "span", {}, label, " ", isSet(name) ? tag(doc, "set", "present") : tag(doc, "not set", "info")),
      h(doc, "input", { id, name, type: "password", class: "cmr-input p-inputtext p-component", autocomplete: "off",
        placeholder: isSet(name) ? "•••••• (leave empty to keep)" : `paste your ${label}`, spellcheck: "false" }),
      h(doc, "span", { class: "cmr-hint", text: `Write-only: never shown again. Also settable as ${token.env}. Get one at ${token.where}.` }));
  };
  const form = h(doc, "form", { class: "cmr-settings", "aria-label": "Model Resolver settings",
    onsubmit: (e) => {
      e.preventDefault();
      const data = {};
      for (const f of ["hf_token", "civitai_api_key"]) {
        const v = form.querySelector(`[name=${f}]`).value.trim();
        if (v) data[f] = v;
      }
      actions.saveSettings(data);
    } },
  h(doc, "strong", { text: "Access tokens" }),
  field("hf_token", "Hugging Face token", { env: "CMR_HF_TOKEN", where: "huggingface.co/settings/tokens" }),
  field("civitai_api_key", "Civitai API key", { env: "CMR_CIVITAI_API_KEY", where: "civitai.com/user/account" }),
  h(doc, "div", { class: "cmr-actions" },
    h(doc, "button", { type: "submit", class: "cmr-btn p-button p-component p-button-sm" }, "Save"),
    isSet("hf_token") ? button(doc, "Remove HF token", () => actions.saveSettings({ hf_token: "" }), { severity: "secondary" }) : null,
    isSet("civitai_api_key") ? button(doc, "Remove Civitai key", () => actions.saveSettings({ civitai_api_key: "" }), { severity: "secondary" }) : null,
    button(doc, "Close", () => actions.toggleSettings(false), { severity: "text" })),
  vm.settingsMessage ? h(doc, "div", { class: vm.settingsMessage.error ? "cmr-error" : "cmr-ok", role: "status", text: vm.settingsMessage.text }) : null);
  return form;
}

/** Render the whole panel into `root` (keeps scroll position and the focused control). */
export function renderPanel(root, vm, actions) {
  const doc = root.ownerDocument;
  ensureStyle(doc);
  const focusedKey = doc.activeElement && root.contains(doc.activeElement) ? doc.activeElement.getAttribute("data-key") : null;
  const scroller = root.querySelector(".cmr-panel");
  const scroll = scroller ? scroller.scrollTop : 0;
  const g = vm.groups || { present: [], relocated: [], missing: [] };
  const missing = g.missing.filter((i) => !i.inactive).length;
  const downloadable = downloadableItems(g, vm.busyKeys).length;
  const embeddable = [...g.missing, ...g.relocated, ...g.present]
    .filter((i) => i.url || i.candidates?.[0]?.url || vm.sources?.has(i.key)).length;
  const relinkable = g.relocated.filter((i) => i.relinkValue).length;

  const header = h(doc, "div", { class: "cmr-header" },
    h(doc, "h2", { class: "cmr-title", text: "Model Resolver" }),
    h(doc, "div", { class: "cmr-toolbar" },
      button(doc, "", actions.reanalyze, { severity: "text", icon: "pi pi-refresh", aria: "Analyze the workflow again", key: "reanalyze" }),
      button(doc, "", () => actions.toggleSettings(), { severity: "text", icon: "pi pi-cog", aria: "Settings: access tokens", key: "settings" })));

  const body = [];
  if (vm.settingsOpen) body.push(settingsForm(doc, vm, actions));
  if (vm.error) {
    body.push(h(doc, "div", { class: "cmr-error", role: "alert", text: vm.error.message }));
    if (vm.error.hint) body.push(h(doc, "div", { class: "cmr-hint", text: vm.error.hint }));
  }
  if (vm.phase === "analyzing" && !vm.groups) body.push(h(doc, "p", { class: "cmr-muted", text: "Analyzing the workflow…" }));
  if (vm.groups) {
    const total = g.present.length + g.relocated.length + g.missing.length;
    body.push(h(doc, "p", { class: "cmr-summary", "data-summary": "" },
      `${vm.workflowName ? `${vm.workflowName}: ` : ""}${total} model${total === 1 ? "" : "s"} · ${g.present.length} present · `
      + `${g.relocated.length} relocated · ${g.missing.length} missing`));
    if (vm.resolveError) {
      const e = vm.resolveError;
      body.push(h(doc, "div", { class: "cmr-warn", role: "alert", text: `Download sources: ${e.message}` }));
      if (e.hint) body.push(h(doc, "div", { class: "cmr-hint", text: e.hint }));
    }
    body.push(h(doc, "div", { class: "cmr-actions" },
      missing ? button(doc, `Download all missing (${downloadable})`, actions.downloadAll, {
        icon: "pi pi-download", disabled: !downloadable, key: "download-all" }) : null,
      relinkable > 1 ? button(doc, `Relink all (${relinkable})`, actions.relinkAll, { severity: "secondary", icon: "pi pi-link", key: "relink-all" }) : null,
      embeddable ? button(doc, "Embed sources", actions.embed, {
        severity: "secondary", icon: "pi pi-bookmark", key: "embed",
        aria: "Embed download links (properties.models) into the loader nodes of this workflow" }) : null));
    body.push(group(doc, "missing", "Missing", "missing", g.missing, (i) => missingItem(doc, i, vm, actions)));
    body.push(group(doc, "relocated", "Relocated", "relocated", g.relocated, (i) => relocatedItem(doc, i, actions)));
    body.push(group(doc, "present", "Present", "present", g.present, (i) => presentItem(doc, i)));
    const others = vm.otherJobs || [];
    if (others.length) {
      body.push(h(doc, "section", { class: "cmr-group", "aria-label": "Other downloads" },
        h(doc, "h3", { text: "Other downloads" }),
        h(doc, "ul", { class: "cmr-list" }, others.map((job) => h(doc, "li", { class: "cmr-item" },
          h(doc, "div", { class: "cmr-name", text: `${job.folder}/${job.filename}` }), progressBlock(doc, job, actions.cancel))))));
    }
  }
  const live = h(doc, "div", { class: "cmr-visually-hidden", "aria-live": "polite", role: "status", text: vm.notice || "" });
  const panel = h(doc, "div", { class: "cmr-panel", role: "region", "aria-label": "Model Resolver" }, header, body, live);
  root.replaceChildren(panel);
  panel.scrollTop = scroll;
  if (focusedKey) {
    const again = [...panel.querySelectorAll("[data-key]")].find((el) => el.getAttribute("data-key") === focusedKey);
    if (again && !again.disabled) again.focus();
  }
}

/** Update a job's progress block in place (no full re-render on every progress tick). */
export function updateJobInPlace(root, job, onCancel) {
  const doc = root.ownerDocument;
  let done = false;
  for (const el of root.querySelectorAll(`[data-job="${CSS_escape(job.id)}"]`)) {
    el.replaceWith(progressBlock(doc, job, onCancel));
    done = true;
  }
  return done;
}

function CSS_escape(s) {
  return String(s).replace(/["\\]/g, "\\$&");
}

function safeId(key) {
  return String(key).replace(/[^A-Za-z0-9_-]/g, "_");
}
