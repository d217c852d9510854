"""`FleetView`: what every host shows of the fleet's jobs (the job list, SSE, the sidebar, Gradio).

It holds the last snapshot of the volume's jobs read from Redis (refreshed about once a second)
and the progress the running hosts publish (at most once a second per job, and at every change
of state). A job running on this host is shown from this host's own, fresher numbers.

    view.load(fleet_jobs)           # a snapshot from FleetQueue.snapshot(): returns the changed jobs
    view.progress(message)          # a progress message another host published: the Job, or None
    view.merge(local_jobs, online)  # the job list this host shows
"""
from __future__ import annotations

import json
import time
from typing import Iterable

from ..downloads import intervals as iv
from ..downloads.job import Job
from ..downloads.store import JobRecord
from .queue import FleetJob

__all__ = ["FleetView", "job_of", "progress_message"]

#: A host's published progress stays in the view this long over the stored record's checkpoint.
PROGRESS_FRESH_SECONDS = 10.0


def job_of(rec: JobRecord, *, state: str, host: str | None, leased: bool, bytes_done: int | None = None,
           speed: float = 0.0, connections: int = 0) -> Job:
    """A fleet job as the public `Job`: `lease` is "held" while a host runs it, "waiting" while it
    is queued for one."""
    rec.state = state
    if bytes_done is None:
        bytes_done = rec.total if state == "completed" and rec.total is not None else iv.covered(
            tuple(x) for x in rec.done)
    lease = "held" if leased else ("waiting" if state == "queued" else None)
    return Job.from_record(rec, bytes_done=bytes_done, speed=speed, connections=connections, host=host, lease=lease)


def progress_message(job: Job, rec: JobRecord, host: str) -> dict:
    """What a host publishes about a job it runs (the record plus its live numbers)."""
    return {"rec": rec.to_json(), "state": job.state.value, "bytes": job.bytes_done, "speed": job.speed,
            "conn": job.connections, "host": host, "from": host}


class FleetView:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self._live: dict[str, tuple[float, Job]] = {}  # job id -> (when, Job) from published progress

    def load(self, fleet_jobs: Iterable[FleetJob]) -> list[Job]:
        """Replace the snapshot; returns the jobs whose state, host or lease changed (for the event bus)."""
        now = time.monotonic()
        new: dict[str, Job] = {}
        changed: list[Job] = []
        for fj in fleet_jobs:
            try:
                rec = JobRecord.from_json(fj.record)
            except (ValueError, TypeError):
                continue  # a record this version cannot read: not shown rather than crash the list
            job = job_of(rec, state=fj.state, host=fj.host, leased=fj.leased)
            live = self._live.get(fj.id)
            if live is not None and now - live[0] < PROGRESS_FRESH_SECONDS and live[1].state == job.state \
                    and live[1].bytes_done >= job.bytes_done:
                job = job.model_copy(update={"bytes_done": live[1].bytes_done, "speed": live[1].speed,
                                             "eta": live[1].eta, "connections": live[1].connections})
            old = self.jobs.get(fj.id)
            if old is None or (old.state, old.host, old.lease) != (job.state, job.host, job.lease):
                changed.append(job)
            new[fj.id] = job
        self.jobs = new
        self._live = {k: v for k, v in self._live.items() if k in new and now - v[0] < PROGRESS_FRESH_SECONDS}
        return changed

    def progress(self, message: dict) -> Job | None:
        """A published progress message as a Job (None when it is not one)."""
        try:
            rec = JobRecord.from_json(message["rec"])
            job = job_of(rec, state=str(message["state"]), host=message.get("host"),
                         leased=message["state"] in ("running", "verifying"), bytes_done=int(message["bytes"]),
                         speed=float(message.get("speed") or 0.0), connections=int(message.get("conn") or 0))
        except (KeyError, ValueError, TypeError, json.JSONDecodeError):
            return None
        known = self.jobs.get(job.id)
        if known is not None and known.updated > job.updated:
            return None  # sent before a change the view already shows (messages may arrive late)
        self._live[job.id] = (time.monotonic(), job)
        self.jobs[job.id] = job
        return job

    def put(self, job: Job) -> None:
        """A job this host just submitted or changed (before the next snapshot shows it)."""
        self.jobs[job.id] = job

    def merge(self, local: Iterable[tuple[Job, bool]], *, online: bool) -> list[Job]:
        """The job list: the fleet's, with this host's running jobs from its own numbers. While
        Redis is away, this host's other jobs are shown too (the snapshot may be out of date)."""
        out = dict(self.jobs)
        for job, running in local:
            if running or job.id not in out or not online:
                out[job.id] = job
        return sorted(out.values(), key=lambda j: j.created)
