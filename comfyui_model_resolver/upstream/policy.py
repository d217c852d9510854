"""What an upstream answer means and when to ask again: the status table, Retry-After, backoff.

Pure: no I/O. Used by every outbound request (Hub and Civitai API calls, pre-flight, downloads).

    status / X-Error-Code                  -> error
    GatedRepo (401/403)                    -> AuthRequired(gated, token_env=CMR_HF_TOKEN)
    RepoNotFound, EntryNotFound, Revision… -> NotFound
    401/403 with a JSON `deadline`         -> AuthRequired(reason=early_access)       (Civitai)
    401 with a token sent                  -> AuthRequired(reason=invalid_token)
    401/403 otherwise                      -> AuthRequired(no_access | login_required)
    404, 410                               -> NotFound
    429                                    -> RateLimited(retry_after)
    5xx, other 4xx                         -> SourceUnavailable

`RETRY_STATUSES` are worth another try (with `RetryPolicy`); the rest are final.
"""
from __future__ import annotations

import email.utils
import json
import math
import random
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from ..errors import AuthRequired, NotFound, RateLimited, SourceError, SourceUnavailable
from ..hosts import TOKEN_ENV

__all__ = ["RETRY_STATUSES", "RetryPolicy", "error_for_status", "parse_retry_after", "HF_TOKEN_ENV",
           "CIVITAI_TOKEN_ENV"]

HF_TOKEN_ENV = TOKEN_ENV["hf"]
CIVITAI_TOKEN_ENV = TOKEN_ENV["civitai"]
#: Answers worth another try: timeouts, "too early", rate limits, server errors.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_NOT_FOUND_CODES = {"RepoNotFound", "EntryNotFound", "RevisionNotFound"}


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """The Retry-After header (RFC 9110 10.2.3) in seconds: delay-seconds (a fraction is tolerated) or an
    HTTP-date; None if absent or unreadable (negative, NaN, not a date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again: ``base * 2**(n-1)`` capped at `cap` (times a factor in [0.5, 1.5) with `jitter`),
    or the server's Retry-After when it sent one. A Retry-After over `max_retry_after` is not waited
    for: the caller reports RateLimited with it instead."""

    base: float = 1.0
    cap: float = 30.0
    max_retry_after: float = 600.0
    jitter: bool = True

    def delay(self, attempt: int, retry_after: float | None = None, rand: Callable[[], float] = random.random) -> float:
        if retry_after is not None:
            return retry_after + (rand() * min(1.0, self.base) if self.jitter else 0.0)
        wait = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return wait * (0.5 + rand()) if self.jitter else wait

    def next_delay(self, failures: int, retries: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before try number `failures + 1`, or None: give up (out of retries, or the
        server asks for a longer wait than we are willing to sit through)."""
        if failures > retries:
            return None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        return self.delay(failures, retry_after)


def _json_body(body: str | None) -> dict:
    if not body or not body.lstrip().startswith("{"):
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name) or headers.get(name.lower())


def error_for_status(status: int, headers: Mapping[str, str], body: str | None, *, source: str | None,
                     token_env: str | None, authed: bool, what: str = "", label: str | None = None) -> SourceError:
    """The error for a non-success answer: the single status -> type table of the project.

    `source` goes on the error ("huggingface", "civitai", or None for a plain host); `label` (default:
    `source`) and `what` ("search", "download"…) start the message; `body` is a small part of the answer
    (the Hub and Civitai explain errors in JSON). The caller scrubs it with `hosts.redact_error`."""
    code = _header(headers, "X-Error-Code")
    text = _header(headers, "X-Error-Message")
    data = _json_body(body)
    detail = str(text or data.get("message") or data.get("error") or f"HTTP {status}")[:300]
    name = label or source or "upstream"
    where = f"{name}: {what}: " if what else f"{name}: "
    if code == "GatedRepo":
        hint = ("Your token's account has not been granted access: accept the licence on the model page."
                if authed else f"Set {HF_TOKEN_ENV} to a Hugging Face token whose account accepted the licence.")
        return AuthRequired(where + detail, hint=hint, source=source, token_env=HF_TOKEN_ENV, gated=True)
    if code in _NOT_FOUND_CODES:
        hint = (f"If the repository is private, set {HF_TOKEN_ENV} to a token with access."
                if code == "RepoNotFound" and not authed else None)
        return NotFound(where + detail, source=source, hint=hint)
    if status in (401, 403):
        if "deadline" in data:
            return AuthRequired(where + detail, source=source, token_env=token_env, reason="early_access",
                                hint=f"Early access until {data.get('deadline')}; it becomes public then.")
        if status == 401 and authed:  # a token was sent and refused: it is wrong, not short of rights
            return AuthRequired(where + detail, source=source, token_env=token_env, reason="invalid_token",
                                hint=f"The token in {token_env} was refused; check it." if token_env else None)
        reason = "no_access" if authed else "login_required"
        hint = (f"The key in {token_env} has no access to it." if authed and token_env
                else f"Set {token_env} to sign in." if token_env else "This file needs authentication.")
        return AuthRequired(where + detail, hint=hint, source=source, token_env=token_env, reason=reason)
    if status in (404, 410):
        return NotFound(where + detail, source=source,
                        hint="Check the URL; the file may have been moved or deleted." if what == "download" else None)
    if status == 429:
        ra = parse_retry_after(_header(headers, "Retry-After"))
        return RateLimited(where + "rate limited", source=source, retry_after=ra,
                           hint=f"Try again in {math.ceil(ra)} s." if ra else "Try again later; a token may raise the limit.")
    if status >= 500:
        return SourceUnavailable(where + f"server error {status}", source=source,
                                 hint="The service is having trouble; try again later.")
    return SourceUnavailable(where + f"unexpected HTTP {status}: {detail}", source=source)
