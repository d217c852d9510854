"""Oversized, deeply nested, invalid JSON and hostile images, through the core decoder, both HTTP
doors and the command line: a result or a clear 4xx / WorkflowError — never a 5xx, a traceback,
or unbounded memory.

Two were real (fixed in workflow/images.py): PNG text chunks were all inflated and kept (a 2 MB PNG
of a thousand tiny zTXt chunks took 2 GB), and WebP EXIF entries could all point at one large
value (a 150 KB WebP took 400 MB; 65k entries would take tens of GB).
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import tracemalloc
import zlib

import pytest

from comfyui_model_resolver.errors import WorkflowError
from comfyui_model_resolver.workflow.decode import decode_workflow
from support.images import _chunk, make_png, make_webp
from support.paths import REPO

from .harness import assert_error_shape

LIMIT = 2 << 20  # CMR_MAX_WORKFLOW_BYTES of the doors (conftest.door_environ)
WF = {"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["x.safetensors"]}],
      "links": []}
IHDR = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _png_bomb() -> bytes:
    one = zlib.compress(b"\0" * (LIMIT - 10), 9)
    out = PNG_SIG + IHDR
    n = 0
    while len(out) + len(one) + 50 < LIMIT - 4096:
        out += _chunk(b"zTXt", f"k{n}".encode() + b"\0\0" + one)
        n += 1
    return out + _chunk(b"zTXt", b"workflow\0\0" + zlib.compress(json.dumps(WF).encode())) + _chunk(b"IEND", b"")


def _png_workflow_bomb() -> bytes:
    """Several `workflow` chunks each inflating to the limit."""
    one = zlib.compress(b" " * (LIMIT - 10), 9)
    return PNG_SIG + IHDR + b"".join(_chunk(b"zTXt", b"workflow\0\0" + one) for _ in range(50)) + _chunk(b"IEND", b"")


def _webp_exif(entries: list[tuple[int, int, int]], values: bytes, count: int | None = None,
               next_ifd: int = 0) -> bytes:
    """A WebP whose EXIF IFD has `entries` (type, length, value offset) and the raw `values` after it."""
    e = "<"
    count = len(entries) if count is None else count
    header = b"II" + struct.pack(e + "HI", 42, 8)
    data_offset = 8 + 2 + len(entries) * 12 + 4
    ifd = struct.pack(e + "H", count)
    for typ, n, off in entries:
        ifd += struct.pack(e + "HHII", 0x010F, typ, n, data_offset + off)
    ifd += struct.pack(e + "I", next_ifd)
    tiff = header + ifd + values
    chunk = b"EXIF" + struct.pack("<I", len(tiff)) + tiff + (b"\0" if len(tiff) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _webp_bomb() -> bytes:
    value = b"workflow:" + b"A" * 60_000 + b"\0"
    return _webp_exif([(2, len(value), 0)] * 20_000, value)


def _deep(n: int, opener: str = "[", closer: str = "]") -> bytes:
    return (opener * n + closer * n).encode()


#: (id, bytes, content type) — each must give a 4xx (or a result), never a 5xx
BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "application/json"),
    ("whitespace", b"  \n\t ", "application/json"),
    ("truncated-object", b'{"nodes": [{"id": 1', "application/json"),
    ("truncated-string", b'{"nodes": "abc', "application/json"),
    ("not-json", b"hello world", "application/json"),
    ("xml", b"<?xml version='1.0'?><nodes/>", "application/json"),
    ("utf16-bom", "\ufeff{\"nodes\": []}".encode("utf-16"), "application/json"),
    ("invalid-utf8", b'{"nodes": ["\xff\xfe"]}', "application/json"),
    ("deep-arrays", _deep(100_000), "application/json"),
    ("deep-objects", ('{"a":' * 50_000 + "1" + "}" * 50_000).encode(), "application/json"),
    ("deep-but-parsable-in-nodes", b'{"nodes": [' + _deep(900) + b"]}", "application/json"),
    ("deep-widgets", b'{"nodes": [{"id": 1, "type": "X", "widgets_values": ' + _deep(900) + b"}]}", "application/json"),
    ("nan", b'{"nodes": [], "extra": NaN}', "application/json"),
    ("infinity-in-widgets", b'{"nodes": [{"id": 1, "type": "X", "widgets_values": [Infinity, -Infinity]}]}',
     "application/json"),
    ("float-overflow", b'{"nodes": [{"id": 1e999, "type": "X"}]}', "application/json"),
    ("huge-int", b'{"nodes": [{"id": ' + b"9" * 5000 + b"}]}", "application/json"),
    ("lone-surrogate-name", b'{"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": '
                            b'["\\ud800x.safetensors"]}]}', "application/json"),
    ("lone-surrogate-key", b'{"\\udfff": 1, "nodes": []}', "application/json"),
    ("nul-in-names", b'{"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": '
                     b'["a\\u0000.safetensors"]}]}', "application/json"),
    ("duplicate-keys", b'{"nodes": [], "nodes": 5}', "application/json"),
    ("null", b"null", "application/json"),
    ("number", b"42", "application/json"),
    ("string", b'"workflow"', "application/json"),
    ("array", b"[1, 2, 3]", "application/json"),
    ("nodes-not-list", b'{"nodes": {"1": {}}}', "application/json"),
    ("nodes-garbage", b'{"nodes": [null, 1, "x", [], {"id": []}, {"id": {}, "type": 5}]}', "application/json"),
    ("links-garbage", b'{"nodes": [{"id": 1, "type": "X", "inputs": [{"link": 99}]}], "links": [[1], null, "x"]}',
     "application/json"),
    ("wrapped-too-deep", json.dumps({"workflow": json.dumps({"workflow": json.dumps({"workflow": json.dumps(
        {"workflow": json.dumps({"workflow": json.dumps(WF)})})})})}).encode(), "application/json"),
    ("api-format-garbage", b'{"1": {"class_type": 5, "inputs": [1, 2]}, "2": {"class_type": "X", "inputs": null}}',
     "application/json"),
    ("many-nodes", json.dumps({"nodes": [{"id": i, "type": "LoraLoader", "widgets_values": [f"l{i % 50}.safetensors", 1, 1]}
                                         for i in range(8000)], "links": []}).encode(), "application/json"),
    ("png-zTXt-bomb", _png_bomb(), "image/png"),
    ("png-workflow-bombs", _png_workflow_bomb(), "image/png"),
    ("png-truncated", make_png({"workflow": json.dumps(WF)})[:-20], "image/png"),
    ("png-huge-chunk-length", PNG_SIG + struct.pack(">I4s", 0xFFFFFFFF, b"tEXt") + b"workflow\0{}", "image/png"),
    ("png-corrupt-zlib", PNG_SIG + IHDR + _chunk(b"zTXt", b"workflow\0\0not zlib at all") + _chunk(b"IEND", b""),
     "image/png"),
    ("png-no-workflow", make_png({"parameters": "a photo"}), "image/png"),
    ("png-json-bomb-inside", make_png({"workflow": _deep(100_000).decode()}), "image/png"),
    ("png-itxt-malformed", PNG_SIG + IHDR + _chunk(b"iTXt", b"workflow\0") + _chunk(b"IEND", b""), "image/png"),
    ("png-signature-only", PNG_SIG, "image/png"),
    ("webp-exif-bomb", _webp_bomb(), "image/webp"),
    ("webp-truncated", make_webp(json.dumps(WF))[:-30], "image/webp"),
    ("webp-riff-size-lie", b"RIFF" + struct.pack("<I", 10_000_000) + b"WEBP" + b"\0" * 20, "image/webp"),
    ("webp-ifd-loop", _webp_exif([], b"", count=0, next_ifd=8), "image/webp"),
    ("webp-ifd-count-lie", _webp_exif([], b"", count=60_000), "image/webp"),
    ("webp-value-out-of-range", _webp_exif([(2, 1 << 30, 0)], b"workflow:{}"), "image/webp"),
    ("webp-no-exif", make_webp(None), "image/webp"),
    ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\0" * 100, "image/png"),
    ("gif", b"GIF89a" + b"\0" * 100, "image/png"),
    ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/octet-stream"),
    ("elf", b"\x7fELF\x02\x01\x01" + b"\0" * 100, "application/octet-stream"),
    ("zip", b"PK\x03\x04" + b"\0" * 100, "application/octet-stream"),
    ("gzip", zlib.compress(json.dumps(WF).encode()), "application/octet-stream"),
    ("safetensors", struct.pack("<Q", 2) + b"{}", "application/octet-stream"),
    ("json-sent-as-png", json.dumps(WF).encode(), "image/png"),
    ("png-sent-as-json", make_png({"workflow": json.dumps(WF)}), "application/json"),
    ("oversized", b'{"nodes": [], "pad": "' + b"x" * (LIMIT + 10) + b'"}', "application/json"),
]
BAD_IDS = [i for i, _, _ in BAD_BODIES]


@pytest.mark.parametrize("data", [d for _, d, _ in BAD_BODIES], ids=BAD_IDS)
def test_the_decoder_gives_a_result_or_a_workflow_error_in_bounded_memory(data):
    from comfyui_model_resolver.workflow.knowledge import Knowledge
    from comfyui_model_resolver.workflow.parse import parse_workflow_bytes

    tracemalloc.start()
    try:
        parse_workflow_bytes(data, Knowledge(), max_bytes=LIMIT)
    except WorkflowError as exc:
        assert exc.message and len(exc.message) < 1000
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 40 * LIMIT, f"{peak / 1e6:.0f} MB for a {len(data)}-byte input"


@pytest.mark.parametrize("route", ["/analyze", "/resolve"])
@pytest.mark.parametrize("data,ctype", [(d, c) for _, d, c in BAD_BODIES], ids=BAD_IDS)
async def test_both_doors_answer_bad_bodies_with_a_4xx_or_a_result(door, route, data, ctype):
    status, body, text = await door.request("POST", route, content=data, headers={"Content-Type": ctype})
    assert status < 500, (status, text[:500])
    if status >= 400:
        err = assert_error_shape(status, body)
        assert status in (400, 413, 415, 422), err
    else:
        assert isinstance(body, dict) and "models" in body
    json.dumps(body)  # the answer itself is valid JSON (no NaN, no lone surrogates)


@pytest.mark.parametrize("data", [d for i, d, _ in BAD_BODIES if i in ("png-zTXt-bomb", "webp-exif-bomb", "deep-arrays",
                                                                        "png-truncated", "jpeg", "nan")],
                         ids=["png-bomb", "webp-bomb", "deep", "png-truncated", "jpeg", "nan"])
async def test_multipart_uploads_of_bad_files(door, data):
    status, body, text = await door.request("POST", "/analyze", files={"file": ("upload.png", data)})
    assert status < 500, text[:300]
    if status >= 400:
        assert_error_shape(status, body)


@pytest.mark.parametrize("route,body", [
    ("/relink", {"workflow": json.loads(_deep(900).decode()), "changes": [{"node_id": "1", "input": "x",
                                                                           "old_value": "a", "new_value": "b"}]}),
    ("/relink", {"workflow": WF, "changes": [{"node_id": "1", "input": "ckpt_name", "widget_index": 10 ** 30,
                                              "old_value": "x.safetensors", "new_value": "y.safetensors"}]}),
    ("/relink", {"workflow": WF, "changes": [{"node_id": "1", "input": "ckpt_name", "widget_index": 0,
                                              "old_value": "x.safetensors", "new_value": "../../../etc/passwd"}]}),
    ("/downloads", {"models": [{"filename": 5, "folder": [], "status": "resolved", "chosen": "x"}] * 3}),
    ("/downloads", {"models": [None, 1, "x", {"chosen": {"url": 5}}]}),
    ("/downloads", {"url": "https://huggingface.co/a/b/resolve/main/x.safetensors", "folder": "loras",
                    "sha256": "z" * 64, "size": -1, "priority": 10 ** 40}),
    ("/config", {"max_concurrent_downloads": 10 ** 30}),
    ("/config", {"allowed_hosts": ["x"] * 1000}),
    ("/config", {"hf_token": "x" * 100_000}),
])
async def test_hostile_json_bodies_on_the_other_routes(door, route, body):
    method = "PATCH" if route == "/config" else "POST"
    status, resp, text = await door.request(method, route, json_body=body)
    assert status < 500, text[:300]
    if status >= 400:
        assert_error_shape(status, resp)


async def test_a_body_without_content_length_is_still_capped(door):
    """Chunked transfer: the limit is counted as the body streams, not taken from a header."""
    async def chunks():
        yield b'{"nodes": [], "pad": "'
        for _ in range(40):
            yield b"x" * (128 * 1024)
        yield b'"}'

    if door.name == "sidecar":
        resp = await door.client.post(door.prefix + "/analyze", content=chunks(),
                                      headers={"Content-Type": "application/json"})
        status, body = resp.status_code, resp.json()
    else:
        resp = await door.client.post(door.prefix + "/analyze", data=chunks(),
                                      headers={"Content-Type": "application/json"})
        status, body = resp.status, await resp.json()
    assert assert_error_shape(status, body, statuses=(413,))["code"] in ("workflow_too_large", "request_too_large")


# ---- the command line ----------------------------------------------------------------------------
CLI_CASES = ["empty", "truncated-object", "deep-arrays", "nan", "lone-surrogate-name", "png-zTXt-bomb",
             "webp-exif-bomb", "png-truncated", "jpeg", "elf", "oversized"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_cmr_analyze_fails_cleanly_on_bad_files(sandbox, tmp_path, case):
    data = dict((i, d) for i, d, _ in BAD_BODIES)[case]
    path = tmp_path / f"{case}.bin"
    path.write_bytes(data)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(sandbox.parent / "home"), "PYTHONPATH": str(REPO),
           "CMR_MODELS_ROOT": str(sandbox.models), "CMR_DATA_DIR": str(sandbox.data), "CMR_ENV_FILE": "/nonexistent",
           "CMR_MAX_WORKFLOW_BYTES": str(LIMIT)}
    proc = subprocess.run([sys.executable, "-m", "comfyui_model_resolver", "analyze", str(path), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if proc.returncode != 0:
        assert proc.returncode in (1, 2), (proc.returncode, proc.stderr[-500:])
        assert (proc.stderr + proc.stdout).strip(), "a failure must say why"
    else:
        for line in proc.stdout.splitlines():
            json.loads(line)


def test_the_decoder_rejects_bombs_with_a_reason():
    for data in (_png_workflow_bomb(), _webp_bomb()):
        with pytest.raises(WorkflowError) as exc:
            decode_workflow(data, max_bytes=LIMIT)
        assert "limit" in exc.value.message or "block" in exc.value.message


RAW_BODIES = [
    b'{"workflow": {"nodes": [], "x": NaN}, "changes": [{"node_id": "1", "input": "a", "old_value": "a", "new_value": "b"}]}',
    b'{"workflow": {"nodes": [], "x": "\\ud800"}, "changes": [{"node_id": "1", "input": "a", "old_value": "a", '
    b'"new_value": "\\udc00"}]}',
    b'{"workflow": {"nodes": [], "x": 1e999}, "changes": []}',
    b'{"workflow": ' + _deep(5000) + b', "changes": []}',
    b"{nope", b"", b"\xff\xfe", b"[]", b"null",
]


@pytest.mark.parametrize("route,method", [("/relink", "POST"), ("/downloads", "POST"), ("/config", "PATCH")])
@pytest.mark.parametrize("data", RAW_BODIES, ids=range(len(RAW_BODIES)))
async def test_raw_hostile_json_on_the_json_routes(door, route, method, data):
    status, resp, text = await door.request(method, route, content=data, headers={"Content-Type": "application/json"})
    assert status < 500, text[:300]
    if status >= 400:
        assert_error_shape(status, resp)
    json.loads(text)  # valid JSON out, whatever came in
