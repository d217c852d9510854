"""Write resolved download sources back into a UI workflow as standard `properties.models`. Pure.

The official ComfyUI frontend reads `properties.models` (`name`, `url`, `directory`, optional
`hash`/`hash_type`) on loader nodes, and the root `models` list, to offer downloads of missing
files. Writing them makes the next person who opens the workflow one click away from every model.
Nodes inside subgraph definitions are written in the definition (shared by its instances).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import WorkflowError


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One `properties.models` entry for one node (node_id "" = the workflow's root `models`)."""

    node_id: str
    subgraph_id: str | None
    name: str
    url: str
    directory: str
    hash: str | None = None
    hash_type: str | None = None

    def as_json(self) -> dict[str, str]:
        out = {"name": self.name, "url": self.url, "directory": self.directory}
        if self.hash:
            out["hash"] = self.hash.lower() if (self.hash_type or "sha256") == "sha256" else self.hash
            out["hash_type"] = self.hash_type or "sha256"
        return out


def _nodes_by_id(nodes: Any) -> dict[str, dict]:
    out: dict[str, dict] = {}
    if isinstance(nodes, list):
        for n in nodes:
            if isinstance(n, dict) and "id" in n and not isinstance(n["id"], bool):
                out[str(n["id"])] = n
    return out


def _merge(existing: Any, entry: dict) -> list:
    items = [e for e in existing if isinstance(e, dict)] if isinstance(existing, list) else []
    for i, e in enumerate(items):
        if e.get("name") == entry["name"]:
            items[i] = {**e, **entry}
            return items
    items.append(entry)
    return items


def write_back(workflow: Any, entries: Iterable[ModelEntry]) -> tuple[dict, int]:
    """A copy of `workflow` with the entries written; returns it and how many entries were placed.

    Raises WorkflowError for API-format prompts (they have no place for this metadata)."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        raise WorkflowError("Write-back needs a UI-format workflow (with `nodes`); API prompts cannot carry "
                            "download links.", hint="Export the workflow from ComfyUI with Save, not Export (API).")
    out = copy.deepcopy(workflow)
    root = _nodes_by_id(out["nodes"])
    defs: dict[str, dict[str, dict]] = {}
    d = out.get("definitions")
    for sg in (d.get("subgraphs") if isinstance(d, dict) else None) or []:
        if isinstance(sg, dict) and isinstance(sg.get("id"), str):
            defs[sg["id"]] = _nodes_by_id(sg.get("nodes"))
    written = 0
    for e in entries:
        if not e.url or not e.name or not e.directory:
            continue
        if e.node_id == "":
            out["models"] = _merge(out.get("models"), e.as_json())
            written += 1
            continue
        table = root if e.subgraph_id is None else defs.get(e.subgraph_id, {})
        node = table.get(e.node_id)
        if node is None:  # e.g. a node inside a legacy group node: the root list still carries it
            out["models"] = _merge(out.get("models"), e.as_json())
            written += 1
            continue
        props = node.get("properties")
        if not isinstance(props, dict):
            props = {}
            node["properties"] = props
        props["models"] = _merge(props.get("models"), e.as_json())
        written += 1
    return out, written
