// Model Resolver sidebar: what a row says about where its model comes from — implied by a preset, the
// node pack of its loader, "folder unknown" with the candidate folders, and an ambiguous answer as a
// choice between candidates. Pure: no DOM, nothing runs on import. The same words as the CLI and the
// Gradio UI (comfyui_model_resolver/adapters/row_words.py).

const PRESET_RE = /^preset (?:'([^']*)'|"([^"]*)")/;

/** The widget value (a preset) that implies a row's model, from the server's note ("preset 'PLUS (high strength)'; …"). */
export function presetOf(ref) {
  const m = PRESET_RE.exec(String(ref?.note ?? ""));
  return m ? (m[1] ?? m[2]) : null;
}

/**
 * "implied by <node> (preset 'X')" for a model no widget names (a preset or the node itself implies it),
 * else null. `node` is how the page names the node (its title); the node type otherwise.
 */
export function impliedNote(ref, node = null) {
  if (!ref?.implied) return null;
  const name = node || ref.node_type || "its node";
  const preset = presetOf(ref);
  if (preset !== null) return `implied by ${name} (preset '${preset}')`;
  if (ref.implied_by) { // the server's words ("implied by T: its pack's code loads it (f.py:45)"), the node named as the page does
    const said = String(ref.implied_by);
    const head = `implied by ${ref.node_type}`;
    return node && said.startsWith(head) ? `implied by ${node}${said.slice(head.length)}` : said;
  }
  return `implied by ${name} (the node loads it itself)`;
}

/** The custom-node packs of an item's loaders ("ComfyUI_IPAdapter_plus"); empty for core nodes and unknown packs. */
export function packsOf(item) {
  return [...new Set((item?.refs || []).map((r) => r.pack).filter(Boolean))];
}

/** The models folder a file was found in ("…/models/loras/x" -> "loras"), for an item whose folder nothing tells. */
export function foundFolder(path) {
  const m = /[\\/]models[\\/]([^\\/]+)[\\/]/.exec(String(path ?? ""));
  return m ? m[1] : null;
}

/** Candidate folders of a missing item whose folder nothing tells (most likely first); null when the folder is
 * known, or the file is on disk (where it was found says it then). */
export function unknownFolder(item) {
  if (!item || item.folder || (item.status && item.status !== "missing")) return null;
  const folders = [];
  for (const r of item.refs || []) for (const f of r.alt_folders || []) if (f && !folders.includes(f)) folders.push(f);
  return folders;
}

/** Why an item's folder is unknown, in words (the node named as the page names it). */
export function folderUnknownText(item, node = null) {
  const who = node || item?.refs?.[0]?.node_type || "its node";
  const folders = unknownFolder(item) || [];
  const known = folders.length ? ` Candidates: ${folders.join(", ")}.` : "";
  return `Folder unknown: nothing we know describes ${who} (no loader table entry, no ComfyUI schema), so no folder is guessed.${known}`;
}

/** The folder a download of this item goes to: its own, or for a folder-unknown item the user's pick (null until picked). */
export function targetFolder(item, pick = null) {
  if (item?.folder) return item.folder;
  return pick && typeof pick === "string" ? pick : null;
}

/** The line over an ambiguous item's candidates: a choice, nothing pre-chosen. */
export function ambiguousText(count) {
  return count > 1
    ? `Ambiguous: pick one of ${count} candidates. None is certain; each says why it might be the file.`
    : "Not certain: one candidate, check why it might be the file before downloading it.";
}
