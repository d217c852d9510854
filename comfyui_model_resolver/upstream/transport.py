"""The one way out: every outbound HTTP request is sent here, one hop at a time.

* `open_session` makes the aiohttp sessions (lookups and downloads); nothing else constructs one.
  `fetch_configured` is the one exception to the allowlist: a request to an address the user set
  themselves (ComfyUI's /object_info, /health's endpoint check), without redirects or tokens.
* `send` never lets aiohttp follow a redirect: it follows them itself, and *every* hop — the first
  URL included — is checked against the allowlist (`hosts.check_url`) and gets only its own host's
  token (`hosts.token_for`), in the `Authorization` header, never in a URL. A redirect to a host off
  the list raises HostNotAllowed before a single byte goes to it.
* Network failures (refused, reset, timed out) become `Retryable`, carrying the error to report once
  `policy.RetryPolicy` says to stop.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping
from urllib.parse import urljoin

import aiohttp

from ..errors import (DownloadError, HostNotAllowed, ResolverError, SourceUnavailable, cannot_resolve,
                      is_name_resolution_failure)
from ..hosts import check_url, redact_url, token_for

if TYPE_CHECKING:  # pragma: no cover
    from multidict import CIMultiDictProxy

    from ..settings import Settings

__all__ = ["MAX_REDIRECTS", "REDIRECTS", "USER_AGENT", "Retryable", "Sent", "TokenPolicy", "fetch_configured",
           "host_of", "open_session", "refused_hop", "send"]

MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "comfyui-model-resolver/0.1 (+https://github.com/comfyui-model-resolver)"
TokenPolicy = Literal["auto", "none"]
_DEFAULT: Any = object()  # "the session's own timeout"


class Retryable(Exception):
    """A failure worth retrying; `error` is what to report once retries are exhausted.

    `max_retries` caps the retries of this kind of failure below the configured budget: a host name
    that does not resolve is retried once (offline fails in seconds, not after the whole backoff)."""

    def __init__(self, error: ResolverError, retry_after: float | None = None, *, timed_out: bool = False,
                 max_retries: int | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after
        self.timed_out = timed_out
        self.max_retries = max_retries

    def budget(self, configured: int) -> int:
        """How many retries this failure gets, given the configured number."""
        return configured if self.max_retries is None else min(configured, self.max_retries)


@dataclass
class Sent:
    """The answer of the last hop (status and headers read, body not), and the chain that led to it."""

    resp: aiohttp.ClientResponse
    url: str  # the URL that answered
    hops: list[str] = field(default_factory=list)  # redacted URLs of the chain
    redirects: list["CIMultiDictProxy[str]"] = field(default_factory=list)  # headers of each redirect followed


def host_of(url: str) -> str:
    """`host[:port]` of a URL, for messages (no user info, no query)."""
    return redact_url(url).split("/")[2] if "://" in url else url


def open_session(*, timeout: float | None = None, downloads: bool = False, read_bufsize: int = 1 << 16,
                 connector: aiohttp.BaseConnector | None = None) -> aiohttp.ClientSession:
    """A session for `send`. Lookups: bounded total time, decompressed JSON. Downloads: bytes as sent
    (hashes are over the stored bytes), unbounded connection pool, time bounded per request."""
    if downloads:
        connector = connector or aiohttp.TCPConnector(limit=0, limit_per_host=0, enable_cleanup_closed=True)
        return aiohttp.ClientSession(connector=connector, auto_decompress=False, read_bufsize=read_bufsize,
                                     trust_env=False, headers={"User-Agent": USER_AGENT})
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout),
                                 headers={"User-Agent": USER_AGENT}, auto_decompress=True, trust_env=False)


def _network_error(exc: BaseException, url: str) -> Retryable:
    host = host_of(url)
    if isinstance(exc, asyncio.TimeoutError):
        return Retryable(SourceUnavailable(f"Timed out talking to {host}.",
                                           hint="Check the network; CMR_HTTP_TIMEOUT / CMR_DOWNLOAD_TIMEOUT set the limit."),
                         timed_out=True)
    if is_name_resolution_failure(exc):
        return Retryable(cannot_resolve(host), max_retries=1)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Retryable(SourceUnavailable(f"Cannot connect to {host}: {exc.os_error or exc}.",
                                           hint="Check the network connection or the endpoint setting."))
    return Retryable(SourceUnavailable(f"Network error talking to {host}: the connection failed.",
                                       hint="Check the network connection."))


async def send(session: aiohttp.ClientSession, method: str, url: str, settings: "Settings", *,
               headers: Mapping[str, str] | None = None, params: Any = None, tokens: TokenPolicy = "auto",
               timeout: Any = _DEFAULT, follow: bool = True,
               stop: Callable[[aiohttp.ClientResponse], bool] | None = None) -> Sent:
    """`method url`, following redirects (when `follow`) with the allowlist and token checked per hop.

    Returns the first non-redirect answer (or a redirect when `follow` is false or `stop(resp)` says
    so; that response is released). Raises HostNotAllowed for a refused hop, Retryable for network
    failures, DownloadError for a redirect loop. Statuses are the caller's to read (`policy`).
    """
    hops: list[str] = []
    redirects: list[Any] = []
    current = url
    query = params
    for _ in range(MAX_REDIRECTS + 1):
        check_url(current, settings)  # raises HostNotAllowed, also for the first URL
        hdrs = dict(headers or {})
        token = token_for(current, settings) if tokens == "auto" else None
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        hops.append(redact_url(current))
        try:
            resp = await session.request(method, current, params=query, headers=hdrs, allow_redirects=False,
                                         **({} if timeout is _DEFAULT else {"timeout": timeout}))
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            raise _network_error(exc, current) from None
        if resp.status not in REDIRECTS or not follow:
            return Sent(resp, str(resp.url) if query else current, hops, redirects)
        location = resp.headers.get("Location")
        if not location:
            resp.release()
            raise SourceUnavailable(f"{resp.status} redirect without a Location from {host_of(current)}.",
                                    hint="The server is misconfigured; try again later.")
        if stop is not None and stop(resp):
            resp.release()
            return Sent(resp, current, hops, redirects)
        redirects.append(resp.headers)
        resp.release()
        current = urljoin(str(resp.url), location)
        query = None  # the Location is the whole next URL
        if method == "POST" and resp.status == 303:
            method = "GET"
    raise DownloadError(f"More than {MAX_REDIRECTS} redirects starting at {redact_url(url)}.",
                        hint="The server is misconfigured; try again later.")


async def fetch_configured(url: str, *, method: str = "GET", timeout: float, limit: int = 0) -> tuple[int, bytes]:
    """One request to an address the user configured themselves — ComfyUI's `/object_info` at
    CMR_COMFYUI_URL, or the reachability HEAD of an endpoint for /health: no redirect followed, no token
    sent, at most `limit` bytes of the body read (more than that: `limit + 1` bytes come back, for the
    caller to refuse). Raises aiohttp.ClientError / asyncio.TimeoutError as they come."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), trust_env=False,
                                     headers={"User-Agent": USER_AGENT}) as session:
        async with session.request(method, url, allow_redirects=False) as resp:
            body = b""
            while limit and len(body) <= limit:
                chunk = await resp.content.read(limit + 1 - len(body))
                if not chunk:
                    break
                body += chunk
            return resp.status, body


def refused_hop(exc: HostNotAllowed, source: str) -> SourceUnavailable:
    """An API answer that redirected off the allowlist, as the source's error (nothing was sent there)."""
    return SourceUnavailable(f"{source}: {exc.message}", source=source, hint=exc.hint)
