"""What a server's answer to a (range) request means for a transfer.

* `open_bounded` / `probe`: open a URL with a time limit for connect + redirects + headers.
* `adopt`: the first answer of a run — size, whether ranges work (206 vs 200), validators (ETag,
  the Hub's sha256) — checked against the bytes an earlier run left (same size, same Hub sha256,
  else same strong ETag), or `Restart` (start over from byte 0) / `Complete` (nothing left).
* `check_piece`: the answer to one more connection's range request.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from ..errors import IntegrityError, SourceError, SourceUnavailable
from ..hosts import redact_url
from . import intervals as iv
from .http import Opened, Retryable, TokenPolicy, open_url, parse_content_range
from .partfile import format_bytes
from .schedule import Piece
from .store import JobRecord

if TYPE_CHECKING:  # pragma: no cover
    from ..settings import Settings

__all__ = ["Probe", "probe", "open_bounded", "Restart", "Complete", "adopt", "check_piece", "size_of"]


@dataclass
class Probe:
    """What a first response says about a file (used to name a job before downloading)."""

    url: str
    content_disposition: str | None
    size: int | None
    linked_sha256: str | None


class Restart(Exception):
    """Start over from byte 0 (the server ignored Range, or the file changed)."""

    def __init__(self, reason: str, opened: Opened | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.opened = opened  # a 200 response for the whole file, to continue with


class Complete(Exception):
    """Every byte is already here."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _timeout(settings: "Settings") -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=settings.download_timeout, sock_read=settings.stall_timeout)


async def open_bounded(session: aiohttp.ClientSession, url: str, settings: "Settings", **kw) -> Opened:
    """open_url bounded by CMR_DOWNLOAD_TIMEOUT for connect + redirects + response headers."""
    try:
        return await asyncio.wait_for(open_url(session, url, settings, timeout=_timeout(settings), **kw),
                                      settings.download_timeout)
    except asyncio.TimeoutError:
        raise Retryable(SourceUnavailable(f"No response within {settings.download_timeout:g} s from "
                                          f"{redact_url(url).split('/')[2]}.",
                                          hint="CMR_DOWNLOAD_TIMEOUT sets this limit.")) from None


async def probe(session: aiohttp.ClientSession, url: str, settings: "Settings", *,
                tokens: TokenPolicy = "auto") -> Probe:
    """Open `url` for its name and size, without downloading the body."""
    opened = await open_bounded(session, url, settings, start=0, tokens=tokens)
    try:
        size = size_of(opened)
        return Probe(opened.url, opened.content_disposition, size, opened.linked_sha256)
    finally:
        opened.close()


def size_of(opened: Opened) -> int | None:
    if opened.status in (206, 416):
        return parse_content_range(opened.resp.headers.get("Content-Range"))[2]
    return opened.resp.content_length


def adopt(rec: JobRecord, opened: Opened, start: int, done: list[iv.Interval], *, validated: bool) -> None:
    """Interpret the first response of a run (asked from `start`, holding `done`): raise
    Restart/Complete/Retryable, or set rec.total/ranges/validators. `validated`: If-Range was sent."""
    status = opened.status
    headers = opened.resp.headers
    if status == 416:
        total = parse_content_range(headers.get("Content-Range"))[2]
        opened.release()
        if total is not None and total == start and iv.prefix_end(done) >= start:
            rec.total = total  # we already hold every byte: nothing left to fetch
            raise Complete(total)
        if total == 0:
            rec.total = 0
            raise Complete(0)
        if total is not None and total < start:
            rec.total = None
            raise Restart(f"the file on the server ({format_bytes(total)}) is shorter than what we hold")
        raise Retryable(SourceError(f"The server answered 416 (range not satisfiable) to bytes {start}- of a "
                                    f"{format_bytes(total)} file ({redact_url(rec.url)}).",
                                    hint="The server mishandles range requests; try again later."))
    if status == 200:
        # We always send Range, so a 200 means ranges do not work here (or If-Range failed).
        total = opened.resp.content_length
        rec.ranges = False
        if start > 0:
            why = "the file changed on the server" if validated else "the server ignored the Range request"
            raise Restart(why, opened)
    else:  # 206
        a, _b, total = parse_content_range(headers.get("Content-Range"))
        if a != start:
            opened.close()
            raise SourceError(f"Asked for bytes from {start} but the server sent a range starting at {a}.")
        rec.ranges = True
    # Same file as the bytes we already hold?
    if done:
        changed = None
        if rec.total is not None and total is not None and total != rec.total:
            changed = f"its size changed from {rec.total} to {total} bytes"
        elif rec.server_sha256 and opened.linked_sha256 and opened.linked_sha256 != rec.server_sha256:
            changed = "the Hub reports a different SHA-256"
        elif not rec.server_sha256 and rec.etag and opened.etag and opened.etag != rec.etag:
            changed = "its ETag changed"
        if changed:
            opened.close()
            rec.total = None
            raise Restart(f"the file changed on the server ({changed})")
    if opened.linked_sha256:
        if rec.requested_sha256 and rec.requested_sha256 != opened.linked_sha256:
            opened.close()
            raise IntegrityError(f"The server says this file's SHA-256 is {opened.linked_sha256}, but "
                                 f"{rec.requested_sha256} was requested.",
                                 hint="Check the URL and the expected hash; nothing was downloaded.")
        rec.server_sha256 = opened.linked_sha256
        rec.expected_sha256 = rec.requested_sha256 or opened.linked_sha256
    if opened.linked_size is not None and rec.expected_size is None:
        rec.expected_size = opened.linked_size
    rec.total = total
    rec.etag = opened.etag


def check_piece(rec: JobRecord, opened: Opened, piece: Piece, *, segmented: bool) -> None:
    """The answer to a range request for `piece` (from piece.written): fine, or Restart."""
    if opened.status == 206:
        a, _b, total = parse_content_range(opened.resp.headers.get("Content-Range"))
        if a != piece.written or (rec.total is not None and total is not None and total != rec.total):
            opened.close()
            raise Restart(f"the server sent bytes {a}-/{total} when asked for {piece.written}-/{rec.total}")
        if rec.etag and opened.etag and opened.etag != rec.etag and not rec.server_sha256:
            opened.close()
            raise Restart("the file changed on the server (its ETag changed)")
        return
    if opened.status == 200:
        if piece.written == 0 and rec.total is not None and opened.resp.content_length == rec.total \
                and not segmented:
            return  # a whole-file answer for a single stream at byte 0 is fine
        rec.ranges = False
        raise Restart("the server ignored the Range request", opened)
    opened.release()
    raise Restart(f"the server answered {opened.status} to a range request")
