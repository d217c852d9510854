// What a row says about where its model comes from (web/js/cmr_rows.js) and what it lets the user do:
// implied models, the loader's node pack, "folder unknown" with a folder picked before the download,
// ambiguous answers as a choice. Run with `node --test tests/web/`.
import { test } from "node:test";
import assert from "node:assert/strict";

import * as L from "../../web/js/cmr_logic.js";

const row = (over = {}) => ({
  filename: "model.safetensors", folder: "checkpoints", node_id: "4", node_type: "CheckpointLoaderSimple",
  input: "ckpt_name", subgraph_path: [], subgraph_id: null, active: true, status: "missing", local_path: null,
  relink_value: null, url: null, hash: null, hash_type: null, widget_index: 0, widget_key: null, ...over,
});
const hf = (repo, over = {}) => ({ url: `https://huggingface.co/${repo}/resolve/main/m.safetensors`, source: "huggingface",
  confidence: 0.7, repo, reasons: ["exact file name"], ...over });
const grouped = (rows, resolveRows = rows) => L.groupModels(rows, new Map(resolveRows.map((r) => [L.refKey(r), r])));

// The rows the server sends (cmr analyze --json of an IPAdapter unified loader, an InstantID face analysis node
// and a loader of a pack nobody describes), as detect.py writes them.
const clipVision = row({ filename: "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", folder: "clip_vision", node_id: "9",
  node_type: "IPAdapterUnifiedLoader", input: "preset", implied: true, pack: "ComfyUI_IPAdapter_plus", widget_index: null,
  note: "preset 'PLUS (high strength)'; download and rename" });
const antelope = row({ filename: "antelopev2", folder: "insightface/models", node_id: "1", node_type: "InstantIDFaceAnalysis",
  input: "provider", implied: true, pack: "ComfyUI_InstantID", kind: "directory",
  note: "preset 'CPU'; insightface FaceAnalysis(name='antelopev2', root=models/insightface): unzip to models/insightface/models/antelopev2" });
const mystery = row({ filename: "e2e_mystery_adapter.safetensors", folder: null, node_id: "10", node_type: "MysteryAdapterLoader",
  input: "widget_0", confidence: 0, alt_folders: ["checkpoints", "diffusion_models", "loras"],
  note: "folder unknown: nothing describes MysteryAdapterLoader; one of checkpoints, diffusion_models, loras" });

test("an implied row says so: by which node (its title when the page has one) and which preset", () => {
  assert.equal(L.impliedNote(clipVision), "implied by IPAdapterUnifiedLoader (preset 'PLUS (high strength)')");
  assert.equal(L.impliedNote(antelope, "Face analysis"), "implied by Face analysis (preset 'CPU')");
  assert.equal(L.presetOf({ note: `preset "it's"; x` }), "it's");
  // implied by the node itself (no preset), or in the server's own words when it gives them
  assert.equal(L.impliedNote(row({ implied: true, node_type: "PhotoMakerLoader", note: "loaded by the node itself" })),
    "implied by PhotoMakerLoader (the node loads it itself)");
  assert.equal(L.impliedNote(row({ implied: true, implied_by: "implied by X: its pack's code loads it (a.py:4)", note: null })),
    "implied by X: its pack's code loads it (a.py:4)");
  assert.equal(L.impliedNote(row({ implied: true, node_type: "X", implied_by: "implied by X: its pack's code loads it (a.py:4)" }),
    "Face loader"), "implied by Face loader: its pack's code loads it (a.py:4)");
  assert.equal(L.impliedNote(row({ note: "preset 'x'" })), null, "a widget names it: not implied");
});

test("the node pack of a row's loader is kept on its item; core nodes have none", () => {
  const g = grouped([clipVision, row({ filename: "b.safetensors", node_id: "2" })]);
  const byName = Object.fromEntries(g.missing.map((i) => [i.filename, i]));
  assert.deepEqual(L.packsOf(byName["CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"]), ["ComfyUI_IPAdapter_plus"]);
  assert.deepEqual(L.packsOf(byName["b.safetensors"]), []);
});

test("folder unknown: the candidates are listed, nothing is guessed, and no download starts without a pick", () => {
  const res = { ...mystery, local_status: "missing", status: "resolved", candidates: [hf("e2e-labs/mystery-adapter", { confidence: 0.95 })],
    chosen: hf("e2e-labs/mystery-adapter", { confidence: 0.95 }) };
  const g = grouped([mystery], [res]);
  const item = g.missing[0];
  assert.deepEqual(L.unknownFolder(item), ["checkpoints", "diffusion_models", "loras"]);
  assert.equal(L.unknownFolder(grouped([clipVision]).missing[0]), null, "a known folder is not 'unknown'");
  assert.match(L.folderUnknownText(item, "Mystery adapter"),
    /^Folder unknown: nothing we know describes Mystery adapter .*no folder is guessed\. Candidates: checkpoints, diffusion_models, loras\.$/);
  // even a certain source does not make it one-click: the user picks the folder
  assert.equal(L.missingState(item), "folder_unknown");
  assert.equal(L.downloadAllBody(g).models.length, 0, "Download all never guesses a folder");
  assert.equal(L.downloadBody(item), null, "nothing to send until a folder is picked");
  // the pick is the download folder, sent as an explicit URL (the server checks it like any typed folder)
  assert.deepEqual(L.downloadBody(item, null, "loras"), { url: res.chosen.url, folder: "loras",
    filename: "e2e_mystery_adapter.safetensors", source: "huggingface" });
  const s = L.summarize(g);
  assert.equal(s.folder_unknown, 1);
  assert.match(L.countLine(s).headline, /1 missing \(1 folder unknown: choose a folder\)/);
  assert.equal(L.downloadAllState(s).why, "Nothing to download yet: 1 folder unknown: choose a folder.");
  // a known folder is never overridden by a pick
  assert.equal(L.targetFolder({ folder: "vae" }, "loras"), "vae");
});

test("ambiguous reads as a choice between candidates, none pre-chosen", () => {
  const a = hf("alice99/style-lora", { confidence: 0.42, reasons: ["exact file name", "popular (41 downloads)"] });
  const b = hf("bobmirror/loras", { confidence: 0.38, reasons: ["exact file name"] });
  const amb = { ...row({ filename: "style.safetensors", folder: "loras" }), local_status: "missing", status: "ambiguous",
    candidates: [a, b], chosen: null };
  const item = grouped([amb]).missing[0];
  assert.equal(item.certain, false);
  assert.equal(L.missingState(item), "ambiguous");
  assert.equal(L.ambiguousText(2), "Ambiguous: pick one of 2 candidates. None is certain; each says why it might be the file.");
  assert.match(L.ambiguousText(1), /^Not certain: one candidate/);
  // each candidate keeps its reasons for the list; the user's pick goes as that candidate's URL
  assert.deepEqual(item.candidates.map((c) => L.describeCandidate(c).reasons), [a.reasons, b.reasons]);
  assert.equal(L.downloadBody(item, b).url, b.url);
});

test("a folder-unknown model on disk is not 'folder unknown' any more: where it was found is said", () => {
  const present = { ...mystery, status: "present", local_path: "/c/models/loras/e2e_mystery_adapter.safetensors" };
  const g = L.groupModels([present]);
  assert.equal(g.present.length, 1);
  assert.equal(L.unknownFolder(g.present[0]), null);
  assert.equal(L.foundFolder(present.local_path), "loras");
  assert.equal(L.foundFolder("C:\\ComfyUI\\models\\checkpoints\\x.safetensors"), "checkpoints");
  // the same name in a folder the node may not read: listed as found (never "Move into" a folder nobody named)
  const elsewhere = { ...mystery, status: "relocated", relink_value: null, local_path: "/c/models/vae/e2e_mystery_adapter.safetensors" };
  const g2 = L.groupModels([elsewhere]);
  assert.deepEqual([g2.misplaced.length, g2.present.length], [0, 1]);
  assert.equal(L.summarize(g2).count, 0);
});
