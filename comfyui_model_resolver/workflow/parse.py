"""Workflow bytes or JSON -> ParsedWorkflow (format + model references). Pure."""
from __future__ import annotations

from typing import Any

from ..types import ModelRef, ParsedWorkflow
from .decode import DecodedWorkflow, decode_object, decode_workflow
from .detect import _embedded_entries, apply_embedded, detect_node
from .folders import embedded_folder
from .graph import walk_api, walk_ui
from .limits import MAX_MODELS, check_models
from .knowledge import Knowledge
from .variants import select_variants
from ..types import FOLDER_CONFIDENCE


def _workflow_level_refs(entries: list[dict]) -> list[ModelRef]:
    """Root `models` entries that no node names: the workflow still asks for them."""
    out = []
    for e in entries:
        folder = embedded_folder(e.get("directory"))
        ref = ModelRef(filename=e["name"], folder=folder, node_id="", node_type="", input="models",
                       folder_source="embedded" if folder else None,
                       confidence=FOLDER_CONFIDENCE["embedded"] if folder else 0.0,
                       note="listed in the workflow's models, used by no node")
        refs, _ = apply_embedded([ref], [e])
        out.extend(refs)
    return out


def refs_from_decoded(decoded: DecodedWorkflow, knowledge: Knowledge) -> ParsedWorkflow:
    walk = walk_ui(decoded.graph) if decoded.kind == "ui" else walk_api(decoded.graph)
    refs: list[ModelRef] = []
    for node in walk.nodes:
        refs.extend(detect_node(node, knowledge))
        if len(refs) > MAX_MODELS:
            check_models(len(refs))
    refs = select_variants(refs)
    if decoded.kind == "ui":
        root = _embedded_entries(decoded.graph.get("models"))
        if root:
            refs, unmatched = apply_embedded(refs, root, only_missing_url=True)
            refs.extend(_workflow_level_refs(unmatched))
            check_models(len(refs))
    return ParsedWorkflow(format=decoded.container, refs=tuple(refs), warnings=tuple(walk.warnings))


def parse_workflow_bytes(data: bytes, knowledge: Knowledge, *, max_bytes: int) -> ParsedWorkflow:
    """Bytes of a .json/.png/.webp -> ParsedWorkflow, or WorkflowError."""
    return refs_from_decoded(decode_workflow(data, max_bytes=max_bytes), knowledge)


def parse_workflow_object(obj: Any, knowledge: Knowledge) -> ParsedWorkflow:
    """An already parsed JSON value (request body, app.graph.serialize()) -> ParsedWorkflow."""
    return refs_from_decoded(decode_object(obj), knowledge)
