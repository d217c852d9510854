"""Failure switches: runtime-settable, counted fault injection shared by all fakes.

``fake.switch(target, on=None, times=None, **knobs)`` adds one :class:`Switch`.
A request that *would otherwise succeed* asks the board for the knobs that
apply to it (:meth:`SwitchBoard.take`): every active switch whose ``target``
is one of the request's keys (``None`` matches everything), whose ``on``
matches the serving server's name (e.g. ``"hub"``, ``"cdn"``, ``"civitai"``,
``"storage"``), and which contributes at least one knob that this kind of
response can honour and that no older switch already set, *fires*: its
``fired`` count goes up and its knobs are merged. So switches combine
(``throttle_bps`` forever + one ``drop_after``) and queue up when they
conflict: ``status=429, times=2`` then ``status=503, times=1`` answers 429,
429, 503, then normally. A switch with ``times=N`` fires N times, then is
inert; ``times=None`` fires forever.

What each response kind honours (so e.g. a HEAD never consumes a ``drop_after``
meant for the body, and a Hub 302 never consumes a body fault meant for the CDN):

* API/JSON routes: :data:`STATUS_KNOBS`
* redirects carrying file metadata (Hub ``/resolve`` 302): status + :data:`META_KNOBS`
* byte responses: status + meta; GET adds :data:`RANGE_KNOBS` and :data:`BODY_KNOBS`

Knobs:
    status (int): answer with this status (429, 5xx, 404...) instead of success.
    retry_after (int | str | datetime): ``Retry-After`` on that answer (seconds or HTTP-date).
    rate_limit (bool): add IETF ``RateLimit``/``RateLimit-Policy`` headers (``r=0;t=retry_after``).
    location (str): ``Location`` on that answer: with ``status=302`` (or 301/303/307/308) the
        request is redirected anywhere (another host, a private IP, ``file://``…).
    no_etag, etag_changes (bool): omit the ETag / serve a different one (as if the file changed).
    no_commit, no_size (bool): Hub only: omit ``X-Repo-Commit`` / ``X-Linked-Size``.
    ignore_range, force_416 (bool): answer 200 full body to a Range / always 416.
    drop_after (int): send full headers, N bytes of this response's body, then close the connection.
    stall_at (int), stall_seconds (float): pause that long after N body bytes.
    throttle_bps (int): cap this connection's body rate (bytes/s).
    wrong_bytes (bool): flip some bytes, keep the size.
    short_body, long_body (int): body N bytes shorter/longer than the file, with an honest
        ``Content-Length`` (a valid HTTP response that disagrees with the metadata size).
    chunked (bool): no ``Content-Length``: the body is sent with chunked transfer encoding, so
        the client learns the size only at the end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

STATUS_KNOBS = frozenset({"status", "retry_after", "rate_limit", "location"})
META_KNOBS = frozenset({"no_etag", "etag_changes", "no_commit", "no_size"})
RANGE_KNOBS = frozenset({"ignore_range", "force_416"})
BODY_KNOBS = frozenset(
    {"drop_after", "stall_at", "stall_seconds", "throttle_bps", "wrong_bytes", "short_body", "long_body",
     "chunked"}
)
ALL_KNOBS = STATUS_KNOBS | META_KNOBS | RANGE_KNOBS | BODY_KNOBS
# Knobs that only qualify other knobs: a switch does not fire because of them alone.
_MODIFIERS = frozenset({"retry_after", "rate_limit", "stall_seconds", "location"})

API = STATUS_KNOBS
REDIRECT = STATUS_KNOBS | META_KNOBS
BYTES_HEAD = STATUS_KNOBS | META_KNOBS
BYTES_GET = STATUS_KNOBS | META_KNOBS | RANGE_KNOBS | BODY_KNOBS

__all__ = ["ALL_KNOBS", "API", "BYTES_GET", "BYTES_HEAD", "REDIRECT", "Knobs", "Switch", "SwitchBoard"]


@dataclass
class Knobs:
    """The merged knobs that apply to one response (all off by default)."""

    status: int | None = None
    retry_after: int | str | datetime | None = None
    rate_limit: bool = False
    location: str | None = None
    no_etag: bool = False
    etag_changes: bool = False
    no_commit: bool = False
    no_size: bool = False
    ignore_range: bool = False
    force_416: bool = False
    drop_after: int | None = None
    stall_at: int | None = None
    stall_seconds: float = 0.0
    throttle_bps: int | None = None
    wrong_bytes: bool = False
    short_body: int = 0
    long_body: int = 0
    chunked: bool = False
    applied: list[str] = field(default_factory=list)  # names of the knobs that took effect (for the log)


@dataclass
class Switch:
    """One fault rule; ``fired`` counts the responses it has affected."""

    target: str | None
    on: str | None
    knobs: dict
    times: int | None = None
    fired: int = 0

    @property
    def active(self) -> bool:
        return self.times is None or self.fired < self.times

    @property
    def remaining(self) -> int | None:
        return None if self.times is None else max(0, self.times - self.fired)


class SwitchBoard:
    """Thread-safe list of :class:`Switch` rules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._switches: list[Switch] = []

    def add(self, target: str | None = None, *, on: str | None = None, times: int | None = None, **knobs) -> Switch:
        unknown = set(knobs) - ALL_KNOBS
        if unknown:
            raise TypeError(f"unknown switch knob(s): {sorted(unknown)}; known: {sorted(ALL_KNOBS)}")
        if not set(knobs) - _MODIFIERS:
            raise TypeError("a switch needs at least one effective knob")
        if times is not None and times < 0:
            raise ValueError("times must be >= 0 or None")
        sw = Switch(target=None if target is None else str(target), on=on, knobs=dict(knobs), times=times)
        with self._lock:
            self._switches.append(sw)
        return sw

    def clear(self) -> None:
        with self._lock:
            self._switches.clear()

    @property
    def switches(self) -> list[Switch]:
        with self._lock:
            return list(self._switches)

    def take(self, keys: Iterable[str], server: str, applicable: frozenset[str]) -> Knobs:
        """Fire every matching switch and return the merged knobs for this response."""
        keyset = set(keys)
        merged: dict = {}
        with self._lock:
            for sw in self._switches:
                if not sw.active or (sw.on is not None and sw.on != server):
                    continue
                if sw.target is not None and sw.target not in keyset:
                    continue
                usable = {k: v for k, v in sw.knobs.items() if k in applicable}
                if not set(usable) - _MODIFIERS - set(merged):
                    continue  # nothing this response can use, or an older switch already set it
                sw.fired += 1
                for k, v in usable.items():
                    merged.setdefault(k, v)
        knobs = Knobs(**merged)
        knobs.applied = sorted(k for k in merged if k not in _MODIFIERS)
        return knobs
