"""Relinking rewrites exactly the values that point at a relocated file."""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.errors import WorkflowError
from comfyui_model_resolver.workflow.knowledge import Knowledge
from comfyui_model_resolver.workflow.parse import parse_workflow_object
from comfyui_model_resolver.workflow.relink import RelinkChange, apply_relinks
from support.paths import FRONTEND_FIXTURES


def change_for(ref, new):
    return RelinkChange(node_id=ref.node_id, old_value=ref.filename, new_value=new, subgraph_id=ref.subgraph_id,
                        subgraph_path=ref.subgraph_path, input=ref.input, widget_index=ref.widget_index,
                        widget_key=ref.widget_key)


def test_root_node_windows_path():
    wf = {"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["SD1.5\\x.safetensors"]}], "links": []}
    (ref,) = parse_workflow_object(wf, Knowledge()).refs
    out, n = apply_relinks(wf, [change_for(ref, "SD1.5/x.safetensors")])
    assert n == 1 and out["nodes"][0]["widgets_values"] == ["SD1.5/x.safetensors"]
    assert wf["nodes"][0]["widgets_values"] == ["SD1.5\\x.safetensors"]  # input untouched
    (again,) = parse_workflow_object(out, Knowledge()).refs
    assert again.filename == "SD1.5/x.safetensors"


def test_promoted_value_inside_nested_subgraphs():
    wf = json.loads((FRONTEND_FIXTURES / "missing/missing_model_nested_promoted_widget.json").read_text())
    (ref,) = parse_workflow_object(wf, Knowledge()).refs
    out, n = apply_relinks(wf, [change_for(ref, "sub/fake_model.safetensors")])
    assert n >= 1
    (again,) = parse_workflow_object(out, Knowledge()).refs
    assert again.filename == "sub/fake_model.safetensors"


def test_dict_widget_and_api_format():
    wf = {"nodes": [{"id": 3, "type": "Power Lora Loader (rgthree)",
                     "widgets_values": [{}, {"on": True, "lora": "a.safetensors"}, {"on": True, "lora": "b.safetensors"}]}],
          "links": []}
    refs = parse_workflow_object(wf, Knowledge()).refs
    out, n = apply_relinks(wf, [change_for(refs[1], "x/b.safetensors")])
    assert n == 1 and out["nodes"][0]["widgets_values"][2]["lora"] == "x/b.safetensors"
    assert out["nodes"][0]["widgets_values"][1]["lora"] == "a.safetensors"
    api = {"5:2": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.sft"}}}
    (ref,) = parse_workflow_object(api, Knowledge()).refs
    out, n = apply_relinks(api, [change_for(ref, "flux/ae.sft")])
    assert out["5:2"]["inputs"]["vae_name"] == "flux/ae.sft"


def test_stale_change_is_a_clear_error():
    wf = {"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["other.safetensors"]}], "links": []}
    with pytest.raises(WorkflowError, match="None of the values"):
        apply_relinks(wf, [RelinkChange(node_id="1", old_value="x.safetensors", new_value="y.safetensors", widget_index=0)])
