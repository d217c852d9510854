"""Acceptance: every official template workflow (PyPI comfyui-workflow-templates-json, pinned).

Each model a node names in its `properties.models` must be reported for that node with the same
folder, on active and inactive nodes alike; and nothing may be reported that is not a model.
"""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.errors import WorkflowError
from comfyui_model_resolver.workflow.folders import canonical_folder
from comfyui_model_resolver.workflow.knowledge import Knowledge
from comfyui_model_resolver.workflow.parse import parse_workflow_bytes
from support.paths import templates_dir

TEMPLATES = templates_dir()
pytestmark = pytest.mark.skipif(TEMPLATES is None, reason="comfyui-workflow-templates-json is not installed")


def _expected(wf: dict) -> dict[tuple, str]:
    out = {}

    def walk(nodes, sg_id):
        for n in nodes:
            for m in (n.get("properties") or {}).get("models") or []:
                out[(sg_id, str(n["id"]), m["name"])] = canonical_folder(m["directory"])

    walk(wf.get("nodes", []), None)
    for sg in (wf.get("definitions") or {}).get("subgraphs", []):
        walk(sg.get("nodes", []), sg["id"])
    return out


def _root_names(wf: dict) -> set[str]:
    return {m["name"] for m in wf.get("models") or [] if isinstance(m, dict)}


def test_every_template_reference_with_the_right_folder():
    knowledge = Knowledge()
    files = sorted(TEMPLATES.glob("*.json"))
    assert len(files) > 500
    checked = workflows = 0
    missing, wrong, extra = [], [], []
    inactive_checked = 0
    for path in files:
        raw = path.read_bytes()
        wf = json.loads(raw)
        if not (isinstance(wf, dict) and isinstance(wf.get("nodes"), list)):
            with pytest.raises(WorkflowError):  # index files, schemas: not workflows
                parse_workflow_bytes(raw, knowledge, max_bytes=50 << 20)
            continue
        workflows += 1
        parsed = parse_workflow_bytes(raw, knowledge, max_bytes=50 << 20)
        got: dict[tuple, list] = {}
        for r in parsed.refs:
            got.setdefault((r.subgraph_id, r.node_id, r.filename), []).append(r)
        expected = _expected(wf)
        for key, folder in expected.items():
            checked += 1
            found = got.get(key)
            if not found:
                missing.append((path.name, key))
            elif any(r.folder != folder for r in found):
                wrong.append((path.name, key, folder, [r.folder for r in found]))
            elif any(not r.active for r in found):
                inactive_checked += 1
        roots = _root_names(wf)
        for key, rs in got.items():
            if key not in expected and key[2] not in roots:
                extra.append((path.name, key, rs[0].node_type, rs[0].input))
    assert workflows > 500 and checked > 1000
    assert not missing, f"{len(missing)} of {checked} references missing, e.g. {missing[:5]}"
    assert not wrong, f"{len(wrong)} of {checked} references in the wrong folder, e.g. {wrong[:5]}"
    assert not extra, f"{len(extra)} non-model references reported, e.g. {extra[:5]}"
    assert inactive_checked > 0  # bypassed/muted template nodes were checked too
