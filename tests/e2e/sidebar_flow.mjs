// Drive the Model Resolver sidebar in a real ComfyUI page (Debian chromium + npm playwright-core).
// Used by tests/e2e/test_comfyui.py; prints one JSON report, exit 1 if any check failed.
//
//   node sidebar_flow.mjs --url http://127.0.0.1:8291/ --workflow wf.json --expect-files '{"loras": ["a.safetensors"]}'
//        [--shot sidebar.png] [--shot-progress downloading.png] [--shot-after after.png] [--timeout 60000]
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
const expectFiles = JSON.parse(opt("--expect-files", "{}"));
const shot = opt("--shot");
const shotAfter = opt("--shot-after");
const shotProgress = opt("--shot-progress");
const timeout = Number(opt("--timeout", "90000"));
const TAB = "model-resolver";

const out = { url, ok: true, checks: {}, pageErrors: [], consoleErrors: [], failedRequests: [] };
const check = (name, ok, detail = {}) => { out.checks[name] = { ok: Boolean(ok), ...detail }; if (!ok) out.ok = false; return ok; };
// the one uncaught error frontend 1.27.10 throws by itself (see the harness README)
const IGNORED_PAGE_ERRORS = /reading 'id'/;

const userDataDir = mkdtempSync(join(tmpdir(), "cmr-pw-"));
const ctx = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1500, height: 950 },
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const origin = new URL(url).origin;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  // a wider sidebar panel for the screenshots (PrimeVue Splitter state, per tab or unified)
  await page.addInitScript(() => {
    for (const key of ["model-resolver", "unified-sidebar"]) localStorage.setItem(key, JSON.stringify([26, 74]));
  });
  page.on("pageerror", (e) => out.pageErrors.push(String(e).slice(0, 300)));
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text().slice(0, 300)); });
  page.on("response", (r) => {
    if (r.url().startsWith(origin) && r.url().includes("/cmr/") && r.status() >= 400) out.failedRequests.push(`${r.status()} ${r.url()}`);
  });
  await page.goto(url, { waitUntil: "domcontentloaded", timeout });
  await page.waitForFunction(() => window.comfyAPI?.app?.app?.extensionManager?.getSidebarTabs, null, { timeout });
  await page.waitForSelector(".side-tool-bar-container .side-bar-button", { timeout });
  out.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
  const tabs = await page.evaluate(() => window.comfyAPI.app.app.extensionManager.getSidebarTabs().map((t) => t.id));
  check("tab registered", tabs.includes(TAB), { tabs });
  const scripts = await page.evaluate(() => performance.getEntriesByType("resource").map((e) => e.name).filter((n) => n.includes("/extensions/")));
  out.extensionScripts = scripts.filter((s) => /model_resolver|cmr_/.test(s)).map((s) => s.replace(origin, ""));

  // load the workflow the way a user's file drop ends up (no ComfyUI missing-model dialog in the way)
  await page.evaluate(async (wf) => {
    await window.comfyAPI.app.app.loadGraphData(wf, true, true, null, { showMissingModelsDialog: false, showMissingNodesDialog: false });
  }, workflow);

  const buttonSel = `.side-tool-bar-container .${TAB}-tab-button, [data-testid="${TAB}-tab-button"]`;
  const badgeOk = await page.waitForFunction((sel) => {
    const b = document.querySelector(sel);
    return b && /\b3\b/.test(b.innerText || b.textContent || "");
  }, buttonSel, { timeout: 30000 }).then(() => true, () => false);
  check("badge shows the one count: 2 missing + 1 to relink", badgeOk, { text: await page.$eval(buttonSel, (b) => b.innerText.trim()).catch(() => null) });

  await page.locator(buttonSel).first().click();
  await page.waitForSelector(".cmr-panel [data-group=missing]", { timeout: 30000 });
  const counts = () => page.evaluate(() => Object.fromEntries([...document.querySelectorAll(".cmr-panel [data-group]")]
    .map((g) => [g.dataset.group, g.querySelectorAll("[data-item]").length])));
  const c0 = await counts();
  check("three groups: 1 present, 1 relocated, 2 missing", c0.present === 1 && c0.relocated === 1 && c0.missing === 2, { counts: c0 });
  // candidates arrive from /resolve
  const candOk = await page.waitForFunction(() => document.querySelectorAll(".cmr-panel [data-group=missing] .cmr-candidate").length >= 2,
    null, { timeout: 60000 }).then(() => true, () => false);
  out.missingText = await page.$eval(".cmr-panel [data-group=missing]", (e) => e.innerText.replace(/\s+/g, " ").trim()).catch(() => null);
  out.panelWarnings = await page.$$eval(".cmr-panel .cmr-warn, .cmr-panel .cmr-error", (els) => els.map((e) => e.innerText.trim()));
  check("a best candidate for each missing model", candOk, { missingText: out.missingText, warnings: out.panelWarnings });
  // screenshots only: hide notifications floating over the canvas (the Manager's "ComfyUI outdated"
  // alert, the frontend's own missing-model notice) — fixed-position boxes outside the sidebar
  const closeToasts = () => page.evaluate(() => {
    document.querySelectorAll(".p-toast-close-button, .p-toast-icon-close").forEach((b) => b.click());
    for (const el of document.querySelectorAll("body *")) {
      if (el.closest(".cmr-panel") || !/Security Alert|issues found|Alert/.test(el.textContent || "") || el.children.length > 8) continue;
      for (let t = el; t && t !== document.body; t = t.parentElement) {
        const pos = getComputedStyle(t).position;
        if (pos === "fixed" || pos === "absolute") {
          if (t.getBoundingClientRect().width < window.innerWidth * 0.6) t.style.visibility = "hidden";
          break;
        }
      }
    }
  }).catch(() => {});
  await closeToasts();
  if (shot) await page.screenshot({ path: shot });

  // Download all missing: live progress, then both become present
  const progressSeen = [];
  let progressShot = false;
  const poll = setInterval(async () => {
    try {
      const t = await page.$$eval(".cmr-panel .cmr-progress-text", (els) => els.map((e) => e.innerText.trim()).filter(Boolean));
      for (const x of t) if (!progressSeen.includes(x)) progressSeen.push(x);
      const bars = await page.$$eval(".cmr-panel [role=progressbar]", (els) => els.filter((e) => Number(e.getAttribute("aria-valuenow")) > 20).length);
      if (shotProgress && !progressShot && bars >= 2) {
        progressShot = true;
        await closeToasts();
        await page.screenshot({ path: shotProgress });
      }
    } catch { /* page busy */ }
  }, 100);
  // locators re-query on every attempt: the panel re-renders when events arrive
  const dlButton = page.locator(".cmr-panel [data-key=download-all]");
  check("download-all button", await dlButton.count() === 1);
  await dlButton.click({ timeout: 30000 });
  const downloaded = await page.waitForFunction(() => {
    const g = document.querySelector(".cmr-panel [data-group=missing]");
    return g && g.querySelectorAll("[data-item]").length === 0;
  }, null, { timeout: 120000 }).then(() => true, () => false);
  clearInterval(poll);
  out.progressSeen = progressSeen.slice(0, 20);
  check("both missing models downloaded", downloaded, { counts: await counts(), progress: out.progressSeen,
    warnings: await page.$$eval(".cmr-panel .cmr-warn, .cmr-panel .cmr-error", (els) => els.map((e) => e.innerText.trim())) });
  check("live progress shown", progressSeen.length > 0, { progress: out.progressSeen });

  // Relink the relocated model (it sits inside a subgraph)
  const relink = page.locator(".cmr-panel [data-group=relocated] button[data-key^='relink:']");
  check("relink button", await relink.count() === 1);
  await relink.click({ timeout: 30000 });
  const relinked = await page.waitForFunction(() => {
    const g = document.querySelector(".cmr-panel [data-group=relocated]");
    return g && g.querySelectorAll("[data-item]").length === 0;
  }, null, { timeout: 30000 }).then(() => true, () => false);
  const c1 = await counts();
  check("relinked: everything present", relinked && c1.present === 4 && c1.missing === 0, { counts: c1 });

  // the nodes' combo lists know the new files without a restart
  const combos = await page.evaluate(() => {
    const app = window.comfyAPI.app.app;
    const seen = {};
    const walk = (graph) => {
      for (const n of graph.nodes || graph._nodes || []) {
        for (const w of n.widgets || []) {
          const values = w.options?.values;
          if (Array.isArray(values)) seen[`${n.type}.${w.name}`] = [...new Set([...(seen[`${n.type}.${w.name}`] || []), ...values])];
        }
        if (n.subgraph) walk(n.subgraph);
      }
    };
    walk(app.graph);
    return seen;
  });
  out.combos = combos;
  for (const [key, files] of Object.entries(expectFiles)) {
    const values = combos[key] || [];
    check(`combo ${key} lists ${files.join(", ")}`, files.every((f) => values.includes(f)), { values });
  }
  // the relinked value is in the live graph (inner node and promoted widget)
  out.widgetValues = await page.evaluate(() => {
    const app = window.comfyAPI.app.app;
    const vals = [];
    const walk = (graph, where) => {
      for (const n of graph.nodes || graph._nodes || []) {
        for (const w of n.widgets || []) if (typeof w.value === "string" && /safetensors|\.pth?$/.test(w.value)) vals.push(`${where}${n.type}.${w.name}=${w.value}`);
        if (n.subgraph) walk(n.subgraph, `${where}${n.id}/`);
      }
    };
    walk(app.graph, "");
    return vals;
  });
  await closeToasts();
  if (shotAfter) await page.screenshot({ path: shotAfter });

  // Embed sources: standard properties.models on the loader nodes of the live graph
  await page.locator(".cmr-panel [data-key=embed]").click({ timeout: 30000 });
  out.embedded = await page.evaluate(() => {
    const app = window.comfyAPI.app.app;
    const found = {};
    for (const n of app.graph.nodes) if (n.properties?.models) found[n.type] = n.properties.models;
    return found;
  });
  const lora = out.embedded.LoraLoaderModelOnly?.[0];
  check("embed sources wrote properties.models", lora && lora.directory === "loras" && /\/resolve\/main\//.test(lora.url)
    && out.embedded.UpscaleModelLoader?.[0]?.name, { embedded: out.embedded });

  // switching workflow tabs re-analyzes: the first tab holds ComfyUI's default graph (one checkpoint, missing here)
  const tabsBefore = await page.evaluate(() => window.comfyAPI.app.app.extensionManager.workflow.openWorkflows.map((w) => w.path));
  await page.evaluate(async () => {
    const store = window.comfyAPI.app.app.extensionManager.workflow;
    const first = store.openWorkflows[0];
    const svc = window.comfyAPI.workflowService?.useWorkflowService?.();
    if (svc?.openWorkflow) await svc.openWorkflow(first);
    else document.querySelector(".workflow-tabs .p-togglebutton, [data-testid=topbar-workflow-tab]")?.click();
  }).catch(() => {});
  // the summary names the workflow it analyzed ("<name>: N models · …"): wait for the first tab's
  const firstName = await page.evaluate(() => window.comfyAPI.app.app.extensionManager.workflow.openWorkflows[0].filename);
  const onFirst = (name) => page.waitForFunction((n) => (document.querySelector(".cmr-panel [data-summary]")?.innerText || "")
    .startsWith(`${n}:`), name, { timeout: 10000 }).then(() => true, () => false);
  let switched = await onFirst(firstName);
  if (!switched) {  // no workflow service on window: click the first tab of the tab strip by its label
    await page.getByText(new RegExp(`^${firstName.replace(/[()]/g, "\\$&")}$`)).first().click({ timeout: 5000 }).catch(() => {});
    switched = await onFirst(firstName);
  }
  const summary = await page.$eval(".cmr-panel [data-summary]", (e) => e.innerText).catch(() => "");
  const missingNow = Number((summary.match(/(\d+) missing/) || [])[1] || 0);
  const badgeNow = await page.$eval(buttonSel, (b) => b.innerText.trim()).catch(() => "");
  switched = switched && (missingNow ? badgeNow.includes(String(missingNow)) : true);
  check("switching workflow tabs re-analyzes (summary and badge follow)", switched, { tabs: tabsBefore, summary, badge: badgeNow });
  const bad = out.pageErrors.filter((e) => !IGNORED_PAGE_ERRORS.test(e));
  check("no page errors", bad.length === 0, { unexpected: bad });
  check("no failed /cmr/ requests", out.failedRequests.length === 0, { failed: out.failedRequests });
} catch (e) {
  out.ok = false;
  out.error = String(e?.stack || e).slice(0, 1500);
} finally {
  await ctx.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(out, null, 2));
process.exit(out.ok ? 0 : 1);
