"""The one HTTP seam to upstream APIs (Hub, Civitai): aiohttp, tokens, limits, retries, errors.

* Base URLs and tokens come from Settings. A token goes only in the `Authorization` header of a
  request to its own origin (the Hub token to `hf_endpoint`, the Civitai key to
  `civitai_base_url`); never in a URL, a cache key or a log line.
* At most `max_upstream_concurrency` requests in flight; each bounded by `http_timeout`.
* 429 (and 503 with Retry-After) are retried up to `max_retries` times, waiting Retry-After
  (seconds or an HTTP-date) or, when the upstream gives none (Civitai), 1 s, 2 s, 4 s … A wait
  longer than `max_wait` is not waited for: the caller gets RateLimited with `retry_after`.
* `error_for_status` is the only place that turns an HTTP status into an error type.

    status / X-Error-Code                  -> error
    GatedRepo (401/403)                    -> AuthRequired(gated, token_env=CMR_HF_TOKEN)
    RepoNotFound, EntryNotFound, Revision… -> NotFound
    401 with a token sent                  -> AuthRequired(reason=invalid_token)
    401/403 otherwise                      -> AuthRequired(token_env of the host)
    404, 410                               -> NotFound
    429                                    -> RateLimited(retry_after)
    5xx, other 4xx, network, bad JSON      -> SourceUnavailable
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

import aiohttp

from ..errors import (AuthRequired, NotFound, RateLimited, SourceError, SourceUnavailable, cannot_resolve,
                      is_name_resolution_failure)
from ..hosts import redact_error
from ..retry_after import parse_retry_after
from ..settings import Settings
from .base import LookupContext
from .cache import NOT_FOUND, ResponseCache, is_not_found
from .urls import origin_of

log = logging.getLogger(__name__)

HF_TOKEN_ENV = "CMR_HF_TOKEN"
CIVITAI_TOKEN_ENV = "CMR_CIVITAI_API_KEY"
USER_AGENT = "comfyui-model-resolver/0.1 (+https://github.com/comfyui-model-resolver)"
_NOT_FOUND_CODES = {"RepoNotFound", "EntryNotFound", "RevisionNotFound"}
_RETRY_STATUSES = {429, 502, 503, 504}
#: Pre-flight reads these itself (429/5xx are retried first and raise when they persist).
_PREFLIGHT_STATUSES = (301, 302, 303, 307, 308, 400, 401, 403, 404, 410, 416)
_NOT_FOUND_TTL = 3600.0
_MAX_BODY = 64 * 1024  # of an error answer to a pre-flight request


def _json_body(body: str | None) -> dict:
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def error_for_status(status: int, headers: Mapping[str, str], body: str | None, *, source: str,
                     token_env: str | None, authed: bool, what: str = "") -> SourceError:
    """The error for a non-success response. The single status -> type table of the project."""
    code = headers.get("X-Error-Code") or headers.get("x-error-code")
    text = headers.get("X-Error-Message") or headers.get("x-error-message")
    data = _json_body(body)
    detail = text or data.get("message") or data.get("error") or f"HTTP {status}"
    where = f"{source}: {what}: " if what else f"{source}: "
    if code == "GatedRepo":
        hint = ("Your token's account has not been granted access: accept the licence on the model page."
                if authed else f"Set {HF_TOKEN_ENV} to a Hugging Face token whose account accepted the licence.")
        return AuthRequired(where + str(detail), hint=hint, source=source, token_env=HF_TOKEN_ENV, gated=True)
    if code in _NOT_FOUND_CODES:
        return NotFound(where + str(detail), source=source)
    if status in (401, 403):
        if "deadline" in data:
            return AuthRequired(where + str(data.get("message") or detail), source=source, token_env=token_env,
                                reason="early_access",
                                hint=f"Early access until {data.get('deadline')}; it becomes public then.")
        if status == 401 and authed:  # a token was sent and refused: it is wrong, not short of rights
            return AuthRequired(where + str(detail), source=source, token_env=token_env, reason="invalid_token",
                                hint=f"The token in {token_env} was refused; check it." if token_env else None)
        reason = "no_access" if authed else "login_required"
        hint = (f"The key in {token_env} has no access to it." if authed and token_env
                else f"Set {token_env} to sign in." if token_env else None)
        return AuthRequired(where + str(detail), hint=hint, source=source, token_env=token_env, reason=reason)
    if status in (404, 410):
        return NotFound(where + str(detail), source=source)
    if status == 429:
        ra = parse_retry_after(headers.get("Retry-After"))
        return RateLimited(where + "rate limited", source=source, retry_after=ra,
                           hint=f"Try again in {int(ra)} s." if ra else "Try again later.")
    if status >= 500:
        return SourceUnavailable(where + f"server error {status}", source=source,
                                 hint="The service is having trouble; try again later.")
    return SourceUnavailable(where + f"unexpected HTTP {status}: {detail}", source=source)


@dataclass
class HeadResult:
    url: str
    status: int
    headers: Mapping[str, str]
    body: str | None = None


@dataclass
class ClientStats:
    requests: dict[str, int] = field(default_factory=dict)  # per source
    waits: list[float] = field(default_factory=list)  # seconds slept for 429/503


class Upstream:
    """Shared aiohttp client for upstream APIs. One per Resolver; close() it."""

    def __init__(self, settings: Settings, cache: ResponseCache | None = None, *, max_retries: int = 3,
                 retry_base: float = 1.0, max_wait: float = 60.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self.max_retries = max_retries
        self.retry_base = retry_base
        self.max_wait = max_wait
        self.limiter = asyncio.Semaphore(settings.max_upstream_concurrency)
        self.stats = ClientStats()
        self._session = session
        self._own_session = session is None
        self._tokens: dict[str, tuple[str, str]] = {}  # origin -> (secret, env var)
        if settings.hf_token is not None and settings.hf_token.get_secret_value():
            self._tokens[origin_of(settings.hf_endpoint)] = (settings.hf_token.get_secret_value(), HF_TOKEN_ENV)
        if settings.civitai_api_key is not None and settings.civitai_api_key.get_secret_value():
            self._tokens[origin_of(settings.civitai_base_url)] = (settings.civitai_api_key.get_secret_value(),
                                                                  CIVITAI_TOKEN_ENV)
        self._token_env = {origin_of(settings.hf_endpoint): HF_TOKEN_ENV,
                           origin_of(settings.civitai_base_url): CIVITAI_TOKEN_ENV}

    # ---- plumbing ------------------------------------------------------------------------
    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.settings.http_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT},
                                                  auto_decompress=True)
            self._own_session = True
        return self._session

    def has_token(self, url: str) -> bool:
        return origin_of(url) in self._tokens

    def token_env_for(self, url: str) -> str | None:
        return self._token_env.get(origin_of(url))

    def _headers(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if extra:
            headers.update(extra)
        tok = self._tokens.get(origin_of(url))
        if tok:
            headers["Authorization"] = f"Bearer {tok[0]}"
        return headers

    def _count(self, source: str, ctx: LookupContext | None) -> None:
        if ctx is not None:
            ctx.budget.spend()
            ctx.count(source)
        self.stats.requests[source] = self.stats.requests.get(source, 0) + 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return min(30.0, self.retry_base * (2 ** attempt))

    async def sleep(self, seconds: float) -> None:
        self.stats.waits.append(seconds)
        await asyncio.sleep(seconds)

    def cache_key(self, url: str, params: Mapping[str, Any] | list | None) -> str:
        items = sorted((str(k), str(v)) for k, v in (params.items() if isinstance(params, Mapping) else params or []))
        q = "&".join(f"{k}={v}" for k, v in items)
        return f"{url}?{q}|auth={int(self.has_token(url))}"

    # ---- requests ------------------------------------------------------------------------
    async def _request(self, method: str, url: str, *, source: str, ctx: LookupContext | None,
                       params: Any = None, what: str = "", allow_statuses: tuple[int, ...] = (),
                       read_body: bool = True) -> tuple[int, Mapping[str, str], str | None, str]:
        """One logical request with retries. Returns (status, headers, body, final url)."""
        session = self._get_session()
        attempt = 0
        while True:
            self._count(source, ctx)
            log.debug("%s %s %s", source, method, url)
            try:
                async with self.limiter:
                    async with session.request(method, url, params=params, headers=self._headers(url),
                                               allow_redirects=False) as resp:
                        status = resp.status
                        headers = resp.headers
                        body = None
                        if method != "HEAD" and (read_body or status >= 400):
                            raw = await resp.content.read(_MAX_BODY if not read_body else -1)
                            body = raw.decode(resp.charset or "utf-8", errors="replace")
                        final = str(resp.url)
            except asyncio.TimeoutError:
                err: SourceError = SourceUnavailable(f"{source}: {what or url}: timed out after "
                                                     f"{self.settings.http_timeout:g} s", source=source,
                                                     hint="Raise CMR_HTTP_TIMEOUT or try again later.")
                if attempt < 1:
                    attempt += 1
                    continue
                raise err from None
            except aiohttp.ClientError as exc:
                if is_name_resolution_failure(exc) and attempt >= 1:  # retried once: offline, or a typo
                    raise cannot_resolve(urlsplit(url).hostname or url, source=source) from None
                if attempt < 1:
                    attempt += 1
                    log.info("%s: cannot reach %s, retry 1", source, origin_of(url))
                    await self.sleep(min(self.retry_base, 0.25))
                    continue
                raise SourceUnavailable(f"{source}: cannot reach {origin_of(url)} (the connection failed)",
                                        source=source, hint="Check the network or the endpoint setting.") from None
            if status < 300 or status in allow_statuses:
                return status, headers, body, final
            if status in _RETRY_STATUSES:
                ra = parse_retry_after(headers.get("Retry-After"))
                wait = self._backoff(attempt, ra)
                if attempt < self.max_retries and wait <= self.max_wait:
                    attempt += 1
                    log.info("%s: HTTP %s, retry %d in %.1f s", source, status, attempt, wait)
                    await self.sleep(wait)
                    continue
            err = error_for_status(status, headers, body, source=source, token_env=self.token_env_for(url),
                                   authed=self.has_token(url), what=what)
            raise redact_error(err, self.settings)  # the upstream may quote the token it was sent

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
            status, headers, body, _ = await self._request("GET", url, source=source, ctx=ctx, params=params,
                                                           what=what)
        except NotFound:
            if key is not None:
                await self.cache.set(key, NOT_FOUND, min(self.settings.cache_ttl, _NOT_FOUND_TTL))  # type: ignore[union-attr]
            raise
        try:
            data = json.loads(body or "")
        except ValueError:
            raise SourceUnavailable(f"{source}: {what or url}: the answer is not JSON", source=source) from None
        if key is not None:
            await self.cache.set(key, data, self.settings.cache_ttl)  # type: ignore[union-attr]
        return data

    async def head(self, url: str, *, source: str, ctx: LookupContext | None) -> HeadResult:
        """HEAD without following redirects; every status is returned (pre-flight reads them)."""
        status, headers, body, final = await self._request(
            "HEAD", url, source=source, ctx=ctx, what="pre-flight",
            allow_statuses=_PREFLIGHT_STATUSES)
        return HeadResult(url=final, status=status, headers=headers, body=body)

    async def get_status(self, url: str, *, source: str, ctx: LookupContext | None) -> HeadResult:
        """GET that reads a small error body (Civitai explains 401/403 in JSON, HEAD has no body)."""
        status, headers, body, final = await self._request(
            "GET", url, source=source, ctx=ctx, what="pre-flight", allow_statuses=_PREFLIGHT_STATUSES,
            read_body=False)
        return HeadResult(url=final, status=status, headers=headers, body=body)

    async def close(self) -> None:
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
