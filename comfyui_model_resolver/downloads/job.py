"""`Job`: the public, JSON-serialisable snapshot of one download, and the speed meter behind it."""
from __future__ import annotations

import time
from collections import deque
from datetime import datetime, timezone
from typing import Literal

from ..hosts import redact_url
from ..records import Record
from ..types import DownloadState, ProgressEvent
from .store import JobRecord

__all__ = ["Job", "SpeedMeter", "TERMINAL_STATES"]

TERMINAL_STATES = frozenset({DownloadState.completed, DownloadState.failed, DownloadState.cancelled})


class Job(Record):
    """One download as adapters show it. `url` never carries secrets (token=, signatures).

    `error` is ``{"type", "code", "message", "hint"}`` when the job failed; `detail` says what the
    job is doing or waiting for ("retrying in 4 s: …", "waiting for process 123 on host-b").
    In fleet mode (CMR_REDIS_URL) `host` names the host that runs (or ran) the job, and `lease` is
    "held" while a host runs it, "waiting" while it is queued for a host to take it.
    """

    id: str
    url: str
    folder: str
    filename: str | None
    path: str | None
    state: DownloadState
    bytes_done: int = 0
    total: int | None = None
    speed: float = 0.0  # bytes per second, over the last few seconds
    eta: float | None = None  # seconds
    sha256: str | None = None  # of the downloaded file (set once verified)
    expected_sha256: str | None = None
    error: dict | None = None
    created: datetime
    updated: datetime
    priority: int = 0
    source: str | None = None
    connections: int = 0
    warnings: tuple[str, ...] = ()
    detail: str | None = None
    host: str | None = None
    lease: Literal["held", "waiting"] | None = None

    @classmethod
    def from_record(cls, rec: JobRecord, *, bytes_done: int, speed: float = 0.0, connections: int = 0,
                    host: str | None = None, lease: Literal["held", "waiting"] | None = None) -> "Job":
        eta = None
        if rec.total is not None and speed > 0 and rec.state == "running":
            eta = max(0.0, (rec.total - bytes_done) / speed)
        return cls(
            id=rec.id, url=redact_url(rec.url), folder=rec.folder, filename=rec.filename, path=rec.path,
            state=DownloadState(rec.state), bytes_done=bytes_done, total=rec.total, speed=round(speed, 1),
            eta=None if eta is None else round(eta, 1), sha256=rec.sha256, expected_sha256=rec.expected_sha256,
            error=rec.error, created=datetime.fromtimestamp(rec.created, timezone.utc),
            updated=datetime.fromtimestamp(rec.updated, timezone.utc), priority=rec.priority, source=rec.source,
            connections=connections, warnings=tuple(rec.warnings), detail=rec.detail, host=host, lease=lease)

    def event(self) -> ProgressEvent:
        return ProgressEvent(job_id=self.id, state=self.state, filename=self.filename or "", folder=self.folder,
                             bytes_done=self.bytes_done, total=self.total, speed=self.speed, eta=self.eta,
                             error=self.error, path=self.path, sha256=self.sha256, detail=self.detail,
                             host=self.host, lease=self.lease)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES


class SpeedMeter:
    """Bytes per second over a sliding window."""

    def __init__(self, window: float = 5.0, clock=time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, n: int) -> None:
        self.total += n
        now = self._clock()
        self._samples.append((now, self.total))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.popleft()

    def reset(self) -> None:
        self._samples.clear()

    @property
    def speed(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        now = self._clock()
        if now - t1 > self.window:  # nothing arrived for a while
            return 0.0
        span = max(now - t0, 1e-6)
        return (b1 - b0) / span
