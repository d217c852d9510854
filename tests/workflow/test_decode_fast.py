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


@pytest.fixture(autouse=True)
def _orjson_for_every_size(monkeypatch):
    monkeypatch.setattr(decode, "FAST_FROM", 0)  # these inputs are small: take the orjson path anyway


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


@pytest.mark.parametrize("text, long", [
    ("1" * 20, True), ("x" + "9" * 19 + "y", False), ("1" * 19 + ".5", False),
    ('{"seed": 123456789012345678901}', True), ("\u0661" * 25, False),  # Arabic-Indic digits are not JSON's
    ("a" * (decode._SLICE - 10) + "1" * 20 + "b", True),  # across the first slice's end
    ("a" * (2 * decode._SLICE) + "1" * 19, False), ("lone \ud800 surrogate " + "7" * 20, True),
])
def test_the_check_for_integers_orjson_would_read_as_floats(text, long):
    assert decode._long_digit_run(text) is long


def test_small_texts_do_not_import_orjson(monkeypatch):
    monkeypatch.setattr(decode, "FAST_FROM", 64 * 1024)
    monkeypatch.setattr(decode, "_orjson", None)
    assert decode.parse_json_text(b'{"seed": 1, "f": 0.5}') == {"seed": 1, "f": 0.5}
    assert decode._orjson is None  # json.loads answered; orjson was not imported for it
    big = b'{"k": [' + b"0.25," * 20000 + b'1]}'
    assert decode.parse_json_text(big)["k"][-1] == 1 and decode._orjson  # a big one uses it
    monkeypatch.setattr(decode, "_orjson", None)
    assert decode.parse_json_text(b'{"a": 1}', many=True) == {"a": 1} and decode._orjson  # a server's bodies
