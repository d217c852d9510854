"""The first file of a multipart/form-data body (RFC 7578), with one copy of its bytes. Pure.

The stdlib's email parser keeps several copies of every part (the body, the parsed message, the
decoded payload): for a workflow-sized upload that is hundreds of megabytes, and any web page can
send one. This reads the boundary, finds the first part whose Content-Disposition has a filename,
and hands out a view of its bytes: nothing else is held, not even a copy of the part.
"""
from __future__ import annotations

import re

__all__ = ["first_file"]

_BOUNDARY_RE = re.compile(r'boundary\s*=\s*(?:"([^"]{1,200})"|([^;\s]{1,200}))', re.I)
_FILENAME_RE = re.compile(rb'filename\s*=\s*(?:"((?:[^"\\\r\n]|\\.)*)"|([^;\r\n]*))', re.I)
_FILENAME_STAR_RE = re.compile(rb"filename\*\s*=\s*([^;\r\n]*)", re.I)
_MAX_HEADER = 16 * 1024


def _filename(headers: bytes) -> str | None:
    disposition = None
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-disposition":
            disposition = value
    if disposition is None:
        return None
    star = _FILENAME_STAR_RE.search(disposition)
    if star:
        from urllib.parse import unquote_to_bytes

        charset, _, rest = star.group(1).strip().partition(b"'")
        _lang, _, encoded = rest.partition(b"'")
        try:
            return unquote_to_bytes(encoded).decode(charset.decode("ascii") or "utf-8", "replace")
        except (LookupError, UnicodeDecodeError):
            pass
    plain = _FILENAME_RE.search(disposition.replace(b"filename*", b"filename_star"))
    if plain is None:
        return None
    value = plain.group(1) if plain.group(1) is not None else plain.group(2).strip()
    return re.sub(rb"\\(.)", rb"\1", value).decode("utf-8", "replace")


def first_file(content_type: str, body: bytes) -> tuple[memoryview, str] | None:
    """(bytes, filename) of the first file part, or None when there is none (or no boundary). The bytes
    are a view into `body`, not a copy."""
    m = _BOUNDARY_RE.search(content_type or "")
    if not m:
        return None
    delimiter = b"--" + (m.group(1) or m.group(2)).encode("latin-1", "replace")
    pos = body.find(delimiter)
    while pos != -1:
        start = pos + len(delimiter)
        if body[start:start + 2] == b"--":
            return None  # the closing delimiter
        header_end = body.find(b"\r\n\r\n", start, start + _MAX_HEADER)
        if header_end == -1:
            return None
        headers = body[start:header_end].strip(b"\r\n")
        content_start = header_end + 4
        nxt = body.find(b"\r\n" + delimiter, content_start)
        if nxt == -1:
            return None  # truncated: no closing delimiter
        filename = _filename(headers)
        if filename is not None:
            return memoryview(body)[content_start:nxt], filename
        pos = nxt + 2
    return None
