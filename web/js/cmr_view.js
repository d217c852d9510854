// Model Resolver sidebar: DOM rendering. Exports functions only; nothing runs on import
// (ComfyUI imports every .js under WEB_DIRECTORY). Colours come from the ComfyUI/PrimeVue theme
// variables; PrimeVue classes are used where ComfyUI ships their styles, with zero-specificity
// fallbacks (`:where`) so the theme always wins.
import {
  ambiguousText, authNeeded, countLine, foundFolder, describeCandidate, describeError, downloadAllState, folderUnknownText, impliedNote,
  landingNote, missingState, packsOf, plainMessage, progressInfo, providerBanners, refKey, shardInfo, shardLabel, sourceName,
  summarize, targetFolder, unknownFolder, ACTIVE_STATES,
} from "./cmr_logic.js";
import { CSS, STYLE_ID } from "./cmr_style.js";

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

function button(doc, label, onclick, { severity = "", icon = "", aria = null, disabled = false, key = null, describedby = null } = {}) {
  const cls = `cmr-btn p-button p-component p-button-sm${severity ? ` p-button-${severity}` : ""}`;
  return h(doc, "button", { type: "button", class: cls, onclick, "aria-label": aria, disabled, "data-key": key,
    "aria-describedby": describedby },
    icon ? h(doc, "span", { class: `p-button-icon ${icon}`, "aria-hidden": "true" }) : null,
    h(doc, "span", { class: "p-button-label", text: label }));
}

function tag(doc, text, kind) {
  return h(doc, "span", { class: `cmr-tag p-tag p-component cmr-tag-${kind}` }, h(doc, "span", { class: "p-tag-label", text }));
}

const PICKLE_NOTE = "Pickle format: loading this file can run code. Prefer a .safetensors version from a source you trust.";

/** A path or file name that wraps anywhere, with its full value on hover. */
function pathText(doc, value, tagName = "span") {
  return h(doc, tagName, { class: "cmr-path", title: value, text: value });
}

/** The name line of an item: the file name, then its warnings as tags. */
function nameLine(doc, item) {
  const shards = shardInfo(item);
  return h(doc, "div", { class: "cmr-name", title: item.filename }, item.filename, " ",
    shards ? h(doc, "span", { "data-shards": String(shards.count), title: "One model stored as several files, downloaded together" },
      tag(doc, shardLabel({ ...shards, size: null }), "info")) : null,
    item.pickle ? h(doc, "span", { title: PICKLE_NOTE, "aria-label": PICKLE_NOTE, "data-pickle": "true" }, tag(doc, "pickle", "pickle")) : null,
    item.refs.some((r) => r.implied) ? tag(doc, "implied", "info") : null,
    unknownFolder(item) ? h(doc, "span", { "data-folder-unknown": "true" }, tag(doc, "folder unknown", "unavailable")) : null,
    item.inactive ? tag(doc, "bypassed", "info") : null);
}

/** Where the model comes from: "implied by <node> (preset '…')" per implying node (the server's note on hover). */
function originLines(doc, item, vm) {
  const seen = new Set();
  const lines = [];
  for (const r of item.refs) {
    const text = impliedNote(r, vm.places?.get(refKey(r))?.node);
    if (!text || seen.has(text)) continue;
    seen.add(text);
    lines.push(h(doc, "div", { class: "cmr-hint", "data-implied": "", title: r.note || null }, text));
  }
  return lines;
}

/** A folder-unknown item: why, and the folder the user picks for the download (the candidates, or one typed). */
function folderPicker(doc, item, vm, actions, { choose }) {
  const folders = unknownFolder(item);
  const pick = vm.folderPicks?.get(item.key) ?? "";
  const id = `cmr-folder-${safeId(item.key)}`;
  const node = vm.places?.get(refKey(item.refs[0]))?.node;
  const lines = [h(doc, "div", { class: "cmr-warn", "data-folder-why": "" }, folderUnknownText(item, node))];
  if (!choose) return lines;
  const onchange = (e) => actions.pickFolder(item.key, String(e.target.value || "").trim());
  const control = folders.length
    ? h(doc, "select", { id, class: "cmr-input p-inputtext p-component", "data-key": `folder:${item.key}`, onchange },
      h(doc, "option", { value: "", text: "choose a folder…" }),
      folders.map((f) => h(doc, "option", { value: f, selected: f === pick, text: `models/${f}` })))
    : h(doc, "input", { id, class: "cmr-input p-inputtext p-component", "data-key": `folder:${item.key}`, value: pick,
      placeholder: "a model folder, e.g. checkpoints", spellcheck: "false", onchange });
  lines.push(h(doc, "label", { for: id, class: "cmr-actions" }, h(doc, "span", { text: "Download into" }), control));
  return lines;
}

/** "loras · Load LoRA in subgraph "Upscale stage"" — nodes named as ComfyUI shows them. */
function usedBy(item, places) {
  const nodes = item.refs.map((r) => {
    const place = places?.get(refKey(r));
    const node = place?.node || r.node_type;
    const path = place ? place.path : (r.subgraph_path || []).map(() => "subgraph");
    const where = path.length ? ` in ${path.map((p) => (p.startsWith("unused") ? p : `subgraph "${p}"`)).join(" › ")}` : "";
    return `${node}${where}${r.active === false ? " (bypassed)" : ""}`;
  });
  const unique = [...new Set(nodes)];
  const packs = packsOf(item);
  const folder = item.folder ?? (unknownFolder(item) ? "folder unknown" : `found in ${foundFolder(item.localPath) ?? "a model folder"}`);
  return `${folder} · ${unique.slice(0, 3).join(", ")}${unique.length > 3 ? ` +${unique.length - 3} more` : ""}`
    + (packs.length ? ` · node pack ${packs.join(", ")}` : "");
}

function errorLines(doc, vm, item) {
  const e = vm.itemErrors.get(item.key);
  if (!e) return [];
  return [h(doc, "div", { class: "cmr-error", role: "alert", text: plainMessage(e.message) }),
    e.hint ? h(doc, "div", { class: "cmr-hint", text: plainMessage(e.hint) }) : null];
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
  const landed = job.state === "completed" ? landingNote(job.folder, job.path) : null;
  return h(doc, "div", { class: "cmr-job", "data-job": job.id },
    job.state === "completed" || job.state === "cancelled" ? null : bar,
    h(doc, "div", { class: "cmr-actions" },
      h(doc, "span", { class: `cmr-meta cmr-progress-text${job.state === "completed" ? " cmr-ok" : ""}`, text: info.text }),
      ACTIVE_STATES.has(job.state) && onCancel
        ? button(doc, "Cancel", () => onCancel(job), { severity: "secondary", icon: "pi pi-times", aria: `Cancel download of ${job.filename}` })
        : null),
    landed ? h(doc, "div", { class: "cmr-hint", "data-landing": "" }, landed) : null,
    err ? h(doc, "div", { class: "cmr-error", role: "alert" }, err.message) : null,
    err?.hint ? h(doc, "div", { class: "cmr-hint" }, err.hint) : null);
}

function candidateBlock(doc, c, { alt = false, item = null, directory = null } = {}) {
  const d = describeCandidate(c);
  const shards = c.files?.length > 1 ? shardInfo({ candidates: [c] }) : null;
  const landing = item ? landingNote(item.folder, directory, { done: false }) : null;
  return h(doc, "div", { class: `cmr-candidate${alt ? " cmr-alt" : ""}` },
    h(doc, "div", {},
      h(doc, "strong", { text: d.source }), " · ", shards ? shardLabel(shards) : d.size,
      d.confidence ? ` · ${d.confidence} match` : "",
      d.gated ? h(doc, "span", { class: "cmr-warn", text: " · needs login" }) : null),
    d.where ? h(doc, "div", { class: "cmr-meta cmr-path", title: d.url, text: d.where }) : null,
    d.reasons.length ? h(doc, "ul", { class: "cmr-reasons", "aria-label": "Why this source" },
      d.reasons.map((r) => h(doc, "li", { text: r }))) : null,
    landing ? h(doc, "div", { class: "cmr-hint", "data-landing": "" }, landing) : null);
}

const STATE_TAGS = { unavailable: "unavailable", ambiguous: "ambiguous", not_found: "not found", auth_required: "needs token" };

function missingItem(doc, item, vm, actions) {
  const job = vm.jobsByItem.get(item.key) || null;
  const busy = job && ACTIVE_STATES.has(job.state);
  const cands = item.candidates || [];
  const best = cands[0];
  const auth = authNeeded(item);
  const expanded = vm.expanded.has(item.key);
  const altId = `cmr-alt-${safeId(item.key)}`;
  const st = missingState(item, vm.busyKeys);
  const unknown = unknownFolder(item);
  const noFolder = !targetFolder(item, vm.folderPicks?.get(item.key));
  const parts = [
    nameLine(doc, item),
    h(doc, "div", { class: "cmr-meta", text: usedBy(item, vm.places) }),
    ...originLines(doc, item, vm),
    ...(unknown ? folderPicker(doc, item, vm, actions, { choose: cands.length > 0 }) : []),
  ];
  if (STATE_TAGS[st]) parts.push(h(doc, "div", { "data-state": st }, tag(doc, STATE_TAGS[st], st === "unavailable" ? "unavailable" : "info")));
  if (item.candidates === null) {
    parts.push(h(doc, "div", { class: "cmr-muted", text: vm.resolving ? "Looking for download sources…" : (vm.resolveError ? "Sources unavailable." : "") }));
  } else if (st === "unavailable") {
    parts.push(h(doc, "div", { class: "cmr-muted", text: "Not looked up: no source could be asked (see the note at the top)." }));
  } else if (!best && st === "not_found") {
    // what was tried is long (every query of every source): on hover, not in the list
    parts.push(h(doc, "div", { class: "cmr-warn", title: plainMessage(item.message) || null, text: "Not found on any source." }));
  } else if (!best) {
    parts.push(h(doc, "div", { class: "cmr-warn" }, plainMessage(item.message) || "No download source found."));
    if (item.resolution === "auth_required" && auth) parts.push(tokenHint(doc, auth, actions));
  } else if (!item.certain && !auth) {
    // ambiguous: a choice between the candidates, each with its reasons; none is offered as "the" answer
    parts.push(h(doc, "div", { class: "cmr-hint", "data-ambiguous": String(cands.length) }, ambiguousText(cands.length)));
    parts.push(choiceList(doc, item, expanded ? cands : cands.slice(0, CHOICES), { busy, noFolder, actions, altId }));
    if (cands.length > CHOICES) {
      parts.push(h(doc, "button", { type: "button", class: "cmr-btn p-button p-component p-button-sm p-button-text",
        "aria-expanded": expanded ? "true" : "false", "aria-controls": altId, "data-key": `alt:${item.key}`,
        onclick: () => actions.toggleAlternatives(item.key) }, expanded ? "Show fewer" : `Show ${cands.length - CHOICES} more`));
    }
  } else {
    parts.push(candidateBlock(doc, best, { item, directory: vm.disk?.get(item.folder) }));
    if (auth) parts.push(tokenHint(doc, auth, actions));
    const row = h(doc, "div", { class: "cmr-actions" },
      button(doc, "Download", () => actions.download(item, null), {
        icon: "pi pi-download", disabled: busy || noFolder, aria: `Download ${item.filename} from ${sourceName(best.source)}`, key: `dl:${item.key}` }),
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
            severity: "secondary", icon: "pi pi-download", disabled: busy || noFolder,
            aria: `Download ${item.filename} from ${sourceName(c.source)} ${c.url}` })))) ));
    }
  }
  if (job) parts.push(progressBlock(doc, job, actions.cancel));
  parts.push(...errorLines(doc, vm, item));
  return itemBox(doc, item, vm, "missing", parts);
}

const CHOICES = 3; // candidates of an ambiguous model shown before "Show N more"

/** The candidates of an ambiguous model, numbered, each with its reasons and its own download button. */
function choiceList(doc, item, cands, { busy, noFolder, actions, altId }) {
  return h(doc, "ol", { id: altId, class: "cmr-list", "aria-label": `Candidates for ${item.filename}` }, cands.map((c, i) =>
    h(doc, "li", { class: "cmr-item", "data-choice": String(i + 1) }, candidateBlock(doc, c, { alt: true }),
      h(doc, "div", { class: "cmr-actions" }, button(doc, "Download this one", () => actions.download(item, c), {
        severity: "secondary", icon: "pi pi-download", disabled: busy || noFolder, key: `dl:${item.key}:${i}`,
        aria: `Download ${item.filename} from ${sourceName(c.source)} ${c.url}`,
        describedby: noFolder ? `cmr-folder-${safeId(item.key)}` : null })))));
}

function itemBox(doc, item, vm, status, parts) {
  const focus = vm.focusKey === item.key;
  return h(doc, "li", { class: `cmr-item${item.inactive ? " cmr-inactive" : ""}${focus ? " cmr-focus" : ""}`,
    "data-item": item.key, "data-status": status, "data-focus": focus ? "true" : null }, parts);
}

function tokenHint(doc, token, actions) {
  return h(doc, "div", { class: "cmr-hint", role: "note" },
    `This source needs a ${token.label}. Set it in `,
    h(doc, "a", { href: "#", onclick: (e) => { e.preventDefault(); actions.openSettings(); }, text: "Settings" }),
    ` (or ${token.env} before starting ComfyUI); create one at ${token.where}.`);
}

function relocatedItem(doc, item, vm, actions) {
  return itemBox(doc, item, vm, "relocated", [
    nameLine(doc, item),
    h(doc, "div", { class: "cmr-meta", text: usedBy(item, vm.places) }),
    ...originLines(doc, item, vm),
    h(doc, "div", {}, "Found as ", pathText(doc, item.relinkValue, "code")),
    h(doc, "div", { class: "cmr-actions" }, button(doc, "Relink", () => actions.relink(item), {
      icon: "pi pi-link", aria: `Relink ${item.filename} to ${item.relinkValue}`, key: `relink:${item.key}` })),
    ...errorLines(doc, vm, item)]);
}

function misplacedItem(doc, item, vm, actions) {
  return itemBox(doc, item, vm, "misplaced", [
    nameLine(doc, item),
    h(doc, "div", { class: "cmr-meta", text: usedBy(item, vm.places) }),
    ...originLines(doc, item, vm),
    h(doc, "div", { class: "cmr-warn" }, "In another folder: ", pathText(doc, item.localPath ?? "?"),
      `. ComfyUI looks for it in ${item.folder}.`),
    h(doc, "div", { class: "cmr-actions" }, button(doc, `Move into ${item.folder}`, () => actions.move(item), {
      icon: "pi pi-arrow-right", aria: `Move ${item.filename} into ${item.folder}`, key: `move:${item.key}` })),
    ...errorLines(doc, vm, item)]);
}

function presentItem(doc, item, vm) {
  return itemBox(doc, item, vm, "present", [
    nameLine(doc, item),
    h(doc, "div", { class: "cmr-meta", text: usedBy(item, vm.places) }),
    ...originLines(doc, item, vm),
    item.localPath ? h(doc, "div", { class: "cmr-meta" }, pathText(doc, item.localPath)) : null,
    !item.folder && item.status === "relocated" ? h(doc, "div", { class: "cmr-warn", "data-folder-why": "" },
      "A file of this name, but not where the workflow names it; nothing tells which folder its node reads.") : null,
    item.localPath && landingNote(item.folder, item.localPath) ? h(doc, "div", { class: "cmr-hint", "data-landing": "" },
      landingNote(item.folder, item.localPath).replace("Saved in", "In")) : null]);
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
  const g = { present: [], relocated: [], misplaced: [], missing: [], ...(vm.groups || {}) };
  const s = summarize(g, vm.busyKeys);
  const dl = downloadAllState(s, { resolving: vm.resolving });
  const embeddable = [...g.missing, ...g.relocated, ...g.misplaced, ...g.present]
    .filter((i) => i.url || i.candidates?.[0]?.url || vm.sources?.has(i.key)).length;
  const relinkable = g.relocated.filter((i) => !i.inactive).length;

  const header = h(doc, "div", { class: "cmr-header" },
    h(doc, "h2", { class: "cmr-title", text: "Model Resolver" }),
    h(doc, "div", { class: "cmr-toolbar" },
      button(doc, "", actions.reanalyze, { severity: "text", icon: "pi pi-refresh", aria: "Analyze the workflow again", key: "reanalyze" }),
      button(doc, "", () => actions.toggleSettings(), { severity: "text", icon: "pi pi-cog", aria: "Settings: access tokens", key: "settings" })));

  const body = [];
  if (vm.settingsOpen) body.push(settingsForm(doc, vm, actions));
  if (vm.error) {
    body.push(h(doc, "div", { class: "cmr-error", role: "alert", text: plainMessage(vm.error.message) }));
    if (vm.error.hint) body.push(h(doc, "div", { class: "cmr-hint", text: plainMessage(vm.error.hint) }));
  }
  // one banner for the whole panel when the sources can't be asked (offline, proxy, rate limits)
  for (const b of providerBanners(vm.providers)) {
    body.push(h(doc, "div", { class: "cmr-banner", role: "alert", "data-banner": b.kind },
      h(doc, "span", { class: `pi ${b.kind === "offline" ? "pi-wifi" : "pi-clock"}`, "aria-hidden": "true" }), h(doc, "span", { text: b.text })));
  }
  if (vm.phase === "analyzing" && !vm.groups) body.push(h(doc, "p", { class: "cmr-muted", text: "Analyzing the workflow…" }));
  if (vm.groups) {
    const line = countLine(s);
    body.push(h(doc, "div", { class: "cmr-summary", "data-summary": "", "data-count": String(s.count) },
      h(doc, "div", {}, vm.workflowName ? h(doc, "strong", { class: "cmr-wfname", title: vm.workflowName, text: `${vm.workflowName}: ` }) : null, line.headline),
      h(doc, "div", { class: "cmr-meta", "data-summary-detail": "" }, line.detail)));
    if (vm.resolveError) {
      const e = vm.resolveError;
      body.push(h(doc, "div", { class: "cmr-warn", role: "alert", text: `Download sources: ${plainMessage(e.message)}` }));
      if (e.hint) body.push(h(doc, "div", { class: "cmr-hint", text: plainMessage(e.hint) }));
    }
    const whyId = "cmr-download-all-why";
    body.push(h(doc, "div", { class: "cmr-actions" },
      s.missing ? button(doc, `Download all (${dl.count})`, actions.downloadAll, {
        icon: "pi pi-download", disabled: dl.disabled, key: "download-all", describedby: dl.why ? whyId : null }) : null,
      relinkable > 1 ? button(doc, `Relink all (${relinkable})`, actions.relinkAll, { severity: "secondary", icon: "pi pi-link", key: "relink-all" }) : null,
      embeddable ? button(doc, "Embed sources", actions.embed, {
        severity: "secondary", icon: "pi pi-bookmark", key: "embed",
        aria: "Embed download links (properties.models) into the loader nodes of this workflow" }) : null,
      s.missing && dl.why ? h(doc, "div", { id: whyId, class: "cmr-why", "data-why": "", text: dl.why }) : null));
    body.push(group(doc, "missing", "Missing", "missing", g.missing, (i) => missingItem(doc, i, vm, actions)));
    if (g.misplaced.length) {
      body.push(group(doc, "misplaced", "In the wrong folder", "misplaced", g.misplaced, (i) => misplacedItem(doc, i, vm, actions)));
    }
    body.push(group(doc, "relocated", "To relink", "relocated", g.relocated, (i) => relocatedItem(doc, i, vm, actions)));
    body.push(group(doc, "present", "Present", "present", g.present, (i) => presentItem(doc, i, vm)));
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
  const focusItem = vm.focusKey ? panel.querySelector("[data-focus=true]") : null;
  if (focusItem && panel.dataset.focused !== vm.focusKey) focusItem.scrollIntoView?.({ block: "center" });
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
