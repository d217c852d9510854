"""Property: any JSON value, any bytes -> a result or a WorkflowError, never another exception."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfyui_model_resolver.errors import WorkflowError
from comfyui_model_resolver.workflow.knowledge import Knowledge
from comfyui_model_resolver.workflow.parse import parse_workflow_bytes, parse_workflow_object

KNOWLEDGE = Knowledge()
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(["x.safetensors", "a/b.ckpt", "None", "embedding:foo",
                                                           "CheckpointLoaderSimple", "-10", "def:x"]))
json_values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=6),
                                                       st.dictionaries(st.text(max_size=12), c, max_size=6)),
                           max_leaves=40)
keys = st.sampled_from(["id", "type", "mode", "widgets_values", "inputs", "properties", "models", "nodes",
                        "links", "definitions", "subgraphs", "proxyWidgets", "widget", "name", "link", "origin_id",
                        "origin_slot", "target_id", "target_slot", "class_type", "extra", "groupNodes", "directory",
                        "url", "hash", "on", "lora"])
# Workflow-shaped values: the keys the parser looks at, with arbitrary values under them.
shaped = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=5), st.dictionaries(keys, c, max_size=7)),
                      max_leaves=60)


def _check(obj):
    try:
        parse_workflow_object(obj, KNOWLEDGE)
    except WorkflowError:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value(obj):
    _check(obj)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, shaped, max_size=8))
def test_workflow_shaped_values(obj):
    _check(obj)
    _check({"nodes": [obj], "links": []})
    _check({"nodes": [{"id": 1, "type": "sg", **obj}], "definitions": {"subgraphs": [{"id": "sg", **obj}]}})
    _check({"1": {"class_type": "X", **obj}})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes(data):
    for prefix in (b"", b"\x89PNG\r\n\x1a\n", b"RIFF\x10\x00\x00\x00WEBP", b"{"):
        try:
            parse_workflow_bytes(prefix + data, KNOWLEDGE, max_bytes=1 << 20)
        except WorkflowError:
            pass


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_serialised_json_bytes(obj):
    try:
        parse_workflow_bytes(json.dumps(obj).encode(), KNOWLEDGE, max_bytes=1 << 20)
    except WorkflowError:
        pass
