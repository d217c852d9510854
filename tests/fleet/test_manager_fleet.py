"""The download manager in fleet mode (CMR_REDIS_URL): several hosts (managers with their own job
database and host name) on one models volume, a real redis-server and the fake Hub.

The same checks with real processes, nginx and kill -9 are in test_real_fleet.py."""
from __future__ import annotations

import asyncio

from comfyui_model_resolver.types import DownloadRequest
from support.downloads import MiB, sha256_of
from support.fleet import ends_cancelled_and_clean, host, until


def body_gets(hub) -> list[dict]:
    return [r for r in hub.requests(server="cdn") if r["method"] == "GET"]


def served(hub) -> int:
    """Bytes the CDN was asked for (Range spans, or whole files)."""
    total = 0
    for r in body_gets(hub):
        rng = r.get("range")
        if not rng:
            total += r.get("size") or 0
            continue
        start, _, end = rng.split("=")[1].partition("-")
        total += (int(end) + 1 if end else r.get("size") or 0) - int(start)
    return total


async def test_the_same_download_on_three_hosts_is_one_job_and_one_transfer(fleet):
    env, server = fleet
    f = env.add(size=4 * MiB)
    env.hub.switch(on="cdn", throttle_bps=2 * MiB)
    hosts = [host(env, server, f"h{i}") for i in range(3)]
    for m in hosts:
        await m.start()
    req = DownloadRequest(url=env.url(), folder="checkpoints")
    jobs = await asyncio.gather(*(m.submit(req) for m in hosts))
    assert len({j.id for j in jobs}) == 1  # one job for the file, whoever asked
    done = await asyncio.gather(*(m.wait(jobs[0].id, timeout=60) for m in hosts))
    assert {j.state.value for j in done} == {"completed"}
    assert sha256_of(env.final()) == f.sha256 and env.leftovers() == []
    assert len([r for r in body_gets(env.hub) if (r.get("range") or "bytes=0-").startswith("bytes=0-")]) == 1
    runner = done[0].host
    assert runner in {"h0", "h1", "h2"} and all(j.host == runner for j in done)
    for m in hosts:  # every host lists it (once), completed, with the host that ran it
        listed = await until(lambda m=m: [j for j in m.jobs() if j.id == jobs[0].id and j.state.value == "completed"],
                             "every host to list the job completed")
        assert len(listed) == 1 and listed[0].host == runner


async def test_a_host_that_stops_hands_its_job_to_another_which_resumes_from_the_part_file(fleet):
    env, server = fleet
    f = env.add(size=6 * MiB)
    env.hub.switch(on="cdn", throttle_bps=MiB)
    a = host(env, server, "a")
    await a.start()
    job = await a.submit(DownloadRequest(url=env.url(), folder="checkpoints"))
    await until(lambda: a.job(job.id).bytes_done >= 2 * MiB and a.runs_here(job.id), "2 MiB on host a")
    b = host(env, server, "b")
    await b.start()
    await a.close()  # the job goes back to the queue; b takes it
    done = await b.wait(job.id, timeout=60)
    assert done.state.value == "completed" and done.host == "b"
    assert sha256_of(env.final()) == f.sha256
    assert served(env.hub) <= f.size * 1.25  # resumed, not started over


async def test_pause_resume_and_cancel_from_another_host(fleet):
    env, server = fleet
    env.add(size=8 * MiB)
    env.hub.switch(on="cdn", throttle_bps=MiB)
    a, b = host(env, server, "a"), host(env, server, "b", max_concurrent_downloads=1)
    await a.start()
    job = await a.submit(DownloadRequest(url=env.url(), folder="checkpoints"))
    await until(lambda: a.runs_here(job.id) and a.job(job.id).bytes_done > 0, "the job running on a")
    await b.start()
    await until(lambda: any(j.id == job.id and j.host == "a" and j.lease == "held" for j in b.jobs()),
                "b to list a's job with its lease")
    await b.pause(job.id)
    paused = await b.wait(job.id, timeout=30)
    assert paused.state.value == "paused"
    await until(lambda: not a.runs_here(job.id), "host a to stop the paused job")
    await b.resume(job.id)
    await until(lambda: a.runs_here(job.id) or b.runs_here(job.id), "a host to take the resumed job")
    out = await b.cancel(job.id)
    assert out.state.value in ("cancelled", "running", "queued", "verifying")
    await ends_cancelled_and_clean(env, a, job.id, "a")


async def test_redis_away_mid_run_then_back_empty_loses_no_job(fleet):
    env, server = fleet
    f = env.add(size=4 * MiB)
    g = env.add("other.safetensors", size=MiB, repo="org/other")
    env.hub.switch(on="cdn", throttle_bps=MiB)
    a = host(env, server, "a")
    await a.start()
    job = await a.submit(DownloadRequest(url=env.url(), folder="checkpoints"))
    await until(lambda: a.runs_here(job.id) and a.job(job.id).bytes_done > 0, "the job running")
    server.stop()  # Redis goes away (and comes back empty: no persistence)
    await until(lambda: not a.fleet.online, "a to notice Redis is away")
    assert "cannot be reached" in a.fleet.status()["warning"]
    late = await a.submit(DownloadRequest(url=env.url("other.safetensors", "org/other"), folder="checkpoints"))
    done = await a.wait(job.id, timeout=60)
    assert done.state.value == "completed" and sha256_of(env.final()) == f.sha256
    assert (await a.wait(late.id, timeout=60)).state.value == "completed"
    assert sha256_of(env.final("other.safetensors")) == g.sha256
    server.start()
    await until(lambda: a.fleet.online, "a to reconnect")
    b = host(env, server, "b")
    await b.start()
    seen = await until(lambda: {j.id: j for j in b.jobs() if j.id in (job.id, late.id)}
                       if len([j for j in b.jobs() if j.id in (job.id, late.id)]) == 2 else None,
                       "both jobs in the fleet again")
    assert {j.state.value for j in seen.values()} == {"completed"}


async def test_another_hosts_progress_reaches_this_hosts_event_stream(fleet):
    """What SSE, the sidebar and Gradio show: host b's event bus carries host a's download, with
    its host, its lease and growing byte counts."""
    env, server = fleet
    f = env.add(size=6 * MiB)
    env.hub.switch(on="cdn", throttle_bps=MiB // 2)
    a = host(env, server, "a", segments=1)  # one connection: seconds of progress
    await a.start()
    job = await a.submit(DownloadRequest(url=env.url(), folder="checkpoints"))
    await until(lambda: a.runs_here(job.id), "host a to run the job")
    b = host(env, server, "b")
    sub = b.events.subscribe()  # before b starts: its first snapshot of the fleet is on the stream too
    await b.start()
    try:
        seen = []
        while not (seen and seen[-1].state.value == "completed"):
            event = await asyncio.wait_for(sub.get(), 30)
            if event.job_id == job.id:
                seen.append(event)
    finally:
        sub.close()
    running = [e for e in seen if e.state.value == "running"]
    assert len(running) >= 2 and all(e.host == "a" and e.lease == "held" for e in running)
    assert running[-1].bytes_done > running[0].bytes_done  # progress, not just states
    assert seen[-1].host == "a" and seen[-1].bytes_done == f.size
