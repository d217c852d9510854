"""Fencing on the lease: a host that no longer holds a job's lease (it stalled for longer than a
lease, or Redis was slow) can neither record progress over the fleet's state nor put the file in
place, and a cancel is never lost. Real redis-server, the Hub fake, hosts in this process.

A stalled host is made deterministically: its fleet loops are stopped (no renewals, no pub/sub)
while its download goes on, and its lease is made to run out in Redis (score 0), instead of
waiting for a clock. Its checkpoints and its last step before the rename still talk to Redis,
which is what is under test."""
from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest

from comfyui_model_resolver.fleet.connect import connect
from comfyui_model_resolver.downloads.store import JobRecord
from comfyui_model_resolver.fleet.queue import FleetQueue
from comfyui_model_resolver.types import DownloadRequest
from support.downloads import MiB, sha256_of
from support.fleet import LEASE, ends_cancelled_and_clean, host, until


async def _stalled(env, server, size: int):
    """Host a running a download (one connection, 1 MiB/s), with its renewals stopped."""
    env.hub.switch(on="cdn", throttle_bps=MiB)
    a = host(env, server, "a", segments=1)
    await a.start()
    job = await a.submit(DownloadRequest(url=env.url(), folder="checkpoints"))
    await until(lambda: a.runs_here(job.id) and a.job(job.id).bytes_done > 0, "the job running on a")
    return a, job


async def _checkpointed(q: FleetQueue, job_id: str) -> bool:
    job = await q.get(job_id)
    return job is not None and bool(json.loads(job.record).get("done"))


async def test_a_cancel_that_a_stalled_host_meets_only_at_the_rename_is_never_put_in_place(fleet):
    env, server = fleet
    env.add(size=3 * MiB)
    a, job = await _stalled(env, server, 3 * MiB)
    await a.fleet.stop_loops()  # a no longer renews nor listens: the cancel below never reaches it
    b = host(env, server, "b")
    await b.start()
    sent = await b.cancel(job.id)  # a holds the lease: the request waits for a
    assert sent.state.value in ("running", "verifying") and sent.host == "a"
    # a's checkpoints are still its own (a pending request does not refuse them); its rename is refused
    await ends_cancelled_and_clean(env, a, job.id, "a")
    assert (await b.fleet.queue.get(job.id)).state == "cancelled"
    await until(lambda: b.job(job.id).state.value == "cancelled", "b to show the job cancelled")


async def test_a_stalled_host_whose_lease_went_to_another_host_stops_at_its_next_checkpoint(fleet):
    env, server = fleet
    f = env.add(size=6 * MiB)
    a, job = await _stalled(env, server, 6 * MiB)
    q = a.fleet.queue
    await until(lambda: _checkpointed(q, job.id), "a checkpoint of a's progress in the fleet")
    await a.fleet.stop_loops()
    await q.client.zadd(q.key("leases"), {job.id: 0})  # a's lease ran out (it stalled for longer than a lease)
    b = host(env, server, "b", segments=1)
    await b.start()  # reaps a's lease and takes the job; it waits for a's file lock until a stops
    done = await b.wait(job.id, timeout=90)
    assert done.state.value == "completed" and done.host == "b"
    assert sha256_of(env.final()) == f.sha256 and env.leftovers() == []
    assert not a.runs_here(job.id)
    gets = [r for r in env.hub.requests(server="cdn") if r["method"] == "GET"]
    assert any(r.get("range") and not r["range"].startswith("bytes=0-") for r in gets), gets  # b resumed


async def test_redis_away_at_the_rename_a_job_known_cancelled_is_not_put_in_place(fleet):
    env, server = fleet
    env.add(size=4 * MiB)
    a, job = await _stalled(env, server, 4 * MiB)
    await a.fleet.stop_loops()
    ops = FleetQueue(connect(server.url), volume=a.volume, host="ops", lease_ms=int(LEASE * 1000))
    try:  # a's lease runs out, and the job is cancelled while no host holds it
        await ops.client.zadd(ops.key("leases"), {job.id: 0})
        await ops.reap()
        assert await ops.control(job.id, "cancel") == "cancelled"
    finally:
        await ops.client.aclose()
    await a.fleet.refresh()  # what a's tick does every second: its fleet view says cancelled
    server.stop()  # then Redis goes away: a can no longer ask, but it knows the job is cancelled
    await ends_cancelled_and_clean(env, a, job.id, "a")


async def test_a_new_priority_from_another_host_reaches_the_host_that_runs_or_takes_the_job(fleet):
    env, server = fleet
    env.add(size=4 * MiB)
    env.add("other.safetensors", size=MiB, repo="org/other")
    env.hub.switch(on="cdn", throttle_bps=MiB)
    a = host(env, server, "a", segments=1, fleet_max_concurrent=1)  # one download at a time in the fleet
    b = host(env, server, "b", segments=1, fleet_max_concurrent=1)
    await a.start()
    first = await a.submit(DownloadRequest(url=env.url(), folder="checkpoints"))
    await until(lambda: a.runs_here(first.id), "host a to run the first job")
    await b.start()
    second = await b.submit(DownloadRequest(url=env.url("other.safetensors", "org/other"), folder="checkpoints"))
    await until(lambda: any(j.id == first.id and j.host == "a" for j in b.jobs()), "b to list a's job")
    await b.set_priority(first.id, 5)  # a runs it: a applies it, and says so to the fleet
    await until(lambda: a.job(first.id).priority == 5, "host a to apply the new priority")
    await until(lambda: b.job(first.id).priority == 5, "b to show the new priority")
    await b.set_priority(second.id, 9)  # waiting in the queue, held by no host: its record changes
    await until(lambda: any(j.id == second.id and j.priority == 9 for j in a.jobs()), "a to list the new priority")
    done = await b.wait(second.id, timeout=60)
    assert done.state.value == "completed" and done.priority == 9  # the host that took it kept it
    assert (await a.wait(first.id, timeout=60)).priority == 5


async def test_a_host_closes_while_redis_hangs_and_its_job_is_not_lost(fleet):
    env, server = fleet
    f = env.add(size=4 * MiB)
    a, job = await _stalled(env, server, 4 * MiB)
    os.kill(server.proc.pid, signal.SIGSTOP)  # Redis hangs: connections stay open, nothing answers
    try:
        closing = asyncio.ensure_future(a.close())
        finished, _ = await asyncio.wait({closing}, timeout=60)
        if not finished:
            pytest.fail("closing a host while Redis hangs did not finish (a shutdown hang)")
        closing.result()
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert not [p for p in env.leftovers() if p.endswith(".lock")]  # a let go of the file
    b = host(env, server, "b")
    await b.start()  # a's lease runs out; b takes the job over
    done = await b.wait(job.id, timeout=60)
    assert done.state.value == "completed" and done.host == "b"
    assert sha256_of(env.final()) == f.sha256


async def test_an_older_copy_of_a_job_this_host_took_over_never_reaches_the_fleet(fleet):
    """A host that submitted a job keeps a copy of its record; once it takes the job over itself,
    that copy is stale. Saving it (the fleet view makes local copies follow the fleet's states)
    must not be taken for the running job's own save: it would hand the lease back and reset the
    fleet's record of what is downloaded (seen under load: another host then started from zero)."""
    env, server = fleet
    f = env.add(size=4 * MiB)
    a, job = await _stalled(env, server, 4 * MiB)
    q = a.fleet.queue
    await until(lambda: _checkpointed(q, job.id), "a checkpoint of a's progress in the fleet")
    older = JobRecord.from_json((await q.get(job.id)).record)
    older.state, older.done = "queued", []
    await a.save(older)  # a copy of the record, not the running job's own
    now = await q.get(job.id)
    assert now.state == "running" and now.leased and now.host == "a" and json.loads(now.record)["done"]
    done = await a.wait(job.id, timeout=60)
    assert done.state.value == "completed" and done.host == "a" and sha256_of(env.final()) == f.sha256
