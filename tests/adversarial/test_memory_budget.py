"""Hole 4: memory amplification. A 16 MB multipart upload of a workflow with 200,000 loader nodes
made the sidecar grow from 74 MB to 1.47 GB (three at once: 5.4 GB), and any web page can send a
multipart POST without a CORS pre-flight.

Now a workflow's JSON objects/arrays, values, nodes (subgraph copies included) and model references
are capped (workflow/limits.py: counted before and while parsing, far above any real workflow), and
big inputs are read, decoded and analyzed one at a time (the resolver's input gate). The peak memory
itself is measured by bench/analyze_memory.py (a bench, not a test: no timing or RSS assertions here).
These cases go through both HTTP doors with the default byte limits: the reported attack and each cap
answer 413 in plain words, and a big input just under the caps gives a full result (positive control).
A cross-site multipart upload to the sidecar is refused before its body is read; the same upload
without a foreign Origin works.
"""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.workflow.limits import MAX_MODELS, MAX_NODES

from .conftest import DOORS, door_environ
from .harness import assert_error_shape

DEFAULT_LIMITS = {"CMR_MAX_WORKFLOW_BYTES": str(50 << 20), "CMR_MAX_REQUEST_BYTES": str(64 << 20)}


def _ui(nodes: list[dict]) -> bytes:
    return json.dumps({"last_node_id": len(nodes), "last_link_id": 0, "nodes": nodes, "links": [],
                       "version": 0.4}).encode()


def _loader(i: int) -> dict:
    return {"id": i, "type": "LoraLoader", "mode": 0, "widgets_values": [f"lora_{i}.safetensors", 1.0, 1.0]}


def _other(i: int) -> dict:
    return {"id": i, "type": "KSampler", "mode": 0, "widgets_values": [i, "fixed", 20, 7.0, "euler", "normal", 1.0]}


def _upload(door, data: bytes, name: str = "wf.json", headers: dict | None = None):
    return door.request("POST", "/analyze", files={"file": (name, data)}, headers=headers or {})


@pytest.fixture(params=sorted(DOORS))
async def big_door(request, sandbox, fake_hub):
    """A door with the default byte limits (the suite's doors use small ones)."""
    async with DOORS[request.param](sandbox, door_environ(sandbox, fake_hub, **DEFAULT_LIMITS)) as d:
        yield d


async def test_the_reported_attack_is_refused_in_plain_words(big_door):
    """200,000 loader nodes in a 16 MB multipart upload: a 413 before anything is parsed."""
    data = _ui([_loader(i) for i in range(200_000)])
    assert 15 << 20 < len(data) < 50 << 20  # under the byte limit: only the new caps stop it
    status, body, _ = await _upload(big_door, data)
    err = assert_error_shape(status, body, statuses=(413,))
    assert err["code"] == "workflow_too_large"
    assert "over the limit of" in err["message"] and "JSON objects and arrays" in err["message"]
    assert "not a workflow as saved by ComfyUI" in err["hint"]


async def test_a_node_count_over_the_cap_answers_413(big_door):
    status, body, _ = await _upload(big_door, _ui([_other(i) for i in range(MAX_NODES + 1)]))
    err = assert_error_shape(status, body, statuses=(413,))
    assert err["message"] == (f"The workflow has {MAX_NODES + 1:,} nodes or more, over the limit of "
                              f"{MAX_NODES:,} nodes.")


async def test_nested_subgraph_copies_count_as_nodes(big_door):
    """A small file whose subgraph instances multiply (10 per level, 5 levels) is refused the same way."""
    defs = [{"id": f"L{lvl}", "nodes": [{"id": i, "type": f"L{lvl + 1}", "mode": 0} for i in range(10)]}
            for lvl in range(4)] + [{"id": "L4", "nodes": [_loader(1)]}]
    wf = {"nodes": [{"id": 1, "type": "L0", "mode": 0}], "links": [], "definitions": {"subgraphs": defs}}
    status, body, _ = await big_door.request("POST", "/analyze", json_body=wf)
    err = assert_error_shape(status, body, statuses=(413,))
    assert "nodes or more, over the limit of" in err["message"]


async def test_a_model_count_over_the_cap_answers_413(big_door):
    status, body, _ = await _upload(big_door, _ui([_loader(i) for i in range(MAX_MODELS + 1)]))
    err = assert_error_shape(status, body, statuses=(413,))
    assert err["message"] == (f"The workflow has {MAX_MODELS + 1:,} model references, over the limit of "
                              f"{MAX_MODELS:,} model references.")


async def test_positive_control_a_big_workflow_under_every_cap_gives_a_full_result(big_door):
    """Just under the node and model caps, uploaded and as a JSON body: every model is reported."""
    loaders = MAX_MODELS - 10
    nodes = [_loader(i) for i in range(loaders)] + [_other(i) for i in range(loaders, MAX_NODES - 10)]
    data = _ui(nodes)
    for status, body, text in (await _upload(big_door, data),
                               await big_door.request("POST", "/analyze", content=data,
                                                      headers={"Content-Type": "application/json"})):
        assert status == 200, text[:300]
        assert len(body["models"]) == loaders
        assert {m["status"] for m in body["models"]} == {"missing"}


async def test_a_big_note_just_under_the_byte_limit_is_analyzed(big_door):
    note = {"id": 1, "type": "Note", "mode": 0, "widgets_values": ["x" * (40 << 20)]}
    status, body, text = await _upload(big_door, _ui([note, _loader(2)]))
    assert status == 200, text[:300]
    assert [m["filename"] for m in body["models"]] == ["lora_2.safetensors"]


async def test_cross_site_multipart_is_refused_on_the_sidecar(sandbox, fake_hub):
    async with DOORS["sidecar"](sandbox, door_environ(sandbox, fake_hub, **DEFAULT_LIMITS)) as door:
        data = _ui([_loader(i) for i in range(3)])
        status, body, _ = await _upload(door, data, headers={"Origin": "https://evil.example"})
        err = assert_error_shape(status, body, statuses=(403,))
        assert err["code"] == "cross_origin"
        status, body, _ = await _upload(door, data)  # positive control: the same upload, no foreign Origin
        assert status == 200 and len(body["models"]) == 3
