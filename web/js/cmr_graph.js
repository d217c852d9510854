// Model Resolver sidebar: the live graph (finding nodes, relinking, embedding sources, names of
// subgraphs). Pure: takes ComfyUI's graph objects as arguments, no DOM, nothing runs on import.

// ---- the live graph: finding nodes, relinking, embedding sources ------------------------------------
function nodesOf(graph) {
  return graph?.nodes ?? graph?._nodes ?? [];
}

export function getNode(graph, id) {
  if (!graph) return null;
  const sid = String(id);
  const byId = typeof graph.getNodeById === "function"
    ? (graph.getNodeById(/^-?\d+$/.test(sid) ? Number(sid) : sid) ?? graph.getNodeById(sid)) : null;
  return byId || nodesOf(graph).find((n) => String(n.id) === sid) || null;
}

function subgraphById(root, id) {
  const map = root?.subgraphs ?? root?._subgraphs;
  if (!map || !id) return null;
  if (typeof map.get === "function") return map.get(id) ?? null;
  return map[id] ?? null;
}

/**
 * The node a reference points at, plus the subgraph instances that wrap it (outermost first).
 * subgraph_path holds instance ids from the root; "def:<id>" means a definition with no instance.
 */
export function locate(root, ref) {
  const path = ref.subgraph_path || [];
  const instances = [];
  let graph = root;
  for (const step of path) {
    if (String(step).startsWith("def:")) {
      graph = subgraphById(root, String(step).slice(4)) || subgraphById(root, ref.subgraph_id);
      continue;
    }
    const inst = getNode(graph, step);
    if (!inst) return { node: null, instances };
    instances.push(inst);
    graph = inst.subgraph || subgraphById(root, inst.type) || null;
    if (!graph) return { node: null, instances };
  }
  if (!path.length && ref.subgraph_id) graph = subgraphById(root, ref.subgraph_id) || graph;
  return { node: getNode(graph, ref.node_id), instances, graph };
}

function setWidgetValue(widget, value) {
  widget.value = value;
  if (typeof widget.callback === "function") {
    try { widget.callback(value); } catch { /* a node's own callback must not stop the relink */ }
  }
}

/** A node whose type ComfyUI does not know (its node pack is not installed): LiteGraph keeps the saved
 * data (`last_serialization`, `has_errors`) and saves that back unchanged; the frontend shows it with
 * placeholder "UNKNOWN" widgets (1.27) or none, so a value set on those would be lost silently. */
export function isMissingNodeType(node) {
  return Boolean(node?.last_serialization && (node.has_errors || !(node.widgets || []).length
    || node.widgets.every((w) => w.name === "UNKNOWN")));
}

function nodeLabel(node, ref) {
  const type = ref.node_type || node?.type || "node";
  return `${type} #${ref.node_id}`;
}

/**
 * Point one reference at `newValue` in the live graph: the loader's widget (dict widgets: the key),
 * and any widget on the wrapping subgraph instances that shows the old value (promoted widgets).
 * Returns `{changed, reason}`: how many widgets changed, and when none did, why, in plain words.
 * Nothing is counted that the user would not see change (a node without widgets keeps its saved data).
 */
export function relinkRef(root, ref, newValue) {
  const oldValue = ref.filename;
  const { node, instances } = locate(root, ref);
  let changed = 0;
  let reason = null;
  if (!node) {
    reason = `${nodeLabel(null, ref)} is no longer in the workflow.`;
  } else if (isMissingNodeType(node)) {
    reason = `${nodeLabel(node, ref)} comes from a node pack that is not installed, so ComfyUI shows it without `
      + `its "${ref.input}" setting and it can't be changed. Install the pack (Manager → Install Missing Custom Nodes), then relink.`;
  } else {
    const widgets = node.widgets || [];
    let w = widgets.find((x) => x.name === ref.input);
    if (!w && Number.isInteger(ref.widget_index)) w = widgets[ref.widget_index];
    if (!w) {
      reason = `${nodeLabel(node, ref)} has no "${ref.input}" setting in this version of its node pack.`;
    } else if (ref.widget_key && w.value && typeof w.value === "object") {
      if (w.value[ref.widget_key] === oldValue) {
        setWidgetValue(w, { ...w.value, [ref.widget_key]: newValue });
        changed++;
      } else if (w.value[ref.widget_key] !== newValue) {
        reason = `${nodeLabel(node, ref)} now holds "${w.value[ref.widget_key]}", not "${oldValue}".`;
      }
    } else if (w.value === oldValue) {
      setWidgetValue(w, newValue);
      changed++;
    } else if (w.value !== newValue) {
      reason = `${nodeLabel(node, ref)} now holds "${w.value}", not "${oldValue}".`;
    }
  }
  for (const inst of instances.slice().reverse()) {
    for (const w of inst.widgets || []) {
      if (w.value === oldValue) { setWidgetValue(w, newValue); changed++; }
    }
  }
  return { changed, reason: changed ? null : reason };
}

/** The number of widgets `relinkRef` changed (kept for callers that only count). */
export function applyRelink(root, ref, newValue) {
  return relinkRef(root, ref, newValue).changed;
}

/** The name ComfyUI shows for a subgraph instance or definition: its title, else the subgraph's name. */
function subgraphName(inst, root, id) {
  const def = inst?.subgraph || subgraphById(root, id);
  const title = inst?.title && inst.title !== inst.type ? inst.title : null;
  return title || def?.name || inst?.title || null;
}

/**
 * Where a reference sits, as ComfyUI names it: `{node, path}` with the node's title (e.g. "Load LoRA")
 * and the titles of the subgraphs around it, outermost first ("Upscale stage"), never bare ids.
 * A definition without an instance is "unused subgraph <name>".
 */
export function describePlace(root, ref) {
  const path = ref.subgraph_path || [];
  const names = [];
  let graph = root;
  for (const step of path) {
    const s = String(step);
    if (s.startsWith("def:")) {
      const def = subgraphById(root, s.slice(4)) || subgraphById(root, ref.subgraph_id);
      names.push(`unused subgraph ${def?.name ? `"${def.name}"` : ""}`.trim());
      graph = def;
      continue;
    }
    const inst = graph ? getNode(graph, s) : null;
    names.push(subgraphName(inst, root, inst?.type) || "subgraph");
    graph = inst?.subgraph || (inst ? subgraphById(root, inst.type) : null);
  }
  const { node } = locate(root, ref);
  const title = node?.title && node.title !== node.type ? node.title : null;
  return { node: title || ref.node_type || node?.type || "node", path: names };
}

/** One standard `properties.models` entry ({name, url, directory, hash?, hash_type?}). */
export function modelsEntry(name, folder, url, sha256 = null) {
  // `name` stays exactly as the widget holds it: the frontend compares it with its model list.
  const entry = { name: String(name), url, directory: folder };
  if (sha256 && /^[0-9a-fA-F]{64}$/.test(sha256)) {
    entry.hash = sha256.toLowerCase();
    entry.hash_type = "SHA256";
  }
  return entry;
}

/** Merge entries into an existing `properties.models` list (same name: replaced). */
export function mergeModelsProperty(existing, entries) {
  const out = Array.isArray(existing) ? existing.filter((e) => e && typeof e === "object") : [];
  for (const entry of entries) {
    const i = out.findIndex((e) => e.name === entry.name && (e.directory ?? entry.directory) === entry.directory);
    if (i >= 0) out[i] = { ...out[i], ...entry };
    else out.push(entry);
  }
  return out;
}

/** Which source URL to embed for an item: its workflow link, else the best candidate. */
export function sourceFor(item) {
  // only a confident answer (resolved, or found but needing a token): an ambiguous model's first candidate
  // written as the workflow's own link would be trusted as one by the next reader (the user's own pick comes
  // in through `sourceOf`)
  const best = item.certain || item.resolution === "auth_required" ? item.candidates?.[0] : null;
  if (best?.url) return { url: best.url, sha256: best.sha256 || null };
  if (item.url) return { url: item.url, sha256: item.refs.find((r) => r.hash_type?.toLowerCase() === "sha256")?.hash ?? null };
  return null;
}

/**
 * Write `properties.models` onto the loader nodes of every item with a known source.
 * `currentValue(ref)` gives the name the widget holds now (after a relink it is the new path);
 * `sourceOf(item)` picks the URL (default: best candidate, else the workflow's own link).
 * Returns {nodes, entries}.
 */
export function applyEmbed(root, items, currentValue = (ref) => ref.filename, sourceOf = sourceFor) {
  let nodes = 0;
  let entries = 0;
  for (const item of items) {
    const src = sourceOf(item);
    if (!src || !item.folder) continue;
    for (const ref of item.refs) {
      const { node } = locate(root, ref);
      if (!node) continue;
      node.properties = node.properties || {};
      const entry = modelsEntry(currentValue(ref, node) ?? ref.filename, item.folder, src.url, src.sha256);
      node.properties.models = mergeModelsProperty(node.properties.models, [entry]);
      nodes++;
      entries++;
    }
  }
  return { nodes, entries };
}

/** The value a reference's widget holds now in the live graph (null when not found). */
export function widgetValue(root, ref) {
  const { node } = locate(root, ref);
  const w = node?.widgets?.find((x) => x.name === ref.input);
  if (!w) return null;
  if (ref.widget_key && w.value && typeof w.value === "object") return w.value[ref.widget_key] ?? null;
  return typeof w.value === "string" ? w.value : null;
}

/** A cheap fingerprint of what matters for models: node types, modes and widget values. */
export function graphSignature(serialized) {
  const parts = [];
  const walk = (nodes) => {
    for (const n of nodes || []) parts.push([n.id, n.type, n.mode ?? 0, n.widgets_values ?? null, n.properties?.models ?? null]);
  };
  walk(serialized?.nodes);
  for (const sg of serialized?.definitions?.subgraphs || []) {
    parts.push(sg.id);
    walk(sg.nodes);
  }
  return JSON.stringify(parts);
}
