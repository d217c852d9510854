"""`FleetQueue`: the download queue that hosts sharing one models volume keep in Redis.

    q = FleetQueue(client, volume="3f…", host="gpu-1", lease_ms=30_000, cap=0)
    await q.setup()
    job_id, state, created = await q.submit(job_id, target, record_json)   # one job per target
    job_id, token = await q.next_job(block_ms=2000)  # a queued job leased to this host, its fencing token
    held = await q.renew({job_id: token})       # {job_id: (True, control or None) | (False, why)}
    ok, token_or_why = await q.save(job_id, record_json, "running", target, token=token)  # a fenced checkpoint
    ok, why = await q.fence(job_id, token)      # right before the rename into place
    outcome = await q.control(job_id, "cancel")  # from any host
    jobs = await q.snapshot()                   # every job of the volume, for the fleet view

Why Redis Streams with a consumer group (and not a job library such as arq or RQ): a stream
hands each queued job to exactly one waiting host and wakes that host at once (`XREADGROUP
BLOCK`), and its pending-entry list recovers an entry whose host died before taking it. The job
itself needs more than "run this function once": pause, resume and cancel from any host, one job
per target file, progress for every host's view, and a lease that another host takes over to
resume from the shared ``.part`` file. Those are a few atomic scripts over plain hashes (scripts.py),
with no extra dependency and no worker process of their own.

Leases are Redis time (a sorted set scored by expiry in Redis milliseconds), never a host's clock.
A host renews its leases every third of the lease; a host that dies stops renewing, and after one
lease any host's `reap` queues the job again for the next host, which resumes from the part file.
Each lease carries a fencing token; the holder's checkpoints and its last step before the rename
are refused once the token is stale (scripts.py), so a host that stalled past its lease stops.

Nothing here knows what a download is: records are opaque JSON strings, targets opaque keys.
"""
from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from . import scripts
from .connect import kept_cancel

log = logging.getLogger(__name__)

__all__ = ["FleetQueue", "FleetJob", "Renewal", "GROUP"]

GROUP = "hosts"


@dataclass(frozen=True)
class FleetJob:
    """One job as the fleet knows it."""

    id: str
    record: str  # JSON, as the host that saved it last wrote it
    state: str  # authoritative (a script may have changed it since the record was written)
    host: str | None  # who holds (or last held) its lease
    leased: bool


@dataclass(frozen=True)
class Renewal:
    """One lease renewal: `held`; then `control` (pause / cancel / cancel-keep asked by another
    host) and `priority` (a new priority asked by another host), else `control` says why not."""

    held: bool
    control: str | None
    priority: int | None = None


class FleetQueue:
    def __init__(self, client: Any, *, volume: str, host: str, lease_ms: int, cap: int = 0) -> None:
        self.client = client
        self.volume = volume
        self.host = host
        self.lease_ms = int(lease_ms)
        self.cap = int(cap)
        self.prefix = f"cmr:{{{volume}}}:"
        self.keys = [self.prefix + name for name in scripts.KEY_NAMES]
        self.channel = self.prefix + "events"
        self.epoch: str | None = None
        self._scripts = {name: client.register_script(getattr(scripts, name))
                         for name in ("SUBMIT", "TAKE", "DISPATCH", "RENEW", "SAVE", "FENCE", "CONTROL", "PRIORITY", "REAP")}

    def key(self, name: str) -> str:
        return self.prefix + name

    async def _run(self, name: str, *args: Any) -> Any:
        return await kept_cancel(self._scripts[name](keys=self.keys, args=[str(a) for a in args]))

    # ---- set-up --------------------------------------------------------------------------
    async def setup(self) -> str:
        """Create the stream and its group if they are missing; returns the data epoch (a new epoch
        means Redis lost the fleet's keys since we last looked: reconcile)."""
        try:
            await self.client.xgroup_create(self.key("queue"), GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - BUSYGROUP: it exists already
            if "BUSYGROUP" not in str(exc):
                raise
        await self.client.set(self.key("epoch"), uuid.uuid4().hex, nx=True)
        self.epoch = await self.client.get(self.key("epoch"))
        return self.epoch or ""

    async def now_ms(self) -> int:
        secs, micros = await self.client.time()
        return int(secs) * 1000 + int(micros) // 1000

    # ---- jobs ----------------------------------------------------------------------------
    async def submit(self, job_id: str, target: str, record: str) -> tuple[str, str, bool]:
        """Queue a job, unless a live job (queued, running, paused or failed) has the same target:
        then that one is returned, with created False."""
        got_id, state, created = await self._run("SUBMIT", job_id, target, record)
        return got_id, state, bool(int(created))

    async def take(self, job_id: str) -> int:
        """Lease a queued job to this host: its fencing token (> 0) when taken, 0 not queued or
        leased already, -1 fleet cap."""
        return int(await self._run("TAKE", job_id, self.host, self.lease_ms, self.cap))

    async def capped(self) -> bool:
        return self.cap > 0 and int(await self.client.zcard(self.key("leases"))) >= self.cap

    async def next_job(self, block_ms: int) -> tuple[str, int] | None:
        """Wait up to `block_ms` for the stream to hand this host a queued job, and lease it:
        (job id, fencing token), or None."""
        reply = await kept_cancel(self.client.xreadgroup(GROUP, self.host, {self.key("queue"): ">"}, count=1,
                                                            block=block_ms))
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                job_id = (fields or {}).get("job")
                if not job_id:
                    await self.client.xack(self.key("queue"), GROUP, entry_id)
                    continue
                got = int(await self._run("DISPATCH", GROUP, entry_id, job_id, self.host, self.lease_ms, self.cap))
                if got > 0:
                    return job_id, got
        return None

    async def renew(self, tokens: Mapping[str, int | None]) -> dict[str, Renewal]:
        """Extend this host's leases (job id -> its fencing token). Per job: held, and then a
        pending pause/cancel request (or None) and a new priority another host asked for (or
        None); or not held, and why (see `save`)."""
        ids = list(tokens)
        if not ids:
            return {}
        pairs = [x for job_id in ids for x in (job_id, tokens[job_id] or "")]
        flat = await self._run("RENEW", self.host, self.lease_ms, *pairs)
        return {job_id: Renewal(bool(int(flat[3 * i])), flat[3 * i + 1] or None,
                                int(flat[3 * i + 2]) if flat[3 * i + 2] != "" else None)
                for i, job_id in enumerate(ids)}

    async def save(self, job_id: str, record: str, state: str, target: str | None, *, token: int | None = None,
                   requeue: bool = False, hold: bool = False) -> tuple[bool, int | str]:
        """Store a job's record and state. With this host's fencing `token`, only while it still
        holds the lease (and the lease is extended); without, refused while another host holds it.
        Returns (True, the token this host holds now, 0 for none) or (False, why): cancel,
        cancel-keep, pause, completed, or lost (queued again, or another host's)."""
        ok, detail = await self._run("SAVE", job_id, record, state, target or "", self.host, int(requeue),
                                     int(hold), self.lease_ms, token or "")
        return (True, int(detail)) if int(ok) else (False, str(detail))

    async def fence(self, job_id: str, token: int | None) -> tuple[bool, str]:
        """Right before renaming a finished file into place: (True, "") when this host still holds
        the lease under `token` (extended by a whole lease), else (False, why). A pending cancel
        is applied and refuses."""
        ok, detail = await self._run("FENCE", job_id, self.host, token or "", self.lease_ms)
        return bool(int(ok)), str(detail or "")

    async def control(self, job_id: str, action: str) -> str:
        """pause / resume / cancel / cancel-keep from any host (see scripts.CONTROL)."""
        outcome = await self._run("CONTROL", job_id, action)
        if outcome == "sent":
            await self.publish({"control": job_id, "action": action, "from": self.host})
        return outcome

    async def set_priority(self, job_id: str, priority: int) -> str:
        """A new priority from any host: "sent" to the host that holds the job's lease (applied at
        once through pub/sub, at the latest at its next renewal); "free" when no host runs it
        (the caller rewrites its record); "unknown"."""
        outcome = await self._run("PRIORITY", job_id, int(priority))
        if outcome == "sent":
            await self.publish({"control": job_id, "action": "priority", "from": self.host})
        return outcome

    async def clear_control(self, job_id: str) -> None:
        await self.client.hdel(self.key("control"), job_id)

    async def reap(self, limit: int = 100) -> tuple[str, list[str]]:
        """Queue again the jobs whose lease ran out; returns (epoch, their ids)."""
        out = await self._run("REAP", GROUP, self.host, self.lease_ms, limit)
        return (out[0] or ""), list(out[1:])

    async def get(self, job_id: str) -> FleetJob | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.key("rec"), job_id)
        pipe.hget(self.key("state"), job_id)
        pipe.hget(self.key("host"), job_id)
        pipe.zscore(self.key("leases"), job_id)
        rec, state, host, lease = await kept_cancel(pipe.execute())
        if rec is None or state is None:
            return None
        return FleetJob(job_id, rec, state, host, lease is not None)

    async def states(self, job_ids: list[str]) -> dict[str, FleetJob | None]:
        """Several jobs at once (reconciliation)."""
        if not job_ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.key("rec"), job_ids)
        pipe.hmget(self.key("state"), job_ids)
        pipe.hmget(self.key("host"), job_ids)
        for job_id in job_ids:
            pipe.zscore(self.key("leases"), job_id)
        recs, states, hosts, *leases = await kept_cancel(pipe.execute())
        return {job_id: (FleetJob(job_id, recs[i], states[i], hosts[i], leases[i] is not None)
                         if recs[i] is not None and states[i] is not None else None)
                for i, job_id in enumerate(job_ids)}

    async def snapshot(self) -> list[FleetJob]:
        """Every job of the volume (live ones and the recent history)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.key("rec"))
        pipe.hgetall(self.key("state"))
        pipe.hgetall(self.key("host"))
        pipe.zrange(self.key("leases"), 0, -1)
        recs, states, hosts, leased = await kept_cancel(pipe.execute())
        held = set(leased)
        return [FleetJob(job_id, rec, states[job_id], hosts.get(job_id), job_id in held)
                for job_id, rec in recs.items() if job_id in states]

    # ---- events --------------------------------------------------------------------------
    async def publish(self, message: dict) -> None:
        await kept_cancel(self.client.publish(self.channel, json.dumps(message, separators=(",", ":"), default=str)))

    async def leave(self) -> None:
        """Remove this host's consumer from the group (it holds no undelivered entries)."""
        try:
            await self.client.xgroup_delconsumer(self.key("queue"), GROUP, self.host)
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            log.debug("cannot remove the fleet consumer %s: %s", self.host, exc)
