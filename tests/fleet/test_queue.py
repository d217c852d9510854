"""FleetQueue against a real redis-server: one job per target, each job to one host, leases that
run out when a host dies, controls from any host, the fleet-wide cap."""
from __future__ import annotations

import asyncio
import json

import pytest

from comfyui_model_resolver.fleet.connect import connect
from comfyui_model_resolver.fleet.queue import GROUP, FleetQueue
from support.redis_server import RedisServer

LEASE_MS = 400


@pytest.fixture
async def redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    clients = []

    def client():
        c = connect(server.url)
        clients.append(c)
        return c
    try:
        yield server, client
    finally:
        for c in clients:
            await c.aclose()
        server.stop()


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
    assert sorted(g for g in got if g) == ["job-0"]  # handed to exactly one host
    owner = hosts[got.index("job-0")]
    assert await owner.renew(["job-0"]) == {"job-0": (True, None)}
    other = hosts[(got.index("job-0") + 1) % 4]
    assert await other.renew(["job-0"]) == {"job-0": (False, None)}
    assert not await other.save("job-0", record("job-0", by="intruder"), "running", "t")  # not its lease
    assert await owner.save("job-0", record("job-0"), "completed", "/models/checkpoints/a.safetensors")
    again = await hosts[1].submit("job-9", "/models/checkpoints/a.safetensors", record("job-9"))
    assert again == ("job-9", "queued", True)  # a finished job no longer holds the target


async def test_a_dead_hosts_lease_runs_out_and_another_host_takes_the_job(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("j", "/m/x", record("j"))
    assert await a.next_job(block_ms=300) == "j"
    assert (await b.get("j")).leased
    # host a dies: it never renews. The lease is Redis time; b reaps once it has run out.
    requeued = await eventually(lambda: _reaped(b), "the lease to run out")
    assert requeued == ["j"]
    job = await b.get("j")
    assert job.state == "queued" and not job.leased
    assert await b.next_job(block_ms=300) == "j"
    assert (await a.renew(["j"]))["j"][0] is False  # the old holder learns it lost the job


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
    assert await b.next_job(block_ms=300) == "j"
    del ghost


async def test_controls_from_any_host(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("queued", "/m/1", record("queued"))
    await a.submit("running", "/m/2", record("running"))
    assert await a.take("running") == 1
    # a job nobody runs changes state at once, whoever asks
    assert await b.control("queued", "pause") == "paused"
    assert await b.control("queued", "resume") == "queued"
    assert await b.control("queued", "cancel") == "cancelled"
    assert (await a.submit("again", "/m/1", record("again")))[2]  # a cancelled job frees its target
    # a running job's host gets the request (and a message, so it acts at once)
    pubsub = a.client.pubsub()
    await pubsub.subscribe(a.channel)
    assert await b.control("running", "cancel") == "sent"
    assert (await a.renew(["running"]))["running"] == (True, "cancel")
    msg = await eventually(lambda: pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2), "the message")
    assert json.loads(msg["data"]) == {"control": "running", "action": "cancel", "from": "b"}
    await pubsub.aclose()
    assert await b.control("nope", "cancel") == "unknown"


async def test_a_request_to_a_dead_host_is_applied_when_its_lease_runs_out(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("p", "/m/p", record("p"))
    assert await a.take("p") == 1
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
    assert await a.next_job(block_ms=300) == "one"
    assert await b.capped()
    assert await b.take("two") == -1
    assert await b.next_job(block_ms=300) is None  # handed out, found capped, queued again
    assert await a.save("one", record("one"), "completed", "/m/1")
    assert not await b.capped()
    assert await b.next_job(block_ms=300) == "two"


async def test_a_shutting_down_host_hands_its_job_back(redis):
    _, client = redis
    a, b = queue(client, "a"), queue(client, "b")
    await a.setup()
    await a.submit("h", "/m/h", record("h", done=[[0, 10]]))
    assert await a.next_job(block_ms=300) == "h"
    assert await a.save("h", record("h", done=[[0, 20]]), "queued", "/m/h", requeue=True)
    assert await b.next_job(block_ms=300) == "h"  # at once, not after a lease
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
