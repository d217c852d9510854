"""`Reconciler`: a fleet host puts its jobs back into Redis when Redis is back after an outage.

    await reconciler.run(full)     # on reconnecting (full: Redis lost its data, a new epoch)
    await reconciler.deferred()    # every renewal: the jobs left to their host for a lease, now due

* a job this host runs is leased to it again (SAVE with hold), or stopped when the fleet has since
  given it to another host, paused, cancelled or completed it (lease.py: `lost`);
* a job Redis no longer knows is queued again, except one that another host was running: that host
  gets one lease to put it back itself (it still holds the part file and its lock), then it is queued;
* an outcome reached while Redis was away (completed, failed, cancelled here) is recorded.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..downloads.runner import ACTIVE_STATES
from ..downloads.store import JobRecord
from ..hosts import redact_url

if TYPE_CHECKING:
    from .link import FleetLink

log = logging.getLogger(__name__)

__all__ = ["Reconciler"]


def target_key(rec: JobRecord) -> str:
    """One job per target: the final path, or (before the server named the file) folder and URL."""
    return rec.path or f"url:{rec.folder}:{rec.url}"


class Reconciler:
    def __init__(self, link: "FleetLink") -> None:
        self.link = link
        self.due: dict[str, float] = {}  # job id -> when to queue it again (see _elsewhere)

    async def run(self, full: bool, only: set[str] | None = None) -> None:
        """Put this host's view of its jobs back into Redis: all of them (`full`: Redis restarted
        empty), the ones it runs or changed while Redis was away, or `only` these."""
        link, m = self.link, self.link.m
        ids = only if only is not None else \
            link.dirty | link.owned | ({e.rec.id for e in m.entries()} if full else set())
        entries = {i: e for i in ids if (e := m.entry(i)) is not None}
        known = await link.queue.states(list(entries))
        for job_id, entry in entries.items():
            rec = entry.rec
            if known.get(job_id) is not None:
                self.due.pop(job_id, None)
            if m.runs_here(job_id):
                ok, got = await link.queue.save(job_id, rec.to_json(), rec.state, target_key(rec), hold=True)
                if ok:
                    link.leases.granted(job_id, int(got))
                else:
                    link.later(link.leases.lost(entry, str(got)))
            elif known.get(job_id) is None:
                if rec.state in ACTIVE_STATES:
                    if self._elsewhere(job_id):
                        continue
                    await link.queue.submit(job_id, target_key(rec), rec.to_json())
                    log.info("fleet: job %s (%s) queued again", job_id[:8], rec.filename or redact_url(rec.url))
                else:
                    await link.queue.save(job_id, rec.to_json(), rec.state, target_key(rec))
            elif job_id in link.dirty:
                await link.queue.save(job_id, rec.to_json(), rec.state, target_key(rec))
            link.dirty.discard(job_id)

    def _elsewhere(self, job_id: str) -> bool:
        """A job Redis lost that another host was running: for one lease, leave it to that host to
        put it back (queueing it again now would start a second host on it, which waits for the
        first one's file lock and then resumes from an older checkpoint). Then queue it again."""
        link = self.link
        due = self.due.get(job_id)
        if due is None:
            seen = link.view.jobs.get(job_id)
            if seen is None or seen.lease != "held" or seen.host == link.host:
                return False
            due = self.due[job_id] = time.monotonic() + link.lease_ms / 1000
        if time.monotonic() < due:
            return True
        del self.due[job_id]
        return False

    async def deferred(self) -> None:
        now = time.monotonic()
        if due := {i for i, t in self.due.items() if t <= now}:
            await self.run(False, only=due)
