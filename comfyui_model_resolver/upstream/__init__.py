"""The upstream policy: the one home for how we talk to Hugging Face, Civitai and download hosts.

* `transport`: every outbound request goes through `send`, which follows redirects itself and checks
  each hop against the allowlist (`hosts.check_url`) and sends each host only its own token
  (`hosts.token_for`, the only place that routes tokens). `open_session` builds every aiohttp session.
* `policy`: the status -> error table (`error_for_status`), which statuses are worth another try
  (`RETRY_STATUSES`), Retry-After (`parse_retry_after`) and the backoff (`RetryPolicy`).

Sources (Hub REST API, Civitai, pre-flight) and downloads both use it; it imports only errors,
hosts and settings, so neither has to import the other.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .policy import (CIVITAI_TOKEN_ENV, HF_TOKEN_ENV, RETRY_STATUSES, RetryPolicy, error_for_status,
                     parse_retry_after)

if TYPE_CHECKING:  # pragma: no cover
    from .transport import (MAX_REDIRECTS, USER_AGENT, Retryable, Sent, TokenPolicy, fetch_configured, host_of,
                            open_session, refused_hop, send)

__all__ = ["CIVITAI_TOKEN_ENV", "HF_TOKEN_ENV", "MAX_REDIRECTS", "RETRY_STATUSES", "USER_AGENT", "RetryPolicy",
           "Retryable", "Sent", "TokenPolicy", "error_for_status", "fetch_configured", "host_of", "open_session",
           "parse_retry_after", "refused_hop", "send"]

# The transport's names load on first use: it imports aiohttp, and the policy's users (the retry
# backoff of a download, the status table) need not wait for it (adapters/cli.py `_preload`).
_TRANSPORT = frozenset({"MAX_REDIRECTS", "USER_AGENT", "Retryable", "Sent", "TokenPolicy", "fetch_configured",
                        "host_of", "open_session", "refused_hop", "send"})


def __getattr__(name: str) -> Any:
    if name not in _TRANSPORT:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import transport

    return getattr(transport, name)
