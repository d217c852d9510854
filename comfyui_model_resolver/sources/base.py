"""The source-provider interface, the per-model lookup context and provider status tracking.

A `Source` turns a model reference into candidates. It raises the typed errors of `errors.py`
(AuthRequired, RateLimited, NotFound, SourceUnavailable) for failures that stop it, and records
softer ones (one gated repo among several) on the context; `SourceSet` runs the providers and turns
both into a `ProviderStatus` per provider.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from ..errors import AuthRequired, RateLimited, SourceError, SourceUnavailable
from ..types import Candidate, ModelRef, ProviderStatus


class BudgetExhausted(Exception):
    """The model's upstream request budget is spent. Providers stop and return what they have."""


@dataclass
class RequestBudget:
    """Upstream requests one model may cost, counted as they are made (cache hits are free)."""

    limit: int
    used: int = 0

    @property
    def left(self) -> int:
        return max(0, self.limit - self.used)

    def spend(self, n: int = 1) -> None:
        if self.used + n > self.limit:
            raise BudgetExhausted(f"request budget of {self.limit} spent")
        self.used += n


@dataclass
class LookupContext:
    """Everything a provider may use or report while looking for one model."""

    ref: ModelRef
    budget: RequestBudget
    sha256: str | None = None  # full-file sha256 when known (the workflow's hash, or a local file's)
    note_links: tuple[str, ...] = ()  # model links written in the workflow's notes
    family: str | None = None  # the workflow's model family (sd15, sdxl, flux…), when its models agree
    packs: frozenset[str] = frozenset()  # the custom-node packs of the workflow's loaders
    queries: dict[str, list[str]] = field(default_factory=dict)
    problems: list[tuple[str, SourceError]] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)

    def tried(self, source: str, query: str) -> None:
        lst = self.queries.setdefault(source, [])
        if query not in lst:
            lst.append(query)

    def report(self, source: str, error: SourceError) -> None:
        """A failure that did not stop the provider (e.g. one gated repo)."""
        self.problems.append((source, error))

    def count(self, source: str, *, cached: bool = False) -> None:
        bucket = self.cache_hits if cached else self.requests
        bucket[source] = bucket.get(source, 0) + 1


class Source(abc.ABC):
    """A place that knows where model files can be downloaded."""

    name: str = "source"

    @property
    def disabled_reason(self) -> str | None:
        """Why this provider is off (e.g. CMR_DISABLE_CATALOG=1), or None when it runs."""
        return None

    @abc.abstractmethod
    async def candidates(self, ref: ModelRef, ctx: LookupContext) -> list[Candidate]:
        """Candidates for one model; raise a SourceError when the provider cannot answer."""

    async def search(self, query: str, folder: str | None, ctx: LookupContext) -> list[Candidate]:
        """Free-text search (the UI's search box). Providers that cannot search return []."""
        return []

    async def close(self) -> None:
        return None


_SEVERITY = {"ok": 0, "auth_required": 1, "unavailable": 2, "rate_limited": 3, "disabled": 4}


def plain_message(state: str, host: str, error: SourceError) -> str:
    """What a provider's state means, in words a user can act on: no exception names, no errno text
    (the upstream's own wording stays in ProviderStatus.detail and the log)."""
    if state == "unavailable":
        return f"can't reach {host}: check the network or proxy"
    if state == "rate_limited":
        wait = getattr(error, "retry_after", None)
        return f"{host} asks us to slow down" + (f": try again in {int(wait + 0.999)} s" if wait else "")
    return error.message + (f" ({error.hint})" if error.hint else "")


def state_of(error: SourceError) -> str:
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, AuthRequired):
        return "auth_required"
    if isinstance(error, SourceUnavailable):
        return "unavailable"
    return "ok"  # NotFound: the provider answered


class StatusBoard:
    """Aggregates what every provider did over one run into ProviderStatus values."""

    def __init__(self, sources: Iterable[Source], hosts: Mapping[str, str | None] | None = None) -> None:
        sources = list(sources)
        self._order = [s.name for s in sources]
        self._hosts = dict(hosts or {})
        self._st: dict[str, dict] = {}
        for s in sources:
            reason = s.disabled_reason
            self._st[s.name] = self._blank(s.name, state="disabled" if reason else "ok", message=reason)

    def _blank(self, name: str, **values) -> dict:
        return {"name": name, "state": "ok", "message": None, "host": self._hosts.get(name), "detail": None,
                "retry_after": None, "token_env": None, "queries": [], "requests": 0, "cache_hits": 0, **values}

    def record(self, source: str, error: SourceError) -> None:
        st = self._st.setdefault(source, self._blank(source))
        new = state_of(error)
        if _SEVERITY[new] >= _SEVERITY[st["state"]] and new != "ok":
            st["state"] = new
            st["detail"] = error.message
            st["message"] = plain_message(new, st["host"] or source, error)
            if isinstance(error, RateLimited):
                st["retry_after"] = error.retry_after
            if isinstance(error, AuthRequired):
                st["token_env"] = error.token_env

    def is_down(self, source: str) -> bool:
        """Unavailable or rate limited in this run: the other models do not ask it again."""
        st = self._st.get(source)
        return st is not None and st["state"] in ("unavailable", "rate_limited")

    def absorb(self, ctx: LookupContext) -> None:
        for source, qs in ctx.queries.items():
            st = self._st.get(source)
            if st is not None:
                st["queries"].extend(q for q in qs if q not in st["queries"])
        for source, n in ctx.requests.items():
            if source in self._st:
                self._st[source]["requests"] += n
        for source, n in ctx.cache_hits.items():
            if source in self._st:
                self._st[source]["cache_hits"] += n
        for source, err in ctx.problems:
            self.record(source, err)

    def statuses(self) -> tuple[ProviderStatus, ...]:
        names = self._order + [n for n in self._st if n not in self._order]
        return tuple(ProviderStatus(**{**self._st[n], "queries": tuple(self._st[n]["queries"])}) for n in names)
