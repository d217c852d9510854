"""The network seam of the downloader: one GET, redirects followed by hand, statuses mapped to errors.

`open_url` follows up to `MAX_REDIRECTS` redirects itself so that *every* hop is checked against
the host allowlist (`hosts.check_url`) and gets only its own host's token (`hosts.token_for`): the
Hub sees the HF token, its CDN sees none, and no token is ever put in a URL. Along the way it
collects what the Hub says about the file on its 302 (`X-Linked-Etag` = the LFS sha256,
`X-Linked-Size`), which the CDN response does not repeat (contract A.5.1).

Statuses become typed errors here and nowhere else: `Retryable` wraps the ones worth another try
(network errors, timeouts, 408/425/429/5xx) with the server's Retry-After when it sent one.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urljoin

import aiohttp

from ..errors import (AuthRequired, DownloadError, NotFound, RateLimited, ResolverError, SourceError,
                      SourceUnavailable, cannot_resolve, is_name_resolution_failure)
from ..hosts import TOKEN_ENV, check_url, redact_secrets, redact_url, token_for, token_kind
from ..retry_after import parse_retry_after

if TYPE_CHECKING:  # pragma: no cover
    from ..settings import Settings

__all__ = ["Opened", "Retryable", "open_url", "parse_content_range", "USER_AGENT"]

MAX_REDIRECTS = 10
USER_AGENT = "comfyui-model-resolver/0.1 (+downloads)"
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
_SHA256_RE = re.compile(r'^(?:W/)?"?([0-9a-fA-F]{64})"?$')
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.I)
TokenPolicy = Literal["auto", "none"]


class Retryable(Exception):
    """A failure worth retrying; `error` is what to report once retries are exhausted.

    `max_retries` caps the retries of this kind of failure below the configured budget (a host name
    that does not resolve is retried once: offline fails in seconds, not after the whole backoff)."""

    def __init__(self, error: ResolverError, retry_after: float | None = None, max_retries: int | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after
        self.max_retries = max_retries

    def budget(self, configured: int) -> int:
        """How many retries this failure gets, given the configured download_retries."""
        return configured if self.max_retries is None else min(configured, self.max_retries)


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


def _linked_sha(value: str | None) -> str | None:
    m = _SHA256_RE.match((value or "").strip())
    return m.group(1).lower() if m else None


def _host_of(url: str) -> str:
    return redact_url(url).split("/")[2] if "://" in url else url


async def _error_for(resp: aiohttp.ClientResponse, url: str, settings: "Settings") -> ResolverError | Retryable:
    status = resp.status
    shown = redact_url(url)
    code = resp.headers.get("X-Error-Code")
    server_msg = resp.headers.get("X-Error-Message")
    if not server_msg:
        try:
            text = (await resp.content.read(2048)).decode("utf-8", "replace").strip()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            text = ""
        if text.startswith("{"):
            import json

            try:
                body = json.loads(text)
                if isinstance(body, dict):
                    server_msg = str(body.get("message") or body.get("error") or "")[:300] or None
            except ValueError:
                pass
    detail = f": {redact_secrets(server_msg, settings)}" if server_msg else ""
    kind = token_kind(url, settings)
    env = TOKEN_ENV.get(kind or "")
    if status in (401, 403) and (code in ("GatedRepo", "RepoNotFound") or kind):
        has_token = token_for(url, settings) is not None
        gated = code == "GatedRepo"
        if gated and has_token:
            hint = "Your token is not approved for this gated repository: request access on its page."
        elif has_token:
            hint = f"The server refused the token in {env}; check that it is valid and has read access."
        else:
            hint = f"Set {env} to a token with access." if env else "This file needs authentication."
        return AuthRequired(f"{status} from {_host_of(url)}{detail} ({shown})", hint=hint, source=kind,
                            token_env=env, gated=gated)
    if status in (404, 410):
        return NotFound(f"{status}: the file is not there{detail} ({shown})",
                        hint="Check the URL; the file may have been moved or deleted.", source=kind)
    if status in _RETRY_STATUSES:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if status == 429:
            err: ResolverError = RateLimited(f"429 rate limited by {_host_of(url)}{detail}", source=kind,
                                             retry_after=retry_after,
                                             hint="Wait and resume the download; a token may raise the limit.")
        else:
            err = SourceUnavailable(f"{status} from {_host_of(url)}{detail}", source=kind,
                                    hint="The server has a problem; resume the download later.")
        return Retryable(err, retry_after)
    return SourceError(f"Unexpected HTTP {status} from {_host_of(url)}{detail} ({shown})", source=kind)


async def open_url(session: aiohttp.ClientSession, url: str, settings: "Settings", *,
                   start: int | None = None, end: int | None = None, if_range: str | None = None,
                   tokens: TokenPolicy = "auto", timeout: aiohttp.ClientTimeout | None = None,
                   stop_at_linked: bool = False) -> Opened:
    """GET `url` (bytes [start, end] when given) following redirects with per-hop checks.

    Returns 200/206/416 responses (body unread). Raises HostNotAllowed for a refused hop,
    Retryable for transient failures, or a typed SourceError/DownloadError otherwise.
    With `stop_at_linked`, stops at a redirect that carries the Hub's sha256 and size
    (metadata only; the returned response is that redirect, closed).
    """
    hops: list[str] = []
    linked_sha = None
    linked_size = None
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_url(current, settings)  # raises HostNotAllowed, also for the first URL
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if start is not None:
            headers["Range"] = f"bytes={start}-" + (str(end) if end is not None else "")
            if if_range:
                headers["If-Range"] = if_range
        token = token_for(current, settings) if tokens == "auto" else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        hops.append(redact_url(current))
        try:
            resp = await session.get(current, headers=headers, allow_redirects=False, timeout=timeout)
        except asyncio.TimeoutError:
            raise Retryable(SourceUnavailable(f"Timed out connecting to {_host_of(current)}.",
                                              hint="Check the network; CMR_DOWNLOAD_TIMEOUT sets the limit.")) from None
        except aiohttp.ClientConnectorError as exc:
            if is_name_resolution_failure(exc):
                raise Retryable(cannot_resolve(_host_of(current)), max_retries=1) from None
            raise Retryable(SourceUnavailable(f"Cannot connect to {_host_of(current)}: {exc.os_error or exc}.",
                                              hint="Check the network connection.")) from None
        except aiohttp.ClientError as exc:
            raise Retryable(SourceUnavailable(f"Network error talking to {_host_of(current)}: "
                                              f"{type(exc).__name__}.")) from None
        sha = _linked_sha(resp.headers.get("X-Linked-Etag"))
        if sha:
            linked_sha = sha
        size = resp.headers.get("X-Linked-Size")
        if size and size.isdigit():
            linked_size = int(size)
        if resp.status in (301, 302, 303, 307, 308):
            location = resp.headers.get("Location")
            resp.release()
            if not location:
                raise SourceError(f"{resp.status} redirect without a Location from {_host_of(current)}.")
            if stop_at_linked and linked_sha and linked_size is not None:
                return Opened(resp, current, hops, linked_sha, linked_size)
            current = urljoin(current, location)
            continue
        if resp.status in (200, 206, 416):
            return Opened(resp, current, hops, linked_sha, linked_size)
        try:
            err = await _error_for(resp, current, settings)
        finally:
            resp.release()
        raise err
    raise DownloadError(f"More than {MAX_REDIRECTS} redirects starting at {redact_url(url)}.",
                        hint="The server is misconfigured; try again later.")
