"""Jobs belong to a models volume: instances with different models roots that share a data dir
never see or run each other's jobs, and job rows from before volumes are handed to their owner."""
from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from comfyui_model_resolver.downloads.store import JobRecord, JobStore
from comfyui_model_resolver.downloads.volume import MARKER, layout_owns, volume_id
from comfyui_model_resolver.types import DownloadRequest, DownloadState
from support.downloads import Env, make_settings

MiB = 1 << 20


def second_root(env: Env, name: str = "other") -> Env:
    """Another ComfyUI install on the same machine: its own models root, the same data dir."""
    root = env.root / name
    (root / "models" / "checkpoints").mkdir(parents=True)
    settings = make_settings(root, env.hub, data_dir=env.data)
    return Env(env.hub, root, settings, env.managers)


async def until(predicate, timeout=20.0, what="condition"):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def test_one_id_per_volume_kept_in_a_marker(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    with ThreadPoolExecutor(8) as pool:  # many instances starting at once agree on one id
        ids = set(pool.map(lambda _: volume_id(str(root)), range(16)))
    assert len(ids) == 1
    vid = ids.pop()
    assert (root / MARKER).is_file() and vid in (root / MARKER).read_text()
    assert [p.name for p in root.iterdir()] == [MARKER]  # no temporary files left behind
    other = tmp_path / "disk2"
    other.mkdir()
    assert volume_id(str(other)) != vid  # another disk, even at the same path later: its own id
    assert volume_id(str(root), "studio-nfs") == "studio-nfs"  # CMR_VOLUME_ID wins


def test_a_marker_we_cannot_trust_keeps_the_volume_private(tmp_path, caplog):
    root = tmp_path / "models"
    root.mkdir()
    elsewhere = tmp_path / "planted"
    elsewhere.write_text('{"volume": "someone-elses"}')
    os.symlink(elsewhere, root / MARKER)
    vid = volume_id(str(root))
    assert vid != "someone-elses" and vid.startswith("host-")
    assert "private to this host" in caplog.text
    assert volume_id(str(root)) == vid  # stable


def test_rows_from_before_volumes_go_to_the_root_that_holds_them(tmp_path):
    db = tmp_path / "downloads.sqlite"
    legacy = JobStore(db)  # a store without a volume writes rows as older versions did
    for job_id, path in (("a1", tmp_path / "A" / "models" / "checkpoints" / "x.safetensors"),
                         ("b1", tmp_path / "B" / "models" / "loras" / "y.safetensors")):
        legacy.save(JobRecord(id=job_id, url="https://huggingface.co/o/r/resolve/main/x", folder="checkpoints",
                              filename="x.safetensors", path=str(path), state="queued"))
    legacy.close()
    a = JobStore(db, "vol-a", owns=layout_owns(str(tmp_path / "A" / "models"), ()))
    b = JobStore(db, "vol-b", owns=layout_owns(str(tmp_path / "B" / "models"), ()))
    try:
        assert [r.id for r in a.load()] == ["a1"] and [r.id for r in b.load()] == ["b1"]
        assert a.get("b1") is None and b.get("a1") is None
    finally:
        a.close()
        b.close()


async def test_two_roots_sharing_a_data_dir_never_see_or_run_each_others_jobs(env):
    f = env.add(size=3 * MiB)
    env.hub.switch(on="cdn", throttle_bps=MiB)
    other = second_root(env)
    a = env.manager(env.with_settings(segment_threshold=64 * MiB))
    job = await a.submit(DownloadRequest(url=env.url(), folder="checkpoints"))
    await until(lambda: a.job(job.id).bytes_done > 0, what="the first bytes")
    await a.close()  # a queued job: the next start of the *same* root resumes it
    b = other.manager()
    await b.start()
    assert b.jobs() == [] and b.volume != a.volume
    await asyncio.sleep(0.3)
    assert not (other.models / "checkpoints" / f.name).exists()
    assert not list((other.models / "checkpoints").glob("*.part"))
    env.hub.clear_switches()
    again = env.manager()
    await again.start()
    assert [j.id for j in again.jobs()] == [job.id]
    done = await again.wait(job.id, timeout=30)
    assert done.state == DownloadState.completed and env.final().exists()
    assert b.jobs() == []
