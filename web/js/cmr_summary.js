// Model Resolver sidebar: the one count and its parts, the panel banner when sources can't be reached,
// plain-word messages, sharded models and legacy folders. Pure: no DOM, nothing runs on import.
import { authNeeded, formatBytes, normalizeName } from "./cmr_logic.js";

const EMPTY = { missing: [], relocated: [], misplaced: [], present: [] };

/**
 * What an item of the missing group is waiting for: downloading | looking | unavailable | auth_required |
 * folder_unknown | ready | ambiguous | not_found. `ready` = certain, can be downloaded with one click;
 * `folder_unknown` = sources found, but nothing tells the folder: the user picks one first.
 */
export function missingState(item, busyKeys = new Set()) {
  if (busyKeys.has(item.key)) return "downloading";
  if (item.candidates === null || item.candidates === undefined) return "looking";
  if (item.resolution === "unavailable") return "unavailable";
  if (item.resolution === "auth_required" || authNeeded(item)) return "auth_required";
  if (!item.folder && item.candidates.length) return "folder_unknown"; // never downloaded without the user's pick
  if (item.certain && item.candidates.length) return "ready";
  if (item.candidates.length) return "ambiguous";
  return "not_found";
}

/**
 * The one count (badge, summary and buttons agree): models an active node needs that are not usable yet
 * = missing + to relink + in the wrong folder. Models only bypassed or muted nodes use are listed but not
 * counted (`bypassed`). Each part is counted once.
 */
export function summarize(groups, busyKeys = new Set()) {
  const g = { ...EMPTY, ...(groups || {}) };
  const active = (list) => list.filter((i) => !i.inactive);
  const s = { downloading: 0, looking: 0, unavailable: 0, auth_required: 0, folder_unknown: 0, ready: 0, ambiguous: 0,
    not_found: 0 };
  for (const item of active(g.missing)) s[missingState(item, busyKeys)]++;
  const missing = active(g.missing).length;
  const relink = active(g.relocated).length;
  const misplaced = active(g.misplaced).length;
  const bypassed = [...g.missing, ...g.relocated, ...g.misplaced].filter((i) => i.inactive).length;
  return { count: missing + relink + misplaced, missing, relink, misplaced, present: g.present.length, bypassed, ...s };
}

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The parts of the missing count, in words ("1 ready to download, 1 ambiguous: choose a match"). */
export function missingParts(s) {
  const parts = [];
  if (s.ready) parts.push(`${s.ready} ready to download`);
  if (s.downloading) parts.push(`${s.downloading} downloading`);
  if (s.ambiguous) parts.push(`${s.ambiguous} ambiguous: choose a match`);
  if (s.folder_unknown) parts.push(`${s.folder_unknown} folder unknown: choose a folder`);
  if (s.auth_required) parts.push(`${s.auth_required} ${s.auth_required === 1 ? "needs" : "need"} a token`);
  if (s.unavailable) parts.push(`${s.unavailable} can't be looked up now`);
  if (s.not_found) parts.push(`${s.not_found} not found on any source`);
  if (s.looking) parts.push(`${s.looking} being looked up`);
  return parts;
}

/** The summary: `{headline, detail}`. The headline carries the one count; the detail names the rest. */
export function countLine(s) {
  const fix = [];
  if (s.missing) {
    const parts = missingParts(s);
    fix.push(`${s.missing} missing${parts.length ? ` (${parts.join(", ")})` : ""}`);
  }
  if (s.relink) fix.push(`${s.relink} to relink`);
  if (s.misplaced) fix.push(`${s.misplaced} in the wrong folder`);
  const headline = s.count
    ? `${plural(s.count, "model")} to fix: ${fix.join("; ")}.`
    : "Nothing to fix: every model the workflow uses is here.";
  const detail = [`${s.present} present`];
  if (s.bypassed) detail.push(`${s.bypassed} used only by bypassed or muted nodes (not counted)`);
  return { headline, detail: detail.join(" · ") };
}

/** "Download all (n)": how many, and when not all missing models are in it, why. */
export function downloadAllState(s, { resolving = false } = {}) {
  const count = s.ready;
  const left = s.missing - s.ready;
  if (!s.missing) return { count, disabled: true, why: "Nothing is missing." };
  if (!left) return { count, disabled: !count, why: null };
  const parts = missingParts({ ...s, ready: 0 });
  if (resolving && !parts.length) parts.push("still looking for sources");
  const onlyDownloading = s.downloading === left;
  const why = count
    ? `Downloads ${count} of ${s.missing} missing; the others: ${parts.join(", ")}.`
    : onlyDownloading ? `All ${plural(left, "missing model")} ${left === 1 ? "is" : "are"} downloading.`
      : `Nothing to download yet: ${parts.join(", ")}.`;
  return { count, disabled: !count, why };
}

/** One panel-level banner per kind of trouble with the sources (offline, rate limits), from resolve's `providers`. */
export function providerBanners(providers) {
  const hostOf = (p) => p.host || p.name;
  const down = (providers || []).filter((p) => p && p.state === "unavailable");
  const limited = (providers || []).filter((p) => p && p.state === "rate_limited");
  const out = [];
  if (down.length) {
    const hosts = [...new Set(down.map(hostOf))];
    out.push({ kind: "offline", text: `can't reach ${hosts.join(" or ")} — check the network or proxy` });
  }
  for (const p of limited) {
    const wait = Number.isFinite(p.retry_after) && p.retry_after > 0 ? ` — try again in ${Math.ceil(p.retry_after)} s` : " — try again later";
    out.push({ kind: "rate_limited", text: `${hostOf(p)} is limiting how often we may ask${wait}` });
  }
  return out;
}

// Text of an operating-system error, as Python prints it, and what it means to a user.
const OS_PHRASES = [
  [/temporary failure in name resolution|name or service not known|nodename nor servname provided|getaddrinfo failed|no address associated with hostname/i,
    "can't look up the host name (offline or no DNS)"],
  [/connection refused/i, "the server refused the connection"],
  [/network is unreachable|no route to host/i, "the network is unreachable"],
  [/timed out/i, "the server took too long to answer"],
  [/certificate verify failed/i, "the server's certificate could not be checked (a proxy?)"],
];

/** A message without exception class names or errno text: what happened, in words. */
export function plainMessage(text) {
  if (text === null || text === undefined) return text;
  let t = String(text);
  const words = (raw) => OS_PHRASES.find(([re]) => re.test(raw))?.[1] ?? null;
  t = t.replace(/\[Errno\s*-?\d+\]\s*([^;()\n]*)/gi, (_, rest) => words(rest) ?? rest.trim());
  t = t.replace(/\[([^\]]+)\]/g, (all, inner) => words(inner) ?? all);
  t = t.replace(/\s*\((?:failed|error):?\s*[A-Z][A-Za-z]*\)/g, "");
  t = t.replace(/\b(?:[a-z_]+\.)*[A-Z][A-Za-z]*(?:Error|Exception)\b:?\s*/g, "");
  return t.replace(/\(\s*\)/g, "").replace(/\s{2,}/g, " ").trim();
}

// ComfyUI's older folder names: a download to `diffusion_models` may land in models/unet (its first directory).
const LEGACY_FOLDERS = { unet: "diffusion_models", clip: "text_encoders" };

/**
 * When a file of `folder` lands (or will land, `done` false) in a legacy directory such as models/unet
 * while the UI says diffusion_models, say so; else null. `path` is the file or the directory.
 */
export function landingNote(folder, path, { done = true } = {}) {
  if (!folder || !path) return null;
  const parts = normalizeName(path).split("/");
  for (const [old, now] of Object.entries(LEGACY_FOLDERS)) {
    if (folder !== now || !parts.includes(old) || parts.includes(now)) continue;
    return `${done ? "Saved in" : "Saves into"} models/${old}/ — ComfyUI's older name for ${now}; ComfyUI reads both.`;
  }
  return null;
}

const SHARD_RE = /^(.*?)[-_.](\d{5})-of-(\d{5})(\.[A-Za-z0-9]+)$/;

/** A model stored as several files (shards, index, config): `{count, size}` from the candidate, else from the name. */
export function shardInfo(item) {
  const best = item?.candidates?.[0];
  const files = Array.isArray(best?.files) ? best.files : [];
  if (files.length > 1) {
    const sizes = files.map((f) => f.size);
    const size = sizes.every((n) => Number.isFinite(n)) ? sizes.reduce((a, b) => a + b, 0) : null;
    return { count: files.length, size };
  }
  const m = SHARD_RE.exec(normalizeName(item?.filename).split("/").pop() || "");
  return m ? { count: Number(m[3]), size: null } : null;
}

/** "5 files" / "5 files, 9.94 GB". */
export function shardLabel(info) {
  if (!info) return "";
  return `${info.count} files${info.size !== null ? `, ${formatBytes(info.size)}` : ""}`;
}
