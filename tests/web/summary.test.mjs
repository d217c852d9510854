// The one count and its parts, the offline banner, plain messages, shards, legacy folders, misplaced
// files, honest relinks and subgraph titles (web/js/cmr_summary.js, cmr_graph.js, cmr_comfy.js).
import { test } from "node:test";
import assert from "node:assert/strict";

import * as L from "../../web/js/cmr_logic.js";
import { nodeMenuHooks, openTab } from "../../web/js/cmr_comfy.js";

const row = (over = {}) => ({
  filename: "model.safetensors", folder: "checkpoints", node_id: "4", node_type: "CheckpointLoaderSimple",
  input: "ckpt_name", subgraph_path: [], subgraph_id: null, active: true, status: "missing", local_path: null,
  relink_value: null, url: null, hash: null, hash_type: null, widget_index: 0, widget_key: null, ...over,
});
const hf = (name, over = {}) => ({ url: `https://huggingface.co/a/b/resolve/main/${name}`, source: "huggingface", confidence: 0.9, ...over });

/** The workflow of the issue: summary 5, badge 3, "Download all missing" 2 — now one count with its parts. */
function issueWorkflow() {
  const rows = [
    row({ filename: "ready1.safetensors", node_id: "1" }),
    row({ filename: "ready2.safetensors", node_id: "2", folder: "loras", input: "lora_name" }),
    row({ filename: "ambiguous.safetensors", node_id: "3", folder: "vae" }),
    row({ filename: "bypassed.safetensors", node_id: "5", folder: "loras", active: false }),
    row({ filename: "t5xxl.safetensors", node_id: "6", folder: "text_encoders", status: "relocated",
      local_path: "/m/loras/t5xxl.safetensors" }),
    row({ filename: "here.safetensors", node_id: "7", status: "present", local_path: "/m/checkpoints/here.safetensors" }),
  ];
  const resolved = new Map();
  for (const r of rows.filter((x) => x.status === "missing")) {
    const c = hf(r.filename);
    const ambiguous = r.filename.startsWith("ambiguous");
    resolved.set(L.refKey(r), { ...r, local_status: "missing", status: ambiguous ? "ambiguous" : "resolved",
      candidates: ambiguous ? [c, hf(`other-${r.filename}`, { confidence: 0.5 })] : [c], chosen: ambiguous ? null : c });
  }
  return L.groupModels(rows, resolved);
}

test("one count: badge, summary and Download all agree, and every part is explained", () => {
  const g = issueWorkflow();
  assert.deepEqual(g.misplaced.map((i) => i.filename), ["t5xxl.safetensors"], "a file in another folder is its own group");
  assert.equal(g.relocated.length, 0);
  const s = L.summarize(g);
  assert.deepEqual({ count: s.count, missing: s.missing, ready: s.ready, ambiguous: s.ambiguous, misplaced: s.misplaced, bypassed: s.bypassed },
    { count: 4, missing: 3, ready: 2, ambiguous: 1, misplaced: 1, bypassed: 1 });
  assert.equal(L.badgeText(g), String(s.count));
  const line = L.countLine(s);
  assert.equal(line.headline, "4 models to fix: 3 missing (2 ready to download, 1 ambiguous: choose a match); 1 in the wrong folder.");
  assert.equal(line.detail, "1 present · 1 used only by bypassed or muted nodes (not counted)");
  const dl = L.downloadAllState(s);
  assert.equal(dl.count, L.downloadableItems(g).length);
  assert.deepEqual(dl, { count: 2, disabled: false, why: "Downloads 2 of 3 missing; the others: 1 ambiguous: choose a match." });
  const busy = new Set([g.missing.find((i) => i.filename === "ready1.safetensors").key]);
  assert.equal(L.summarize(g, busy).downloading, 1);
  assert.equal(L.downloadAllState(L.summarize(g, busy)).count, L.downloadableItems(g, busy).length);
});

test("a disabled Download all (0) says why", () => {
  const offline = { ...L.summarize({}), missing: 2, count: 2, unavailable: 2 };
  assert.deepEqual(L.downloadAllState(offline), { count: 0, disabled: true, why: "Nothing to download yet: 2 can't be looked up now." });
  const mixed = { ...L.summarize({}), missing: 3, count: 3, auth_required: 1, not_found: 1, looking: 1 };
  assert.equal(L.downloadAllState(mixed).why, "Nothing to download yet: 1 needs a token, 1 not found on any source, 1 being looked up.");
  assert.equal(L.downloadAllState(L.summarize({})).why, "Nothing is missing.");
  const busy = { ...L.summarize({}), missing: 2, count: 2, downloading: 2 };
  assert.deepEqual(L.downloadAllState(busy), { count: 0, disabled: true, why: "All 2 missing models are downloading." });
  assert.equal(L.countLine(L.summarize({})).headline, "Nothing to fix: every model the workflow uses is here.");
});

test("offline: one banner for the panel, items are 'unavailable', no exception names or errno text", () => {
  const providers = [
    { name: "huggingface", state: "unavailable", host: "huggingface.co", message: "can't reach huggingface.co", detail: "ClientConnectorError: [Errno -3] Temporary failure in name resolution" },
    { name: "civitai", state: "unavailable", host: "civitai.com" },
    { name: "catalog", state: "ok" },
  ];
  assert.deepEqual(L.providerBanners(providers), [{ kind: "offline", text: "can't reach huggingface.co or civitai.com — check the network or proxy" }]);
  assert.deepEqual(L.providerBanners([{ name: "huggingface", state: "rate_limited", host: "huggingface.co", retry_after: 29.2 }]),
    [{ kind: "rate_limited", text: "huggingface.co is limiting how often we may ask — try again in 30 s" }]);
  assert.deepEqual(L.providerBanners([{ name: "catalog", state: "ok" }]), []);
  const r = row({ filename: "x.safetensors" });
  const g = L.groupModels([r], new Map([[L.refKey(r), { ...r, local_status: "missing", status: "unavailable", candidates: [],
    message: "no source could be asked: can't reach huggingface.co" }]]));
  assert.equal(L.missingState(g.missing[0]), "unavailable");
  for (const [raw, plain] of [
    ["no source has this file (failed: SourceUnavailable)", "no source has this file"],
    ["Cannot connect to host huggingface.co:443 ssl:default [Temporary failure in name resolution]",
      "Cannot connect to host huggingface.co:443 ssl:default can't look up the host name (offline or no DNS)"],
    ["ClientConnectorError: [Errno 111] Connection refused", "the server refused the connection"],
    ["aiohttp.client_exceptions.ServerTimeoutError: timed out", "timed out"],
  ]) {
    const out = L.plainMessage(raw);
    assert.equal(out, plain);
    assert.doesNotMatch(out, /Errno|[A-Z][a-z]+(Error|Exception|Unavailable)\b/);
  }
  assert.equal(L.describeError({ message: "Download failed: [Errno -2] Name or service not known" }).message,
    "Download failed: can't look up the host name (offline or no DNS)");
});

test("a sharded model is one item with its file count; legacy folders are said", () => {
  const files = [1, 2, 3, 4, 5].map((i) => ({ path: `m-0000${i}-of-00005.safetensors`, url: `u${i}`, size: 2_000_000_000 }));
  const item = { filename: "m-00001-of-00005.safetensors", candidates: [{ ...hf("m-00001-of-00005.safetensors"), files }] };
  assert.deepEqual(L.shardInfo(item), { count: 5, size: 10_000_000_000 });
  assert.equal(L.shardLabel(L.shardInfo(item)), "5 files, 10.0 GB");
  assert.deepEqual(L.shardInfo({ filename: "diffusion_pytorch_model-00002-of-00003.safetensors", candidates: null }), { count: 3, size: null });
  assert.equal(L.shardInfo({ filename: "plain.safetensors" }), null);
  const rows = [1, 2].map((i) => row({ filename: "m-00001-of-00005.safetensors", node_id: String(i) }));
  assert.equal(L.groupModels(rows).missing.length, 1, "two loaders of the same sharded model: one item");
  assert.equal(L.landingNote("diffusion_models", "/c/models/unet/flux.safetensors"),
    "Saved in models/unet/ — ComfyUI's older name for diffusion_models; ComfyUI reads both.");
  assert.equal(L.landingNote("text_encoders", "/c/models/clip", { done: false }),
    "Saves into models/clip/ — ComfyUI's older name for text_encoders; ComfyUI reads both.");
  assert.equal(L.landingNote("diffusion_models", "/c/models/diffusion_models/unet/x.safetensors"), null);
  assert.equal(L.landingNote("loras", "/c/models/loras/x.safetensors"), null);
});

test("a misplaced file is moved into the folder its loader reads, under the widget's name", () => {
  const g = issueWorkflow();
  assert.deepEqual(L.moveBody(g.misplaced[0]), { path: "/m/loras/t5xxl.safetensors", folder: "text_encoders", filename: "t5xxl.safetensors" });
  const win = row({ filename: "SD1.5\\x.safetensors", status: "relocated", local_path: "C:\\m\\vae\\x.safetensors" });
  assert.equal(L.moveBody(L.groupModels([win]).misplaced[0]).filename, "SD1.5/x.safetensors");
});

// ---- relink: report only what happened --------------------------------------------------------------
function graphWith(node) {
  const root = { nodes: [node] };
  root.getNodeById = (id) => root.nodes.find((n) => n.id === id) ?? null;
  return root;
}

test("relink on a node whose pack is not installed changes nothing and says why", () => {
  // LiteGraph keeps an unknown node type's saved data and shows it without widgets
  const missing = { id: 4, type: "ExoticLoader", widgets: undefined, widgets_values: ["old.safetensors"], has_errors: true,
    last_serialization: { id: 4, type: "ExoticLoader", widgets_values: ["old.safetensors"] } };
  const ref = row({ filename: "old.safetensors", node_type: "ExoticLoader", input: "model_name" });
  const r = L.relinkRef(graphWith(missing), ref, "sub/old.safetensors");
  assert.equal(r.changed, 0);
  assert.match(r.reason, /ExoticLoader #4 comes from a node pack that is not installed/);
  assert.deepEqual(missing.widgets_values, ["old.safetensors"], "no invisible change counted as a success");
  assert.deepEqual(missing.last_serialization.widgets_values, ["old.safetensors"]);
  assert.equal(L.applyRelink(graphWith(missing), ref, "sub/old.safetensors"), 0);
});

test("relink says when the widget is gone, holds another value, or the node is gone", () => {
  const noWidget = { id: 4, type: "CheckpointLoaderSimple", widgets: [{ name: "other", value: 1 }] };
  const ref = row({ filename: "old.safetensors", widget_index: null });
  assert.match(L.relinkRef(graphWith(noWidget), ref, "x").reason, /has no "ckpt_name" setting/);
  const changed = { id: 4, type: "CheckpointLoaderSimple", widgets: [{ name: "ckpt_name", value: "user-picked.safetensors" }] };
  assert.match(L.relinkRef(graphWith(changed), ref, "x").reason, /now holds "user-picked.safetensors", not "old.safetensors"/);
  assert.equal(changed.widgets[0].value, "user-picked.safetensors");
  assert.match(L.relinkRef(graphWith(changed), row({ node_id: "99" }), "x").reason, /#99 is no longer in the workflow/);
  const ok = { id: 4, type: "CheckpointLoaderSimple", widgets: [{ name: "ckpt_name", value: "old.safetensors" }] };
  assert.deepEqual(L.relinkRef(graphWith(ok), ref, "SD1.5/old.safetensors"), { changed: 1, reason: null });
});

test("subgraphs and nodes are named by their titles, as ComfyUI shows them", () => {
  const loader = { id: 7, type: "LoraLoader", title: "Detail LoRA", widgets: [] };
  const sub = { name: "Upscale stage", nodes: [loader], getNodeById: (id) => (id === 7 ? loader : null) };
  const inst = { id: 224, type: "sg-1", title: "Upscale stage", subgraph: sub, widgets: [] };
  const plain = { id: 225, type: "sg-2", title: "sg-2", subgraph: { name: "Refiner", nodes: [], getNodeById: () => null } };
  const root = { nodes: [inst, plain], subgraphs: new Map([["sg-1", sub], ["sg-3", { name: "Spare", nodes: [] }]]) };
  root.getNodeById = (id) => root.nodes.find((n) => n.id === id) ?? null;
  assert.deepEqual(L.describePlace(root, row({ node_id: "7", node_type: "LoraLoader", subgraph_path: ["224"], subgraph_id: "sg-1" })),
    { node: "Detail LoRA", path: ["Upscale stage"] });
  assert.deepEqual(L.describePlace(root, row({ node_id: "1", node_type: "VAELoader", subgraph_path: ["225"] })).path, ["Refiner"]);
  assert.deepEqual(L.describePlace(root, row({ node_id: "1", node_type: "VAELoader", subgraph_path: ["def:sg-3"], subgraph_id: "sg-3" })).path,
    ['unused subgraph "Spare"']);
});

// ---- ComfyUI glue --------------------------------------------------------------------------------
test("the node menu: the extension hook on new frontends, getExtraMenuOptions chained on 1.27", () => {
  const node = { id: 1 };
  const items = (n) => (n === node ? [{ content: "Find this model: x.safetensors (Model Resolver)" }] : []);
  const modern = nodeMenuHooks({ collectNodeMenuItems() {} }, items);
  assert.deepEqual(modern.getNodeMenuItems(node).map((i) => i.content), ["Find this model: x.safetensors (Model Resolver)"]);
  const untouched = { prototype: {} };
  modern.beforeRegisterNodeDef(untouched);
  assert.equal(untouched.prototype.getExtraMenuOptions, undefined, "no second copy where the hook exists");

  const legacy = nodeMenuHooks({}, items);
  assert.deepEqual(legacy.getNodeMenuItems(node), []);
  const calls = [];
  const type = { prototype: { getExtraMenuOptions(_c, options) { calls.push("own"); options.push({ content: "Open Image" }); } } };
  legacy.beforeRegisterNodeDef(type);
  const options = [];
  type.prototype.getExtraMenuOptions.call(node, {}, options);
  assert.deepEqual(calls, ["own"], "the node type's own entries stay");
  assert.deepEqual(options.map((o) => o?.content ?? null), ["Open Image", null, "Find this model: x.safetensors (Model Resolver)"]);
  const other = [];
  type.prototype.getExtraMenuOptions.call({ id: 2 }, {}, other);
  assert.deepEqual(other.map((o) => o.content), ["Open Image"], "nodes without a missing model get nothing");
});

test("opening the tab never toggles it closed", () => {
  const toggled = [];
  const store = { activeSidebarTabId: null, toggleSidebarTab(id) { toggled.push(id); this.activeSidebarTabId = id; } };
  const app = { extensionManager: { sidebarTab: store } };
  openTab(app);
  openTab(app);
  assert.deepEqual(toggled, ["model-resolver"]);
});
