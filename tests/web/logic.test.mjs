// The sidebar's pure logic (web/js/cmr_logic.js), run with `node --test tests/web/`.
import { test } from "node:test";
import assert from "node:assert/strict";

import * as L from "../../web/js/cmr_logic.js";

const row = (over = {}) => ({
  filename: "model.safetensors", folder: "checkpoints", node_id: "4", node_type: "CheckpointLoaderSimple",
  input: "ckpt_name", subgraph_path: [], subgraph_id: null, active: true, status: "missing", local_path: null,
  relink_value: null, url: null, hash: null, hash_type: null, widget_index: 0, widget_key: null, ...over,
});

test("helper modules do nothing on import (no DOM, no globals touched)", async () => {
  const before = Object.keys(globalThis).sort();
  await import("../../web/js/cmr_view.js");
  await import("../../web/js/cmr_controller.js");
  assert.equal(typeof globalThis.document, "undefined");
  assert.deepEqual(Object.keys(globalThis).sort(), before);
});

test("models are grouped per file into present, relocated, misplaced and missing", () => {
  const models = [
    row({ filename: "b.safetensors", node_id: "1", status: "present", local_path: "/m/checkpoints/b.safetensors" }),
    row({ filename: "SD1.5\\a.safetensors", node_id: "2", status: "relocated", relink_value: "SD1.5/a.safetensors" }),
    row({ filename: "x.safetensors", node_id: "3", folder: "loras", input: "lora_name" }),
    row({ filename: "x.safetensors", node_id: "7", folder: "loras", input: "lora_name", subgraph_path: ["9"] }),
    row({ filename: "y.safetensors", node_id: "5", folder: "vae", active: false }),
  ];
  const g = L.groupModels(models);
  assert.deepEqual(g.present.map((i) => i.filename), ["b.safetensors"]);
  assert.deepEqual(g.relocated.map((i) => i.relinkValue), ["SD1.5/a.safetensors"]);
  assert.deepEqual(g.missing.map((i) => [i.filename, i.refs.length, i.inactive]),
    [["x.safetensors", 2, false], ["y.safetensors", 1, true]]);
  assert.equal(L.missingCount(g), 1, "bypassed-only models do not count");
  assert.equal(L.badgeText(g), "2", "the one count: 1 missing + 1 to relink (the bypassed one is not counted)");
  assert.equal(L.badgeText(L.groupModels([models[0]])), "");
});

test("the most urgent status of a file wins and resolve rows are merged in", () => {
  const a = row({ node_id: "1", status: "present" });
  const b = row({ node_id: "2", status: "missing" });
  const cand = { url: "https://huggingface.co/r/resolve/main/model.safetensors", source: "huggingface", confidence: 0.9 };
  const resolved = new Map([[L.refKey(b), { ...b, status: "resolved", local_status: "missing", candidates: [cand], chosen: cand }]]);
  const g = L.groupModels([a, b], resolved);
  assert.equal(g.missing.length, 1);
  assert.equal(g.missing[0].resolution, "resolved");
  assert.equal(g.missing[0].candidates[0].source, "huggingface");
  assert.equal(L.localStatus({ status: "auth_required", local_status: "missing" }), "missing");
  assert.equal(L.localStatus({ status: "resolved" }), "missing");
});

test("formatting: bytes, speed, durations, confidence", () => {
  assert.equal(L.formatBytes(512), "512 B");
  assert.equal(L.formatBytes(2_132_000_000), "2.13 GB");
  assert.equal(L.formatBytes(335_000_000), "335 MB");
  assert.equal(L.formatBytes(null), "size unknown");
  assert.equal(L.formatSpeed(12_500_000), "12.5 MB/s");
  assert.equal(L.formatSpeed(0), "");
  assert.equal(L.formatDuration(42.4), "42 s");
  assert.equal(L.formatDuration(125), "2 min 05 s");
  assert.equal(L.formatDuration(3 * 3600 + 7 * 60), "3 h 07 min");
  assert.equal(L.formatDuration(null), "");
  assert.equal(L.formatConfidence(0.874), "87%");
  const d = L.describeCandidate({ url: "https://huggingface.co/org/repo/resolve/main/m.safetensors", source: "huggingface",
    confidence: 0.95, size: 4_000_000_000, repo: "org/repo", path: "m.safetensors", reasons: ["exact file name"], gated: true });
  assert.deepEqual([d.source, d.size, d.confidence, d.where, d.gated, d.reasons],
    ["Hugging Face", "4.00 GB", "95%", "org/repo/m.safetensors", true, ["exact file name"]]);
});

test("progress math: percent, speed smoothing, ETA and the status line", () => {
  const j0 = L.mergeJob(null, L.normalizeJob({ job_id: "j", state: "running", filename: "m.safetensors", folder: "loras",
    bytes_done: 0, total: 1_000_000 }), 1000);
  const j1 = L.mergeJob(j0, L.normalizeJob({ job_id: "j", state: "running", bytes_done: 250_000, total: 1_000_000,
    filename: "m.safetensors", folder: "loras" }), 2000);
  assert.equal(j1.speed, 250_000, "bytes per second from two samples");
  assert.equal(j1.eta, 3, "750 kB left at 250 kB/s");
  const j2 = L.mergeJob(j1, L.normalizeJob({ job_id: "j", state: "running", bytes_done: 750_000, total: 1_000_000,
    filename: "m.safetensors", folder: "loras" }), 3000);
  assert.equal(j2.speed, 250_000 * 0.7 + 500_000 * 0.3, "exponential moving average");
  const info = L.progressInfo(j2);
  assert.equal(info.percent, 75);
  assert.match(info.text, /^75% · 750 kB of 1.00 MB · 325 kB\/s · 1 s left$/);
  const server = L.normalizeJob({ job_id: "k", state: "running", bytes_done: 10, total: 100, speed: 5, eta: 18, filename: "a", folder: "b" });
  assert.equal(L.mergeJob(null, server).speed, 5, "server speed wins");
  assert.equal(L.progressInfo({ ...server, state: "completed", bytesDone: 100 }).percent, 100);
  assert.equal(L.progressInfo({ id: "u", state: "running", bytesDone: 5000, total: null, speed: 0 }).percent, null);
  assert.equal(L.normalizeJob({}), null);
  assert.equal(L.normalizeJob({ id: 7, state: "queued" }).id, "7");
});

test("a job is matched to the file it downloads", () => {
  const item = { folder: "checkpoints", filename: "SD1.5\\dream.safetensors" };
  const jobs = [
    { id: "1", folder: "loras", filename: "dream.safetensors" },
    { id: "2", folder: "checkpoints", filename: "SD1.5/dream.safetensors" },
  ];
  assert.equal(L.jobForItem(jobs, item).id, "2");
  assert.equal(L.jobForItem([{ id: "3", folder: "checkpoints", filename: "dream.safetensors" }], item).id, "3");
  assert.equal(L.jobForItem([{ id: "4", folder: "checkpoints", filename: "other.safetensors" }], item), null);
});

test("auth errors say which token and where to set it", () => {
  const e = L.describeError({ type: "AuthRequired", code: "auth_required", message: "This repo is gated.",
    token_env: "CMR_HF_TOKEN", gated: true }, 424);
  assert.equal(e.token.field, "hf_token");
  assert.match(e.hint, /Settings/);
  assert.match(e.hint, /CMR_HF_TOKEN/);
  assert.match(e.hint, /accept the license/);
  const civ = L.describeError({ code: "auth_required", message: "login", token_env: "CMR_CIVITAI_API_KEY" }, 424);
  assert.equal(civ.token.field, "civitai_api_key");
  const missing = L.describeError(null, 404);
  assert.match(missing.message, /routes are not loaded/);
  assert.equal(L.describeError({ code: "x", message: "Boom", hint: "Do y" }, 500).hint, "Do y");
  const item = { resolution: "auth_required", candidates: [{ source: "civitai", requires_auth: true, token_env: null }], refs: [] };
  assert.equal(L.authNeeded(item).env, "CMR_CIVITAI_API_KEY");
  assert.equal(L.authNeeded({ resolution: "resolved", candidates: [{ source: "huggingface" }], refs: [] }), null);
});

test("download bodies: a certain resolution as the resolve row, any other pick as an explicit URL", () => {
  const best = { url: "https://huggingface.co/a/b/resolve/main/m.safetensors", source: "huggingface", confidence: 0.9 };
  const alt = { url: "https://civitai.com/api/download/models/1", source: "civitai", confidence: 0.6,
    sha256: "A".repeat(64), size: 123 };
  const r = row({ filename: "sub\\m.safetensors", candidates: [alt, best], chosen: best, status: "resolved", local_status: "missing" });
  const item = L.groupModels([r], new Map([[L.refKey(r), r]])).missing[0];
  assert.deepEqual(item.candidates.map((c) => c.source), ["huggingface", "civitai"], "the server's choice comes first");
  assert.equal(item.certain, true);
  assert.deepEqual(L.downloadBody(item), { models: [r] });
  assert.deepEqual(L.downloadBody(item, alt), { url: alt.url, folder: "checkpoints", filename: "sub/m.safetensors",
    sha256: alt.sha256, size: 123, source: "civitai" });
  const g = L.groupModels([r], new Map([[L.refKey(r), r]]));
  assert.equal(L.downloadAllBody(g).models.length, 1);
  assert.equal(L.downloadAllBody(g, new Set([item.key])).models.length, 0, "busy items are skipped");

  // ambiguous: the server leaves the pick to the user; "Download best match" sends the URL
  const amb = row({ node_id: "9", filename: "x.safetensors", candidates: [best, alt], status: "ambiguous", local_status: "missing" });
  const ga = L.groupModels([amb], new Map([[L.refKey(amb), amb]]));
  const ai = ga.missing[0];
  assert.equal(ai.certain, false);
  assert.deepEqual(L.downloadBody(ai), { url: best.url, folder: "checkpoints", filename: "x.safetensors", source: "huggingface" });
  assert.equal(L.downloadAllBody(ga).models.length, 0, "download-all takes certain models only");
});

test("skipped and failed rows of a download answer land on their items", () => {
  const items = [{ key: "loras|a.safetensors", filename: "a.safetensors", folder: "loras" },
    { key: "vae|sub/b.safetensors", filename: "sub\\b.safetensors", folder: "vae" }];
  const problems = L.downloadProblems({ jobs: [],
    skipped: [{ filename: "a.safetensors", folder: "loras", reason: "its node is bypassed or muted" }],
    errors: [{ filename: "sub/b.safetensors", folder: "vae", error: { code: "host_not_allowed", message: "Host x is not allowed.", hint: "Add it to CMR_ALLOWED_HOSTS." } }],
  }, items);
  assert.equal(problems.get("loras|a.safetensors").message, "Not downloaded: its node is bypassed or muted.");
  assert.deepEqual([problems.get("vae|sub/b.safetensors").message, problems.get("vae|sub/b.safetensors").hint],
    ["Host x is not allowed.", "Add it to CMR_ALLOWED_HOSTS."]);
});

// ---- a live graph, shaped like litegraph's (root, subgraph instances, promoted widgets) ----------
function fakeGraph() {
  const widget = (name, value) => ({ name, value, calls: 0, callback(v) { this.calls++; this.last = v; } });
  const inner = { id: 1, type: "CheckpointLoaderSimple", widgets: [widget("ckpt_name", "old.safetensors")], properties: {} };
  const deep = { id: 5, type: "LoraLoader", widgets: [widget("lora_name", "l.safetensors"), widget("strength_model", 1)], properties: {} };
  const rg = { id: 8, type: "Power Lora Loader (rgthree)", widgets: [widget("lora_1", { on: true, lora: "r.safetensors", strength: 1 })] };
  const innerSub = { nodes: [deep], getNodeById: (id) => [deep].find((n) => n.id === id) ?? null };
  const innerInst = { id: 3, type: "sg-inner", subgraph: innerSub, widgets: [widget("lora_name", "l.safetensors")] };
  const sub = { nodes: [inner, innerInst], getNodeById: (id) => [inner, innerInst].find((n) => n.id === id) ?? null };
  const inst = { id: 2, type: "sg-outer", subgraph: sub, widgets: [widget("ckpt_name", "old.safetensors")] };
  const unused = { nodes: [{ id: 4, type: "VAELoader", widgets: [widget("vae_name", "v.safetensors")] }] };
  unused.getNodeById = (id) => unused.nodes.find((n) => n.id === id) ?? null;
  const root = { nodes: [inst, rg], subgraphs: new Map([["sg-outer", sub], ["sg-inner", innerSub], ["sg-unused", unused]]) };
  root.getNodeById = (id) => root.nodes.find((n) => n.id === id) ?? null;
  return { root, inner, inst, deep, innerInst, rg, unused };
}

test("relink rewrites the loader inside a subgraph and the promoted widget of its instance", () => {
  const { root, inner, inst } = fakeGraph();
  const ref = row({ filename: "old.safetensors", node_id: "1", subgraph_path: ["2"], subgraph_id: "sg-outer" });
  assert.equal(L.applyRelink(root, ref, "SD1.5/old.safetensors"), 2);
  assert.equal(inner.widgets[0].value, "SD1.5/old.safetensors");
  assert.equal(inst.widgets[0].value, "SD1.5/old.safetensors");
  assert.equal(inner.widgets[0].calls, 1, "the widget callback runs (frontends update their own state)");
  assert.equal(L.applyRelink(root, ref, "again.safetensors"), 0, "only values equal to the old one change");
});

test("relink in nested subgraphs, dict widgets and definitions without an instance", () => {
  const { root, deep, innerInst, rg, unused } = fakeGraph();
  const nested = row({ filename: "l.safetensors", node_id: "5", input: "lora_name", subgraph_path: ["2", "3"], subgraph_id: "sg-inner" });
  assert.equal(L.applyRelink(root, nested, "sd15/l.safetensors"), 2);
  assert.equal(deep.widgets[0].value, "sd15/l.safetensors");
  assert.equal(innerInst.widgets[0].value, "sd15/l.safetensors");
  assert.equal(deep.widgets[1].value, 1);
  const dict = row({ filename: "r.safetensors", node_id: "8", input: "lora_1", widget_key: "lora" });
  assert.equal(L.applyRelink(root, dict, "x/r.safetensors"), 1);
  assert.deepEqual(rg.widgets[0].value, { on: true, lora: "x/r.safetensors", strength: 1 });
  const def = row({ filename: "v.safetensors", node_id: "4", input: "vae_name", subgraph_path: ["def:sg-unused"], subgraph_id: "sg-unused" });
  assert.equal(L.applyRelink(root, def, "vae/v.safetensors"), 1);
  assert.equal(unused.nodes[0].widgets[0].value, "vae/v.safetensors");
  assert.equal(L.applyRelink(root, row({ node_id: "99" }), "z"), 0, "unknown nodes change nothing");
});

test("embedding writes standard properties.models on the loader nodes", () => {
  const { root, inner, deep } = fakeGraph();
  const sha = "ab".repeat(32);
  const r1 = row({ filename: "old.safetensors", node_id: "1", subgraph_path: ["2"], subgraph_id: "sg-outer",
    candidates: [{ url: "https://huggingface.co/o/r/resolve/main/old.safetensors", source: "huggingface", sha256: sha }],
    status: "resolved", local_status: "missing" });
  r1.chosen = r1.candidates[0];
  const r2 = row({ filename: "l.safetensors", folder: "loras", node_id: "5", input: "lora_name",
    subgraph_path: ["2", "3"], subgraph_id: "sg-inner", status: "present", url: "https://example.com/l.safetensors" });
  const r3 = row({ filename: "nosource.safetensors", node_id: "8", status: "missing" });
  deep.properties.models = [{ name: "keep.safetensors", url: "https://x/keep", directory: "loras" },
    { name: "l.safetensors", url: "https://old", directory: "loras" }];
  // an ambiguous model's first candidate is not the answer: never written as the workflow's own link
  const r4 = row({ filename: "amb.safetensors", node_id: "1", subgraph_path: ["2"], subgraph_id: "sg-outer", input: "other",
    candidates: [{ url: "https://huggingface.co/stranger/x/resolve/main/amb.safetensors", source: "huggingface" }],
    chosen: null, status: "ambiguous", local_status: "missing" });
  const g = L.groupModels([r1, r2, r3, r4], new Map([[L.refKey(r1), r1], [L.refKey(r4), r4]]));
  const res = L.applyEmbed(root, [...g.missing, ...g.present], (ref) => L.widgetValue(root, ref));
  assert.deepEqual(res, { nodes: 2, entries: 2 });
  assert.deepEqual(inner.properties.models, [{ name: "old.safetensors", url: r1.candidates[0].url,
    directory: "checkpoints", hash: sha, hash_type: "SHA256" }]);
  assert.deepEqual(deep.properties.models, [{ name: "keep.safetensors", url: "https://x/keep", directory: "loras" },
    { name: "l.safetensors", url: "https://example.com/l.safetensors", directory: "loras" }]);
  assert.deepEqual(L.modelsEntry("a\\b.safetensors", "vae", "https://u", "not-a-hash"),
    { name: "a\\b.safetensors", url: "https://u", directory: "vae" }, "the name stays as the widget holds it");
});

test("the graph signature ignores layout but sees model choices", () => {
  const wf = { nodes: [{ id: 1, type: "A", pos: [0, 0], widgets_values: ["m.safetensors"] }], definitions: { subgraphs: [] } };
  const moved = { ...wf, nodes: [{ ...wf.nodes[0], pos: [50, 80] }] };
  const changed = { ...wf, nodes: [{ ...wf.nodes[0], widgets_values: ["n.safetensors"] }] };
  const bypassed = { ...wf, nodes: [{ ...wf.nodes[0], mode: 4 }] };
  assert.equal(L.graphSignature(wf), L.graphSignature(moved));
  assert.notEqual(L.graphSignature(wf), L.graphSignature(changed));
  assert.notEqual(L.graphSignature(wf), L.graphSignature(bypassed));
});

test("debounce runs once after the last call", async () => {
  let n = 0;
  const f = L.debounce(() => { n++; }, 20);
  f(); f(); f();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(n, 1);
  f(); f.cancel();
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(n, 1);
});

test("what a job waits for is shown while it is active", () => {
  const job = L.normalizeJob({ id: "r", state: "queued", filename: "a", folder: "b", detail: "retrying in 4 s: connection reset" });
  assert.match(L.progressInfo(job).text, /^Queued · retrying in 4 s: connection reset$/);
  assert.doesNotMatch(L.progressInfo({ ...job, state: "failed" }).text, /retrying/);
});

test("fleet jobs say which host runs them, and when they wait for a host to take them", () => {
  const running = L.normalizeJob({ id: "f", state: "running", filename: "a", folder: "b", bytes_done: 50, total: 100,
    host: "gpu-3", lease: "held" });
  assert.match(L.progressInfo(running).text, /^50% · 50 B of 100 B · on gpu-3/);
  const waiting = L.normalizeJob({ id: "w", state: "queued", filename: "a", folder: "b", lease: "waiting" });
  assert.match(L.progressInfo(waiting).text, /^Waiting for lease/);
  assert.doesNotMatch(L.progressInfo({ ...running, state: "completed" }).text, /gpu-3/);
  assert.equal(L.normalizeJob({ id: "l", state: "queued" }).host, null); // single machine: no host shown
});

test("pickle formats are marked: the server's flag, else the file name", () => {
  const g = L.groupModels([
    row({ filename: "a.ckpt", node_id: "1" }),
    row({ filename: "b.safetensors", node_id: "2", pickle: true }),
    row({ filename: "c.safetensors", node_id: "3" }),
    row({ filename: "D.PTH", node_id: "4", folder: "upscale_models", status: "present" }),
  ]);
  const marked = [...g.missing, ...g.present].filter((i) => i.pickle).map((i) => i.filename).sort();
  assert.deepEqual(marked, ["D.PTH", "a.ckpt", "b.safetensors"]);
  assert.equal(L.isPickle({ filename: "x.bin" }), true);
  assert.equal(L.isPickle({ filename: "x.gguf" }), false);
});
