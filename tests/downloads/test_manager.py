"""DownloadManager controls and guarantees: pause/resume/cancel, priority, dedup, existing files,
formats, events, restart, disk space, and its wiring into the Resolver."""
from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from comfyui_model_resolver.downloads.store import JobStore
from comfyui_model_resolver.errors import HostNotAllowed, JobNotFound, UnsafeFormat, UnsafePath
from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.types import DownloadRequest, DownloadState
from fakes.blobs import FakeFile
from support.downloads import Env, sha256_of

MiB = 1 << 20


def req(env: Env, name="model.safetensors", folder="checkpoints", **kw) -> DownloadRequest:
    return DownloadRequest(url=env.url(name), folder=folder, **kw)


async def until(predicate, timeout=20.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


def cdn_starts(env: Env) -> list[int]:
    return [int((r["range"] or "bytes=0-").split("=")[1].split("-")[0])
            for r in env.hub.requests(server="cdn") if r["method"] == "GET"]


# ---- pause / resume / cancel ---------------------------------------------------------------
async def test_pause_keeps_partial_data_and_resume_continues_with_range(env):
    f = env.add(size=3 * MiB)
    env.hub.switch(on="cdn", throttle_bps=2 * MiB)
    m = env.manager(env.with_settings(segment_threshold=64 * MiB))
    job = await m.submit(req(env))
    await until(lambda: m.job(job.id).bytes_done > 256 * 1024)
    paused = await m.pause(job.id)
    assert paused.state == DownloadState.paused and 0 < paused.bytes_done < f.size
    assert os.path.exists(str(env.final()) + ".part") and not env.final().exists()
    stored = JobStore(env.data / "downloads.sqlite").get(job.id)
    assert stored.state == "paused" and stored.done and stored.done[0][0] == 0
    env.hub.clear_switches()
    await m.resume(job.id)
    done = await m.wait(job.id, timeout=30)
    assert done.state == DownloadState.completed and sha256_of(env.final()) == f.sha256
    starts = cdn_starts(env)
    assert starts[0] == 0 and starts[-1] >= stored.done[0][1] > 0  # continued, not from zero


async def test_cancel_removes_partial_data_unless_asked_to_keep_it(env):
    env.add(size=3 * MiB)
    env.hub.switch(on="cdn", throttle_bps=MiB)
    m = env.manager()
    job = await m.submit(req(env))
    await until(lambda: m.job(job.id).bytes_done > 0)
    cancelled = await m.cancel(job.id)
    assert cancelled.state == DownloadState.cancelled and cancelled.error["type"] == "DownloadCancelled"
    assert env.leftovers() == [] and not env.final().exists()

    job = await m.submit(req(env))
    await until(lambda: m.job(job.id).bytes_done > 0)
    kept = await m.cancel(job.id, keep_partial=True)
    assert kept.state == DownloadState.cancelled
    assert env.leftovers() == ["model.safetensors.part"] and not env.final().exists()


async def test_controls_on_unknown_and_finished_jobs(env):
    f = env.add(size=MiB // 4)
    m = env.manager()
    with pytest.raises(JobNotFound):
        m.job("nope")
    with pytest.raises(JobNotFound):
        await m.pause("nope")
    job = await m.wait((await m.submit(req(env))).id, timeout=30)
    assert (await m.cancel(job.id)).state == DownloadState.completed  # never deletes a finished file
    assert (await m.pause(job.id)).state == DownloadState.completed
    assert sha256_of(env.final()) == f.sha256


async def test_priority_decides_who_goes_next(env):
    names = ["first.safetensors", "low.safetensors", "high.safetensors", "later.safetensors"]
    env.hub.add_repo("org/model", [FakeFile.safetensors(n, MiB // 2, seed=i) for i, n in enumerate(names)])
    env.hub.switch("org/model/first.safetensors", on="cdn", throttle_bps=4 * MiB)
    m = env.manager(env.with_settings(max_concurrent_downloads=1))
    first = await m.submit(req(env, "first.safetensors"))
    await until(lambda: m.job(first.id).state == DownloadState.running)
    low = await m.submit(req(env, "low.safetensors", priority=0))
    high = await m.submit(req(env, "high.safetensors", priority=5))
    later = await m.submit(req(env, "later.safetensors"))
    assert (await m.set_priority(later.id, 10)).priority == 10
    for j in (first, low, high, later):
        assert (await m.wait(j.id, timeout=30)).state == DownloadState.completed
    order = [r["path"].rsplit("/", 1)[-1] for r in env.hub.requests(server="hub")]
    assert order == ["first.safetensors", "later.safetensors", "high.safetensors", "low.safetensors"]


# ---- dedup and files that already exist ----------------------------------------------------
async def test_same_target_twice_is_one_job(env):
    f = env.add(size=4 * MiB)
    env.hub.switch(on="cdn", throttle_bps=8 * MiB)
    m = env.manager()
    a, b = await asyncio.gather(m.submit(req(env)), m.submit(req(env)))
    c = await m.submit(req(env, filename="model.safetensors"))
    assert a.id == b.id == c.id
    done = await m.wait(a.id, timeout=30)
    assert done.state == DownloadState.completed and len(m.jobs()) == 1
    assert len(env.hub.requests(server="hub")) == 1  # one download reached the Hub
    assert sha256_of(env.final()) == f.sha256


async def test_unnamed_requests_for_the_same_file_share_the_download(env):
    """Two URLs whose file name only the server knows (Content-Disposition), naming the same
    target: the second waits for the first, then finds the verified file."""
    f = env.add("model", size=2 * MiB)
    env.hub.switch(on="cdn", throttle_bps=4 * MiB, times=2)
    m = env.manager(env.with_settings(segment_threshold=64 * MiB))
    a = await m.submit(DownloadRequest(url=env.url("model"), folder="checkpoints"))
    b = await m.submit(DownloadRequest(url=env.url("model") + "?download=true", folder="checkpoints"))
    assert a.id != b.id and a.path is None  # not named yet
    ja, jb = await m.wait(a.id, timeout=30), await m.wait(b.id, timeout=30)
    assert ja.state == jb.state == DownloadState.completed and ja.path == jb.path == str(env.final("model"))
    assert ja.sha256 == jb.sha256 == f.sha256
    assert sorted([ja.detail or "", jb.detail or ""]) == ["", "already present (SHA-256 verified)"]
    cdn = [r for r in env.hub.requests(server="cdn") if r["method"] == "GET"]
    assert len(cdn) == 3  # two name probes (closed after the headers) and one download
    assert sha256_of(env.final("model")) == f.sha256


async def test_existing_verified_file_is_done_without_downloading(env):
    f = env.add(size=MiB)
    m = env.manager()
    await m.wait((await m.submit(req(env))).id, timeout=30)
    env.hub.reset_log()
    again = await m.wait((await m.submit(req(env, filename="model.safetensors"))).id, timeout=30)
    assert again.state == DownloadState.completed and again.sha256 == f.sha256
    assert [r["server"] for r in env.hub.requests()] == ["hub"]  # one metadata request, no bytes
    # With the hash given, not even that.
    env.hub.reset_log()
    m2 = env.manager()
    third = await m2.wait((await m2.submit(req(env, sha256=f.sha256.upper()))).id, timeout=30)
    assert third.state == DownloadState.completed and env.hub.requests() == []


async def test_a_different_existing_file_is_never_overwritten(env):
    env.add(size=MiB)
    env.final().write_bytes(b"my own file")
    job = await (m := env.manager()).wait((await m.submit(req(env))).id, timeout=30)
    assert job.state == DownloadState.failed and job.error["type"] == "TargetExists"
    assert "already exists" in job.error["message"] and job.error["hint"]
    assert env.final().read_bytes() == b"my own file"
    assert env.leftovers() == []


# ---- refusals at submit time ---------------------------------------------------------------
async def test_submit_refuses_what_can_never_work(env):
    m = env.manager(env.with_settings(safetensors_only=True))
    with pytest.raises(HostNotAllowed):
        await m.submit(DownloadRequest(url="https://evil.example/x.safetensors", folder="checkpoints"))
    with pytest.raises(UnsafePath):
        await m.submit(req(env, filename="../../escape.safetensors"))
    with pytest.raises(UnsafeFormat) as info:
        await m.submit(req(env, "model.ckpt"))
    assert "CMR_SAFETENSORS_ONLY" in info.value.message
    assert m.jobs() == []


async def test_pickle_files_download_with_a_warning(env):
    f = env.add("model.ckpt", size=MiB // 4)
    m = env.manager()
    job = await m.wait((await m.submit(req(env, "model.ckpt"))).id, timeout=30)
    assert job.state == DownloadState.completed and sha256_of(env.final("model.ckpt")) == f.sha256
    assert any("pickle" in w for w in job.warnings)


# ---- events ----------------------------------------------------------------------------------
async def test_progress_events_and_every_state_change(env):
    f = env.add(size=3 * MiB)
    env.hub.switch(on="cdn", throttle_bps=3 * MiB)
    m = env.manager(env.with_settings(segment_threshold=64 * MiB))
    sub = m.events.subscribe()
    job = await m.wait((await m.submit(req(env))).id, timeout=30)
    events = []
    while sub._items:
        events.append(sub._items.popleft())
    states = [e.state for e in events]
    for s in (DownloadState.queued, DownloadState.running, DownloadState.verifying, DownloadState.completed):
        assert s in states
    assert states.index(DownloadState.running) < states.index(DownloadState.verifying) < states.index(
        DownloadState.completed)
    running = [e for e in events if e.state == DownloadState.running and e.bytes_done]
    assert running and all(e.total == f.size for e in running)
    assert [e.bytes_done for e in running] == sorted(e.bytes_done for e in running)
    assert any(e.speed > 0 for e in running)
    last = events[-1]
    assert last.state == DownloadState.completed and last.sha256 == f.sha256 and last.path == job.path
    assert job.model_dump(mode="json")["state"] == "completed"  # the JSON shape adapters serve


# ---- restart ---------------------------------------------------------------------------------
async def test_unfinished_jobs_resume_after_a_restart(env):
    f = env.add(size=3 * MiB)
    env.hub.switch(on="cdn", throttle_bps=2 * MiB, times=1)
    m = env.manager(env.with_settings(segment_threshold=64 * MiB))
    job = await m.submit(req(env))
    await until(lambda: m.job(job.id).bytes_done > 512 * 1024)
    await m.close()  # shutdown: checkpointed, stays queued
    assert JobStore(env.data / "downloads.sqlite").get(job.id).state == "queued"
    m2 = env.manager(env.with_settings(segment_threshold=64 * MiB))
    await m2.start()
    done = await m2.wait(job.id, timeout=30)
    assert done.state == DownloadState.completed and sha256_of(env.final()) == f.sha256
    assert cdn_starts(env)[-1] > 0  # the second process continued with Range


# ---- disk space (a real, tiny tmpfs) -------------------------------------------------------
@pytest.fixture
def tiny_disk(env):
    target = env.models / "checkpoints"
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(target)], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {exc}")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


async def test_not_enough_space_is_refused_up_front(env, tiny_disk):
    env.add(size=3 * MiB)
    job = await (m := env.manager()).wait((await m.submit(req(env))).id, timeout=30)
    assert job.state == DownloadState.failed and job.error["type"] == "InsufficientSpace"
    assert "3.0 MiB needed" in job.error["message"] and "free" in job.error["message"]
    assert os.listdir(tiny_disk) == []
    assert [r["status"] for r in env.hub.requests(server="cdn")] == [206]  # stopped after the headers


async def test_disk_full_mid_download_fails_cleanly(env, tiny_disk):
    """No Content-Length, so no reservation: the disk fills up while writing."""
    env.add(size=3 * MiB)
    env.hub.switch(on="cdn", chunked=True, ignore_range=True)
    job = await (m := env.manager()).wait((await m.submit(req(env))).id, timeout=30)
    assert job.state == DownloadState.failed and job.error["type"] == "InsufficientSpace"
    assert "disk is full" in job.error["message"] and "resume" in job.error["hint"]
    assert not env.final().exists()


# ---- wiring into the Resolver ------------------------------------------------------------------
async def test_resolver_downloads_and_refreshes_its_index(env):
    f = env.add(size=MiB // 2)
    resolver = await build_resolver(env.settings)
    try:
        resolver.downloads.retry = env.manager().retry
        before = await resolver.refresh_index()
        assert before is None or before.files == 0
        job = await resolver.downloads.submit(req(env))
        job = await resolver.downloads.wait(job.id, timeout=30)
        assert job.state == DownloadState.completed
        after = await resolver.refresh_index()  # within a second: only fresh because of invalidate_index
        assert after.files == 1
        analysis = await resolver.analyze({"nodes": [{"id": 1, "type": "CheckpointLoaderSimple",
                                                      "widgets_values": ["model.safetensors"]}]})
        assert [m.status for m in analysis.models] == ["present"]
    finally:
        await resolver.close()
    assert sha256_of(env.final()) == f.sha256


async def test_durable_mode_fsyncs_and_still_verifies(env, monkeypatch):
    import comfyui_model_resolver.downloads.partfile as partfile
    import comfyui_model_resolver.downloads.verify as verify

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(verify.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    f = env.add(size=2 * MiB)
    env.hub.switch(on="cdn", throttle_bps=MiB, times=1)
    calls = []
    real_sync = partfile.PartFile.sync
    monkeypatch.setattr(partfile.PartFile, "sync", lambda self: (calls.append(1), real_sync(self))[1])
    m = env.manager(env.with_settings(download_fsync=True, segment_threshold=64 * MiB))
    job = await m.wait((await m.submit(req(env))).id, timeout=30)
    assert job.state == DownloadState.completed and sha256_of(env.final()) == f.sha256
    assert len(synced) >= 2  # the file before the rename, then its directory
    assert calls  # checkpoints fsync the part file first
