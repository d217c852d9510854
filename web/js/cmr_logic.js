// Model Resolver sidebar: pure logic. No DOM, no ComfyUI imports, nothing runs on import
// (ComfyUI imports every .js under WEB_DIRECTORY as an extension). Tested with `node --test`.
import { missingState, plainMessage } from "./cmr_summary.js";
import { targetFolder } from "./cmr_rows.js";

export const TAB_ID = "model-resolver";
export const API_PREFIX = "/cmr/v1";
export const PROGRESS_EVENT = "cmr.progress";
export const TERMINAL_STATES = new Set(["completed", "failed", "cancelled"]);
export const ACTIVE_STATES = new Set(["queued", "running", "verifying", "paused"]);

const LOCAL_STATUSES = new Set(["present", "relocated", "missing"]);

/** Where each upstream's credential is set: shown whenever a source says "log in". */
export const TOKEN_HELP = {
  huggingface: { field: "hf_token", env: "CMR_HF_TOKEN", label: "Hugging Face token",
    where: "https://huggingface.co/settings/tokens" },
  civitai: { field: "civitai_api_key", env: "CMR_CIVITAI_API_KEY", label: "Civitai API key",
    where: "https://civitai.com/user/account" },
};

/** Extensions that may carry pickled code (the server's workflow/folders.PICKLE_EXTENSIONS). */
export const PICKLE_EXTENSIONS = [".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl"];

/** A pickle file: loading it can run code. The server marks rows `pickle: true`; the name decides for older servers. */
export function isPickle(m) {
  if (m && m.pickle === true) return true;
  const name = String(m?.filename ?? m ?? "").toLowerCase();
  return PICKLE_EXTENSIONS.some((ext) => name.endsWith(ext));
}

/** The widget value as a download target path: forward slashes, no leading slash. */
export function normalizeName(name) {
  return String(name ?? "").replace(/\\/g, "/").replace(/^\/+/, "");
}

/** One reference (node + input) of a model: stable across analyze and resolve. */
export function refKey(m) {
  return [(m.subgraph_path || []).join(">"), m.subgraph_id ?? "", m.node_id, m.input, m.filename].join("|");
}

/** One model file the workflow needs (several nodes may use the same file). */
export function itemKey(m) {
  return `${m.folder ?? "?"}|${normalizeName(m.filename).toLowerCase()}`;
}

/** present | relocated | missing, from an analyze row or a resolve row. */
export function localStatus(m) {
  if (m.local_status && LOCAL_STATUSES.has(m.local_status)) return m.local_status;
  if (LOCAL_STATUSES.has(m.status)) return m.status;
  return "missing";
}

/**
 * Group rows into items (one per folder + file) in four groups: missing, relocated (relink the widget),
 * misplaced (the file is in another folder: move it) and present. `resolved` maps refKey -> resolve row
 * (candidates, resolution status). Inactive (bypassed/muted) references never count as missing when
 * an active one exists; an item only used by inactive nodes is flagged `inactive`.
 */
export function groupModels(models, resolved = new Map()) {
  const items = new Map();
  for (const row of models || []) {
    const r = resolved.get(refKey(row));
    // keep the analyze status for grouping; the resolve row (as the server sent it) rides along
    // (where the file is now comes from the analysis: a resolve row may predate a move or a download)
    const m = r ? { ...row, ...r, status: row.status, local_status: localStatus(row), local_path: row.local_path,
      relink_value: row.relink_value, resolution: r.status, resolveRow: r } : row;
    const key = itemKey(m);
    let item = items.get(key);
    if (!item) {
      item = { key, filename: m.filename, folder: m.folder, status: localStatus(m), refs: [], inactive: true, pickle: false };
      items.set(key, item);
    }
    item.refs.push(m);
    if (isPickle(m)) item.pickle = true;
    if (m.active !== false) item.inactive = false;
    // the most urgent status of any reference wins: missing > relocated > present
    const rank = { missing: 2, relocated: 1, present: 0 };
    if (rank[localStatus(m)] > rank[item.status]) item.status = localStatus(m);
  }
  // relocated with a widget value that finds it: relink; in another folder (no such value): move it
  const groups = { present: [], relocated: [], misplaced: [], missing: [] };
  for (const item of items.values()) {
    const withCandidates = item.refs.find((r) => Array.isArray(r.candidates));
    item.resolution = withCandidates ? withCandidates.resolution ?? withCandidates.status : null;
    item.candidates = withCandidates ? bestFirst(withCandidates.candidates, withCandidates.chosen) : null;
    item.certain = Boolean(withCandidates?.chosen) && item.resolution === "resolved";
    item.message = withCandidates ? withCandidates.message ?? null : null;
    item.relinkValue = item.refs.find((r) => r.relink_value)?.relink_value ?? null;
    item.localPath = item.refs.find((r) => r.local_path)?.local_path ?? null;
    item.url = item.refs.find((r) => r.url)?.url ?? null;
    // (a file of the same name, when nothing tells the folder: listed as found, with what is not known)
    item.group = item.status === "relocated" && !item.relinkValue ? (item.folder ? "misplaced" : "present") : item.status;
    groups[item.group].push(item);
  }
  const byName = (a, b) => normalizeName(a.filename).localeCompare(normalizeName(b.filename));
  for (const g of Object.values(groups)) g.sort((a, b) => (a.inactive - b.inactive) || byName(a, b));
  return groups;
}

/** Candidates with the server's confident choice (`chosen`) first. */
function bestFirst(candidates, chosen) {
  const list = Array.isArray(candidates) ? candidates.slice() : [];
  if (!chosen?.url) return list;
  const i = list.findIndex((c) => c.url === chosen.url);
  if (i > 0) list.unshift(list.splice(i, 1)[0]);
  else if (i < 0) list.unshift(chosen);
  return list;
}

/** Models the open workflow is missing (used by at least one active node). */
export function missingCount(groups) {
  return (groups?.missing || []).filter((i) => !i.inactive).length;
}

/** The badge: the one count of `summarize` (missing + to relink + in the wrong folder, active nodes only). */
export function badgeText(groups) {
  const n = ["missing", "relocated", "misplaced"].reduce((sum, g) => sum + (groups?.[g] || []).filter((i) => !i.inactive).length, 0);
  return n > 0 ? String(n) : "";
}

/** POST /move body for a model in the wrong folder: into the item's folder, under the name the widget holds. */
export function moveBody(item) {
  return { path: item.localPath, folder: item.folder, filename: normalizeName(item.filename) };
}

// ---- formatting ------------------------------------------------------------------------------
export function formatBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return "size unknown";
  n = Number(n);
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let i = -1;
  do { v /= 1000; i++; } while (v >= 1000 && i < units.length - 1);
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`;
}

export function formatSpeed(bytesPerSecond) {
  if (!bytesPerSecond || bytesPerSecond <= 0 || !Number.isFinite(bytesPerSecond)) return "";
  return `${formatBytes(bytesPerSecond)}/s`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  const h = Math.floor(m / 60);
  return `${h} h ${String(m % 60).padStart(2, "0")} min`;
}

export function formatConfidence(c) {
  if (c === null || c === undefined || !Number.isFinite(Number(c))) return "";
  return `${Math.round(Number(c) * 100)}%`;
}

const SOURCE_NAMES = { huggingface: "Hugging Face", civitai: "Civitai", embedded: "Workflow link",
  catalog: "Catalog", manager: "ComfyUI-Manager list" };

export function sourceName(source) {
  return SOURCE_NAMES[source] || (source ? String(source) : "unknown source");
}

/** What a candidate card shows. */
export function describeCandidate(c) {
  if (!c) return null;
  let host = "";
  try { host = new URL(c.url).host; } catch { host = ""; }
  return {
    source: sourceName(c.source),
    size: formatBytes(c.size),
    confidence: formatConfidence(c.confidence),
    reasons: Array.isArray(c.reasons) ? c.reasons.map(String) : [],
    where: c.repo ? `${c.repo}${c.path ? `/${c.path}` : ""}` : host,
    gated: Boolean(c.gated || c.requires_auth),
    url: c.url,
  };
}

// ---- jobs and progress ------------------------------------------------------------------------
/** A job snapshot or progress event in one shape. */
export function normalizeJob(j) {
  if (!j || typeof j !== "object") return null;
  const id = j.job_id ?? j.id;
  if (id === undefined || id === null) return null;
  const total = j.total ?? j.size ?? j.expected_size ?? null;
  return {
    id: String(id),
    state: String(j.state ?? "queued"),
    filename: j.filename ?? j.request?.filename ?? "",
    folder: j.folder ?? j.request?.folder ?? "",
    bytesDone: Number(j.bytes_done ?? j.downloaded ?? 0) || 0,
    total: total === null ? null : Number(total),
    speed: Number(j.speed ?? 0) || 0,
    eta: j.eta === null || j.eta === undefined ? null : Number(j.eta),
    error: j.error ?? null,
    path: j.path ?? null,
    detail: j.detail ?? null, // what a job waits for ("retrying in 4 s: …"), from job snapshots
    host: j.host ?? null, // fleet mode: the host that runs the job
    lease: j.lease ?? null, // fleet mode: "waiting" while queued for a host to take it
  };
}

/**
 * Merge a new snapshot into the previous one for the same job; keeps a smoothed speed when the
 * server sends none (exponential moving average over bytes/time between samples).
 */
export function mergeJob(prev, next, now = Date.now()) {
  if (!next) return prev;
  const merged = { ...(prev || {}), ...next, at: now };
  if (prev && !next.speed && prev.at && now > prev.at && next.bytesDone >= prev.bytesDone) {
    const instant = ((next.bytesDone - prev.bytesDone) * 1000) / (now - prev.at);
    merged.speed = prev.speed ? prev.speed * 0.7 + instant * 0.3 : instant;
  }
  if ((merged.eta === null || merged.eta === undefined) && merged.total && merged.speed > 0) {
    merged.eta = Math.max(0, (merged.total - merged.bytesDone) / merged.speed);
  }
  return merged;
}

/** Percent (0-100, or null when the size is unknown) and the line under the progress bar. */
export function progressInfo(job) {
  if (!job) return { percent: null, text: "" };
  const pct = job.total ? Math.min(100, Math.max(0, (job.bytesDone / job.total) * 100)) : null;
  const done = job.state === "completed";
  const parts = [];
  if (job.state === "queued") parts.push(job.lease === "waiting" ? "Waiting for lease" : "Queued");
  else if (job.state === "paused") parts.push("Paused");
  else if (job.state === "verifying") parts.push("Verifying");
  else if (done) parts.push("Done");
  else if (job.state === "failed") parts.push("Failed");
  else if (job.state === "cancelled") parts.push("Cancelled");
  if (pct !== null && !done) parts.push(`${Math.floor(pct)}%`);
  if (job.total) parts.push(`${formatBytes(job.bytesDone)} of ${formatBytes(job.total)}`);
  else if (job.bytesDone) parts.push(formatBytes(job.bytesDone));
  if (job.detail && ACTIVE_STATES.has(job.state)) parts.push(String(job.detail));
  if (job.host && job.lease === "held" && ACTIVE_STATES.has(job.state)) parts.push(`on ${job.host}`);
  if (job.state === "running") {
    const speed = formatSpeed(job.speed);
    if (speed) parts.push(speed);
    const eta = formatDuration(job.eta);
    if (eta) parts.push(`${eta} left`);
  }
  return { percent: done ? 100 : pct, text: parts.join(" · ") };
}

/** The job (most recent first) that downloads this item's file, if any. */
export function jobForItem(jobs, item) {
  const name = normalizeName(item.filename).toLowerCase();
  const base = name.split("/").pop();
  let found = null;
  for (const job of jobs) {
    if (item.folder && job.folder && job.folder !== item.folder) continue;
    const jn = normalizeName(job.filename).toLowerCase();
    if (jn === name || jn === base || jn.endsWith(`/${base}`)) found = job;
  }
  return found;
}

// ---- errors -------------------------------------------------------------------------------------
/** A user-facing error from an API error body: {message, hint, token} (token: TOKEN_HELP entry). */
export function describeError(error, status) {
  const e = error && typeof error === "object" ? error : {};
  let token = null;
  const env = e.token_env || null;
  if (e.code === "auth_required" || e.type === "AuthRequired" || status === 424) {
    token = Object.values(TOKEN_HELP).find((t) => t.env === env)
      || (String(e.source || "").includes("civitai") ? TOKEN_HELP.civitai : TOKEN_HELP.huggingface);
  }
  let message = plainMessage(e.message) || (status ? `Request failed (HTTP ${status}).` : "Request failed.");
  let hint = plainMessage(e.hint) || null;
  if (status === 404 && !e.code) {
    message = "The Model Resolver routes are not loaded on this server (HTTP 404).";
    hint = "Check the ComfyUI log for lines starting with [Model Resolver], then restart ComfyUI.";
  }
  if (token) {
    hint = `Set your ${token.label} in this panel's Settings (gear button), or set ${token.env} before starting ComfyUI. `
      + `Create one at ${token.where}${e.gated ? "; for gated models also accept the license on the model page" : ""}.`;
  }
  return { message, hint, token, code: e.code || null };
}

/** A candidate or resolve row that needs a credential -> TOKEN_HELP entry, else null. */
export function authNeeded(item) {
  const best = item?.candidates?.[0];
  if (item?.resolution === "auth_required" || best?.requires_auth || best?.gated) {
    const env = best?.token_env || item.refs?.find((r) => r.preflight?.token_env)?.preflight?.token_env;
    return Object.values(TOKEN_HELP).find((t) => t.env === env)
      || (best?.source === "civitai" ? TOKEN_HELP.civitai : TOKEN_HELP.huggingface);
  }
  return null;
}

// ---- downloads --------------------------------------------------------------------------------------
/**
 * POST /downloads body. A certain resolution (`chosen`) goes as the resolve row, so the server
 * downloads what it chose; any other pick — an alternative, or a candidate of an ambiguous model,
 * which the server leaves to the user — goes as an explicit URL into the item's folder. An item whose
 * folder is unknown goes into the folder the user picked (`pick`), always as an explicit URL (the
 * server checks that folder like any typed one); null while nothing is picked.
 */
export function downloadBody(item, candidate = null, pick = null) {
  const best = item.candidates?.[0] ?? null;
  const folder = targetFolder(item, pick);
  if (!folder) return null;
  if (item.certain && item.folder && (!candidate || candidate === best || candidate.url === best?.url)) {
    const rows = item.refs.filter((r) => Array.isArray(r.candidates));
    const chosen = rows.find((r) => r.active !== false) || rows[0];
    return { models: chosen ? [chosen.resolveRow ?? chosen] : [] };
  }
  candidate = candidate || best;
  if (!candidate) return { models: [] };
  const body = { url: candidate.url, folder, filename: normalizeName(item.filename) };
  if (candidate.sha256 && /^[0-9a-fA-F]{64}$/.test(candidate.sha256)) body.sha256 = candidate.sha256;
  if (Number.isFinite(candidate.size) && candidate.size >= 0) body.size = candidate.size;
  if (candidate.source) body.source = candidate.source;
  return body;
}

/** Items "Download all" takes: active, not downloading, resolved with certainty, no token needed (`ready`). */
export function downloadableItems(groups, busyKeys = new Set()) {
  return (groups?.missing || []).filter((i) => !i.inactive && missingState(i, busyKeys) === "ready");
}

/** POST /downloads body for "Download all missing": the resolve rows of the certain items. */
export function downloadAllBody(groups, busyKeys = new Set()) {
  return { models: downloadableItems(groups, busyKeys).flatMap((item) => downloadBody(item).models) };
}

/** Per item, why the server did not start it: `{skipped: [{filename, folder, reason}], errors: [{…, error}]}`. */
export function downloadProblems(answer, items) {
  const out = new Map();
  const find = (p) => items.find((i) => normalizeName(i.filename).toLowerCase() === normalizeName(p.filename).toLowerCase()
    && (!p.folder || !i.folder || p.folder === i.folder));
  for (const s of answer?.skipped || []) {
    const item = find(s);
    if (item) out.set(item.key, { message: `Not downloaded: ${s.reason}.`, hint: null });
  }
  for (const e of answer?.errors || []) {
    const item = find(e);
    if (item) out.set(item.key, describeError(e.error));
  }
  return out;
}

/** Call fn at most once per `wait` ms after the last call (trailing). */
export function debounce(fn, wait) {
  let timer = null;
  const wrapped = (...args) => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => { timer = null; fn(...args); }, wait);
  };
  wrapped.cancel = () => { if (timer) clearTimeout(timer); timer = null; };
  wrapped.pending = () => timer !== null;
  return wrapped;
}

// The live graph and the counts live in their own modules; re-exported so callers have one import.
export * from "./cmr_graph.js";
export * from "./cmr_summary.js";
export * from "./cmr_rows.js";
