"""Subgraphs (nested, promoted widgets, bypass/mute, unused), group nodes and API ids."""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.errors import WorkflowError, WorkflowTooLarge
from comfyui_model_resolver.workflow.decode import decode_object
from comfyui_model_resolver.workflow.knowledge import Knowledge
from comfyui_model_resolver.workflow.parse import parse_workflow_object
from support.paths import FRONTEND_FIXTURES


def refs(obj):
    return parse_workflow_object(obj, Knowledge()).refs


def load(name):
    return json.loads((FRONTEND_FIXTURES / name).read_text())


def loader(nid, value, mode=0, link=None, ntype="CheckpointLoaderSimple", widget="ckpt_name"):
    inputs = [{"name": widget, "type": "COMBO", "widget": {"name": widget}, "link": link}] if link else []
    return {"id": nid, "type": ntype, "mode": mode, "inputs": inputs, "widgets_values": [value]}


def subgraph(sid, nodes, inputs=(), links=()):
    return {"id": sid, "name": sid, "nodes": nodes, "links": list(links),
            "inputs": [{"id": f"{sid}-{n}", "name": n, "type": "COMBO", "linkIds": []} for n in inputs]}


def boundary_link(lid, target, slot=0, oslot=0):
    return {"id": lid, "origin_id": -10, "origin_slot": oslot, "target_id": target, "target_slot": slot, "type": "COMBO"}


def nested_workflow():
    """outer (2 instances, one bypassed) -> inner (promotes ckpt_name) -> CheckpointLoaderSimple."""
    inner = subgraph("inner", [loader(1, "inner_default.safetensors", link=1),
                               loader(2, "muted.safetensors", mode=2, ntype="VAELoader", widget="vae_name")],
                     inputs=["ckpt_name"], links=[boundary_link(1, 1)])
    outer = subgraph("outer", [{"id": 7, "type": "inner", "mode": 0,
                                "inputs": [{"name": "ckpt_name", "type": "COMBO", "widget": {"name": "ckpt_name"},
                                            "link": 2}],
                                "widgets_values": ["outer_default.safetensors"]}],
                     inputs=["ckpt_name"], links=[boundary_link(2, 7)])
    unused = subgraph("unused", [loader(1, "unused.safetensors")])
    return {"nodes": [
        {"id": 10, "type": "outer", "mode": 0, "widgets_values": ["instance_a.safetensors"]},
        {"id": 11, "type": "outer", "mode": 4, "widgets_values": ["instance_b.safetensors"]},
    ], "links": [], "definitions": {"subgraphs": [outer, inner, unused]}}


def test_nested_two_deep_promoted_widgets_per_instance():
    out = {(r.subgraph_path, r.filename): r for r in refs(nested_workflow())}
    a = out[(("10", "7"), "instance_a.safetensors")]
    assert a.active and a.folder == "checkpoints" and a.node_id == "1" and a.subgraph_id == "inner"
    b = out[(("11", "7"), "instance_b.safetensors")]
    assert not b.active  # the outer instance is bypassed
    # The inner defaults are overridden by the promoted values, so they are not reported.
    assert not any(f == "inner_default.safetensors" for _, f in out)
    assert not any(f == "outer_default.safetensors" for _, f in out)
    muted = out[(("10", "7"), "muted.safetensors")]
    assert not muted.active and muted.folder == "vae"
    unused = out[(("def:unused",), "unused.safetensors")]
    assert not unused.active


def test_proxy_widgets_promotion():
    inner = subgraph("sg", [loader(5, "inner.safetensors", ntype="UNETLoader", widget="unet_name")])
    inner["nodes"][0]["widgets_values"] = ["inner.safetensors", "default"]
    wf = {"nodes": [{"id": 3, "type": "sg", "mode": 0, "properties": {"proxyWidgets": [["5", "unet_name"]]},
                     "widgets_values": ["promoted.safetensors"]}],
          "links": [], "definitions": {"subgraphs": [inner]}}
    (r,) = refs(wf)
    assert (r.filename, r.folder, r.subgraph_path, r.input) == ("promoted.safetensors", "diffusion_models", ("3",), "unet_name")


def test_frontend_nested_promoted_fixture():
    (r,) = refs(load("missing/missing_model_nested_promoted_widget.json"))
    assert (r.filename, r.folder, r.subgraph_path, r.active) == ("fake_model.safetensors", "checkpoints", ("3", "2"), True)
    assert r.url == "http://localhost:8188/api/devtools/fake_model.safetensors"  # from the root `models`


def test_bypassed_subgraph_fixture():
    (r,) = refs(load("missing/missing_models_in_bypassed_subgraph.json"))
    assert not r.active and r.subgraph_path == ("2",)


def test_bypass_and_mute_on_plain_nodes():
    wf = {"nodes": [loader(1, "a.safetensors", mode=0), loader(2, "b.safetensors", mode=2),
                    loader(3, "c.safetensors", mode=4)], "links": []}
    assert {r.filename: r.active for r in refs(wf)} == {"a.safetensors": True, "b.safetensors": False,
                                                         "c.safetensors": False}


def test_self_containing_subgraph_is_not_expanded_forever():
    sg = subgraph("loop", [loader(1, "x.safetensors"), {"id": 2, "type": "loop", "mode": 0}])
    wf = {"nodes": [{"id": 1, "type": "loop", "mode": 0}], "links": [], "definitions": {"subgraphs": [sg]}}
    result = parse_workflow_object(wf, Knowledge())
    assert [r.filename for r in result.refs] == ["x.safetensors"]
    assert any("contains itself" in w for w in result.warnings)


def test_exponential_subgraph_expansion_is_refused():
    # Each level holds 10 instances of the next: 10**8 nodes if expanded naively.
    defs = []
    for level in range(8):
        inner = f"L{level + 1}" if level < 7 else None
        nodes = [{"id": i, "type": inner, "mode": 0} for i in range(10)] if inner else [loader(1, "x.safetensors")]
        defs.append(subgraph(f"L{level}", nodes))
    wf = {"nodes": [{"id": 1, "type": "L0", "mode": 0}], "links": [], "definitions": {"subgraphs": defs}}
    with pytest.raises(WorkflowTooLarge, match=r"has 5,\d{3} nodes or more, over the limit of 5,000 nodes"):
        parse_workflow_object(wf, Knowledge())


def test_legacy_group_nodes_count_every_inner_node():
    inner = [loader(i, "x.safetensors") for i in range(200)]
    wf = {"nodes": [{"id": i, "type": "workflow>big", "mode": 0} for i in range(30)], "links": [],
          "extra": {"groupNodes": {"big": {"nodes": inner}}}}
    with pytest.raises(WorkflowTooLarge, match="nodes or more, over the limit of 5,000 nodes"):
        parse_workflow_object(wf, Knowledge())
    wf["nodes"] = wf["nodes"][:2]  # positive control: 400 inner nodes are fine
    assert len(parse_workflow_object(wf, Knowledge()).refs) == 400


def test_group_nodes_legacy():
    (r,) = refs(load("groupnodes/group_node_v1.3.3.json"))
    assert (r.filename, r.folder, r.node_type, r.subgraph_path) == ("v1-5-pruned-emaonly.ckpt", "checkpoints",
                                                                     "CheckpointLoaderSimple", ("10",))


def test_api_ids_keep_their_subgraph_path():
    api = {"12:5": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
           "3": {"class_type": "KSampler", "inputs": {"model": ["12:5", 0], "seed": 1}}}
    (r,) = refs(api)
    assert (r.node_id, r.subgraph_path, r.folder, r.input) == ("5", ("12",), "vae", "vae_name")


def test_extra_prompt_snapshot_is_ignored():
    wf = {"nodes": [loader(1, "real.safetensors")], "links": [],
          "extra": {"prompt": {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "stale.safetensors"}}}}}
    assert [r.filename for r in refs(wf)] == ["real.safetensors"]


@pytest.mark.parametrize("nodes", [
    [None, 5, "x", [], {"id": None, "type": "X"}, {"id": 1, "type": 7}, {"id": {"a": 1}, "type": "X"}],
    [{"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": "not-a-list"}],
    [{"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": [None, 3, {"x": []}]}],
    [{"id": 1, "type": "CheckpointLoaderSimple", "properties": {"models": "nope"}, "widgets_values": [1]}],
])
def test_malformed_nodes_are_skipped_with_warnings(nodes):
    result = parse_workflow_object({"nodes": nodes, "links": "bad", "definitions": {"subgraphs": "bad"}}, Knowledge())
    assert result.refs == ()


def test_decode_object_kind():
    assert decode_object(nested_workflow()).kind == "ui"
