"""The downloader's view of one GET: `open_url` over the upstream transport, statuses read by its policy.

`open_url` sends through `upstream.send`, so every redirect hop is checked against the host
allowlist and gets only its own host's token: the Hub sees the HF token, its CDN sees none, and
no token is ever put in a URL. Along the way it collects what the Hub says about the file on its
302 (`X-Linked-Etag` = the LFS sha256, `X-Linked-Size`), which the CDN response does not repeat
(contract A.5.1).

Statuses become typed errors through `upstream.error_for_status` (the one table); `Retryable`
wraps those worth another try (network errors, timeouts, `RETRY_STATUSES`) with the server's
Retry-After when it sent one.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

from ..errors import ResolverError
from ..hosts import TOKEN_ENV, redact_error, token_for, token_kind
from ..upstream import (RETRY_STATUSES, USER_AGENT, Retryable, TokenPolicy, error_for_status, host_of,
                        parse_retry_after, send)

if TYPE_CHECKING:  # pragma: no cover
    from ..settings import Settings

__all__ = ["Opened", "Retryable", "TokenPolicy", "open_url", "parse_content_range", "USER_AGENT"]

_SHA256_RE = re.compile(r'^(?:W/)?"?([0-9a-fA-F]{64})"?$')
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.I)
_ERROR_BODY = 2048  # bytes of an error answer read for its message


@dataclass
class Opened:
    """A response with its status and headers read, body not yet consumed."""

    resp: aiohttp.ClientResponse
    url: str  # the URL that answered (after redirects)
    hops: list[str] = field(default_factory=list)  # redacted URLs of the chain
    linked_sha256: str | None = None  # Hub X-Linked-Etag, if it was a sha256
    linked_size: int | None = None  # Hub X-Linked-Size

    @property
    def status(self) -> int:
        return self.resp.status

    @property
    def etag(self) -> str | None:
        return self.resp.headers.get("ETag")

    @property
    def content_disposition(self) -> str | None:
        return self.resp.headers.get("Content-Disposition")

    def close(self) -> None:
        """Drop the connection (the body was not read to its end)."""
        self.resp.close()

    def release(self) -> None:
        self.resp.release()


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``bytes a-b/total`` -> (a, b, total); ``bytes */total`` -> (None, None, total)."""
    m = _CONTENT_RANGE_RE.match(value or "")
    if not m:
        return None, None, None
    a, b, total = m.groups()
    return (int(a) if a else None, int(b) if b else None, int(total) if total and total != "*" else None)


def _linked(headers) -> tuple[str | None, int | None]:
    m = _SHA256_RE.match((headers.get("X-Linked-Etag") or "").strip())
    size = headers.get("X-Linked-Size")
    return (m.group(1).lower() if m else None), (int(size) if size and size.isdigit() else None)


async def _error_for(resp: aiohttp.ClientResponse, url: str, settings: "Settings") -> ResolverError | Retryable:
    body = None
    if not resp.headers.get("X-Error-Message"):
        try:
            body = (await resp.content.read(_ERROR_BODY)).decode("utf-8", "replace")
        except (aiohttp.ClientError, asyncio.TimeoutError):
            body = None
    kind = token_kind(url, settings)
    err = error_for_status(resp.status, resp.headers, body, source=kind, token_env=TOKEN_ENV.get(kind or ""),
                           authed=token_for(url, settings) is not None, what="download", label=host_of(url))
    err = redact_error(err, settings)  # the upstream may quote the token it was sent
    if resp.status in RETRY_STATUSES:
        return Retryable(err, parse_retry_after(resp.headers.get("Retry-After")))
    return err


async def open_url(session: aiohttp.ClientSession, url: str, settings: "Settings", *,
                   start: int | None = None, end: int | None = None, if_range: str | None = None,
                   tokens: TokenPolicy = "auto", timeout: aiohttp.ClientTimeout | None = None,
                   stop_at_linked: bool = False) -> Opened:
    """GET `url` (bytes [start, end] when given) following redirects with per-hop checks.

    Returns 200/206/416 responses (body unread). Raises HostNotAllowed for a refused hop,
    Retryable for transient failures, or a typed SourceError/DownloadError otherwise.
    With `stop_at_linked`, stops at a redirect that carries the Hub's sha256 and size
    (metadata only; the returned response is that redirect, released).
    """
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start is not None:
        headers["Range"] = f"bytes={start}-" + (str(end) if end is not None else "")
        if if_range:
            headers["If-Range"] = if_range

    def stop(resp: aiohttp.ClientResponse) -> bool:
        sha, size = _linked(resp.headers)
        return stop_at_linked and sha is not None and size is not None

    sent = await send(session, "GET", url, settings, headers=headers, tokens=tokens, timeout=timeout, stop=stop)
    linked_sha = linked_size = None
    for h in [*sent.redirects, sent.resp.headers]:
        sha, size = _linked(h)
        linked_sha, linked_size = sha or linked_sha, size if size is not None else linked_size
    resp = sent.resp
    if resp.status in (200, 206, 416) or (stop_at_linked and resp.status in (301, 302, 303, 307, 308)):
        return Opened(resp, sent.url, sent.hops, linked_sha, linked_size)
    try:
        err = await _error_for(resp, sent.url, settings)
    finally:
        resp.release()
    raise err
