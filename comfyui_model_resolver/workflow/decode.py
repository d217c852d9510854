"""Turn raw bytes (JSON, PNG or WebP) into a workflow object, or a clear WorkflowError.

Pure: no I/O. Guards against oversized, deeply nested, truncated and mistyped input.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import WorkflowError, WorkflowTooLarge, too_large
from .images import is_png, is_webp
from .limits import check_json_text

GraphKind = Literal["ui", "api"]
_LEADING_SPACE = re.compile(r"\s*")


@dataclass(frozen=True, slots=True)
class DecodedWorkflow:
    """`container` is what the bytes were (ui/api/png/webp); `kind` what the graph is."""

    container: Literal["ui", "api", "png", "webp"]
    kind: GraphKind
    graph: dict


def size_error(size: int, limit: int) -> WorkflowTooLarge:
    err = too_large("workflow", size, limit, "CMR_MAX_WORKFLOW_BYTES")
    assert isinstance(err, WorkflowTooLarge)
    return err


def parse_json_text(text: str | bytes | bytearray | memoryview, *, what: str = "workflow",
                    many: bool = False) -> Any:
    """json.loads with errors a user can act on; over the caps of `limits` refused before parsing.
    `many`: the caller decodes many texts (a server's request bodies): use orjson, when installed,
    for every size from now on (see FAST_FROM)."""
    if many:
        load_fast_decoder()
    if not isinstance(text, str):
        view = memoryview(text)
        if bytes(view[:3]) == b"\xef\xbb\xbf":
            view = view[3:]
        try:
            text = str(view, "utf-8")  # one copy, as text: never a second one of the bytes
        except UnicodeDecodeError as exc:
            raise WorkflowError(f"The {what} is not UTF-8 text (bad byte at offset {exc.start}).",
                                hint="Expected a ComfyUI workflow .json, or a .png/.webp saved by ComfyUI.") from None
    check_json_text(text, what)
    start = _LEADING_SPACE.match(text).end()  # type: ignore[union-attr]  (no stripped copy of a big text)
    if start == len(text):
        raise WorkflowError(f"The {what} is empty.")
    if text[start] not in '{["-0123456789tfn':
        raise WorkflowError(f"The {what} is not JSON and not a PNG or WebP image.",
                            hint="Expected a ComfyUI workflow .json, or a .png/.webp saved by ComfyUI.")
    fast = _fast_loads(text)
    if fast is not _NO_FAST:
        return fast
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"The {what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                            hint="The file may be truncated or hand-edited.") from None
    except RecursionError:
        raise WorkflowError(f"The {what} JSON is nested too deeply to be a ComfyUI workflow.") from None
    except _NotJson as exc:
        raise WorkflowError(f"The {what} is not valid JSON: {exc} is not a JSON number.",
                            hint="JSON has no NaN or Infinity; the file was not written by ComfyUI.") from None
    except _Overflow as exc:
        raise WorkflowError(f"The {what} holds a number too large for JSON ({exc}).") from None
    except ValueError as exc:  # e.g. integer string too long
        raise WorkflowError(f"The {what} JSON holds a value that cannot be read: {exc}.") from None
    if _SURROGATE_ESCAPE.search(text):
        obj = _sanitised(obj)
    return obj


_NO_FAST = object()
#: Until orjson is imported, texts shorter than this go to json.loads: a workflow of a few KiB decodes
#: in a fraction of a millisecond, and importing orjson takes ~5 ms (it imports uuid and platform),
#: which a one-shot command (`cmr analyze`) would pay for nothing. Servers import it up front.
FAST_FROM = 64 * 1024
_orjson: Any = None  # the module once imported; False when it is not installed


def load_fast_decoder() -> bool:
    """Import orjson (optional) for every text from now on; whether it is installed. The HTTP doors
    call this once: they decode many request bodies."""
    global _orjson
    if _orjson is None:
        try:
            import orjson as _orjson_module
        except ImportError:
            _orjson_module = False
        _orjson = _orjson_module
    return _orjson is not False
#: bytes -> b"0" for an ASCII digit, b"." for anything else: 20 zeros in a row after translating are
#: 20+ digits in a row, maybe an integer beyond 64 bits, which orjson would read as a float. (A regex
#: such as \d{20} costs 5x orjson's own time on a big workflow: it tries a match at every position.)
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_RUN = 20
_SLICE = 1 << 20  # characters checked at a time (bounds the copies)


def _long_digit_run(text: str) -> bool:
    zeros = b"0" * _RUN
    for i in range(0, len(text), _SLICE):
        part = text[i:i + _SLICE + _RUN - 1]  # overlapping: a run across two slices is seen
        if zeros in part.encode("utf-8", "surrogatepass").translate(_DIGITS):
            return True
    return False


def _fast_loads(text: str) -> Any:
    """orjson (optional, several times faster than json.loads with our hooks) when it decodes the
    text exactly as the json path would; else _NO_FAST and the json path decides, with its messages.

    orjson refuses what the json path refuses (NaN, Infinity, numbers that overflow to infinity,
    lone surrogate escapes, nesting deeper than 1024), so a refusal falls through to json.loads for
    the same error; integers wider than 64 bits (which orjson reads as floats) never reach it."""
    if _orjson is None:
        if len(text) < FAST_FROM:
            return _NO_FAST
        load_fast_decoder()
    if _orjson is False or _long_digit_run(text):
        return _NO_FAST
    try:
        return _orjson.loads(text)
    except _orjson.JSONDecodeError:
        return _NO_FAST


class _NotJson(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotJson(name)


class _Overflow(ValueError):
    pass


def _finite_float(text: str) -> float:
    """1e999 (or 400 digits) reads as inf, which no answer can carry: refuse it while parsing."""
    value = float(text)
    if not math.isfinite(value):
        raise _Overflow(text if len(text) <= 40 else text[:37] + "...")
    return value


#: Cheap pre-check for what json.loads lets through that no answer can carry: \ud800-style escapes
#: (maybe lone surrogates, which cannot be encoded as UTF-8). Valid pairs (emoji) match too; the
#: walk then changes nothing.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _clean_str(s: str) -> str:
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:  # a lone surrogate
        return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _sanitised(obj: Any) -> Any:
    """Lone surrogates -> U+FFFD (a cut-off emoji in a prompt should not sink a workflow).
    Iterative: the value may be nested deeply."""
    def fix(v: Any) -> Any:
        return _clean_str(v) if isinstance(v, str) else v

    root = [fix(obj)]
    stack: list[Any] = [root[0]]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for k in list(cur):
                v = fix(cur[k])
                nk = _clean_str(k)
                if nk != k:
                    del cur[k]
                cur[nk] = v
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(cur, list):
            for i, v in enumerate(cur):
                v = fix(v)
                cur[i] = v
                if isinstance(v, (dict, list)):
                    stack.append(v)
    return root[0]


def _is_api_prompt(obj: dict) -> bool:
    found = False
    for value in obj.values():
        if isinstance(value, dict) and isinstance(value.get("class_type"), str):
            found = True
        elif not isinstance(value, dict):
            return False
    return found


def classify_graph(obj: Any, *, _depth: int = 0) -> tuple[GraphKind, dict]:
    """Find the graph in a parsed JSON value: UI (litegraph) or API, unwrapping
    `{"workflow": …}` and `{"prompt": …}`. UI is preferred when both are present."""
    if not isinstance(obj, dict):
        kind = type(obj).__name__
        kind = {"list": "a JSON array", "str": "a JSON string", "int": "a number", "float": "a number",
                "bool": "a boolean", "NoneType": "null"}.get(kind, kind)
        raise WorkflowError(f"Expected a ComfyUI workflow object, got {kind}.")
    if _depth > 3:
        raise WorkflowError("The workflow is wrapped too many times ({\"workflow\": {\"workflow\": …}}).")
    if "nodes" in obj:
        if not isinstance(obj["nodes"], list):
            raise WorkflowError(f"The workflow's \"nodes\" must be a list, got {type(obj['nodes']).__name__}.")
        return "ui", obj
    for key in ("workflow", "prompt"):
        inner = obj.get(key)
        if isinstance(inner, str):  # some tools store the JSON as a string
            inner = parse_json_text(inner, what=key)
        if isinstance(inner, dict):
            try:
                return classify_graph(inner, _depth=_depth + 1)
            except WorkflowError:
                continue
    if _is_api_prompt(obj):
        return "api", obj
    if not obj:
        raise WorkflowError("The workflow is an empty JSON object.")
    raise WorkflowError("This JSON is not a ComfyUI workflow: it has no \"nodes\" list and no API-format "
                        "{id: {class_type, inputs}} entries.")


def decode_workflow(data: bytes | bytearray | memoryview, *, max_bytes: int) -> DecodedWorkflow:
    """Bytes of a .json / .png / .webp file -> DecodedWorkflow. JSON is decoded straight from the
    buffer it came in (a multipart slice is a memoryview): no copy of the raw bytes is made."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WorkflowError(f"Expected bytes, got {type(data).__name__}.")
    if len(data) > max_bytes:
        raise size_error(len(data), max_bytes)
    head = bytes(data[:12])
    if is_png(head) or is_webp(head):
        image = data if isinstance(data, bytes) else bytes(data)
        container: Literal["png", "webp"] = "png" if is_png(head) else "webp"
        # the chunk readers and the A1111 parser load only when an image arrives (not for JSON)
        from .a1111 import looks_like_parameters, parameters_workflow
        from .images import png_text_chunks, webp_text_entries

        texts = png_text_chunks(image, limit=max_bytes) if container == "png" else webp_text_entries(image)
        del image
        for key in ("workflow", "prompt"):
            text = texts.get(key)
            if text:
                obj = parse_json_text(text, what=f"{key} embedded in the {container.upper()}")
                kind, graph = classify_graph(obj)
                return DecodedWorkflow(container, kind, graph)
        params = texts.get("parameters")
        if params and looks_like_parameters(params):
            return DecodedWorkflow(container, "ui", parameters_workflow(params))
        raise WorkflowError(f"This {container.upper()} has no embedded ComfyUI workflow.",
                            hint="Only images saved by ComfyUI, or with A1111-style generation parameters, name their models.")
    if head[:4] == b"RIFF" or head[:3] == b"\xff\xd8\xff" or head[:6] in (b"GIF87a", b"GIF89a"):
        raise WorkflowError("This image format is not supported; use a PNG or WebP saved by ComfyUI.")
    obj = parse_json_text(data)
    kind, graph = classify_graph(obj)
    return DecodedWorkflow(kind, kind, graph)


def decode_object(obj: Any) -> DecodedWorkflow:
    """An already parsed JSON value (e.g. a request body) -> DecodedWorkflow."""
    kind, graph = classify_graph(obj)
    return DecodedWorkflow(kind, kind, graph)
