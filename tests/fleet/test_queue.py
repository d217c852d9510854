"""FleetQueue against a real redis-server: one job per target, each job to one host, leases that
run out when a host dies, controls from any host, the fleet-wide cap."""
from __future__ import annotations

import asyncio
import json

import pytest

from comfyui_model_resolver.fleet.connect import connect
from comfyui_model_resolver.fleet.queue import GROUP, FleetQueue, Renewal
from support.redis_server import RedisServer

LEASE_MS = 400


@pytest.fixture
async def redis(tmp_path):
    clients = []
    with RedisServer(tmp_path / "redis") as server:  # stopped however the test ends
        def client():
            c = connect(server.url)
            clients.append(c)
            return c
        try:
            yield server, client
        finally:
            for c in clients:
                await c.aclose()


def queue(client, host: str, **kw) -> FleetQueue:
    kw.setdefault("lease_ms", LEASE_MS)
    return FleetQueue(client(), volume="vol-1", host=host, **kw)


def record(job_id: str, **fields) -> str:
    return json.dumps({"id": job_id, **fields})


async def eventually(check, what: str, timeout: float = 10.0):
    """Call `check()` (async) until it returns something truthy; fail with `what` after `timeout`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        got = await check()
        if got:
            return got
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_one_job_per_target_and_each_job_to_one_host(redis):
    _, client = redis
    hosts = [queue(client, f"h{i}") for i in range(4)]
    for q in hosts:
        await q.setup()
    submitted = [await q.submit(f"job-{i}", "/models/checkpoints/a.safetensors", record(f"job-{i}"))
                 for i, q in enumerate(hosts)]
    assert submitted[0] == ("job-0", "queued", True)
    assert all(s == ("job-0", "queued", False) for s in submitted[1:])  # the same file: the same job
    got = await asyncio.gather(*(q.next_job(block_ms=300) for q in hosts))
    assert sorted(g[0] for g in got if g) == ["job-0"]  # handed to exactly one host
    at = next(i for i, g in enumerate(got) if g)
    owner, token = hosts[at], got[at][1]
    assert await owner.renew({"job-0": token}) == {"job-0": Renewal(True, None, None)}
    other = hosts[(at + 1) % 4]
    assert await other.renew({"job-0": token}) == {"job-0": Renewal(False, "lost", None)}
    assert await other.save("job-0", record("job-0", by="intruder"), "running", "t") == (False, "lost")
    assert (await owner.save("job-0", record("job-0"), "completed", "/models/checkpoints/a.safetensors",
                             token=token))[0]
    again = await hosts[1].submit("job-9", "/models/checkpoints/a.safetensors", record("job-9"))
    assert again == ("job-9", "queued", True)  # a finished job no longer holds the target


async def test_a_dead_hosts_lease_runs_out_and_another_host_takes_the_job(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("j", "/m/x", record("j"))
    _, first = await a.next_job(block_ms=300)
    assert (await b.get("j")).leased
    # host a dies: it never renews. The lease is Redis time; b reaps once it has run out.
    requeued = await eventually(lambda: _reaped(b), "the lease to run out")
    assert requeued == ["j"]
    job = await b.get("j")
    assert job.state == "queued" and not job.leased
    job_id, second = await b.next_job(block_ms=300)
    assert job_id == "j" and second > first  # a new lease, a new fencing token
    assert not (await a.renew({"j": first}))["j"].held  # the old holder learns it lost the job


async def _reaped(q: FleetQueue):
    _, ids = await q.reap()
    return ids


async def test_an_entry_delivered_to_a_host_that_died_before_taking_it_is_queued_again(redis):
    _, client = redis
    ghost, b = queue(client, "ghost"), queue(client, "b")
    await b.setup()
    await b.submit("j", "/m/y", record("j"))
    c = client()
    await c.xreadgroup(GROUP, "ghost", {b.key("queue"): ">"}, count=1)  # delivered, then the host died
    assert await b.next_job(block_ms=100) is None
    await asyncio.sleep(LEASE_MS / 1000)
    await b.reap()
    assert (await b.next_job(block_ms=300))[0] == "j"
    del ghost


async def test_controls_from_any_host(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("queued", "/m/1", record("queued"))
    await a.submit("running", "/m/2", record("running"))
    token = await a.take("running")
    assert token > 0
    # a job nobody runs changes state at once, whoever asks
    assert await b.control("queued", "pause") == "paused"
    assert await b.control("queued", "resume") == "queued"
    assert await b.control("queued", "cancel") == "cancelled"
    assert (await a.submit("again", "/m/1", record("again")))[2]  # a cancelled job frees its target
    # a running job's host gets the request (and a message, so it acts at once)
    pubsub = a.client.pubsub()
    await pubsub.subscribe(a.channel)
    assert await b.control("running", "cancel") == "sent"
    assert (await a.renew({"running": token}))["running"] == Renewal(True, "cancel", None)
    msg = await eventually(lambda: pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2), "the message")
    assert json.loads(msg["data"]) == {"control": "running", "action": "cancel", "from": "b"}
    await pubsub.aclose()
    assert await b.control("nope", "cancel") == "unknown"


async def test_a_request_to_a_dead_host_is_applied_when_its_lease_runs_out(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("p", "/m/p", record("p"))
    assert await a.take("p") > 0
    assert await b.control("p", "pause") == "sent"  # a is dead and never sees it
    await eventually(lambda: _state_is(b, "p", "paused"), "the pause to be applied")
    assert await b.next_job(block_ms=100) is None


async def _state_is(q: FleetQueue, job_id: str, state: str) -> bool:
    await q.reap()
    return (await q.get(job_id)).state == state


async def test_the_fleet_wide_cap(redis):
    _, client = redis
    a, b = queue(client, "a", cap=1), queue(client, "b", cap=1)
    await a.setup()
    await a.submit("one", "/m/1", record("one"))
    await a.submit("two", "/m/2", record("two"))
    _, token = await a.next_job(block_ms=300)
    assert await b.capped()
    assert await b.take("two") == -1
    assert await b.next_job(block_ms=300) is None  # handed out, found capped, queued again
    assert (await a.save("one", record("one"), "completed", "/m/1", token=token))[0]
    assert not await b.capped()
    assert (await b.next_job(block_ms=300))[0] == "two"


async def test_a_shutting_down_host_hands_its_job_back(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("h", "/m/h", record("h", done=[[0, 10]]))
    _, token = await a.next_job(block_ms=300)
    assert (await a.save("h", record("h", done=[[0, 20]]), "queued", "/m/h", token=token, requeue=True))[0]
    assert (await b.next_job(block_ms=300))[0] == "h"  # at once, not after a lease
    assert json.loads((await b.get("h")).record)["done"] == [[0, 20]]


async def test_the_epoch_changes_when_redis_loses_its_data(redis):
    server, client = redis
    a = queue(client, "a")
    first = await a.setup()
    assert (await a.reap())[0] == first
    server.stop()
    server.start()  # no persistence: an empty Redis
    epoch, _ = await eventually(lambda: _try_reap(a), "Redis to answer again")
    assert epoch == ""  # the fleet's keys are gone: reconcile
    assert await a.setup() != first


async def _try_reap(q: FleetQueue):
    try:
        return await q.reap()
    except Exception:  # noqa: BLE001 - reconnecting
        return None


# ---- fencing: a host that lost its lease can neither checkpoint nor rename -----------------------

async def _expire(q: FleetQueue, job_id: str) -> None:
    """The lease runs out now (as if its host had stalled for longer than a lease)."""
    await q.client.zadd(q.key("leases"), {job_id: 0})


async def test_a_host_whose_lease_ran_out_and_was_reaped_can_neither_checkpoint_nor_rename(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("j", "/m/j", record("j"))
    _, old = await a.next_job(block_ms=300)
    await _expire(a, "j")
    # run out but not reaped yet: nobody else can hold it, so a's checkpoint still counts and renews it
    assert await a.save("j", record("j", done=[[0, 5]]), "running", "/m/j", token=old) == (True, old)
    await _expire(a, "j")
    assert (await b.reap())[1] == ["j"]
    # reaped: a's checkpoint is refused and does not turn the queued job back into a leaseless "running" one
    assert await a.save("j", record("j", done=[[0, 9]]), "running", "/m/j", token=old) == (False, "lost")
    assert (await b.get("j")).state == "queued"
    assert await a.fence("j", old) == (False, "lost")
    job_id, new = await b.next_job(block_ms=300)
    assert job_id == "j" and new > old
    assert await a.fence("j", old) == (False, "lost")  # the same host name cannot pass a stale token either
    assert not (await a.save("j", record("j"), "completed", "/m/j", token=old))[0]
    assert await b.fence("j", new) == (True, "")
    assert json.loads((await b.get("j")).record)["done"] == [[0, 5]]  # b resumes from a's last accepted checkpoint
    assert (await b.save("j", record("j"), "completed", "/m/j", token=new))[0]
    assert (await a.get("j")).state == "completed"


async def test_a_cancel_that_reaches_the_host_only_at_the_rename_is_applied_there(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("j", "/m/j", record("j"))
    _, token = await a.next_job(block_ms=300)
    assert await b.control("j", "cancel") == "sent"  # a is too busy to renew: it does not see it
    assert (await a.save("j", record("j"), "running", "/m/j", token=token))[0]  # a checkpoint is still a's
    assert await a.fence("j", token) == (False, "cancel")  # ...the rename is not
    job = await b.get("j")
    assert job.state == "cancelled" and not job.leased
    assert await a.save("j", record("j"), "completed", "/m/j", token=token) == (False, "cancel")
    assert (await b.submit("k", "/m/j", record("k")))[2]  # the target is free for a new job


async def test_a_host_learns_how_its_job_was_cancelled_after_its_lease_was_reaped(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("j", "/m/j", record("j"))
    _, token = await a.next_job(block_ms=300)
    assert await b.control("j", "cancel-keep") == "sent"
    await _expire(a, "j")
    await b.reap()
    assert (await b.get("j")).state == "cancelled"
    assert await a.renew({"j": token}) == {"j": Renewal(False, "cancel-keep", None)}  # keep the part file
    assert await a.fence("j", token) == (False, "cancel-keep")


async def test_a_job_held_again_after_an_outage_is_refused_when_the_fleet_paused_it(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("j", "/m/j", record("j"))
    await a.next_job(block_ms=300)
    assert await b.control("j", "pause") == "sent"
    await _expire(a, "j")  # a lost Redis for longer than a lease
    await b.reap()
    assert await a.save("j", record("j"), "running", "/m/j", hold=True) == (False, "pause")
    ok, token = await a.save("new", record("new"), "running", "/m/new", hold=True)  # Redis lost it: held again
    assert ok and token > 0 and (await a.renew({"new": token}))["new"].held


async def test_a_new_priority_reaches_the_host_that_holds_the_lease(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("run", "/m/r", record("run"))
    await a.submit("wait", "/m/w", record("wait"))
    token = await a.take("run")
    assert await b.set_priority("run", 7) == "sent"
    assert await a.renew({"run": token}) == {"run": Renewal(True, None, 7)}
    assert await a.renew({"run": token}) == {"run": Renewal(True, None, None)}  # taken once
    assert await b.set_priority("wait", 3) == "free"  # no host holds it: the caller rewrites its record
    assert await b.set_priority("nope", 3) == "unknown"
