"""`Leases`: the leases a fleet host holds on the jobs it runs, and what it does when it loses one.

    leases.granted(job_id, token)    # a lease taken (claim, or re-held after an outage)
    await leases.renew()             # every third of a lease: extend, apply requests, stop lost jobs
    await leases.confirm(entry)      # right before the rename into place; raises LeaseLost
    await leases.lost(entry, why)    # stop the job here; a cancelled job's part file goes too

Every lease carries a fencing token (scripts.py). The host passes it with every checkpoint (the
manager's save → FleetLink.saved) and right before `place()` renames the finished file
(`confirm`): Redis refuses both once this host no longer holds the lease under that token —
it ran out and was reaped (the host stalled, or Redis was slow), another host took the job over,
or the job was cancelled. Then the job stops here and nothing is recorded over the fleet's state:
the part file stays for the host that resumes it, or is deleted (under its file lock) when the
job was cancelled, unless the cancel kept it.

Redis unreachable at the rename: the documented fall-back (the host works on its own until Redis
is back, then reconciles) applies, except that a job this host knows to be cancelled (the fleet
view said so, or a cancel request reached it) is never put in place.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..downloads.containment import check_writes
from ..downloads.locks import file_lock
from ..downloads.paths import LOCK_SUFFIX, PART_SUFFIX, target_path
from ..downloads.placement import remove_part_quietly
from ..downloads.runner import JobEntry, LeaseLost
from ..errors import DownloadCancelled, ResolverError
from .connect import is_outage

if TYPE_CHECKING:
    from .link import FleetLink

log = logging.getLogger(__name__)

__all__ = ["Leases", "LeaseLost"]

CANCELS = ("cancel", "cancel-keep")


class Leases:
    def __init__(self, link: "FleetLink") -> None:
        self.link = link
        self.tokens: dict[str, int] = {}  # job id -> the fencing token of this host's lease on it
        self.requests: dict[str, str] = {}  # job id -> a cancel another host asked for (seen on pub/sub)

    def granted(self, job_id: str, token: int) -> None:
        self.link.owned.add(job_id)
        if token > 0:
            self.tokens[job_id] = token

    def ended(self, job_id: str) -> None:
        self.link.owned.discard(job_id)
        self.tokens.pop(job_id, None)
        self.requests.pop(job_id, None)

    def token(self, job_id: str) -> int | None:
        return self.tokens.get(job_id)

    def requested(self, job_id: str, action: str) -> None:
        if action in CANCELS:
            self.requests[job_id] = action

    # ---- renewal -------------------------------------------------------------------------------
    async def renew(self, ids: list[str]) -> None:
        """Extend the leases of these jobs (they run here); stop those this host lost; apply a
        pause, cancel or new priority another host asked for."""
        link, m = self.link, self.link.m
        for job_id, r in (await link.queue.renew({i: self.tokens.get(i) for i in ids})).items():
            entry = m.entry(job_id)
            if entry is None:
                continue
            if not r.held:
                await self.lost(entry, r.control or "lost")
                continue
            if r.control:
                await link.queue.clear_control(job_id)
                if r.control == "pause":
                    await m.pause(job_id)
                else:
                    await m.cancel(job_id, keep_partial=r.control == "cancel-keep")
            elif r.priority is not None and r.priority != entry.rec.priority:
                await m.set_priority(job_id, r.priority)

    # ---- the fence before the rename ---------------------------------------------------------------
    async def confirm(self, entry: JobEntry) -> None:
        """Called right before the verified part file is renamed into place: returns when this
        host may rename it, else stops the job (see `lost`) and raises LeaseLost."""
        link = self.link
        job_id = entry.rec.id
        if link.online:
            try:
                ok, why = await link.queue.fence(job_id, self.tokens.get(job_id))
            except Exception as exc:  # noqa: BLE001 - an outage: the fall-back below
                if not is_outage(exc):
                    raise
                link.went_away(exc)
                link.dirty.add(job_id)
            else:
                if ok:
                    return
                self._refuse(entry, why)
        if self._known_cancelled(job_id):  # Redis away: never put a cancelled job's file in place
            self._refuse(entry, self.requests.get(job_id, "cancel"))

    def _refuse(self, entry: JobEntry, why: str) -> None:
        log.warning("fleet: not putting %s in place: %s", entry.rec.filename or entry.rec.id[:8], _WHY.get(why, why))
        self.link.later(self.lost(entry, why, stopping=True))
        raise LeaseLost(why)

    def _known_cancelled(self, job_id: str) -> bool:
        job = self.link.view.jobs.get(job_id)
        return job_id in self.requests or (job is not None and job.state.value == "cancelled")

    # ---- a lost job ------------------------------------------------------------------------------
    async def lost(self, entry: JobEntry, why: str, *, stopping: bool = False) -> None:
        """This host no longer holds the job (`why`: lost, completed, pause, cancel, cancel-keep):
        stop it here without recording anything over the fleet's state; follow a pause or cancel
        in this host's own copy of the job; delete the part file of a cancelled job."""
        link, m = self.link, self.link.m
        rec = entry.rec
        self.ended(rec.id)
        if stopping and entry.task is not None:  # the job stops itself (LeaseLost): let it release its lock
            await asyncio.wait({entry.task})
        if m.runs_here(rec.id):
            log.warning("fleet: job %s is no longer this host's (%s); stopping it here", rec.id[:8], _WHY.get(why, why))
            await m.stop_task(entry, "lost")
        if why not in (*CANCELS, "pause") or rec.state in ("cancelled", "completed"):
            return  # another host resumes it from the part file (or finished it)
        if why == "pause":
            rec.state, rec.detail = "paused", None
        else:
            if why == "cancel" and rec.path and await self.remove_part(rec.id, rec.folder, rec.filename, rec.path):
                rec.done = []
            rec.state, rec.detail = "cancelled", None
            rec.error = DownloadCancelled("Cancelled" + (" (partial file kept)." if why == "cancel-keep" else "."),
                                          hint="Submit it again to download it.").to_dict()
            m.release_path(rec)
        await m.save(rec)
        entry.settled.set()
        m.publish(entry, force=True)
        link.view.put(m.snapshot(entry))
        link.changed()

    async def remove_part(self, job_id: str, folder: str, filename: str | None, path: str) -> bool:
        """Delete a cancelled job's part file, if its path is one this host would write and no
        process holds its file lock (one that does is still writing it: it learns of the cancel
        at its next checkpoint, and deletes the file then)."""
        layout = self.link.m.layout
        try:
            if await asyncio.to_thread(target_path, layout, folder, filename or "") != path:
                return False
            await asyncio.to_thread(check_writes, layout, path, path + LOCK_SUFFIX, path + PART_SUFFIX)
            lock = await file_lock(path, job_id)
            if not await lock.try_acquire():
                return False
        except (ResolverError, OSError):
            return False
        try:
            await asyncio.to_thread(remove_part_quietly, layout, path + PART_SUFFIX)
        finally:
            await lock.release()
        return True


_WHY = {"lost": "its lease ran out or another host took it over", "completed": "another host completed it",
        "pause": "it was paused", "cancel": "it was cancelled", "cancel-keep": "it was cancelled (part file kept)"}
