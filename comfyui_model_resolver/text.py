"""Text that always encodes: what enters a job, a log line or an answer passes through here.

Upstream text is not ours to trust. aiohttp decodes header bytes that are not UTF-8 (a redirect
``Location`` with a raw 0xFF) into lone surrogates (``\\udcff``), and JSON from a server may spell one
(``"\\ud800"``). Such a string is a valid Python ``str`` but cannot be written as UTF-8: one in a job's
error made every answer that listed the job fail (500 on both doors), and it survived restarts in
the job database. `encodable` replaces every character that cannot be encoded with U+FFFD (a
surrogate pair spelled as two characters is joined into the character it stands for); everything
else passes unchanged, so a job is never dropped for its text.
"""
from __future__ import annotations

import json
from typing import Any

__all__ = ["encodable", "json_bytes"]

REPLACEMENT = "\ufffd"


def _fix(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        # UTF-16 round trip: valid pairs become their character, lone halves become U+FFFD.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def encodable(value: Any) -> Any:
    """`value` with every string in it (dict keys and values, list and tuple items) made encodable."""
    if isinstance(value, str):
        return _fix(value)
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encodable(v) for v in value]
    if isinstance(value, tuple):
        return tuple(encodable(v) for v in value)
    return value


def json_bytes(value: Any, **kwargs: Any) -> bytes:
    """`value` as UTF-8 JSON (non-ASCII kept as is): the answer bytes of every door. A value holding
    text that cannot be encoded is normalised first instead of failing the answer."""
    try:
        return json.dumps(value, ensure_ascii=False, **kwargs).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(encodable(value), ensure_ascii=False, **kwargs).encode("utf-8")
