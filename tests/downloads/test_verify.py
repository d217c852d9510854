"""The last checks before a file gets its final name, and the quarantine."""
from __future__ import annotations

import json
import struct

import pytest

from comfyui_model_resolver.downloads.verify import check_safetensors, finalize, quarantine
from comfyui_model_resolver.errors import IntegrityError
from fakes.blobs import make_safetensors


def _st(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _write(tmp_path, payload: bytes):
    p = tmp_path / "x.safetensors.part"
    p.write_bytes(payload)
    return str(p)


def test_valid_files_pass(tmp_path):
    assert check_safetensors(_write(tmp_path, make_safetensors(4096, seed=3, metadata={"a": "b"}))) == 1
    # contract section C test vector: header {"w": F32 [1]} + 1.0f
    vec = _st({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, struct.pack("<f", 1.0))
    assert check_safetensors(_write(tmp_path, vec)) == 1


@pytest.mark.parametrize("payload, why", [
    (b"\x01\x02", "only 2 bytes"),
    (struct.pack("<Q", 0), "out of range"),
    (struct.pack("<Q", 1000) + b"{}", "exceeds the file size"),
    (struct.pack("<Q", 4) + b"\xff\xfe{}", "does not parse"),
    (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    (_st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4), "outside"),
    (_st({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4), "does not match"),
    (_st({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 8), "cover 4 of 8"),
    (_st({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
          "b": {"dtype": "U8", "shape": [2], "data_offsets": [3, 5]}}, b"\0" * 5), "gaps"),
    (_st({"w": {"dtype": "U8", "shape": [1], "data_offsets": "x"}}, b"\0"), "data_offsets"),
    (b"<html><body>Login required</body></html>", "out of range"),  # an HTML page saved as a model
])
def test_broken_files_fail_with_the_reason(tmp_path, payload, why):
    with pytest.raises(IntegrityError) as info:
        check_safetensors(_write(tmp_path, payload), "x.safetensors")
    assert why in info.value.message


def test_finalize_and_quarantine(tmp_path):
    part = tmp_path / "m.bin.part"
    part.write_bytes(b"data")
    finalize(str(part), str(tmp_path / "m.bin"))
    assert (tmp_path / "m.bin").read_bytes() == b"data" and not part.exists()
    bad = tmp_path / "bad.bin.part"
    bad.write_bytes(b"bad")
    moved = quarantine(str(bad), str(tmp_path / "q"), "abcdef123456", "bad.bin")
    assert moved and not bad.exists() and open(moved, "rb").read() == b"bad"
    assert moved.endswith("abcdef12-bad.bin")
