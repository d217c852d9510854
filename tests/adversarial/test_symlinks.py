"""Links inside the models folder that point elsewhere: nothing is ever written through them.

Two of these were real (fixed in downloads/partfile.open_no_follow, used for the part and the lock
file): a symlink named `<file>.lock` made the lock owner's JSON overwrite the file it pointed to
(outside the models root), and `<file>.part` pointing at another model overwrote that model with
the new download.
"""
from __future__ import annotations

import os

import pytest

from comfyui_model_resolver.downloads.store import JobRecord, JobStore
from comfyui_model_resolver.errors import UnsafePath
from comfyui_model_resolver.types import DownloadRequest
from fakes.blobs import FakeFile

from .conftest import core_settings

NAME = "model.safetensors"


def _hub_file(hub, size: int = 200_000) -> tuple[FakeFile, str]:
    f = FakeFile.safetensors(NAME, size, seed=21)
    hub.add_repo("org/m", [f])
    return f, f"{hub.url}/org/m/resolve/main/{NAME}"


def _plant(sandbox, kind: str) -> str:
    """Plant a hostile link in checkpoints/; returns the file name to request."""
    ck = sandbox.models / "checkpoints"
    outside_file = sandbox.outside / "secret.txt"
    inside_model = ck / "existing.safetensors"
    if kind == "dir-link-outside":
        os.symlink(sandbox.outside, ck / "escape")
        return f"escape/{NAME}"
    if kind == "dir-link-custom-nodes":
        os.symlink(sandbox.custom_nodes, ck / "nodes")
        return f"nodes/innocent/{NAME}"
    if kind == "dir-link-up":
        os.symlink("../..", ck / "up")
        return f"up/{NAME}"
    if kind == "final-link-outside":
        os.symlink(sandbox.outside / "important.safetensors", ck / NAME)
    elif kind == "final-link-dangling":
        os.symlink(ck / "nothing-here.safetensors", ck / NAME)
    elif kind == "part-link-outside":
        os.symlink(outside_file, ck / (NAME + ".part"))
    elif kind == "part-link-to-model":
        os.symlink(inside_model, ck / (NAME + ".part"))
    elif kind == "part-link-dangling-outside":
        os.symlink(sandbox.outside / "new.bin", ck / (NAME + ".part"))
    elif kind == "lock-link-outside":
        os.symlink(outside_file, ck / (NAME + ".lock"))
    elif kind == "lock-link-to-model":
        os.symlink(inside_model, ck / (NAME + ".lock"))
    elif kind == "lock-link-dangling-outside":
        os.symlink(sandbox.outside / "new.lock", ck / (NAME + ".lock"))
    else:
        raise AssertionError(kind)
    return NAME


LINKS = ["dir-link-outside", "dir-link-custom-nodes", "dir-link-up", "final-link-outside", "final-link-dangling",
         "part-link-outside", "part-link-to-model", "part-link-dangling-outside", "lock-link-outside",
         "lock-link-to-model", "lock-link-dangling-outside"]


@pytest.mark.parametrize("kind", LINKS)
async def test_links_in_the_models_folder_are_never_written_through(sandbox, fake_hub, managers, kind):
    _, url = _hub_file(fake_hub)
    name = _plant(sandbox, kind)
    sandbox.mark()  # the planted link is the user's disk now; from here nothing may change outside
    m = managers(core_settings(sandbox, fake_hub))
    with pytest.raises(UnsafePath) as exc:
        await m.submit(DownloadRequest(url=url, folder="checkpoints", filename=name))
    assert "link" in exc.value.message or "outside" in exc.value.message, exc.value.message
    assert fake_hub.requests(server="cdn") == []  # refused before a byte was fetched


@pytest.mark.parametrize("kind", ["part-link-to-model", "lock-link-outside", "dir-link-outside"])
async def test_links_planted_while_a_job_waits_are_caught_when_it_starts(sandbox, fake_hub, managers, kind):
    """One slot, a slow first download; the second job is queued, then a link appears under its names."""
    slow = FakeFile.safetensors("slow.safetensors", 600_000, seed=22)
    f, url = _hub_file(fake_hub)
    fake_hub.add_repo("org/slow", [slow])
    fake_hub.switch(on="cdn", throttle_bps=2_000_000, times=1)
    m = managers(core_settings(sandbox, fake_hub, max_concurrent_downloads=1))
    first = await m.submit(DownloadRequest(url=f"{fake_hub.url}/org/slow/resolve/main/slow.safetensors",
                                           folder="checkpoints"))
    name = f"escape/{NAME}" if kind == "dir-link-outside" else NAME
    if kind == "dir-link-outside":
        (sandbox.models / "checkpoints" / "escape").mkdir()
    second = await m.submit(DownloadRequest(url=url, folder="checkpoints", filename=name))
    if kind == "dir-link-outside":
        (sandbox.models / "checkpoints" / "escape").rmdir()
    _plant(sandbox, kind)
    sandbox.mark()
    assert (await m.wait(first.id, timeout=30)).state == "completed"
    job = await m.wait(second.id, timeout=30)
    assert job.state == "failed" and job.error["type"] == "UnsafePath", job
    assert "link" in job.error["message"] or "moved" in job.error["message"]


async def test_a_job_resumed_after_a_restart_is_checked_again(sandbox, fake_hub, managers):
    """The job database says where to write; links planted while we were down must not redirect it."""
    _, url = _hub_file(fake_hub)
    final = sandbox.models / "checkpoints" / NAME
    store = JobStore(sandbox.data / "downloads.sqlite")
    store.save(JobRecord(id="restart1", url=url, folder="checkpoints", filename=NAME, path=str(final),
                         state="running", done=[[0, 1000]]))
    store.close()
    os.symlink(sandbox.models / "checkpoints" / "existing.safetensors", str(final) + ".part")
    sandbox.mark()
    m = managers(core_settings(sandbox, fake_hub))
    await m.start()
    job = await m.wait("restart1", timeout=30)
    assert job.state == "failed" and job.error["type"] == "UnsafePath"


@pytest.mark.parametrize("target", ["outside", "model"])
@pytest.mark.parametrize("which", [".part", ".lock"])
async def test_hard_links_under_our_names_are_refused(sandbox, fake_hub, managers, target, which):
    """A hard link cannot be seen through realpath; the writer checks the link count it opened."""
    _, url = _hub_file(fake_hub)
    src = sandbox.outside / "secret.txt" if target == "outside" else sandbox.models / "loras" / "keep.safetensors"
    os.link(src, sandbox.models / "checkpoints" / (NAME + which))
    sandbox.mark()
    m = managers(core_settings(sandbox, fake_hub))
    job = await m.submit(DownloadRequest(url=url, folder="checkpoints", filename=NAME))
    job = await m.wait(job.id, timeout=30)
    assert job.state == "failed" and job.error["type"] == "UnsafePath", job
    assert "hard link" in job.error["message"]


async def test_a_link_to_a_model_already_here_is_verified_not_overwritten(sandbox, fake_hub, managers):
    """The final name is a link to a file inside the folder: compared by hash, never written."""
    f, url = _hub_file(fake_hub)
    real = sandbox.models / "checkpoints" / "SD1.5" / "same.safetensors"
    real.write_bytes(f.read(0, f.size))
    os.symlink(real, sandbox.models / "checkpoints" / NAME)
    sandbox.mark()
    m = managers(core_settings(sandbox, fake_hub))
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder="checkpoints", filename=NAME))).id, timeout=30)
    assert job.state == "completed" and job.sha256 == f.sha256 and "already present" in job.detail
    assert [r for r in fake_hub.requests(server="cdn") if r["method"] == "GET"] == []


async def test_symlink_loops_and_links_out_do_not_hang_the_index(sandbox, fake_hub):
    """ComfyUI follows links when it lists models; so do we, without looping."""
    from comfyui_model_resolver.service import build_resolver

    os.symlink("..", sandbox.models / "loras" / "loop")
    os.symlink(sandbox.models / "loras", sandbox.models / "loras" / "self")
    sandbox.mark()
    resolver = await build_resolver(core_settings(sandbox, fake_hub))
    try:
        listing = resolver.local_models("loras") if await resolver.refresh_index(force=True) is not None \
            else resolver.local_models("loras")
        names = [i["name"] for i in listing["folders"].get("loras", [])]
        assert "keep.safetensors" in names and len(names) < 50
        analysis = await resolver.analyze({"1": {"class_type": "LoraLoader", "inputs": {"lora_name": "keep.safetensors"}}})
        assert analysis.models[0].status == "present"
    finally:
        await resolver.close()
