"""Rewrite widget values in a workflow so they point at files that exist (relocated models).

Pure: takes the workflow JSON value and a list of changes, returns a modified deep copy and
how many values were rewritten. Works for UI workflows (root graph, subgraph definitions,
promoted values on subgraph instances, rgthree-style dict widgets) and API prompts.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field

from ..errors import WorkflowError
from .decode import classify_graph


class RelinkChange(BaseModel):
    """Point one reference at another file. Fields mirror the reference from analyze."""

    model_config = ConfigDict(extra="ignore")

    node_id: str
    old_value: str = Field(..., description="the value as written now (the reference's filename)")
    new_value: str = Field(..., min_length=1, max_length=1024, description="e.g. the reference's relink_value")
    subgraph_id: str | None = None
    subgraph_path: tuple[str, ...] = ()
    input: str | None = None
    widget_index: int | None = None
    widget_key: str | None = None


def _set_in_values(node: dict, change: RelinkChange) -> bool:
    values = node.get("widgets_values")
    if isinstance(values, list):
        idx = change.widget_index
        if idx is not None and 0 <= idx < len(values):
            if change.widget_key and isinstance(values[idx], dict):
                if values[idx].get(change.widget_key) == change.old_value:
                    values[idx][change.widget_key] = change.new_value
                    return True
            elif values[idx] == change.old_value:
                values[idx] = change.new_value
                return True
        # Fall back to the unique position holding the old value.
        hits = [i for i, v in enumerate(values) if v == change.old_value]
        if len(hits) == 1:
            values[hits[0]] = change.new_value
            return True
        for v in values:
            if isinstance(v, dict) and change.widget_key and v.get(change.widget_key) == change.old_value:
                v[change.widget_key] = change.new_value
                return True
    elif isinstance(values, dict):
        key = change.widget_key or change.input
        if key in values and values[key] == change.old_value:
            values[key] = change.new_value
            return True
    return False


def _nodes_of(graph: dict, subgraph_id: str | None) -> list:
    if subgraph_id is None:
        return graph.get("nodes") or []
    stack = [graph]
    while stack:
        g = stack.pop()
        defs = g.get("definitions") if isinstance(g, dict) else None
        for sg in (defs.get("subgraphs") if isinstance(defs, dict) else None) or []:
            if isinstance(sg, dict):
                if sg.get("id") == subgraph_id:
                    return sg.get("nodes") or []
                stack.append(sg)
    return []


def _find(nodes: Iterable, node_id: str) -> dict | None:
    for n in nodes:
        if isinstance(n, dict) and str(n.get("id")) == node_id:
            return n
    return None


def _apply_ui(graph: dict, change: RelinkChange) -> int:
    applied = 0
    node = _find(_nodes_of(graph, change.subgraph_id), change.node_id)
    if node is not None and _set_in_values(node, change):
        applied += 1
    # A promoted widget: the value lives on the subgraph instances along the path.
    if change.subgraph_path and not change.subgraph_path[0].startswith("def:"):
        containers = [graph.get("nodes") or []]
        for inst_id in change.subgraph_path:
            inst = _find(containers[-1], inst_id)
            if inst is None:
                break
            values = inst.get("widgets_values")
            if isinstance(values, list):
                for i, v in enumerate(values):
                    if v == change.old_value:
                        values[i] = change.new_value
                        applied += 1
            containers.append(_nodes_of(graph, inst.get("type")))
    return applied


def apply_relinks(workflow: Any, changes: Iterable[RelinkChange]) -> tuple[Any, int]:
    """Return (a rewritten copy of `workflow`, number of values rewritten)."""
    changes = list(changes)
    out = copy.deepcopy(workflow)
    kind, graph = classify_graph(out)
    applied = 0
    for change in changes:
        if kind == "ui":
            applied += _apply_ui(graph, change)
        else:
            key = ":".join([*change.subgraph_path, change.node_id])
            node = graph.get(key)
            inputs = node.get("inputs") if isinstance(node, dict) else None
            if isinstance(inputs, dict) and change.input in inputs and inputs[change.input] == change.old_value:
                inputs[change.input] = change.new_value
                applied += 1
    if applied == 0 and changes:
        raise WorkflowError("None of the values to relink were found in the workflow.",
                            hint="Analyze the workflow again; it may have changed since.")
    return out, applied
