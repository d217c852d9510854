"""`FleetLink`: a download manager's side of the fleet queue (with CMR_REDIS_URL).

    link = FleetLink(manager)      # the manager builds it in start() when CMR_REDIS_URL is set
    await link.start()             # connects, reconciles this host's jobs, starts the loops
    job = await link.submit(rec)   # to the shared queue (or the job already there for the file)
    link.jobs(); link.job(id); await link.wait(id); await link.control(id, "pause")
    await link.stop_loops(); ...the manager stops its jobs...; await link.close()

Each host runs three loops:
* claim: while this host has a free download slot (CMR_MAX_CONCURRENT_DOWNLOADS) and the fleet is
  under its cap (CMR_FLEET_MAX_CONCURRENT), take the next queued job from the stream under a lease
  and run it here with the manager's runner, from the record (and ``.part`` file) the last host left;
* tick: renew this host's leases every third of a lease (lease.py: apply a pause, cancel or new
  priority another host asked for; stop a job whose lease this host lost), queue again the jobs
  whose host died (`reap`), refresh the fleet view every second;
* listen: progress other hosts publish, shown on this host's event bus (SSE, the sidebar).

Redis away: the host says so once (a warning in the log and `status()`), keeps running the jobs it
has, runs new submissions itself, and remembers what changed. Redis back: reconcile.py puts this
host's jobs back: the ones it runs are leased to it again (or stopped, when another host took
them over meanwhile), the ones Redis lost (it restarted empty: a new epoch) are queued again
(one that another host ran, after that host had a lease to put it back itself), and outcomes
reached while it was away are recorded. Nothing is lost: every job is also in this host's job
database.

Every Redis call has a bounded wait (socket timeouts in connect.py), and closing never waits on
Redis for longer than CLOSE_SECONDS per step: a host shuts down even when Redis hangs.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ..downloads.job import TERMINAL_STATES, Job
from ..downloads.runner import ACTIVE_STATES
from ..downloads.store import JobRecord
from ..errors import JobNotFound
from ..hosts import redact_url
from .connect import bounded, connect, default_host_name, is_outage
from .lease import Leases
from .queue import FleetQueue
from .reconcile import Reconciler, target_key
from .view import FleetView, job_of, progress_message

if TYPE_CHECKING:
    from ..downloads.manager import DownloadManager

log = logging.getLogger(__name__)

__all__ = ["FleetLink"]

VIEW_REFRESH_SECONDS = 1.0
PUBLISH_SECONDS = 1.0  # progress published to the fleet, per job (changes of state at once)
CLAIM_BLOCK_MS = 2000
RETRY_SECONDS = 1.0


class FleetLink:
    def __init__(self, manager: "DownloadManager") -> None:
        s = manager.settings
        assert s.redis_url and manager.volume
        self.m = manager
        self.host = s.fleet_host or default_host_name()
        self.url = s.redis_url
        self.lease_ms = int(s.fleet_lease_seconds * 1000)
        self.client = connect(s.redis_url)
        self.queue = FleetQueue(self.client, volume=manager.volume, host=self.host, lease_ms=self.lease_ms,
                                cap=s.fleet_max_concurrent)
        self.view = FleetView()
        self.leases = Leases(self)
        self.online = False
        self.warning: str | None = None
        self.owned: set[str] = set()  # jobs this host runs under its lease (or runs alone while Redis is away)
        self.dirty: set[str] = set()  # jobs changed while Redis was away
        self.reconcile = Reconciler(self)
        self.epoch: str | None = None
        self._changed = asyncio.Event()
        self._loops: list[asyncio.Task] = []
        self._side: set[asyncio.Task] = set()
        self._published: dict[str, float] = {}
        self._renewed = 0.0

    # ---- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        await self._connect()
        if not self.online:  # Redis away at start: run what this host left unfinished, alone
            for entry in list(self.m.entries()):
                if entry.rec.state in ACTIVE_STATES and not self.m.runs_here(entry.rec.id):
                    self.owned.add(entry.rec.id)
                    self.dirty.add(entry.rec.id)
                    self.m.schedule(entry)
        loop = asyncio.get_running_loop()
        for name, coro in (("claim", self._claim_loop()), ("tick", self._tick_loop()), ("listen", self._listen_loop())):
            self._loops.append(loop.create_task(coro, name=f"cmr-fleet-{name}"))

    async def stop_loops(self) -> None:
        """Stop taking jobs (the manager then stops its jobs, which go back to the queue)."""
        loops, self._loops = self._loops, []  # (the loops run while this list is not empty)
        for task in loops:
            task.cancel()
        await bounded(loops, "the fleet loops")

    async def close(self) -> None:
        """Leave the fleet. Each step waits at most CLOSE_SECONDS: a hung Redis cannot hold up a
        shutdown (what is left undone, the next start or another host's reconcile puts right)."""
        await self.stop_loops()
        await bounded(list(self._side), "the fleet's last messages")
        for task in self._side:
            task.cancel()
        if self.online:
            await bounded([asyncio.ensure_future(self.queue.leave())], "leaving the consumer group")
        await bounded([asyncio.ensure_future(self.client.aclose())], "closing the Redis connections")

    def status(self) -> dict[str, Any]:
        return {"host": self.host, "volume": self.m.volume, "redis": redact_url(self.url), "online": self.online,
                "warning": self.warning, "running_here": len(self.owned)}

    def went_away(self, exc: BaseException) -> None:
        if self.online or self.warning is None:
            self.warning = (f"Redis ({redact_url(self.url)}) cannot be reached ({type(exc).__name__}: {exc}); "
                            "this host runs its downloads on its own until Redis is back, then puts them back "
                            "in the fleet queue.")
            log.warning("fleet: %s", self.warning)
        self.online = False

    async def _connect(self) -> None:
        try:
            epoch = await self.queue.setup()
            full = self.epoch is None or epoch != self.epoch
            if self.epoch is not None and epoch != self.epoch:
                log.warning("fleet: Redis lost the fleet's data (it restarted empty); queueing this host's jobs again")
            await self.reconcile.run(full)
            self.epoch = epoch
            await self.refresh()
        except Exception as exc:  # noqa: BLE001 - sorted below
            if not is_outage(exc):
                raise
            self.went_away(exc)
            return
        if self.warning is not None:
            log.warning("fleet: Redis is back; this host's jobs are in the fleet queue again")
        self.online, self.warning = True, None

    def later(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._side.add(task)
        task.add_done_callback(self._side.discard)

    def changed(self) -> None:
        self._changed.set()

    # ---- what the manager calls ----------------------------------------------------------------
    async def submit(self, rec: JobRecord) -> Job:
        if self.online:
            try:
                got_id, state, created = await self.queue.submit(rec.id, target_key(rec), rec.to_json())
            except Exception as exc:  # noqa: BLE001 - an outage: below
                if not is_outage(exc):
                    raise
                self.went_away(exc)
            else:
                if not created:  # the fleet has a job for this file already
                    if got_id != rec.id and self.m.entry(rec.id) is None:
                        await self.m.forget(rec.id)  # a local leftover row for the same file
                    if state in ("paused", "failed"):
                        return await self.control(got_id, "resume")
                    await self.refresh()
                    return self.job(got_id)
                entry = self.m.adopt(rec, run=False)
                await self.m.save(rec)
                job = job_of(JobRecord.from_json(rec.to_json()), state="queued", host=None, leased=False)
                self.view.put(job)
                self.m.events.publish(job.event())
                return job
        # Redis away: this host runs the job itself and hands it to the fleet when Redis is back
        self.owned.add(rec.id)
        self.dirty.add(rec.id)
        await self.m.save(rec)
        entry = self.m.adopt(rec, run=True)
        self.m.publish(entry, force=True)
        return self.m.snapshot(entry)

    async def saved(self, rec: JobRecord) -> None:
        """The manager stored a record: the fleet gets it when this host holds the job's lease."""
        job_id = rec.id
        entry = self.m.entry(job_id)
        if job_id not in self.owned or entry is None or entry.rec is not rec:
            return  # not under this host's lease, or an older copy of a job this host has taken over since
        requeue = rec.state == "queued"  # a host shutting down hands the job over
        token = self.leases.token(job_id)
        if requeue or rec.state not in ACTIVE_STATES:
            self.leases.ended(job_id)
            self.view.put(self.m.snapshot(entry))  # this host's outcome, before the next snapshot shows it
        if not self.online:
            self.dirty.add(job_id)
            return
        try:  # fenced: refused once this host no longer holds the lease under its token
            ok, why = await self.queue.save(job_id, rec.to_json(), rec.state, target_key(rec), token=token,
                                            requeue=requeue)
        except Exception as exc:  # noqa: BLE001
            if not is_outage(exc):
                raise
            self.went_away(exc)
            self.dirty.add(job_id)
            return
        if not ok and self.m.runs_here(job_id):
            self.later(self.leases.lost(entry, str(why)))  # not from inside the job's own task

    def published(self, job: Job, rec: JobRecord, force: bool) -> None:
        """The manager published progress of a job it runs: tell the other hosts (at most once a
        second per job; changes of state at once)."""
        if not self.online or not (job.id in self.owned or self.m.runs_here(job.id)):
            return
        now = time.monotonic()
        if not force and now - self._published.get(job.id, 0.0) < PUBLISH_SECONDS:
            return
        self._published[job.id] = now
        self.later(self._publish(progress_message(job, rec, self.host)))

    async def _publish(self, message: dict) -> None:
        try:
            await self.queue.publish(message)
        except Exception as exc:  # noqa: BLE001 - progress is best effort; the tick notices an outage
            log.debug("fleet: cannot publish progress: %s", exc)

    def lease_of(self, job_id: str, running: bool) -> dict[str, Any]:
        """host and lease fields for a job of this host."""
        if running:
            return {"host": self.host, "lease": "held" if self.online else None}
        fleet = self.view.jobs.get(job_id)
        return {"host": fleet.host, "lease": fleet.lease} if fleet is not None else {"host": self.host, "lease": None}

    # ---- the fleet view ------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        local = [(self.m.snapshot(e), self.m.runs_here(e.rec.id)) for e in self.m.entries()]
        return self.view.merge(local, online=self.online)

    def job(self, job_id: str) -> Job:
        if self.m.runs_here(job_id):
            return self.m.snapshot(self.m.entry(job_id))  # type: ignore[arg-type]
        job = self.view.jobs.get(job_id)
        if job is None and (entry := self.m.entry(job_id)) is not None:
            return self.m.snapshot(entry)
        if job is None:
            raise JobNotFound(f"No download job {job_id!r} on this models volume.",
                              hint="List jobs with GET /downloads.")
        return job

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Until the job is completed, failed, cancelled or paused, on whichever host runs it."""
        async def settle() -> Job:
            while True:
                job = self.job(job_id)
                if job.state in TERMINAL_STATES or job.state.value == "paused":
                    return job
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), VIEW_REFRESH_SECONDS)
                except asyncio.TimeoutError:
                    pass
        return await asyncio.wait_for(settle(), timeout)

    def _notify(self, job: Job) -> None:
        self.m.events.publish(job.event())
        self._changed.set()

    async def refresh(self) -> None:
        for job in self.view.load(await self.queue.snapshot()):
            if not self.m.runs_here(job.id):
                self._notify(job)
        for entry in self.m.entries():  # this host's copies follow the fleet: a restart must not revive them
            job = self.view.jobs.get(entry.rec.id)
            if job is not None and entry.rec.state != job.state.value and not self.m.runs_here(entry.rec.id) \
                    and entry.rec.id not in self.owned and self.m.entry(entry.rec.id) is entry:
                entry.rec.state = job.state.value
                await self.m.save(entry.rec)
        self._changed.set()

    async def control(self, job_id: str, action: str) -> Job:
        """pause / resume / cancel / cancel-keep a job this host does not run (the host that runs it
        gets the request at once through pub/sub, at the latest at its next lease renewal)."""
        outcome = await self.queue.control(job_id, action)
        if outcome == "unknown":
            entry = self.m.entry(job_id)
            if entry is None:
                raise JobNotFound(f"No download job {job_id!r} on this models volume.",
                                  hint="List jobs with GET /downloads.")
            if action == "resume" and entry.rec.state in ("paused", "failed", *ACTIVE_STATES):
                entry.rec.state = "queued"
                await self.queue.submit(job_id, target_key(entry.rec), entry.rec.to_json())
        elif outcome == "cancelled" and action == "cancel":
            job = self.view.jobs.get(job_id)
            if job is not None and job.path:  # no host holds its lease: the part file is ours to delete
                await self.leases.remove_part(job_id, job.folder, job.filename, job.path)
        await self.refresh()
        return self.job(job_id)

    async def set_priority(self, job_id: str, priority: int) -> Job:
        """A new priority for a job this host does not run: the host that holds its lease applies
        it (at once through pub/sub, at the latest at its next renewal); a job no host holds gets
        it in its record, which the next host to take it reads."""
        outcome = await self.queue.set_priority(job_id, priority)
        if outcome == "free" and (fj := await self.queue.get(job_id)) is not None:
            rec = JobRecord.from_json(fj.record)
            rec.priority, rec.updated = int(priority), time.time()
            ok, _ = await self.queue.save(job_id, rec.to_json(), fj.state, target_key(rec))
            if not ok:  # a host took it meanwhile
                await self.queue.set_priority(job_id, priority)
        if (entry := self.m.entry(job_id)) is not None:
            entry.rec.priority = int(priority)
            await self.m.save(entry.rec)
        elif outcome == "unknown":
            raise JobNotFound(f"No download job {job_id!r} on this models volume.", hint="List jobs with GET /downloads.")
        await self.refresh()
        return self.job(job_id)

    # ---- loops ---------------------------------------------------------------------------------
    async def _guard(self, step: Any) -> None:
        """Run one step of a loop; an outage switches to local operation, a bug is logged."""
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the client turned our cancel into an error
                raise asyncio.CancelledError from None
            if is_outage(exc):
                self.went_away(exc)
            else:
                log.exception("fleet: unexpected error")
            await asyncio.sleep(RETRY_SECONDS)

    async def _claim_loop(self) -> None:
        while self._loops:
            await self._guard(self._claim_one)

    async def _claim_one(self) -> None:
        limit = self.m.settings.max_concurrent_downloads
        if not self.online or sum(1 for i in self.owned if self.m.runs_here(i)) >= limit or await self.queue.capped():
            await asyncio.sleep(0.25 if self.online else RETRY_SECONDS)
            return
        got = await self.queue.next_job(block_ms=CLAIM_BLOCK_MS)
        if got is None:
            return
        job_id, token = got
        fj = await self.queue.get(job_id)
        if fj is None or self.m.runs_here(job_id):
            if self.m.runs_here(job_id):  # its lease ran out under this host, which took it again
                self.leases.granted(job_id, token)
            return
        rec = JobRecord.from_json(fj.record)
        rec.state, rec.detail = "queued", None
        self.leases.granted(job_id, token)
        entry = self.m.adopt(rec, run=True)
        self.m.publish(entry, force=True)

    async def _tick_loop(self) -> None:
        while self._loops:
            await self._guard(self._tick)
            await asyncio.sleep(min(VIEW_REFRESH_SECONDS, self.lease_ms / 3000))

    async def _tick(self) -> None:
        if not self.online:
            await self._connect()
            return
        now = time.monotonic()
        if now - self._renewed >= self.lease_ms / 3000:
            self._renewed = now
            await self.leases.renew([i for i in self.owned if self.m.runs_here(i)])
            epoch, requeued = await self.queue.reap()
            if requeued:
                log.info("fleet: %d job(s) of hosts that stopped answering queued again", len(requeued))
            await self.reconcile.deferred()
            if epoch != self.epoch:  # Redis restarted empty since we last looked
                await self._connect()
                return
        await self.refresh()

    async def _listen_loop(self) -> None:
        while self._loops:
            await self._guard(self._listen)

    async def _listen(self) -> None:
        if not self.online:
            await asyncio.sleep(RETRY_SECONDS)
            return
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.queue.channel)
            while self.online and self._loops:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None:
                    await self._on_message(msg.get("data"))
        finally:  # redis-py's PubSub.aclose waits for its lock and cannot be cancelled: bounded here
            await bounded([asyncio.ensure_future(pubsub.aclose())], "closing the fleet subscription")

    async def _on_message(self, data: Any) -> None:
        try:
            message = json.loads(data)
        except (TypeError, ValueError):
            return
        if not isinstance(message, dict) or message.get("from") == self.host:
            return
        control = message.get("control")
        if isinstance(control, str):
            if control in self.owned and self.m.runs_here(control):
                self.leases.requested(control, str(message.get("action")))
                await self.leases.renew([control])  # apply another host's pause/cancel/priority now
            return
        job = self.view.progress(message)
        if job is not None and not self.m.runs_here(job.id):
            self._notify(job)

