"""Redis restarted empty while host a runs a job that host b submitted: b (which only knows the
job from its own database) must not queue it again while a can still put it back, or a second
host would start on it, wait for a's file lock and download it again from an older checkpoint.
If a never comes back, b queues it again after one lease: no job is lost.

Real redis-server, the Hub fake, hosts in this process. Which host reconnects first is decided
by the test (a's fleet loops are stopped while Redis is away), not by a race."""
from __future__ import annotations

from comfyui_model_resolver.types import DownloadRequest
from support.downloads import MiB, sha256_of
from support.fleet import host, until


async def _b_submits_and_a_runs(env, server, lease: float):
    """b is busy with one download (its only slot), so the one it submits next runs on a."""
    env.hub.switch(on="cdn", throttle_bps=MiB)
    b = host(env, server, "b", segments=1, max_concurrent_downloads=1, fleet_lease_seconds=lease)
    await b.start()
    busy = await b.submit(DownloadRequest(url=env.url("busy.safetensors", "org/busy"), folder="checkpoints"))
    await until(lambda: b.runs_here(busy.id), "b to run its first download")
    a = host(env, server, "a", segments=1, fleet_lease_seconds=lease)
    await a.start()
    job = await b.submit(DownloadRequest(url=env.url(), folder="checkpoints"))
    await until(lambda: a.runs_here(job.id) and a.job(job.id).bytes_done > 0, "a to run b's second download")
    await until(lambda: any(j.id == job.id and j.host == "a" and j.lease == "held" for j in b.jobs()),
                "b to see a run it")
    return a, b, job


def _from_zero(env, sha256: str) -> int:
    """Transfers of that file from its first byte."""
    return len(env.hub.requests(f"/blobs/{sha256}", server="cdn", method="GET")) - len(
        [r for r in env.hub.requests(f"/blobs/{sha256}", server="cdn", method="GET")
         if r.get("range") and not r["range"].startswith("bytes=0-")])


async def test_the_host_that_runs_a_job_puts_it_back_and_no_other_host_starts_it_again(fleet):
    env, server = fleet
    f = env.add(size=6 * MiB)
    env.add("busy.safetensors", size=8 * MiB, repo="org/busy", seed=2)
    a, b, job = await _b_submits_and_a_runs(env, server, lease=30)
    await a.fleet.stop_loops()  # a will reconnect only when the test says so
    server.stop()
    await until(lambda: not b.fleet.online, "b to notice Redis is away")
    server.start()  # empty
    await until(lambda: b.fleet.online, "b to reconnect first")
    assert await b.fleet.queue.get(job.id) is None  # b left it to a (a lease of 30 s), rather than queue it
    await a.fleet.start()  # a reconnects: it holds the job again and goes on
    done = await a.wait(job.id, timeout=60)
    assert done.state.value == "completed" and done.host == "a"
    assert sha256_of(env.final()) == f.sha256
    assert _from_zero(env, f.sha256) == 1  # one transfer from the start: nobody began it again


async def test_a_job_whose_host_never_comes_back_is_queued_again_after_one_lease(fleet):
    env, server = fleet
    f = env.add(size=4 * MiB)
    env.add("busy.safetensors", size=6 * MiB, repo="org/busy", seed=2)
    a, b, job = await _b_submits_and_a_runs(env, server, lease=1.5)
    server.stop()
    await until(lambda: not a.fleet.online and not b.fleet.online, "both hosts to notice Redis is away")
    await a.close()  # a goes away for good while Redis is away: Redis never hears of it
    server.start()  # empty
    done = await b.wait(job.id, timeout=90)  # b waits a lease for a, then queues it again and runs it
    assert done.state.value == "completed" and done.host == "b"
    assert sha256_of(env.final()) == f.sha256
