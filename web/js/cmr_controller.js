// Model Resolver sidebar: state, server calls and ComfyUI glue. Exports a factory only; nothing
// runs on import (ComfyUI imports every .js under WEB_DIRECTORY). `model_resolver.js` is the one
// file that registers the extension.
import {
  ACTIVE_STATES, API_PREFIX, PROGRESS_EVENT, TAB_ID, badgeText, debounce, describeError, describePlace, downloadAllBody,
  downloadBody, downloadProblems, downloadableItems, graphSignature, groupModels, itemKey, jobForItem, localStatus,
  mergeJob, normalizeJob, refKey,
} from "./cmr_logic.js";
import { markGraphDirty, nodeMenuHooks, openTab, refreshModelLists, showToast, watchMissingModelsDialog } from "./cmr_comfy.js";
import { createEditActions } from "./cmr_actions.js";
import { renderPanel, updateJobInPlace } from "./cmr_view.js";

const WORKFLOW_POLL_MS = 1000;
// Loading a workflow fires several events within a few hundred ms (graph cleared, configured, the
// workflow tab switched): every trigger asks through one debounced call, so a change costs one analysis.
const SETTLE_MS = 500;
const PROGRESS_STALE_MS = 3000;

export function createModelResolver({ app, api, win = globalThis }) {
  const state = {
    container: null,
    phase: "idle",
    error: null,
    analysis: null,
    signature: null,
    groups: null,
    resolved: new Map(), // refKey -> resolve row (candidates, resolution status)
    resolving: false,
    resolveError: null,
    resolvePending: false,
    pendingSignature: null, // the analysis in flight: an identical request is not sent twice
    providers: [], // resolve's provider states (offline, rate limited): the panel banner
    disk: new Map(), // folder -> directory new downloads land in (from resolve)
    focusKey: null, // an item to scroll to and highlight (node menu "Find this model")
    jobs: new Map(), // job id -> normalized job
    itemJobs: new Map(), // item key -> job id
    itemErrors: new Map(), // item key -> {message, hint}
    sources: new Map(), // item key -> {url, sha256} a download was started from (for "Embed sources")
    expanded: new Set(),
    folderPicks: new Map(), // item key -> the folder the user picked for a model whose folder is unknown
    settingsOpen: false,
    config: null,
    settingsMessage: null,
    notice: "",
    workflowKey: null,
    seq: 0,
    lastEventAt: 0,
    timers: [],
  };

  // ---- server ------------------------------------------------------------------------------------
  async function call(method, path, body) {
    const options = { method, headers: {} };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await api.fetchApi(API_PREFIX + path, options);
    } catch (e) {
      const err = new Error("Can't reach the ComfyUI server.");
      err.info = { message: err.message, hint: "Is ComfyUI still running? Reload the page once it is." };
      throw err;
    }
    let data = null;
    try { data = await resp.json(); } catch { data = null; }
    if (!resp.ok) {
      const info = describeError(data?.error, resp.status);
      const err = new Error(info.message);
      err.info = info;
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  const infoOf = (e) => e?.info || { message: String(e?.message || e), hint: null };
  // ---- ComfyUI helpers ---------------------------------------------------------------------------
  const em = () => app.extensionManager;
  const activeWorkflow = () => em()?.workflow?.activeWorkflow ?? null;
  const keyOf = (wf) => (wf ? (wf.key ?? wf.path ?? wf.filename ?? null) : null);
  const workflowName = () => {
    const wf = activeWorkflow();
    return wf?.filename || wf?.path || "workflow";
  };

  const toast = (severity, summary, detail) => showToast(app, severity, summary, detail);
  const markDirty = () => markGraphDirty(app);
  const refreshCombos = () => refreshModelLists(app);

  function ourTab() {
    const tabs = em()?.getSidebarTabs?.() ?? em()?.sidebarTab?.sidebarTabs ?? [];
    return tabs.find?.((t) => t.id === TAB_ID) ?? null;
  }

  function updateBadge() {
    const text = badgeText(state.groups);
    const tab = ourTab(); // the store's reactive copy: assigning re-renders the badge
    if (tab && tab.iconBadge !== text) tab.iconBadge = text;
    tabDef.iconBadge = text;
  }

  // ---- view ----------------------------------------------------------------------------------------
  function allItems() {
    const g = state.groups;
    return g ? [...g.missing, ...g.relocated, ...g.misplaced, ...g.present] : [];
  }

  function jobOf(item) {
    const id = state.itemJobs.get(item.key);
    if (id && state.jobs.get(id)) return state.jobs.get(id);
    const open = [...state.jobs.values()].filter((j) => ACTIVE_STATES.has(j.state) || j.state === "failed");
    return jobForItem(open, item);
  }

  function viewModel() {
    const jobsByItem = new Map();
    const busyKeys = new Set();
    const shown = new Set();
    for (const item of allItems()) {
      const job = jobOf(item);
      if (!job) continue;
      jobsByItem.set(item.key, job);
      shown.add(job.id);
      if (ACTIVE_STATES.has(job.state)) busyKeys.add(item.key);
    }
    const otherJobs = [...state.jobs.values()].filter((j) => !shown.has(j.id) && ACTIVE_STATES.has(j.state));
    return {
      phase: state.phase, error: state.error, groups: state.groups, workflowName: state.analysis ? workflowName() : "",
      resolving: state.resolving, resolveError: state.resolveError, jobsByItem, busyKeys, otherJobs,
      expanded: state.expanded, itemErrors: state.itemErrors, settingsOpen: state.settingsOpen, config: state.config,
      settingsMessage: state.settingsMessage, notice: state.notice, sources: state.sources,
      providers: state.providers, disk: state.disk, focusKey: state.focusKey, places: places(), folderPicks: state.folderPicks,
    };
  }

  /** refKey -> where the node sits, named as ComfyUI names it (node and subgraph titles). */
  function places() {
    const out = new Map();
    for (const row of state.analysis?.models || []) {
      try { out.set(refKey(row), describePlace(app.graph, row)); } catch { /* a graph mid-change */ }
    }
    return out;
  }

  function render() {
    if (!state.container) return;
    try {
      renderPanel(state.container, viewModel(), actions);
    } catch (e) {
      console.error("[Model Resolver] render failed", e);
    }
  }

  let offers = null; // ComfyUI's missing-models dialog / issues overlay: our offer in it
  function regroup() {
    state.groups = state.analysis ? groupModels(state.analysis.models, state.resolved) : null;
    updateBadge();
    offers?.rescan();
  }

  // ---- analyze / resolve ---------------------------------------------------------------------------
  function serializeGraph() {
    const graph = app.graph;
    if (!graph || typeof graph.serialize !== "function") return null;
    return graph.serialize();
  }

  async function analyze({ force = false } = {}) {
    const graph = serializeGraph();
    if (!graph) return;
    const signature = `${keyOf(activeWorkflow())}|${workflowName()}|${graphSignature(graph)}`;
    // one request per change: the same graph is not analyzed again, nor while its analysis is in flight
    if (signature === state.pendingSignature) return;
    if (!force && signature === state.signature && state.analysis) return;
    state.pendingSignature = signature;
    const seq = ++state.seq;
    state.phase = "analyzing";
    if (!state.analysis) render();
    try {
      const analysis = await call("POST", `/analyze?name=${encodeURIComponent(workflowName())}`, graph);
      if (seq !== state.seq) return; // a newer analysis started meanwhile
      state.analysis = analysis;
      state.signature = signature;
      state.error = null;
      state.phase = "ready";
      regroup();
      const b = badgeText(state.groups);
      state.notice = b ? `${b} model${b === "1" ? "" : "s"} to fix.` : "Every model is here.";
      render();
      if (state.container) resolveMissing(graph);
    } catch (e) {
      if (seq !== state.seq) return;
      state.phase = "error";
      state.error = infoOf(e);
      render();
    } finally {
      if (state.pendingSignature === signature) state.pendingSignature = null;
    }
  }

  function unresolvedMissing() {
    return (state.analysis?.models || []).filter((m) => localStatus(m) === "missing" && !state.resolved.has(refKey(m)));
  }

  async function resolveMissing(graph = null) {
    if (!unresolvedMissing().length) return;
    if (state.resolving) { state.resolvePending = true; return; }
    graph = graph || serializeGraph();
    if (!graph) return;
    state.resolving = true;
    state.resolveError = null;
    render();
    try {
      const resolution = await call("POST", `/resolve?name=${encodeURIComponent(workflowName())}`, graph);
      for (const row of resolution?.models || []) state.resolved.set(refKey(row), row);
      state.providers = resolution?.providers || [];
      state.disk = new Map((resolution?.disk || []).map((d) => [d.folder, d.directory]));
      regroup();
    } catch (e) {
      state.resolveError = infoOf(e);
    } finally {
      state.resolving = false;
      render();
    }
    if (state.resolvePending) {
      state.resolvePending = false;
      if (!state.resolveError) resolveMissing();
    }
  }

  // ---- downloads -------------------------------------------------------------------------------------
  function recordJobs(jobs, items) {
    for (const raw of jobs) {
      const job = normalizeJob(raw);
      if (!job) continue;
      state.jobs.set(job.id, mergeJob(state.jobs.get(job.id), job));
      const item = items.length === 1 ? items[0] : items.find((i) => jobForItem([job], i));
      if (item) state.itemJobs.set(item.key, job.id);
    }
  }

  function rememberSource(item, candidate) {
    if (candidate?.url) state.sources.set(item.key, { url: candidate.url, sha256: candidate.sha256 || null });
  }

  async function download(item, candidate) {
    state.itemErrors.delete(item.key);
    const body = downloadBody(item, candidate, state.folderPicks.get(item.key));
    if (!body || (body.models && !body.models.length)) {
      state.itemErrors.set(item.key, body ? { message: "No download source for this model yet.", hint: "Analyze again, or set a token in Settings." }
        : { message: "Choose the folder it goes in first.", hint: null });
      render();
      return;
    }
    try {
      const res = await call("POST", "/downloads", body);
      recordJobs(res?.jobs ?? [res], [item]);
      for (const [key, problem] of downloadProblems(res, [item])) state.itemErrors.set(key, problem);
      if (res?.jobs?.length !== 0) rememberSource(item, candidate || item.candidates?.[0]);
      state.notice = `Downloading ${item.filename}`;
    } catch (e) {
      state.itemErrors.set(item.key, infoOf(e));
    }
    render();
  }

  async function downloadAll() {
    const busy = viewModel().busyKeys;
    const body = downloadAllBody(state.groups, busy);
    if (!body.models.length) return;
    const items = downloadableItems(state.groups, busy);
    try {
      const res = await call("POST", "/downloads", body);
      const jobs = res?.jobs ?? [];
      for (const [key, problem] of downloadProblems(res, items)) state.itemErrors.set(key, problem);
      for (const raw of jobs) {
        const job = normalizeJob(raw);
        if (!job) continue;
        state.jobs.set(job.id, mergeJob(state.jobs.get(job.id), job));
        const item = items.find((i) => jobForItem([job], i));
        if (item) {
          state.itemJobs.set(item.key, job.id);
          rememberSource(item, item.candidates?.[0]);
        }
      }
      state.notice = `Downloading ${jobs.length} model${jobs.length === 1 ? "" : "s"}`;
    } catch (e) {
      state.error = infoOf(e);
    }
    render();
  }

  async function cancel(job) {
    try {
      const res = await call("DELETE", `/downloads/${encodeURIComponent(job.id)}`);
      const j = normalizeJob(res);
      if (j) state.jobs.set(j.id, mergeJob(state.jobs.get(j.id), j));
    } catch (e) {
      state.error = infoOf(e);
    }
    render();
  }

  const afterDownloads = debounce(async () => {
    await refreshCombos();
    await analyze({ force: true });
  }, 600);

  function onProgress(event) {
    state.lastEventAt = Date.now();
    applyJob(normalizeJob(event?.detail ?? event), true);
  }

  /** Merge a job snapshot; `announce` toasts and refreshes on completion (events, or a known job). */
  function applyJob(job, announce) {
    if (!job) return;
    const prev = state.jobs.get(job.id);
    const merged = mergeJob(prev, job);
    state.jobs.set(job.id, merged);
    const stateChanged = !prev || prev.state !== merged.state;
    if (!announce && !prev) return;
    if (stateChanged && merged.state === "completed") {
      toast("success", "Model downloaded", `${merged.folder}/${merged.filename}`);
      afterDownloads();
    }
    if (stateChanged && merged.state === "failed") {
      const info = describeError(merged.error);
      toast("error", `Download failed: ${merged.filename}`, info.hint ? `${info.message} ${info.hint}` : info.message);
    }
    if (!state.container) return;
    if (stateChanged || !updateJobInPlace(state.container, merged, actions.cancel)) render();
  }

  async function loadJobs() {
    try {
      const res = await call("GET", "/downloads");
      for (const raw of res?.jobs || []) applyJob(normalizeJob(raw), false);
    } catch { /* the download manager may be unavailable; the panel says so when used */ }
  }

  /** If websocket events stop (proxy, reconnect), poll the jobs while some are running. */
  function watchProgress() {
    const active = [...state.jobs.values()].some((j) => ACTIVE_STATES.has(j.state));
    if (active && Date.now() - state.lastEventAt > PROGRESS_STALE_MS) loadJobs();
  }

  const edits = createEditActions({ app, state, call, infoOf, render, toast, markDirty, analyze, resolveMissing,
    refreshCombos, allItems });

  const actions = {
    reanalyze: () => { state.resolved.clear(); state.resolveError = null; analyze({ force: true }); },
    download, downloadAll, cancel, move: edits.move,
    relink: (item) => edits.relinkItems([item]),
    relinkAll: () => edits.relinkItems(state.groups?.relocated || []),
    embed: edits.embed,
    pickFolder: (key, folder) => { folder ? state.folderPicks.set(key, folder) : state.folderPicks.delete(key); render(); },
    toggleAlternatives: (key) => { state.expanded.has(key) ? state.expanded.delete(key) : state.expanded.add(key); render(); },
    toggleSettings: edits.toggleSettings, saveSettings: edits.saveSettings,
    openSettings: () => edits.toggleSettings(true),
  };

  // ---- the sidebar tab and the extension -------------------------------------------------------------------
  const tabDef = {
    id: TAB_ID,
    icon: "pi pi-box",
    title: "Model Resolver",
    tooltip: "Model Resolver: find and download the models this workflow needs",
    label: "Model Resolver", // ComfyUI's own Model Library is "Models"
    type: "custom",
    iconBadge: "",
    render(el) {
      state.container = el;
      render();
      loadJobs().then(render);
      // one analysis per change: a load still settling (scheduled) or in flight is not analyzed twice
      if (scheduleAnalyze.pending()) return;
      if (!state.analysis) analyze();
      else analyze().then(() => resolveMissing());
    },
    destroy() {
      state.container = null;
    },
  };

  function checkWorkflowSwitch() {
    const key = keyOf(activeWorkflow());
    if (key !== state.workflowKey) {
      state.workflowKey = key;
      state.expanded.clear();
      state.itemErrors.clear();
      scheduleAnalyze(); // the key is part of the signature: one analysis, even with afterConfigureGraph
    }
  }

  // (with the tab open, missing models are looked up after it: resolveMissing asks only for new ones)
  // (and the offer in ComfyUI's overlay is brought up to date, also when nothing changed)
  const scheduleAnalyze = debounce(() => analyze().then(() => {
    offers?.rescan();
    if (state.container) resolveMissing();
  }), SETTLE_MS);

  function registerTab() {
    const manager = em();
    if (!manager) throw new Error("app.extensionManager is not available");
    const store = manager.sidebarTab;
    if (store && typeof store.registerSidebarTab === "function") store.registerSidebarTab(tabDef);
    else manager.registerSidebarTab(tabDef);
  }

  const menu = nodeMenuHooks(app, edits.menuItemsFor);
  const extension = {
    name: "comfyui-model-resolver.sidebar",
    getNodeMenuItems: menu.getNodeMenuItems,
    beforeRegisterNodeDef: menu.beforeRegisterNodeDef,
    async setup() {
      registerTab();
      if (win.document?.body) {
        offers = watchMissingModelsDialog(win.document, () => openTab(app),
          () => (scheduleAnalyze.pending() || state.phase === "analyzing" || !badgeText(state.groups) ? ""
            : `Model Resolver: ${badgeText(state.groups)} model${badgeText(state.groups) === "1" ? "" : "s"} to fix`));
      }
      api.addEventListener(PROGRESS_EVENT, onProgress);
      api.addEventListener("graphChanged", () => scheduleAnalyze());
      api.addEventListener("reconnected", () => loadJobs().then(render));
      state.workflowKey = keyOf(activeWorkflow());
      state.timers.push(win.setInterval(checkWorkflowSwitch, WORKFLOW_POLL_MS));
      state.timers.push(win.setInterval(watchProgress, PROGRESS_STALE_MS));
      scheduleAnalyze();
      loadJobs();
    },
    async afterConfigureGraph() {
      // a workflow was loaded or a workflow tab was switched to
      state.workflowKey = keyOf(activeWorkflow()) ?? state.workflowKey;
      state.expanded.clear();
      state.itemErrors.clear();
      scheduleAnalyze();
    },
  };

  return { extension, tab: tabDef, state, actions, analyze, resolveMissing, onProgress, refreshCombos, itemKey, menuItemsFor: edits.menuItemsFor };
}
