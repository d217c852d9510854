"""The lookups' client for upstream APIs (Hub REST API, Civitai): cache, limits, budget, retries.

Every request goes out through `upstream.send` (each redirect hop checked against the allowlist,
each host given only its own token by `hosts.token_for`); statuses become errors through
`upstream.error_for_status`, and retries follow `upstream.RetryPolicy`:

* At most `max_upstream_concurrency` requests in flight; each bounded by `http_timeout`.
* 429 and 5xx are retried up to `max_retries` times, waiting Retry-After (seconds or an HTTP-date)
  or, when the upstream gives none (Civitai), 1 s, 2 s, 4 s … A wait longer than `max_wait` is not
  waited for: the caller gets RateLimited with `retry_after`. A network error is retried once.
* An answer is read up to `MAX_ANSWER_BYTES`; a bigger one is refused (a hostile mirror cannot
  make us hold gigabytes).
* A redirect to a host off the allowlist is refused before anything is sent there.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

import aiohttp

from ..errors import HostNotAllowed, NotFound, SourceError, SourceUnavailable
from ..hosts import TOKEN_ENV, redact_error, token_for, token_kind
from ..settings import Settings
from ..upstream import (RETRY_STATUSES, Retryable, RetryPolicy, error_for_status, open_session,
                        parse_retry_after, refused_hop, send)
from .base import LookupContext
from .cache import NOT_FOUND, ResponseCache, is_not_found

log = logging.getLogger(__name__)

#: Pre-flight reads these itself (429/5xx are retried first and raise when they persist).
_PREFLIGHT_STATUSES = (301, 302, 303, 307, 308, 400, 401, 403, 404, 410, 416)
_NOT_FOUND_TTL = 3600.0
_MAX_ERROR_BODY = 64 * 1024  # of an error answer
MAX_ANSWER_BYTES = 32 * 1024 * 1024  # of a JSON answer


@dataclass
class HeadResult:
    url: str
    status: int
    headers: Mapping[str, str]
    body: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)  # rel -> URL (the Link header: pagination)


@dataclass
class ClientStats:
    requests: dict[str, int] = field(default_factory=dict)  # per source
    waits: list[float] = field(default_factory=list)  # seconds slept for 429/5xx


class Upstream:
    """Shared client for upstream APIs. One per Resolver; close() it."""

    def __init__(self, settings: Settings, cache: ResponseCache | None = None, *, max_retries: int = 3,
                 retry_base: float = 1.0, max_wait: float = 60.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self.max_retries = max_retries
        self.retry = RetryPolicy(base=retry_base, cap=30.0, max_retry_after=max_wait, jitter=False)
        self.limiter = asyncio.Semaphore(settings.max_upstream_concurrency)
        self.stats = ClientStats()
        self._session = session
        self._own_session = session is None

    # ---- plumbing ------------------------------------------------------------------------
    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = open_session(timeout=self.settings.http_timeout)
            self._own_session = True
        return self._session

    def has_token(self, url: str) -> bool:
        return token_for(url, self.settings) is not None

    def token_env_for(self, url: str) -> str | None:
        return TOKEN_ENV.get(token_kind(url, self.settings) or "")

    def _count(self, source: str, ctx: LookupContext | None) -> None:
        if ctx is not None:
            ctx.budget.spend()
            ctx.count(source)
        self.stats.requests[source] = self.stats.requests.get(source, 0) + 1

    async def sleep(self, seconds: float) -> None:
        self.stats.waits.append(seconds)
        await asyncio.sleep(seconds)

    def cache_key(self, url: str, params: Mapping[str, Any] | list | None) -> str:
        items = sorted((str(k), str(v)) for k, v in (params.items() if isinstance(params, Mapping) else params or []))
        q = "&".join(f"{k}={v}" for k, v in items)
        return f"{url}?{q}|auth={int(self.has_token(url))}"

    async def _read(self, resp: aiohttp.ClientResponse, limit: int, source: str, what: str) -> str:
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = await resp.content.read(min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        raw = b"".join(chunks)
        if size > limit:
            raise SourceUnavailable(f"{source}: {what}: the answer is over {limit // (1024 * 1024)} MB; "
                                    "no API answer we read is that big", source=source,
                                    hint="Check the endpoint setting: it may not point at the real service.")
        return raw.decode(resp.charset or "utf-8", errors="replace")

    # ---- requests ------------------------------------------------------------------------
    async def _request(self, method: str, url: str, *, source: str, ctx: LookupContext | None,
                       params: Any = None, what: str = "", allow_statuses: tuple[int, ...] = (),
                       read_body: bool = True, follow: bool = True) -> HeadResult:
        """One logical request with retries (the upstream policy's). Returns the answer with its body."""
        session = self._get_session()
        attempt = 0
        while True:
            self._count(source, ctx)
            log.debug("%s %s %s", source, method, url)
            try:
                async with self.limiter:
                    sent = await send(session, method, url, self.settings, params=params, follow=follow,
                                      headers={"Accept": "application/json"})
                    resp = sent.resp
                    try:
                        status, headers = resp.status, resp.headers
                        body = None
                        if method != "HEAD" and (read_body or status >= 400):
                            ok = status < 300 or status in allow_statuses
                            limit = MAX_ANSWER_BYTES if read_body and ok else _MAX_ERROR_BODY
                            body = await self._read(resp, limit, source, what or "answer")
                        links = {rel: str(v.get("url")) for rel, v in resp.links.items() if isinstance(rel, str)}
                    finally:
                        resp.release()
            except HostNotAllowed as exc:  # a redirect off the allowlist: nothing was sent there
                raise refused_hop(exc, source) from None
            except (Retryable, asyncio.TimeoutError, aiohttp.ClientError) as exc:
                if attempt < 1:
                    attempt += 1
                    await self.sleep(min(self.retry.base, 0.25))
                    continue
                if isinstance(exc, Retryable) and not exc.timed_out:
                    raise SourceUnavailable(f"{source}: {what or 'request'}: {exc.error.message}", source=source,
                                            hint=exc.error.hint) from None
                raise SourceUnavailable(f"{source}: {what or 'request'}: no answer within "
                                        f"{self.settings.http_timeout:g} s", source=source,
                                        hint="Raise CMR_HTTP_TIMEOUT or try again later.") from None
            if status < 300 or status in allow_statuses:
                return HeadResult(url=sent.url, status=status, headers=headers, body=body, links=links)
            if status in RETRY_STATUSES:
                wait = self.retry.next_delay(attempt + 1, self.max_retries,
                                             parse_retry_after(headers.get("Retry-After")))
                if wait is not None:
                    attempt += 1
                    log.info("%s: HTTP %s, retry %d in %.1f s", source, status, attempt, wait)
                    await self.sleep(wait)
                    continue
            err = error_for_status(status, headers, body, source=source, token_env=self.token_env_for(url),
                                   authed=self.has_token(url), what=what)
            raise redact_error(err, self.settings)  # the upstream may quote the token it was sent

    async def get_page(self, url: str, *, source: str, ctx: LookupContext | None, params: Any = None,
                       what: str = "") -> tuple[Any, str | None]:
        """GET one page of a JSON listing: (the document, the URL of the next page or None). Not cached."""
        res = await self._request("GET", url, source=source, ctx=ctx, params=params, what=what)
        return self._json(res.body, source, what or url), res.links.get("next")

    @staticmethod
    def _json(body: str | None, source: str, what: str) -> Any:
        try:
            return json.loads(body or "")
        except ValueError:
            raise SourceUnavailable(f"{source}: {what}: the answer is not JSON", source=source) from None

    async def get_json(self, url: str, *, source: str, ctx: LookupContext | None, params: Any = None,
                       what: str = "", cache: bool = True) -> Any:
        """GET a JSON document, through the response cache. NotFound is cached too."""
        key = self.cache_key(url, params) if (cache and self.cache is not None) else None
        if key is not None:
            hit = await self.cache.get(key)  # type: ignore[union-attr]
            if hit is not None:
                if ctx is not None:
                    ctx.count(source, cached=True)
                if is_not_found(hit):
                    raise NotFound(f"{source}: {what or url}: not found (cached)", source=source)
                return hit
        try:
            res = await self._request("GET", url, source=source, ctx=ctx, params=params, what=what)
        except NotFound:
            if key is not None:
                await self.cache.set(key, NOT_FOUND, min(self.settings.cache_ttl, _NOT_FOUND_TTL))  # type: ignore[union-attr]
            raise
        data = self._json(res.body, source, what or url)
        if key is not None:
            await self.cache.set(key, data, self.settings.cache_ttl)  # type: ignore[union-attr]
        return data

    async def head(self, url: str, *, source: str, ctx: LookupContext | None) -> HeadResult:
        """HEAD without following redirects; every status is returned (pre-flight reads them)."""
        return await self._request("HEAD", url, source=source, ctx=ctx, what="pre-flight",
                                   allow_statuses=_PREFLIGHT_STATUSES, follow=False)

    async def get_status(self, url: str, *, source: str, ctx: LookupContext | None) -> HeadResult:
        """GET that reads a small error body (Civitai explains 401/403 in JSON, HEAD has no body)."""
        return await self._request("GET", url, source=source, ctx=ctx, what="pre-flight",
                                   allow_statuses=_PREFLIGHT_STATUSES, read_body=False, follow=False)

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()


__all__ = ["ClientStats", "HeadResult", "MAX_ANSWER_BYTES", "SourceError", "Upstream"]
