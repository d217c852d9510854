"""Input formats and hostile input: every failure is a WorkflowError with a clear message."""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.errors import WorkflowError, WorkflowTooLarge
from comfyui_model_resolver.workflow.decode import decode_object, decode_workflow
from support.images import make_png, make_webp

UI = {"last_node_id": 1, "nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "mode": 0,
                                    "widgets_values": ["sd_xl_base_1.0.safetensors"]}], "links": []}
API = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}}}
LIMIT = 50 * 1024 * 1024


def dec(data, limit=LIMIT):
    return decode_workflow(data, max_bytes=limit)


def test_ui_json():
    d = dec(json.dumps(UI).encode())
    assert (d.container, d.kind) == ("ui", "ui")
    assert d.graph["nodes"][0]["type"] == "CheckpointLoaderSimple"


def test_api_json_and_wrappers():
    assert dec(json.dumps(API).encode()).kind == "api"
    assert dec(json.dumps({"prompt": API}).encode()).kind == "api"
    assert dec(json.dumps({"workflow": UI}).encode()).kind == "ui"
    # Both present (ComfyUI history / exports): the UI graph carries more (modes, subgraphs).
    both = dec(json.dumps({"prompt": API, "workflow": UI}).encode())
    assert both.kind == "ui"
    # A workflow stored as a JSON string inside the wrapper.
    assert dec(json.dumps({"workflow": json.dumps(UI)}).encode()).kind == "ui"


def test_utf8_bom_is_accepted():
    assert dec(b"\xef\xbb\xbf" + json.dumps(UI).encode()).kind == "ui"


@pytest.mark.parametrize("itxt,compress", [(False, False), (True, False), (True, True)])
def test_png_workflow_chunk(itxt, compress):
    png = make_png({"prompt": json.dumps(API), "workflow": json.dumps(UI)}, itxt=itxt, compress=compress)
    d = dec(png)
    assert (d.container, d.kind) == ("png", "ui")


def test_png_prompt_only_falls_back_to_api():
    d = dec(make_png({"prompt": json.dumps(API)}))
    assert (d.container, d.kind) == ("png", "api")


def test_png_unicode_itxt():
    wf = {**UI, "nodes": [{**UI["nodes"][0], "widgets_values": ["模型/ünïcödé.safetensors"]}]}
    d = dec(make_png({"workflow": json.dumps(wf, ensure_ascii=False)}, itxt=True))
    assert d.graph["nodes"][0]["widgets_values"][0] == "模型/ünïcödé.safetensors"


@pytest.mark.parametrize("little", [True, False])
def test_webp_exif(little):
    d = dec(make_webp(workflow=json.dumps(UI), prompt=json.dumps(API), little=little))
    assert (d.container, d.kind) == ("webp", "ui")
    d = dec(make_webp(prompt=json.dumps(API), little=little))
    assert (d.container, d.kind) == ("webp", "api")


def test_image_without_workflow():
    with pytest.raises(WorkflowError, match="no embedded ComfyUI workflow"):
        dec(make_png({"parameters": "a1111 text"}))
    with pytest.raises(WorkflowError, match="no embedded ComfyUI workflow"):
        dec(make_webp())


def test_truncated_png():
    png = make_png({"workflow": json.dumps(UI)})
    for cut in (20, len(png) // 2, len(png) - 5):
        with pytest.raises(WorkflowError, match="truncated"):
            dec(png[:cut])


def test_truncated_webp():
    webp = make_webp(workflow=json.dumps(UI))
    with pytest.raises(WorkflowError, match="truncated"):
        dec(webp[: len(webp) - 10])


def test_truncated_json():
    raw = json.dumps(UI).encode()
    with pytest.raises(WorkflowError, match="not valid JSON.*line 1"):
        dec(raw[: len(raw) // 2])


def test_over_size_limit():
    big = b'{"nodes": [], "pad": "' + b"x" * (51 * 1024 * 1024) + b'"}'
    with pytest.raises(WorkflowTooLarge, match="over the limit of 52,428,800 bytes") as exc:
        dec(big)
    assert "CMR_MAX_WORKFLOW_BYTES" in exc.value.hint
    with pytest.raises(WorkflowTooLarge):
        dec(json.dumps(UI).encode(), limit=10)


def test_png_text_bomb_is_bounded():
    bomb = json.dumps({**UI, "pad": "0" * (4 * 1024 * 1024)})
    png = make_png({"workflow": bomb}, itxt=True, compress=True)
    assert len(png) < 64 * 1024  # compresses to almost nothing…
    with pytest.raises(WorkflowTooLarge, match=r"The workflow text in this PNG is 1,048,577 bytes or more, over "
                                               r"the limit of 1,048,576 bytes\."):
        dec(png, limit=1024 * 1024)  # …but may not expand past the limit


def test_deep_nesting():
    deep = b"[" * 10_000 + b"]" * 10_000
    with pytest.raises(WorkflowError, match="nested too deeply"):
        dec(deep)
    deep_obj = b'{"nodes": [], "x": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}"
    with pytest.raises(WorkflowError, match="nested too deeply"):
        dec(deep_obj)


@pytest.mark.parametrize("doc,msg", [
    (b"[]", "JSON array"),
    (b'"nodes"', "JSON string"),
    (b"42", "got a number"),
    (b"null", "got null"),
    (b"hello", "not JSON"),
    (b"{}", "empty JSON object"),
    (b'{"nodes": "abc"}', '"nodes" must be a list'),
    (b'{"nodes": {"1": {}}}', '"nodes" must be a list'),
    (b'{"foo": 1}', "not a ComfyUI workflow"),
    (b'{"1": {"class_type": 5}}', "not a ComfyUI workflow"),
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"GIF89a....", "not supported"),
    (b"\xff\xd8\xff\xe0 jpeg", "not supported"),
])
def test_wrong_types_and_unknown_formats(doc, msg):
    with pytest.raises(WorkflowError, match=msg):
        dec(doc)


def test_huge_integer_is_a_clear_error():
    with pytest.raises(WorkflowError):
        dec(b'{"nodes": [], "x": ' + b"9" * 10_000 + b"}")


def test_decode_object_rejects_non_objects():
    with pytest.raises(WorkflowError):
        decode_object([1, 2])
    assert decode_object(API).kind == "api"


@pytest.mark.parametrize("number", [b"1e999", b"-1E+400", b"1" + b"0" * 400 + b".5"])
def test_numbers_beyond_a_double_are_a_clear_error(number):
    with pytest.raises(WorkflowError, match="too large for JSON"):
        dec(b'{"nodes": [], "x": [' + number + b"]}")


def test_lone_surrogates_become_replacement_characters_and_pairs_survive():
    doc = b'{"nodes": [{"id": 1, "type": "Note", "widgets_values": ["cut \\ud83d", "ok \\ud83d\\ude00"]}], ' \
          b'"\\udfffkey": 1}'
    decoded = dec(doc)
    graph = decoded.graph
    assert graph["nodes"][0]["widgets_values"] == ["cut \ufffd", "ok \U0001F600"]
    assert "\ufffdkey" in graph
