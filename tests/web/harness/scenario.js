// Drives the real sidebar modules (served from web/js) against the stand-ins, then writes a JSON
// report into #results for the Python test to check. Each step records what it saw.
import { app } from "/scripts/app.js";
import { api } from "/scripts/api.js";

const out = { steps: [], errors: [] };
window.addEventListener("error", (e) => out.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => out.errors.push(String(e.reason?.message || e.reason)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(cond, what, ms = 5000) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) { if (cond()) return true; await sleep(20); }
  out.errors.push(`timed out: ${what}`);
  return false;
}
const $ = (sel) => document.querySelector(sel);
const $$ = (sel) => [...document.querySelectorAll(sel)];
const text = (el) => (el ? el.textContent.replace(/\s+/g, " ").trim() : null);
const buttonBy = (label, scope = document) => [...scope.querySelectorAll("button")].find((b) => text(b) === label || b.getAttribute("aria-label") === label);

const row = (o) => ({ subgraph_path: [], subgraph_id: null, active: true, local_path: null, relink_value: null, url: null,
  hash: null, hash_type: null, widget_index: 0, widget_key: null, confidence: 1, folder_source: "schema", ...o });
let downloaded = false;
function analysisRows() {
  return [
    row({ filename: "vae.safetensors", folder: "vae", node_id: "1", node_type: "VAELoader", input: "vae_name", status: "present",
      local_path: "/models/vae/vae.safetensors", url: "https://huggingface.co/acme/vae/resolve/main/vae.safetensors" }),
    row({ filename: "SD1.5\\dream.safetensors", folder: "checkpoints", node_id: "5", node_type: "CheckpointLoaderSimple",
      input: "ckpt_name", subgraph_path: ["2"], subgraph_id: "sg-1", status: "relocated",
      relink_value: "SD1.5/dream.safetensors", local_path: "/models/checkpoints/SD1.5/dream.safetensors" }),
    row({ filename: "detail.safetensors", folder: "loras", node_id: "3", node_type: "LoraLoader", input: "lora_name",
      status: downloaded ? "present" : "missing" }),
    row({ filename: "4x.pth", folder: "upscale_models", node_id: "4", node_type: "UpscaleModelLoader", input: "model_name",
      status: "missing", pickle: true }),
    row({ filename: "exotic.safetensors", folder: "checkpoints", node_id: "6", node_type: "ExoticLoader", input: "model_name",
      status: "relocated", relink_value: "sub/exotic.safetensors", local_path: "/models/checkpoints/sub/exotic.safetensors" }),
    row({ filename: "t5xxl.safetensors", folder: "text_encoders", node_id: "7", node_type: "CLIPLoader", input: "clip_name",
      status: moved ? "present" : "relocated", local_path: moved ? "/models/text_encoders/t5xxl.safetensors" : "/models/loras/t5xxl.safetensors" }),
  ];
}
let moved = false;
let offline = false;
// the "origins" workflow: a model a preset implies (ambiguous: two candidates) and a loader nobody describes
let origins = false;
const implied = row({ filename: "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", folder: "clip_vision", node_id: "9", input: "preset",
  node_type: "IPAdapterUnifiedLoader", implied: true, pack: "ComfyUI_IPAdapter_plus", widget_index: null, status: "missing",
  note: "preset 'PLUS (high strength)'; download and rename" });
const mystery = row({ filename: "mystery_adapter.safetensors", folder: null, node_id: "10", node_type: "MysteryAdapterLoader",
  input: "widget_0", confidence: 0, alt_folders: ["checkpoints", "diffusion_models", "loras"], status: "missing",
  note: "folder unknown: nothing describes MysteryAdapterLoader; one of checkpoints, diffusion_models, loras" });
const weird = row({ filename: "weird.bin", folder: null, node_id: "11", node_type: "OddLoader", input: "widget_0", confidence: 0,
  alt_folders: [], status: "missing", note: "folder unknown: nothing describes OddLoader" });
const weirdHf = { url: "https://huggingface.co/labs/odd/resolve/main/weird.bin", source: "huggingface", confidence: 0.9,
  repo: "labs/odd", path: "weird.bin", reasons: ["exact file name"] };
const ipa = (path, confidence, reasons) => ({ url: `https://huggingface.co/h94/IP-Adapter/resolve/main/${path}`, source: "huggingface",
  confidence, repo: "h94/IP-Adapter", path, reasons });
const mysteryHf = { url: "https://huggingface.co/labs/mystery/resolve/main/mystery_adapter.safetensors", source: "huggingface",
  confidence: 0.95, repo: "labs/mystery", path: "mystery_adapter.safetensors", size: 8192, reasons: ["exact file name"] };
const originRows = () => ({ workflow: "wf-c", format: "ui", providers: [], disk: [], requests: 2, models: [
  { ...implied, local_status: "missing", status: "ambiguous", chosen: null, candidates: [
    ipa("models/image_encoder/model.safetensors", 0.42, ["linked by the workflow itself", "different name (model.safetensors)"]),
    ipa("sdxl_models/image_encoder/model.safetensors", 0.38, ["in a repo the node's pack documents for this folder"])] },
  { ...mystery, local_status: "missing", status: "resolved", chosen: mysteryHf, candidates: [mysteryHf] },
  { ...weird, local_status: "missing", status: "resolved", chosen: weirdHf, candidates: [weirdHf] }] });
const hf = { url: "https://huggingface.co/acme/detail/resolve/main/detail.safetensors", source: "huggingface", confidence: 0.93,
  size: 144000000, sha256: "ab".repeat(32), repo: "acme/detail", path: "detail.safetensors",
  reasons: ["exact file name", "1.2k downloads"] };
const civ = { url: "https://civitai.com/api/download/models/42", source: "civitai", confidence: 0.61, size: 150000000,
  reasons: ["same name on Civitai"] };
const gated = { url: "https://huggingface.co/acme/up/resolve/main/4x.pth", source: "huggingface", confidence: 0.9, size: 67000000,
  gated: true, requires_auth: true, token_env: "CMR_HF_TOKEN", reasons: ["exact file name"] };
let config = { hf_token: { set: false }, civitai_api_key: { set: false }, max_concurrent_downloads: 3 };

api.on("POST", "/cmr/v1/analyze", (body, q) => [200, { workflow: q.name, format: "ui", models: origins ? [implied, mystery, weird] : analysisRows(), errors: [] }]);
api.on("POST", "/cmr/v1/move", (body) => { moved = true; return [200, { from: body.path, to: `/models/${body.folder}/${body.filename}`,
  folder: body.folder, filename: body.filename, size: 10 }]; });
const offlineProviders = [{ name: "huggingface", state: "unavailable", host: "huggingface.co", message: "can't reach huggingface.co",
  detail: "ClientConnectorError: [Errno -3] Temporary failure in name resolution" },
  { name: "civitai", state: "unavailable", host: "civitai.com", message: "can't reach civitai.com" }];
api.on("POST", "/cmr/v1/resolve", (body, q) => origins ? [200, originRows()] : offline ? [200, { workflow: q.name, format: "ui", providers: offlineProviders, disk: [],
  requests: 2, models: analysisRows().map((m) => ({ ...m, local_status: m.status, status: m.status === "missing" ? "unavailable" : m.status,
    candidates: [], chosen: null, message: m.status === "missing" ? "no source could be asked: can't reach civitai.com, huggingface.co" : null })) }]
  : [200, { workflow: q.name, format: "ui", providers: [], disk: [], requests: 3,
  models: analysisRows().map((m) => ({ ...m, local_status: m.status,
    status: m.status !== "missing" ? m.status : m.filename === "4x.pth" ? "auth_required" : "resolved",
    candidates: m.status !== "missing" ? [] : m.filename === "4x.pth" ? [gated] : [hf, civ],
    chosen: m.status === "missing" && m.filename !== "4x.pth" ? hf : null,
    message: m.filename === "4x.pth" ? "The repository is gated: log in and accept its license." : null })) }]);
api.on("GET", "/cmr/v1/downloads", () => [200, { jobs: [] }]);
api.on("POST", "/cmr/v1/downloads", (body) => [202, { jobs: [{ job_id: "j1", state: "queued", filename: "detail.safetensors",
  folder: "loras", bytes_done: 0, total: 144000000 }] }]);
api.on("DELETE", "/cmr/v1/downloads/*", (b, q, path) => [200, { job_id: path.split("/").pop(), state: "cancelled",
  filename: "detail.safetensors", folder: "loras" }]);
api.on("GET", "/cmr/v1/config", () => [200, config]);
api.on("PATCH", "/cmr/v1/config", (body) => {
  for (const k of Object.keys(body)) config = { ...config, [k]: { set: Boolean(body[k]) } };
  return [200, config];
});

try {
  await import("/extensions/cmr/model_resolver.js");
  const tab = app.extensionManager.getSidebarTabs().find((t) => t.id === "model-resolver");
  out.tab = tab && { id: tab.id, title: tab.title, icon: tab.icon, type: tab.type,
    viaStore: app.extensionManager.sidebarTab.used };
  out.extensions = app.extensions.map((e) => e.name);

  // 1. the badge is set from a background analysis, before the tab is opened
  await until(() => tab.iconBadge === "5", "badge 5");
  await sleep(1500); // the workflow-switch poll and graph events have run: still one analysis
  out.steps.push({ step: "badge", badge: tab.iconBadge, analyzeCalls: api.calls.filter((c) => c.path.endsWith("/analyze")).length,
    resolveCalls: api.calls.filter((c) => c.path.endsWith("/resolve")).length });

  // 2. open the tab: three groups, candidates after resolve
  const el = $("#sidebar");
  tab.render(el);
  await until(() => $$("[data-group=missing] .cmr-candidate").length >= 1, "candidates shown");
  const analyzeCall = api.calls.find((c) => c.path.endsWith("/analyze"));
  out.steps.push({ step: "open",
    groups: Object.fromEntries($$("[data-group]").map((g) => [g.dataset.group, g.querySelectorAll("[data-item]").length])),
    summary: text($("[data-summary]")), missingText: text($("[data-group=missing]")),
    analyzeBody: { hasSubgraphs: Boolean(analyzeCall.body.definitions?.subgraphs?.length), contentType: analyzeCall.contentType,
      name: analyzeCall.query.name },
    heading: text($(".cmr-title")), region: $(".cmr-panel").getAttribute("role"),
    pickle: $$("[data-pickle=true]").map((t) => [t.closest("[data-item]").dataset.item, t.getAttribute("title")]) });

  // 3. alternatives on demand
  const altBtn = $$("[data-group=missing] button").find((b) => /alternative/.test(text(b)));
  out.steps.push({ step: "alternatives-before", expanded: altBtn.getAttribute("aria-expanded"),
    altCount: $$(".cmr-candidate.cmr-alt").length });
  altBtn.click();
  await until(() => $$(".cmr-candidate.cmr-alt").length === 1, "alternative shown");
  out.steps.push({ step: "alternatives-after", altText: text($(".cmr-candidate.cmr-alt")),
    expanded: $$("[data-group=missing] button").find((b) => /alternative/.test(text(b))).getAttribute("aria-expanded") });

  // 4. download the best candidate, live progress, completion refreshes combos and re-analyzes
  const item = $("[data-group=missing] [data-item='loras|detail.safetensors']");
  buttonBy("Download", item).click();
  await until(() => api.calls.some((c) => c.method === "POST" && c.path.endsWith("/downloads")), "download posted");
  const post = api.calls.find((c) => c.method === "POST" && c.path.endsWith("/downloads"));
  api.emit("cmr.progress", { job_id: "j1", state: "running", filename: "detail.safetensors", folder: "loras",
    bytes_done: 72000000, total: 144000000, speed: 12000000, eta: 6 });
  await until(() => /50%/.test(text($("[data-job=j1]")) || ""), "progress 50%");
  const bar = $("[data-job=j1] [role=progressbar]");
  out.steps.push({ step: "progress", body: post.body, text: text($("[data-job=j1] .cmr-progress-text")),
    ariaNow: bar?.getAttribute("aria-valuenow"), width: bar?.querySelector(".p-progressbar-value")?.style.width,
    cancel: Boolean(buttonBy("Cancel", $("[data-job=j1]"))) });
  const before = api.calls.filter((c) => c.path.endsWith("/analyze")).length;
  downloaded = true;
  api.emit("cmr.progress", { job_id: "j1", state: "completed", filename: "detail.safetensors", folder: "loras",
    bytes_done: 144000000, total: 144000000, speed: 0 });
  await until(() => app.comboRefreshes > 0 && tab.iconBadge === "4", "combo refresh + re-analysis");
  out.steps.push({ step: "completed", comboRefreshes: app.comboRefreshes, badge: tab.iconBadge,
    analyzeCallsAfter: api.calls.filter((c) => c.path.endsWith("/analyze")).length - before,
    groups: Object.fromEntries($$("[data-group]").map((g) => [g.dataset.group, g.querySelectorAll("[data-item]").length])),
    toasts: app.toasts.map((t) => t.summary) });

  // 4b. websocket events stop mid-download: the panel polls GET /downloads and still sees the end
  let jobsList = [];
  api.on("GET", "/cmr/v1/downloads", () => [200, { jobs: jobsList }]);
  const refreshesBefore = app.comboRefreshes;
  api.emit("cmr.progress", { job_id: "j3", state: "running", filename: "other.safetensors", folder: "vae",
    bytes_done: 1, total: 10 });
  jobsList = [{ job_id: "j3", state: "completed", filename: "other.safetensors", folder: "vae", bytes_done: 10, total: 10 }];
  await until(() => app.comboRefreshes > refreshesBefore, "completion seen by polling", 10000);
  out.steps.push({ step: "poll", refreshed: app.comboRefreshes > refreshesBefore,
    polled: api.calls.filter((c) => c.method === "GET" && c.path.endsWith("/downloads")).length });

  // 5. the gated model says where to set the token; the settings form writes it (write-only)
  const gatedItem = $("[data-item='upscale_models|4x.pth']");
  out.steps.push({ step: "gated", text: text(gatedItem) });
  gatedItem.querySelector("a").click();
  await until(() => $("#cmr-set-hf_token"), "settings form");
  $("#cmr-set-hf_token").value = "hf_abc123";
  const resolvesBefore = api.calls.filter((c) => c.path.endsWith("/resolve")).length;
  $(".cmr-settings").requestSubmit();
  await until(() => api.calls.some((c) => c.method === "PATCH"), "config patched");
  await until(() => api.calls.filter((c) => c.path.endsWith("/resolve")).length > resolvesBefore, "re-resolve after token");
  await until(() => /Saved/.test(text($(".cmr-settings")) || ""), "saved message");
  out.steps.push({ step: "settings", patch: api.calls.find((c) => c.method === "PATCH").body,
    form: text($(".cmr-settings")), inputType: $("#cmr-set-hf_token").type, inputValue: $("#cmr-set-hf_token").value });

  // 6. relink the relocated model inside the subgraph (and its promoted widget on the instance)
  const relocated = $("[data-group=relocated] [data-item='checkpoints|sd1.5/dream.safetensors']");
  buttonBy("Relink", relocated).click();
  await sleep(50);
  const inner = app.graph.subgraphs.get("sg-1").nodes[0];
  out.steps.push({ step: "relink", inner: inner.widgets[0].value, instance: app.graph.nodes[1].widgets[0].value,
    dirty: app.graph.dirty, checks: app.extensionManager.workflow.activeWorkflow.changeTracker.checks });

  // 6b. relink on a node whose pack is not installed: nothing changes, and the panel says why
  const toastsBefore = app.toasts.length;
  buttonBy("Relink", $("[data-item='checkpoints|exotic.safetensors']")).click();
  await until(() => /Not relinked/.test(text($("[data-item='checkpoints|exotic.safetensors']")) || ""), "relink refusal shown");
  out.steps.push({ step: "relink-missing-pack", text: text($("[data-item='checkpoints|exotic.safetensors'] .cmr-error")),
    toast: app.toasts.slice(toastsBefore).map((t) => `${t.severity}: ${t.summary}: ${t.detail}`),
    saved: app.graph.nodes[4].last_serialization.widgets_values });

  // 6c. a file in the wrong folder: Move puts it where the loader reads, then it is present
  const misplaced = $("[data-group=misplaced] [data-item]");
  const misplacedText = text(misplaced);
  const moveButton = buttonBy("Move into text_encoders", misplaced);
  moveButton.click();
  await until(() => !$("[data-group=misplaced]") && $("[data-group=present] [data-item='text_encoders|t5xxl.safetensors']"), "moved");
  out.steps.push({ step: "move", before: misplacedText, body: api.calls.find((c) => c.path.endsWith("/move"))?.body,
    badge: tab.iconBadge, present: text($("[data-group=present] [data-item='text_encoders|t5xxl.safetensors']")) });

  // 7. embed sources into properties.models
  buttonBy("Embed download links (properties.models) into the loader nodes of this workflow").click();
  await sleep(50);
  out.steps.push({ step: "embed", vae: app.graph.nodes[0].properties.models ?? null, lora: app.graph.nodes[2].properties.models ?? null,
    upscale: app.graph.nodes[3].properties.models ?? null });

  // 8. switching workflow tabs analyzes the new one
  const n = api.calls.filter((c) => c.path.endsWith("/analyze")).length;
  app.extensionManager.workflow.activeWorkflow = { key: "wf-b.json", path: "workflows/wf-b.json", filename: "wf-b" };
  await until(() => api.calls.filter((c) => c.path.endsWith("/analyze")).length > n, "re-analysis on switch", 4000);
  out.steps.push({ step: "switch", name: api.calls.filter((c) => c.path.endsWith("/analyze")).at(-1).query.name });

  // 8b. the node context menu (frontend 1.27: getExtraMenuOptions chained per node type) opens the item
  const ext = app.extensions[0];
  const LoaderType = { prototype: { getExtraMenuOptions(_c, options) { options.push({ content: "Open Image" }); } } };
  ext.beforeRegisterNodeDef(LoaderType, { name: "UpscaleModelLoader" });
  const upscaleNode = app.graph.nodes[3];
  const menu = [];
  LoaderType.prototype.getExtraMenuOptions.call(upscaleNode, {}, menu);
  const ours = menu.find((o) => o && /Find this model/.test(o.content));
  ours?.callback();
  await until(() => $("[data-focus=true]"), "focused item");
  out.steps.push({ step: "node-menu", entries: menu.map((o) => o?.content ?? null), focused: $("[data-focus=true]")?.dataset.item,
    opened: app.extensionManager.sidebarTab.toggled.slice() });

  // 8c. ComfyUI's own missing-models dialog gets "Resolve with Model Resolver"
  const dialog = document.createElement("div");
  dialog.className = "p-dialog";
  dialog.innerHTML = '<button class="p-dialog-close-button">x</button><div><ul class="comfy-missing-models"><li>4x.pth</li></ul></div>';
  let closed = 0;
  dialog.querySelector("button").addEventListener("click", () => { closed++; dialog.remove(); });
  app.extensionManager.sidebarTab.activeSidebarTabId = null;
  document.body.append(dialog);
  await until(() => dialog.querySelector("[data-cmr=resolve-from-dialog]"), "dialog offer");
  const offer = text(dialog.querySelector("[data-cmr-dialog]"));
  dialog.querySelector("[data-cmr=resolve-from-dialog]").click();
  out.steps.push({ step: "dialog", offer, closed, opened: app.extensionManager.sidebarTab.toggled.slice() });

  // 8c'. newer frontends show an "issues found" overlay instead of the dialog: the offer goes under it
  const overlay = document.createElement("div");
  overlay.dataset.testid = "error-overlay";
  overlay.textContent = "3 issues found";
  document.body.append(overlay);
  await until(() => overlay.querySelector("[data-cmr=resolve-from-dialog]"), "overlay offer");
  out.steps.push({ step: "overlay", text: text(overlay.querySelector("[data-cmr-dialog]")), badge: tab.iconBadge });
  overlay.remove();

  // 8d. offline: one banner for the panel, items 'unavailable', Download all (0) says why
  offline = true;
  $("[data-key=reanalyze]").click();
  await until(() => $("[data-banner=offline]"), "offline banner");
  await until(() => $$("[data-state=unavailable]").length >= 1, "unavailable items");
  out.steps.push({ step: "offline", banners: $$("[data-banner]").map(text), panel: text($(".cmr-panel")),
    states: $$("[data-group=missing] [data-state]").map((e) => e.dataset.state),
    downloadAll: text($("[data-key=download-all]")), disabled: $("[data-key=download-all]")?.disabled, why: text($("[data-why]")),
    describedBy: $("[data-key=download-all]")?.getAttribute("aria-describedby") });
  offline = false;

  // 8e. implied models, node packs, a folder the user picks, an ambiguous model as a choice
  origins = true;
  app.extensionManager.workflow.activeWorkflow = { key: "wf-c.json", path: "workflows/wf-c.json", filename: "wf-c" };
  await until(() => $("[data-folder-unknown]") && $$("[data-choice]").length === 2, "origins workflow", 6000);
  const clip = $("[data-item='clip_vision|clip-vit-h-14-laion2b-s32b-b79k.safetensors']");
  const myst = $("[data-item='?|mystery_adapter.safetensors']");
  const dlMystery = () => buttonBy("Download", $("[data-item='?|mystery_adapter.safetensors']")); // re-rendered on a pick
  const originsSeen = { step: "origins", clip: text(clip), mystery: text(myst), summary: text($("[data-summary]")),
    implied: $$("[data-implied]").map(text), impliedTitle: $("[data-implied]")?.getAttribute("title"),
    options: [...myst.querySelectorAll("select option")].map((o) => [o.value, text(o)]), disabledBefore: dlMystery()?.disabled,
    choices: $$("[data-choice]").map(text), choiceButtons: $$("[data-choice] button").map(text),
    clipButtons: [...clip.querySelectorAll("button")].map(text), downloadAll: text($("[data-key=download-all]")) };
  const select = myst.querySelector("select");
  select.value = "loras";
  select.dispatchEvent(new Event("change"));
  await until(() => dlMystery() && !dlMystery().disabled, "Download enabled by the pick");
  const postsBefore = api.calls.filter((c) => c.method === "POST" && c.path.endsWith("/downloads")).length;
  dlMystery().click();
  await until(() => api.calls.filter((c) => c.method === "POST" && c.path.endsWith("/downloads")).length > postsBefore, "pick posted");
  const pickedBody = api.calls.filter((c) => c.method === "POST" && c.path.endsWith("/downloads")).at(-1).body;
  // no candidate folder at all: the folder is typed (the server refuses one ComfyUI does not know)
  const typed = $("[data-item='?|weird.bin'] input");
  const weirdBefore = { control: typed?.tagName, disabled: buttonBy("Download", $("[data-item='?|weird.bin']"))?.disabled };
  typed.value = "upscale_models";
  typed.dispatchEvent(new Event("change"));
  await until(() => buttonBy("Download", $("[data-item='?|weird.bin']"))?.disabled === false, "typed folder accepted");
  buttonBy("Download", $("[data-item='?|weird.bin']")).click();
  await until(() => api.calls.filter((c) => c.method === "POST" && c.path.endsWith("/downloads")).length > postsBefore + 1, "typed posted");
  out.steps.push({ ...originsSeen, picked: $("[data-item='?|mystery_adapter.safetensors'] select")?.value, body: pickedBody, weirdBefore,
    typedBody: api.calls.filter((c) => c.method === "POST" && c.path.endsWith("/downloads")).at(-1).body });
  origins = false;

  // 9. closing the tab detaches the panel; events keep the badge up to date
  tab.destroy();
  api.emit("cmr.progress", { job_id: "j2", state: "running", filename: "x", folder: "loras", bytes_done: 1, total: 2 });
  out.steps.push({ step: "destroy", ok: true });
} catch (e) {
  out.errors.push(`scenario: ${e?.stack || e}`);
}
out.done = true;
document.getElementById("results").textContent = JSON.stringify(out);
document.body.dataset.done = "1";
