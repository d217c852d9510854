"""Serve the bytes of a :class:`FakeFile` like a CDN/S3 would, with switchable faults.

:func:`serve_bytes` is shared by the Hub (small files), its CDN and Civitai's
storage host. Behaviour (RFC 9110):

* ``HEAD``/``GET``; ``Content-Length``, ``Accept-Ranges: bytes``, ``ETag``; never compressed;
* one ``Range`` of the forms ``bytes=a-``, ``bytes=a-b``, ``bytes=-n`` → ``206`` +
  ``Content-Range: bytes a-b/size``; start ≥ size (or ``-0``) → ``416`` + ``Content-Range: bytes */size``;
  a syntactically invalid or multi-range header is ignored (``200``);
* ``If-Range`` with a validator other than the current ETag → full ``200``;
* the body is streamed in chunks, with the body knobs of :mod:`fakes.switches`
  (``drop_after``, ``stall_at``, ``throttle_bps``, ``wrong_bytes``, ``short_body``, ``long_body``,
  ``chunked``)
  counted in bytes *of this response's body*.

Status knobs (429/5xx) are answered by the caller, which knows its error format
(see :func:`retry_headers`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email.utils import format_datetime

from aiohttp import web

from .blobs import BLOCK, FakeFile
from .reqlog import note_faults
from .switches import Knobs

CHUNK = 256 * 1024
WRONG_STRIDE = BLOCK  # wrong_bytes flips the byte in the middle of every 1 MiB (and at size // 2)

__all__ = [
    "CHUNK",
    "Throttle",
    "effective_etag",
    "parse_range",
    "retry_headers",
    "serve_bytes",
]


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """Parse a single-range ``Range`` header.

    Returns ``(start, end_inclusive)``, the string ``"unsatisfiable"`` (→ 416),
    or ``None`` when the header is absent, malformed or multi-range (→ ignore it).
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    try:
        if first == "":  # suffix range: the last n bytes
            n = int(last)
            if n < 0:
                return None
            if n == 0 or size == 0:
                return "unsatisfiable"
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else None
    except ValueError:
        return None
    if start < 0 or (end is not None and end < start):
        return None
    if start >= size:
        return "unsatisfiable"
    return start, size - 1 if end is None else min(end, size - 1)


def effective_etag(etag: str | None, knobs: Knobs) -> str | None:
    """The ETag to send given ``no_etag``/``etag_changes`` (a different value of the same shape)."""
    if etag is None or knobs.no_etag:
        return None
    if knobs.etag_changes:
        weak = etag.startswith("W/")
        inner = etag[2:] if weak else etag
        inner = inner.strip('"')
        changed = hashlib.sha256(b"changed:" + inner.encode()).hexdigest()
        changed = (changed * 2)[: max(len(inner), 8)]
        return ("W/" if weak else "") + f'"{changed}"'
    return etag


def retry_headers(knobs: Knobs, *, policy: str = "resolvers") -> dict[str, str]:
    """``Retry-After`` (+ optional IETF ``RateLimit`` headers) for a status switch."""
    headers: dict[str, str] = {}
    if knobs.location is not None:
        headers["Location"] = knobs.location
    ra = knobs.retry_after
    if isinstance(ra, datetime):
        headers["Retry-After"] = format_datetime(ra.astimezone(timezone.utc), usegmt=True)
    elif ra is not None:
        headers["Retry-After"] = str(ra)
    if knobs.rate_limit:
        reset = ra if isinstance(ra, int) else 1
        headers["RateLimit"] = f'"{policy}";r=0;t={reset}'
        headers["RateLimit-Policy"] = f'"fixed window";"{policy}";q=3000;w=300'
    return headers


class Throttle:
    """Pacing for a per-connection byte rate: how long to sleep after each write."""

    def __init__(self, bps: int, clock: Callable[[], float] = time.monotonic) -> None:
        if bps <= 0:
            raise ValueError("throttle_bps must be positive")
        self.bps = bps
        self._clock = clock
        self._t0 = clock()
        self._sent = 0

    @property
    def chunk(self) -> int:
        """Write size that keeps pacing smooth (about 20 writes per second)."""
        return max(1024, min(CHUNK, self.bps // 20))

    def delay_after(self, n: int) -> float:
        """Record ``n`` bytes written; seconds to wait before the next write."""
        self._sent += n
        due = self._t0 + self._sent / self.bps
        return max(0.0, due - self._clock())


def _corrupt(data: bytes, pos: int, size: int) -> bytes:
    """Flip the bytes of ``data`` (which starts at file offset ``pos``) that wrong_bytes targets."""
    buf = bytearray(data)
    targets = {size // 2}
    first = pos - pos % WRONG_STRIDE + WRONG_STRIDE // 2
    targets.update(range(first, pos + len(buf), WRONG_STRIDE))
    for t in targets:
        if pos <= t < pos + len(buf):
            buf[t - pos] ^= 0xFF
    return bytes(buf)


def _read(blob: FakeFile, pos: int, n: int) -> bytes:
    """File bytes, padded past EOF with a filler (for ``long_body``)."""
    data = blob.read(pos, n)
    if len(data) < n:
        data += b"\x00" * (n - len(data))
    return data


async def serve_bytes(
    request: web.Request,
    blob: FakeFile,
    knobs: Knobs,
    *,
    etag: str | None,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/octet-stream",
) -> web.StreamResponse:
    """Answer ``HEAD``/``GET`` for ``blob`` honouring Range/If-Range and the meta/range/body knobs."""
    note_faults(request, knobs.applied)
    size = blob.size
    etag = effective_etag(etag, knobs)
    base = {"Accept-Ranges": "bytes", "Content-Type": content_type, **(headers or {})}
    if etag is not None:
        base["ETag"] = etag

    rng = None if knobs.ignore_range else parse_range(request.headers.get("Range"), size)
    if_range = request.headers.get("If-Range")
    if rng is not None and if_range is not None and (etag is None or if_range.strip() != etag):
        rng = None  # validator mismatch: the representation changed, send it whole
    if knobs.force_416 or rng == "unsatisfiable":
        return web.Response(status=416, headers={**base, "Content-Range": f"bytes */{size}"})

    if rng is None:
        status, start, length = 200, 0, size
    else:
        status, start, length = 206, rng[0], rng[1] - rng[0] + 1
    length = max(0, length - knobs.short_body) + knobs.long_body
    resp = web.StreamResponse(status=status, headers=base)
    if status == 206:
        resp.headers["Content-Range"] = f"bytes {start}-{start + max(length, 1) - 1}/{size}"
    if knobs.chunked and request.method != "HEAD":
        resp.enable_chunked_encoding()
    else:
        resp.content_length = length
    await resp.prepare(request)
    if request.method == "HEAD":
        await resp.write_eof()
        return resp

    throttle = Throttle(knobs.throttle_bps) if knobs.throttle_bps else None
    chunk = throttle.chunk if throttle else CHUNK
    stall_pending = knobs.stall_at is not None
    sent = 0
    try:
        while sent < length:
            if knobs.drop_after is not None and sent >= knobs.drop_after:
                _close(request)
                return resp
            if stall_pending and sent >= knobs.stall_at:
                stall_pending = False
                await asyncio.sleep(knobs.stall_seconds)
            n = min(chunk, length - sent)
            if knobs.drop_after is not None:
                n = min(n, knobs.drop_after - sent)
            if stall_pending:
                n = min(n, knobs.stall_at - sent)
            data = _read(blob, start + sent, n)
            if knobs.wrong_bytes:
                data = _corrupt(data, start + sent, size)
            await resp.write(data)
            sent += n
            if throttle is not None:
                delay = throttle.delay_after(n)
                if delay:
                    await asyncio.sleep(delay)
        await resp.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away; nothing more to send
    return resp


def _close(request: web.Request) -> None:
    """Close the connection after flushing what was written: the client sees a short body."""
    transport = request.transport
    if transport is not None:
        transport.close()
