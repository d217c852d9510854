"""JSON decoding with orjson (when installed) gives exactly what the json.loads path gives: the
same values for every official template and for edge cases, and the same errors for bad input."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from comfyui_model_resolver.errors import WorkflowError
from comfyui_model_resolver.workflow import decode

orjson = pytest.importorskip("orjson")

EDGE = [b'{"seed": 18446744073709551615, "big": 123456789012345678901234567890, "neg": -9223372036854775808}',
        b'{"f": [0.1, -0.0, 1e-320, 1.7976931348623157e308, 3.0, 1E2]}',
        b'{"a": 1, "a": 2}', '{"emoji": "\\ud83d\\ude00", "lone": "x\\ud800y"}'.encode(),
        '{"text": "caf\u00e9 \u4e2d\u6587"}'.encode(), b'  [1, 2, {"k": null, "t": true}]  ', b'"just a string"']
BAD = [b'{"x": NaN}', b'[Infinity]', b'[1e999]', b'{"a": 1,}', b'{"a" 1}', b'[' * 5000 + b']' * 5000,
       b'{"a": "unterminated', b'[1] [2]', b"{'single': 1}"]


def _both(raw: bytes, monkeypatch):
    fast = decode.parse_json_text(raw)
    with monkeypatch.context() as m:
        m.setattr(decode, "_orjson", False)
        slow = decode.parse_json_text(raw)
    return fast, slow


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("raw", EDGE)
def test_edge_cases_decode_the_same(raw, monkeypatch):
    fast, slow = _both(raw, monkeypatch)
    assert _same(fast, slow)


def test_every_template_decodes_the_same(monkeypatch):
    tpl = pytest.importorskip("comfyui_workflow_templates_json")
    files = sorted((Path(tpl.__file__).parent / "templates").glob("*.json"))
    assert files
    for path in files:
        fast, slow = _both(path.read_bytes(), monkeypatch)
        assert _same(fast, slow), path.name


@pytest.mark.parametrize("raw", BAD)
def test_bad_input_gives_the_same_error(raw, monkeypatch):
    with pytest.raises(WorkflowError) as fast:
        decode.parse_json_text(raw)
    with monkeypatch.context() as m:
        m.setattr(decode, "_orjson", False)
        with pytest.raises(WorkflowError) as slow:
            decode.parse_json_text(raw)
    assert fast.value.message == slow.value.message and fast.value.hint == slow.value.hint
