// Every state of the Model Resolver sidebar in a real ComfyUI page at 1280x800 (Debian chromium +
// npm playwright-core), with the "every state" workflow of states_world.py. Prints one JSON report,
// exit 1 if any check failed. Used by tests/e2e/test_sidebar_states.py.
//
//   node states_flow.mjs --url http://127.0.0.1:8391/ --workflow wf.json --mode online|offline --shots DIR [--tag 1.27.10]
// Env: PW_DIR (playwright-core, default /tmp/comfyui-pw), CHROMIUM (default /usr/bin/chromium)
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(join(process.env.PW_DIR || "/tmp/comfyui-pw", "noop.js"));
const { chromium } = require("playwright-core");

const argv = process.argv.slice(2);
const opt = (name, def = null) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : def; };
const url = opt("--url", "http://127.0.0.1:8188/");
const workflow = JSON.parse(readFileSync(opt("--workflow"), "utf-8"));
const mode = opt("--mode", "online");
const shots = opt("--shots");
const tag = opt("--tag", "");
const TAB = "model-resolver";
const IGNORED_PAGE_ERRORS = /reading 'id'/; // frontend 1.27.10 throws this by itself (harness README)

const out = { url, mode, ok: true, checks: {}, pageErrors: [], requests: { analyze: [], resolve: [] }, shots: [] };
const check = (name, ok, detail = {}) => { out.checks[name] = { ok: Boolean(ok), ...detail }; if (!ok) out.ok = false; return ok; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const userDataDir = mkdtempSync(join(tmpdir(), "cmr-pw-"));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  viewport: { width: 1280, height: 800 },
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const origin = new URL(url).origin;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on("pageerror", (e) => out.pageErrors.push(String(e).slice(0, 300)));
  page.on("request", (r) => {
    const m = /\/cmr\/v1\/(analyze|resolve)\b/.exec(r.url());
    if (r.url().startsWith(origin) && m && r.method() === "POST") out.requests[m[1]].push(Date.now());
  });
  const shot = async (name) => {
    if (!shots) return;
    await page.evaluate(() => document.querySelectorAll(".p-toast-close-button, .p-toast-icon-close").forEach((b) => b.click())).catch(() => {});
    await sleep(300);
    const path = join(shots, `sidebar-${mode}-${name}${tag ? `-${tag}` : ""}.png`);
    await page.screenshot({ path });
    out.shots.push(path);
  };
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: 90000 });
  await page.waitForFunction(() => window.comfyAPI?.app?.app?.extensionManager?.getSidebarTabs, null, { timeout: 90000 });
  await page.waitForSelector(".side-tool-bar-container .side-bar-button", { timeout: 90000 });
  out.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
  const tabInfo = await page.evaluate((id) => {
    const t = window.comfyAPI.app.app.extensionManager.getSidebarTabs().find((x) => x.id === id);
    return t && { title: t.title, label: typeof t.label === "function" ? t.label() : t.label, tooltip: t.tooltip };
  }, TAB);
  const buttonSel = `.side-tool-bar-container .${TAB}-tab-button, [data-testid="${TAB}-tab-button"]`;
  const buttonText = await page.$eval(buttonSel, (b) => `${b.innerText} ${b.getAttribute("aria-label") || ""}`.trim()).catch(() => "");
  check("tab labelled Model Resolver, not Models", tabInfo?.label === "Model Resolver" && tabInfo.title === "Model Resolver"
    && !/^Models$/.test(buttonText.trim()), { tabInfo, buttonText });

  // settle the start-up analysis of ComfyUI's default graph, then count from the workflow load on
  await sleep(2500);
  const before = { analyze: out.requests.analyze.length, resolve: out.requests.resolve.length };
  await page.evaluate(async (wf) => {
    await window.comfyAPI.app.app.loadGraphData(wf, true, true, "states", { showMissingModelsDialog: true, showMissingNodesDialog: false });
  }, workflow);

  // ComfyUI's own missing-models dialog (1.27: workflow links) or issues overlay (1.58) gets our offer; it opens the tab
  const offer = await page.waitForSelector("[data-cmr=resolve-from-dialog]", { timeout: 30000 }).then(() => true, () => false);
  out.dialogSeen = await page.$$eval(".comfy-missing-models", (l) => l.length);
  out.overlaySeen = await page.$$eval("[data-testid=error-overlay]", (l) => l.length);
  if (out.dialogSeen || out.overlaySeen) {
    out.offerText = await page.$eval("[data-cmr-dialog]", (e) => e.innerText.replace(/\s+/g, " ")).catch(() => null);
    check("Resolve with Model Resolver offered in ComfyUI's missing-models dialog", offer, { offerText: out.offerText });
    if (offer) {
      await shot("dialog");
      await page.click("[data-cmr=resolve-from-dialog]");
    }
  } else {
    out.notes = [...(out.notes || []), "this frontend showed neither a missing-models dialog nor an issues overlay"];
  }
  if (!(await page.$(".cmr-panel"))) await page.locator(buttonSel).first().click();
  await page.waitForSelector(".cmr-panel [data-group=missing]", { timeout: 30000 });
  const dialogGone = await page.waitForFunction(() => !document.querySelector(".comfy-missing-models"), null, { timeout: 5000 }).then(() => true, () => false);
  if (out.dialogSeen) check("the dialog closes and the tab opens", dialogGone);
  // sources looked up (or found unreachable)
  const settled = mode === "offline"
    ? () => document.querySelectorAll(".cmr-panel [data-state=unavailable]").length >= 1
    : () => document.querySelectorAll(".cmr-panel [data-group=missing] .cmr-candidate").length >= 3;
  check("sources looked up", await page.waitForFunction(settled, null, { timeout: 90000 }).then(() => true, () => false));
  await sleep(2500); // graph events, the workflow poll, the badge: nothing may ask again
  const counts = { analyze: out.requests.analyze.length - before.analyze, resolve: out.requests.resolve.length - before.resolve };
  check("one analyze and one resolve for the workflow load", counts.analyze === 1 && counts.resolve === 1, { counts });

  // readable at 1280x800: a sensible width, the title whole, paths wrap and keep their full value on hover
  const layout = await page.evaluate(() => {
    const panel = document.querySelector(".cmr-panel");
    const title = panel.querySelector(".cmr-title");
    const paths = [...panel.querySelectorAll(".cmr-path")];
    return { width: Math.round(panel.getBoundingClientRect().width), titleCut: title.scrollWidth > title.clientWidth + 1,
      titleText: title.innerText, overflowX: panel.scrollWidth > panel.clientWidth + 1,
      pathsClipped: paths.filter((p) => p.scrollWidth > p.clientWidth + 1).map((p) => p.innerText),
      pathsWithoutTitle: paths.filter((p) => !p.title).length };
  });
  check("readable at 1280x800", layout.width >= 320 && !layout.titleCut && layout.titleText === "Model Resolver" && !layout.overflowX
    && !layout.pathsClipped.length && !layout.pathsWithoutTitle, { layout });

  const panelText = () => page.$eval(".cmr-panel", (e) => e.innerText);
  const item = (key) => page.$eval(`.cmr-panel [data-item="${key}"]`, (e) => ({ text: e.innerText.replace(/\s+/g, " "),
    state: e.querySelector("[data-state]")?.dataset.state ?? null, shards: e.querySelector("[data-shards]")?.dataset.shards ?? null }))
    .catch(() => null);
  const summary = await page.$eval(".cmr-panel [data-summary]", (e) => ({ text: e.innerText.replace(/\s+/g, " "), count: e.dataset.count }));
  const badge = await page.$eval(buttonSel, (b) => (b.innerText.match(/\d+/) || [""])[0]).catch(() => "");
  out.summary = summary;
  out.badge = badge;
  check("one count: badge = summary", summary.count === badge && Number(badge) === 8, { summary, badge });
  check("bypassed listed, not counted", /1 used only by bypassed or muted nodes \(not counted\)/.test(summary.text), { summary });
  const text = await panelText();
  out.panelText = text.slice(0, 4000);
  for (const leak of ["Errno", "SourceUnavailable", "ClientConnector", "Exception", "Temporary failure", "OfflineModeIsEnabled"]) {
    check(`no '${leak}' in the panel`, !text.includes(leak));
  }
  const upscale = await item("upscale_models|e2e_upscale_4x.safetensors");
  check("subgraph shown by its title", /in subgraph "Upscale stage"/.test(upscale?.text || "") && !/#7\b/.test(upscale?.text || ""), { upscale });
  const misplaced = await item("text_encoders|e2e_t5_encoder.safetensors");
  check("misplaced file counted, with a Move action", /Move into text_encoders/.test(misplaced?.text || "") && /in the wrong folder/.test(summary.text),
    { misplaced, summary });
  // issue 11: a model a preset implies says so (node title, preset, node pack); a loader nobody describes says
  // "folder unknown" with the candidate folders instead of a guess
  const implied = await item("clip_vision|clip-vit-h-14-laion2b-s32b-b79k.safetensors");
  check("an implied model says by which node and preset, and its node pack",
    /implied by IPAdapter for the face \(preset 'PLUS \(high strength\)'\)/.test(implied?.text || "")
    && /node pack ComfyUI_IPAdapter_plus/.test(implied?.text || ""), { implied });
  const mysteryKey = "?|e2e_mystery_adapter.safetensors";
  const unknown = await item(mysteryKey);
  check("a loader nobody describes: folder unknown, the candidates, no guess",
    /folder unknown/.test(unknown?.text || "") && /Candidates: checkpoints, diffusion_models, loras\./.test(unknown?.text || "")
    && /^folder unknown · Mystery adapter/.test(await page.$eval(`.cmr-panel [data-item="${mysteryKey}"] .cmr-meta`, (e) => e.innerText).catch(() => "")),
    { unknown });
  // the sidebar scrolls in ComfyUI's container or in ours, depending on the frontend: scroll every ancestor
  const scrollers = (sel) => page.$eval(sel, (e) => { for (let el = e.parentElement; el; el = el.parentElement) el.dataset.cmrScroll = el.scrollTop; });
  const shotItem = async (key, name) => {
    await page.$eval(`.cmr-panel [data-item="${key}"]`, (e) => e.scrollIntoView({ block: "start" })).catch(() => {});
    await shot(name);
  };
  await scrollers(".cmr-panel [data-summary]");
  await shotItem("clip_vision|clip-vit-h-14-laion2b-s32b-b79k.safetensors", "implied");
  await shotItem(mysteryKey, "folder-unknown");
  await page.evaluate(() => document.querySelectorAll("[data-cmr-scroll]").forEach((el) => { el.scrollTop = Number(el.dataset.cmrScroll); }));

  const dl = await page.$eval(".cmr-panel [data-key=download-all]", (b) => ({ text: b.innerText.trim(), disabled: b.disabled }));
  const why = await page.$eval(".cmr-panel [data-why]", (e) => e.innerText).catch(() => null);
  out.downloadAll = { ...dl, why };

  if (mode === "offline") {
    const banners = await page.$$eval(".cmr-panel [data-banner]", (els) => els.map((e) => e.innerText.trim()));
    check("one panel-level offline banner", banners.length === 1 && /^can't reach huggingface\.co( or civitai\.com)? — check the network or proxy$/.test(banners[0]),
      { banners });
    // every item no source could be asked for; the implied CLIP vision model keeps its workflow link (a rename,
    // so not certain: ambiguous, asked of nobody)
    const states = await page.$$eval(".cmr-panel [data-group=missing] [data-item]", (els) => els.map((e) => [e.dataset.item,
      e.querySelector("[data-state]")?.dataset.state ?? null]));
    check("items say unavailable", states.length === 7 && states.every(([k, s]) => s === (k.startsWith("clip_vision|") ? "ambiguous" : "unavailable")),
      { states });
    check("a disabled Download all (0) says why", dl.text === "Download all (0)" && dl.disabled && /^Nothing to download yet: .*can't be looked up now/.test(why || ""),
      { dl, why });
    await shot("1280x800");
  } else {
    const flux = await item("diffusion_models|e2e_flux_dev.safetensors");
    check("the legacy folder is said before the download", /Saves into models\/unet\/ — ComfyUI's older name for diffusion_models/.test(flux?.text || ""), { flux });
    const big = await item("diffusion_models|e2e_big-00001-of-00003.safetensors");
    check("a sharded model is one item with its file count", big?.shards === "4" && /4 files, 3\.\d+ MB/.test(big.text), { big });
    const style = await item("loras|e2e_style.safetensors");
    check("an ambiguous model is a choice: its candidates with their reasons, none offered as the best match",
      style?.state === "ambiguous" && /Ambiguous: pick one of 2 candidates\. None is certain/.test(style.text)
      && /alice99\/style-lora/.test(style.text) && /bobmirror\/style-loras/.test(style.text) && /exact file name/.test(style.text)
      && !/best match/.test(style.text)
      && (await page.$$eval('.cmr-panel [data-item="loras|e2e_style.safetensors"] [data-choice] button', (b) => b.length)) === 2, { style });
    check("Download all counts the ready ones and says why not the rest",
      dl.text === "Download all (3)" && !dl.disabled
      && /Downloads 3 of 6 missing; the others: 2 ambiguous: choose a match, 1 folder unknown: choose a folder\./.test(why || ""), { dl, why });
    const pickBefore = await page.$eval(`.cmr-panel [data-item="${mysteryKey}"] [data-choice] button`, (b) => b.disabled).catch(() => null);
    check("a folder-unknown model is not downloaded before a folder is picked", pickBefore === true
      && (await page.$$eval(`.cmr-panel [data-item="${mysteryKey}"] select option`, (o) => o.map((x) => x.value))).join() === ",checkpoints,diffusion_models,loras");
    await shot("1280x800");

    // "Find this model" in a missing loader's context menu (what LiteGraph's right-click builds)
    const menu = await page.evaluate(() => {
      const app = window.comfyAPI.app.app;
      const node = app.graph.getNodeById(3);
      const options = app.canvas.getNodeMenuOptions(node) || [];
      const ours = options.filter((o) => o && /Find this model/.test(o.content || ""));
      window.__cmrFind = ours[0];
      const present = (app.canvas.getNodeMenuOptions(app.graph.getNodeById(1)) || []).filter((o) => o && /Find this model/.test(o.content || ""));
      return { entries: ours.map((o) => o.content), forPresentNode: present.length };
    });
    check("node menu offers Find this model on a missing loader only", menu.entries.length === 1 && menu.forPresentNode === 0, { menu });
    await page.evaluate(() => window.__cmrFind?.callback?.());
    const focused = await page.waitForSelector(".cmr-panel [data-focus=true]", { timeout: 5000 }).then((e) => e.getAttribute("data-item"), () => null);
    check("Find this model opens the tab on that model", focused === "diffusion_models|e2e_flux_dev.safetensors", { focused });

    // relink on the node of a pack that is not installed: no false success
    await page.click(".cmr-panel [data-key='relink:checkpoints|dream.safetensors']");
    const refused = await page.waitForFunction(() => /Not relinked: CheckpointLoader\|pysssss #6 comes from a node pack that is not installed/
      .test(document.querySelector(".cmr-panel [data-item='checkpoints|dream.safetensors']")?.innerText || ""), null, { timeout: 10000 })
      .then(() => true, () => false);
    const toasts = await page.$$eval(".p-toast-message", (els) => els.map((e) => e.innerText.replace(/\s+/g, " ")));
    check("relink on a node whose pack is not installed says why and claims nothing", refused && !toasts.some((t) => /Relinked/.test(t) && !/Nothing relinked/.test(t)),
      { toasts });
    await shot("relink-refused");

    // Move the text encoder into text_encoders
    await page.click(".cmr-panel [data-key='move:text_encoders|e2e_t5_encoder.safetensors']");
    check("moved: present, no longer misplaced", await page.waitForFunction(() => !document.querySelector(".cmr-panel [data-group=misplaced]")
      && document.querySelector(".cmr-panel [data-group=present] [data-item='text_encoders|e2e_t5_encoder.safetensors']"), null, { timeout: 30000 })
      .then(() => true, () => false));

    // Download all: the three ready models; the legacy folder is said where the file landed
    await page.click(".cmr-panel [data-key=download-all]");
    const done = await page.waitForFunction(() => {
      const g = document.querySelector(".cmr-panel [data-group=missing]");
      return g && g.querySelectorAll("[data-item]").length === 4;
    }, null, { timeout: 120000 }).then(() => true, () => false);
    const fluxAfter = await item("diffusion_models|e2e_flux_dev.safetensors");
    check("downloads land; the one in models/unet says so", done && /models\/unet\/ — ComfyUI's older name for diffusion_models/.test(fluxAfter?.text || ""),
      { fluxAfter, panel: (await panelText()).slice(0, 1500) });
    // the folder-unknown model: pick models/loras, download its candidate there; then it is present
    await page.selectOption(`.cmr-panel [data-item="${mysteryKey}"] select`, "loras");
    await page.waitForFunction((k) => document.querySelector(`.cmr-panel [data-item="${k}"] [data-choice] button`)?.disabled === false,
      mysteryKey, { timeout: 5000 }).catch(() => {});
    await page.click(`.cmr-panel [data-item="${mysteryKey}"] [data-choice] button`);
    const picked = await page.waitForFunction((k) => !document.querySelector(`.cmr-panel [data-group=missing] [data-item="${k}"]`)
      && document.querySelector(`.cmr-panel [data-group=present] [data-item="${k}"]`), mysteryKey, { timeout: 60000 })
      .then(() => true, () => false);
    const presentText = await page.$eval(`.cmr-panel [data-group=present] [data-item="${mysteryKey}"]`, (e) => e.innerText.replace(/\s+/g, " ")).catch(() => "");
    check("the picked folder is the download folder: present in models/loras", picked && /models\/loras\/e2e_mystery_adapter\.safetensors/.test(presentText),
      { presentText, errors: await page.$$eval(".cmr-panel .cmr-error", (els) => els.map((e) => e.innerText)) });
    const after = await page.$eval(".cmr-panel [data-summary]", (e) => ({ text: e.innerText.replace(/\s+/g, " "), count: e.dataset.count }));
    const badgeAfter = await page.$eval(buttonSel, (b) => (b.innerText.match(/\d+/) || [""])[0]).catch(() => "");
    check("after: badge = summary = 3 (2 ambiguous + relink refused)", after.count === "3" && badgeAfter === "3", { after, badgeAfter });
    await shot("after");
  }
  const bad = out.pageErrors.filter((e) => !IGNORED_PAGE_ERRORS.test(e));
  check("no page errors", bad.length === 0, { unexpected: bad });
} catch (e) {
  out.ok = false;
  out.error = String(e?.stack || e).slice(0, 1500);
} finally {
  await ctx.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(out, null, 2));
process.exit(out.ok ? 0 : 1);
