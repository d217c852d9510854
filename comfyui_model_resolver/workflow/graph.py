"""Walk a workflow graph into flat node views: UI (litegraph) with subgraphs and legacy
group nodes, or API format. Pure, iterative (no recursion), bounded.

A subgraph instance's promoted widgets override the values of the inner widgets they are
linked to (`properties.proxyWidgets`, or positional: the instance's `widgets_values` hold
one value per subgraph input that feeds an inner widget). Nodes inside bypassed (mode 4)
or muted (mode 2) instances, and inside definitions no instance uses, are inactive.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import WorkflowError
from .limits import MAX_NODES, check_nodes

MODE_NEVER = 2  # muted
MODE_BYPASS = 4
SUBGRAPH_INPUT_NODE = -10

MAX_SUBGRAPH_DEPTH = 64


@dataclass(slots=True)
class NodeView:
    node_id: str
    node_type: str
    active: bool
    subgraph_path: tuple[str, ...]
    values: list | dict | None  # UI widgets_values (list or dict) or None
    named: dict[str, Any] | None = None  # API inputs, by name
    overrides: dict[str, Any] = field(default_factory=dict)  # promoted widget values, by widget name
    properties: dict | None = None
    widget_inputs: tuple[str, ...] = ()  # names of the node's widget-backed input slots (UI)
    title: str | None = None
    subgraph_id: str | None = None  # definition holding the node


@dataclass(slots=True)
class WalkResult:
    nodes: list[NodeView]
    warnings: list[str]


def _node_id(raw: Any) -> str | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, str)):
        return str(raw)
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return None


def _link_tuple(raw: Any) -> tuple[Any, Any, Any, Any, Any] | None:
    """(id, origin_id, origin_slot, target_id, target_slot) from array or object links."""
    if isinstance(raw, list) and len(raw) >= 5:
        return raw[0], raw[1], raw[2], raw[3], raw[4]
    if isinstance(raw, dict):
        return raw.get("id"), raw.get("origin_id"), raw.get("origin_slot"), raw.get("target_id"), raw.get("target_slot")
    return None


def _collect_definitions(root: dict, warnings: list[str]) -> dict[str, dict]:
    """All subgraph definitions by id, wherever they are nested (`definitions.subgraphs`)."""
    defs: dict[str, dict] = {}
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > MAX_SUBGRAPH_DEPTH:
            raise WorkflowError("Subgraph definitions are nested too deeply.")
        d = obj.get("definitions") if isinstance(obj, dict) else None
        subgraphs = d.get("subgraphs") if isinstance(d, dict) else None
        if subgraphs is None:
            continue
        if not isinstance(subgraphs, list):
            warnings.append("definitions.subgraphs is not a list; ignored.")
            continue
        for sg in subgraphs:
            if not isinstance(sg, dict) or not isinstance(sg.get("id"), str):
                warnings.append("A subgraph definition without a string id was ignored.")
                continue
            if not isinstance(sg.get("nodes", []), list):
                warnings.append(f"Subgraph {sg['id']!r} has no node list; ignored.")
                continue
            defs.setdefault(sg["id"], sg)
            stack.append((sg, depth + 1))
    return defs


def _widget_input_names(node: dict) -> tuple[str, ...]:
    inputs = node.get("inputs")
    if not isinstance(inputs, list):
        return ()
    names = []
    for inp in inputs:
        if isinstance(inp, dict) and isinstance(inp.get("widget"), dict):
            name = inp["widget"].get("name")
            if isinstance(name, str):
                names.append(name)
    return tuple(names)


def _boundary_targets(sg: dict) -> dict[int, list[tuple[str, str]]]:
    """subgraph input slot -> [(inner node id, inner widget name)] for inputs that feed widgets."""
    nodes = {(_node_id(n.get("id"))): n for n in sg.get("nodes", []) if isinstance(n, dict)}
    out: dict[int, list[tuple[str, str]]] = {}
    links = sg.get("links")
    if not isinstance(links, list):
        return out
    for raw in links:
        t = _link_tuple(raw)
        if t is None:
            continue
        _lid, origin, oslot, target, tslot = t
        if origin != SUBGRAPH_INPUT_NODE or not isinstance(oslot, int) or not isinstance(tslot, int):
            continue
        inner = nodes.get(_node_id(target))
        if inner is None:
            continue
        inputs = inner.get("inputs")
        if not isinstance(inputs, list) or not (0 <= tslot < len(inputs)) or not isinstance(inputs[tslot], dict):
            continue
        slot = inputs[tslot]
        widget = slot.get("widget")
        if not isinstance(widget, dict) or not isinstance(widget.get("name"), str):
            continue
        out.setdefault(oslot, []).append((_node_id(target) or "", widget["name"]))
    return out


def _instance_overrides(instance: dict, sg: dict, inherited: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Values the instance's promoted widgets push into inner nodes: {inner id: {widget: value}}."""
    values = instance.get("widgets_values")
    values = values if isinstance(values, list) else []
    overrides: dict[str, dict[str, Any]] = {}
    boundary: dict[str, Any] = {}
    props = instance.get("properties")
    proxy = props.get("proxyWidgets") if isinstance(props, dict) else None
    sg_inputs = sg.get("inputs") if isinstance(sg.get("inputs"), list) else []
    targets = _boundary_targets(sg)

    if isinstance(proxy, list) and proxy:
        for idx, entry in enumerate(proxy):
            if not (isinstance(entry, (list, tuple)) and len(entry) >= 2) or idx >= len(values):
                continue
            target, name = _node_id(entry[0]), entry[1]
            if target is None or not isinstance(name, str):
                continue
            value = inherited.get(name, values[idx])
            if target == "-1":
                boundary[name] = value
            else:
                overrides.setdefault(target, {})[name] = value
    else:
        # Positional: one value per subgraph input that feeds a widget, in input order.
        linked_outside = set()
        inst_inputs = instance.get("inputs")
        if isinstance(inst_inputs, list):
            for inp in inst_inputs:
                if isinstance(inp, dict) and inp.get("link") is not None and isinstance(inp.get("name"), str):
                    linked_outside.add(inp["name"])
        idx = 0
        for slot, sg_input in enumerate(sg_inputs):
            if slot not in targets:
                continue
            name = sg_input.get("name") if isinstance(sg_input, dict) else None
            if idx < len(values) and isinstance(name, str) and name not in linked_outside:
                boundary[name] = values[idx]
            idx += 1
    for name, value in inherited.items():
        boundary.setdefault(name, value)

    for slot, sg_input in enumerate(sg_inputs):
        name = sg_input.get("name") if isinstance(sg_input, dict) else None
        if isinstance(name, str) and name in boundary:
            for inner_id, widget_name in targets.get(slot, ()):
                overrides.setdefault(inner_id, {})[widget_name] = boundary[name]
    return overrides


def _group_node_views(node: dict, definition: dict, path: tuple[str, ...], active: bool,
                      warnings: list[str]) -> Iterator[NodeView]:
    """Legacy `extra.groupNodes`: the instance's widgets_values are the inner nodes' values, concatenated."""
    inner_nodes = definition.get("nodes") if isinstance(definition, dict) else None
    if not isinstance(inner_nodes, list):
        warnings.append(f"Group node {node.get('type')!r} has no definition nodes; ignored.")
        return
    inst_values = node.get("widgets_values")
    lengths = [len(n.get("widgets_values")) if isinstance(n, dict) and isinstance(n.get("widgets_values"), list) else 0
               for n in inner_nodes]
    use_instance = isinstance(inst_values, list) and len(inst_values) == sum(lengths)
    offset = 0
    gid = _node_id(node.get("id")) or "?"
    for i, inner in enumerate(inner_nodes):
        if not isinstance(inner, dict) or not isinstance(inner.get("type"), str):
            continue
        n = lengths[i]
        values = inst_values[offset:offset + n] if use_instance else inner.get("widgets_values")
        offset += n
        index = inner.get("index", i)
        mode = inner.get("mode", 0)
        yield NodeView(
            node_id=f"{gid}:{index}",
            node_type=inner["type"],
            active=active and mode not in (MODE_NEVER, MODE_BYPASS),
            subgraph_path=path,
            values=values if isinstance(values, (list, dict)) else None,
            properties=inner.get("properties") if isinstance(inner.get("properties"), dict) else None,
            widget_inputs=_widget_input_names(inner),
        )


def walk_ui(wf: dict) -> WalkResult:
    """Every node of a UI workflow, subgraph instances expanded (per instance)."""
    warnings: list[str] = []
    defs = _collect_definitions(wf, warnings)
    extra = wf.get("extra")
    group_defs = extra.get("groupNodes") if isinstance(extra, dict) else None
    group_defs = group_defs if isinstance(group_defs, dict) else {}
    used: set[str] = set()
    out: list[NodeView] = []
    seen = 0

    # (nodes, path, active, overrides-by-inner-id, def ids on the current path)
    stack: list[tuple[list, tuple[str, ...], bool, dict[str, dict[str, Any]], tuple[str, ...]]] = [
        (wf["nodes"], (), True, {}, ())
    ]
    pending_unused = True
    while stack or pending_unused:
        if not stack:
            pending_unused = False
            for sg_id, sg in defs.items():
                if sg_id not in used:
                    used.add(sg_id)
                    stack.append((sg.get("nodes", []), (f"def:{sg_id}",), False, {}, (sg_id,)))
            continue
        nodes, path, active, overrides, chain = stack.pop()
        if len(path) > MAX_SUBGRAPH_DEPTH:
            raise WorkflowError(f"Subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} levels deep.")
        seen += len(nodes) if isinstance(nodes, list) else 0  # every entry counts, valid or not
        if seen > MAX_NODES:  # subgraph instances nested inside each other multiply
            check_nodes(seen, at_least=True)
        for node in nodes:
            if not isinstance(node, dict):
                warnings.append("A node that is not a JSON object was ignored.")
                continue
            nid = _node_id(node.get("id"))
            ntype = node.get("type")
            if nid is None or not isinstance(ntype, str):
                warnings.append(f"A node without a valid id/type was ignored (id={str(node.get('id'))[:40]!r}).")
                continue
            mode = node.get("mode", 0)
            node_active = active and mode not in (MODE_NEVER, MODE_BYPASS)
            if ntype in defs:
                if ntype in chain:
                    warnings.append(f"Subgraph {ntype!r} contains itself; the inner copy was ignored.")
                    continue
                used.add(ntype)
                sg = defs[ntype]
                inherited = overrides.get(nid, {})
                stack.append((sg.get("nodes", []), path + (nid,), node_active,
                              _instance_overrides(node, sg, inherited), chain + (ntype,)))
                continue
            if ntype.startswith(("workflow>", "workflow/")) and ntype[9:] in group_defs:
                inner = group_defs[ntype[9:]].get("nodes") if isinstance(group_defs[ntype[9:]], dict) else None
                seen += len(inner) if isinstance(inner, list) else 0
                if seen > MAX_NODES:
                    check_nodes(seen, at_least=True)
                out.extend(_group_node_views(node, group_defs[ntype[9:]], path + (nid,), node_active, warnings))
                continue
            values = node.get("widgets_values")
            props = node.get("properties")
            title = node.get("title")
            out.append(NodeView(
                node_id=nid,
                node_type=ntype,
                active=node_active,
                subgraph_path=path,
                values=values if isinstance(values, (list, dict)) else None,
                overrides=overrides.get(nid, {}),
                properties=props if isinstance(props, dict) else None,
                widget_inputs=_widget_input_names(node),
                title=title if isinstance(title, str) else None,
                subgraph_id=chain[-1] if chain else None,
            ))
    return WalkResult(out, warnings)


def walk_api(prompt: dict) -> WalkResult:
    """Every node of an API-format prompt. Ids like "12:5" (expanded subgraphs) keep their path."""
    warnings: list[str] = []
    out: list[NodeView] = []
    check_nodes(len(prompt))
    for key, node in prompt.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            warnings.append(f"API entry {str(key)[:40]!r} has no class_type; ignored.")
            continue
        inputs = node.get("inputs")
        if inputs is not None and not isinstance(inputs, dict):
            warnings.append(f"API node {str(key)[:40]!r} has inputs that are not an object; ignored.")
            inputs = None
        parts = str(key).split(":")
        meta = node.get("_meta")
        title = meta.get("title") if isinstance(meta, dict) else None
        out.append(NodeView(
            node_id=parts[-1],
            node_type=node["class_type"],
            active=True,
            subgraph_path=tuple(parts[:-1]),
            values=None,
            named=inputs or {},
            title=title if isinstance(title, str) else None,
        ))
    return WalkResult(out, warnings)
