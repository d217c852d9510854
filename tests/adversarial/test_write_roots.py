"""Hole 1 (issue 12): writes outside the models root through a link in the *folder*.

With `models/checkpoints/linkout` a link to an outside directory, `{"folder": "checkpoints/linkout",
"filename": "y.safetensors"}` was accepted and written outside: the containment check compared the
file with the real path of the named folder, which was already outside. The same happened with
`models/<link>` and with links inside a node pack's folder (one wrote into ComfyUI's `user/`).
Now every write is checked against the write roots (downloads/containment.py): the real models root,
the extra_model_paths.yaml folders and CMR_WRITE_ROOTS — never ComfyUI's own tree.

Every case runs through the core and each door it concerns: both HTTP doors (ComfyUI routes,
sidecar), the Gradio UI's download, and `cmr download --folder`. Positive control each time: a linked
folder whose target is a configured write root takes the same download.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from comfyui_model_resolver.errors import UnsafePath
from comfyui_model_resolver.types import DownloadRequest
from fakes.blobs import FakeFile
from support.paths import REPO

from .conftest import DOORS, core_settings, door_environ
from .harness import Sandbox, assert_error_shape

NAME = "y.safetensors"


def _hub_file(hub, seed: int = 61) -> tuple[FakeFile, str]:
    f = FakeFile.safetensors(NAME, 8192, seed=seed)
    hub.add_repo(f"org/m{seed}", [f])
    return f, f"{hub.url}/org/m{seed}/resolve/main/{NAME}"


def _disk2(sandbox: Sandbox):
    """A second disk beside the install, linked as `checkpoints/disk`; writes there are allowed only
    when it is a write root, and the sandbox accepts changes there."""
    disk = sandbox.parent / "disk2"
    disk.mkdir(exist_ok=True)
    link = sandbox.models / "checkpoints" / "disk"
    if not link.is_symlink():
        os.symlink(disk, link)
    sandbox.ALLOWED = (*Sandbox.ALLOWED, "disk2")
    return disk


#: (id, setup(sandbox) -> (folder, filename), extra write roots)
def _plant(sandbox: Sandbox, kind: str) -> tuple[str, str]:
    models, base = sandbox.models, sandbox.base
    if kind == "sub-folder-link-outside":
        os.symlink(sandbox.outside, models / "checkpoints" / "linkout")
        return "checkpoints/linkout", NAME
    if kind == "models-link-to-user":
        os.symlink(base / "user" / "default", models / "userlink")
        return "models/userlink", "comfy.settings.safetensors"
    if kind == "plain-folder-link-to-user":
        os.symlink(base / "user", models / "userdir")
        return "userdir", NAME
    if kind == "models-link-to-custom-nodes":
        os.symlink(base / "custom_nodes", models / "nodes")
        return "models/nodes", "innocent/model.safetensors"
    if kind == "models-link-to-comfyui":
        os.symlink(base, models / "up")
        return "models/up", NAME
    if kind == "folder-itself-linked-out":
        (sandbox.outside / "ipadapter").mkdir()
        os.symlink(sandbox.outside / "ipadapter", models / "ipadapter")
        return "ipadapter", NAME
    if kind == "pack-model-folder-linked-to-user":
        pack = base / "custom_nodes" / "ComfyUI-WD14-Tagger"
        pack.mkdir()
        (pack / "__init__.py").write_bytes(b"NODE_CLASS_MAPPINGS = {}\n")
        os.symlink(base / "user" / "default", pack / "models")
        return "custom_nodes/ComfyUI-WD14-Tagger/models", "tagger.onnx"
    if kind == "pack-itself-linked-to-user":
        os.symlink(base / "user", base / "custom_nodes" / "ComfyUI-WD14-Tagger")
        (base / "user" / "models").mkdir()
        return "custom_nodes/ComfyUI-WD14-Tagger/models", "tagger.onnx"
    if kind == "sub-folder-link-relative-up":
        os.symlink("../../../outside", models / "checkpoints" / "rel")
        return "checkpoints/rel", NAME
    raise AssertionError(kind)


KINDS = ["sub-folder-link-outside", "models-link-to-user", "plain-folder-link-to-user", "models-link-to-custom-nodes",
         "models-link-to-comfyui", "folder-itself-linked-out", "pack-model-folder-linked-to-user",
         "pack-itself-linked-to-user", "sub-folder-link-relative-up"]


@pytest.mark.parametrize("kind", KINDS)
async def test_links_in_the_folder_never_lead_writes_out(sandbox, fake_hub, managers, kind):
    _, url = _hub_file(fake_hub)
    folder, filename = _plant(sandbox, kind)
    sandbox.mark()
    m = managers(core_settings(sandbox, fake_hub))
    with pytest.raises(UnsafePath) as exc:
        await m.submit(DownloadRequest(url=url, folder=folder, filename=filename))
    assert "outside the folders the resolver may write to" in exc.value.message \
        or "inside ComfyUI's own files" in exc.value.message, exc.value.message
    assert fake_hub.requests(server="cdn") == []  # refused before a byte was fetched


async def test_a_write_root_that_holds_comfyui_still_protects_its_tree(sandbox, fake_hub, managers):
    """CMR_WRITE_ROOTS may name a parent of the install; ComfyUI's code, user/ and custom_nodes/ stay out."""
    _, url = _hub_file(fake_hub)
    cases = [_plant(sandbox, k) for k in ("models-link-to-user", "models-link-to-custom-nodes", "models-link-to-comfyui")]
    sandbox.mark()
    m = managers(core_settings(sandbox, fake_hub, write_roots=(sandbox.parent,)))
    for folder, filename in cases:
        with pytest.raises(UnsafePath, match="inside ComfyUI's own files"):
            await m.submit(DownloadRequest(url=url, folder=folder, filename=filename))


async def test_a_linked_folder_whose_target_is_a_write_root_takes_downloads(sandbox, fake_hub, managers):
    f, url = _hub_file(fake_hub)
    disk = _disk2(sandbox)
    sandbox.mark()
    refused = managers(core_settings(sandbox, fake_hub))
    with pytest.raises(UnsafePath) as exc:  # not configured: refused, and the error says how to allow it
        await refused.submit(DownloadRequest(url=url, folder="checkpoints/disk", filename=NAME))
    assert f"CMR_WRITE_ROOTS={disk.resolve()}" in exc.value.hint
    m = managers(core_settings(sandbox, fake_hub, write_roots=(disk,)))
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder="checkpoints/disk", filename=NAME))).id,
                       timeout=30)
    assert job.state == "completed" and job.sha256 == f.sha256, job.error
    assert (disk / NAME).read_bytes() == f.read(0, f.size)
    assert sorted(os.listdir(disk)) == [NAME]  # no part or lock file left behind


async def test_a_folder_linked_out_while_the_job_waits_is_refused_at_write_time(sandbox, fake_hub, managers):
    """Checked at submit (a plain folder then), and again when the job writes: the link is caught."""
    slow = FakeFile.safetensors("slow.safetensors", 600_000, seed=62)
    fake_hub.add_repo("org/slow", [slow])
    fake_hub.switch(on="cdn", throttle_bps=2_000_000, times=1)
    _, url = _hub_file(fake_hub)
    later = sandbox.models / "checkpoints" / "later"
    later.mkdir()
    m = managers(core_settings(sandbox, fake_hub, max_concurrent_downloads=1))
    first = await m.submit(DownloadRequest(url=f"{fake_hub.url}/org/slow/resolve/main/slow.safetensors",
                                           folder="checkpoints"))
    second = await m.submit(DownloadRequest(url=url, folder="checkpoints/later", filename=NAME))
    later.rmdir()
    os.symlink(sandbox.outside, later)
    sandbox.mark()
    assert (await m.wait(first.id, timeout=30)).state == "completed"
    job = await m.wait(second.id, timeout=30)
    assert job.state == "failed" and job.error["type"] == "UnsafePath", job
    assert not (sandbox.outside / NAME).exists() and not (sandbox.outside / (NAME + ".part")).exists()


async def test_an_extra_model_paths_folder_inside_comfyui_is_no_write_root(sandbox, fake_hub):
    """extra_model_paths.yaml is trusted for where models are, but it cannot open ComfyUI's user/ to writes."""
    from .conftest import sidecar_door

    _, url = _hub_file(fake_hub)
    (sandbox.base / "user" / "loras").mkdir()
    extra = sandbox.parent / "extra_model_paths.yaml"
    extra.write_text(f"mine:\n  is_default: true\n  loras: {sandbox.base / 'user' / 'loras'}\n")
    sandbox.mark()
    env = door_environ(sandbox, fake_hub, CMR_EXTRA_MODEL_PATHS=str(extra))
    async with sidecar_door(sandbox, env) as door:
        status, body, _ = await door.request("POST", "/downloads", json_body={"url": url, "folder": "loras",
                                                                              "filename": NAME})
        err = assert_error_shape(status, body, statuses=(400,))
        assert "inside ComfyUI's own files" in err["message"], err
        status, body, _ = await door.request("GET", "/health", raw_path=True)
    ignored = [i for i in body["write_roots"]["refused_links"] if i["path"] == str(sandbox.base / "user" / "loras")]
    assert ignored and ignored[0]["allow"] is None and "inside ComfyUI's own files" in ignored[0]["message"], body


# ---- through the HTTP doors ----------------------------------------------------------------------
async def _wait_job(door, job_id: str) -> dict:
    for _ in range(400):
        status, job, _ = await door.request("GET", f"/downloads/{job_id}")
        assert status == 200, job
        if job["state"] in ("completed", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def _only_job_completes(client, base_url: str) -> None:
    """Wait (hang guard, not a timing check) until the sidecar's one job ends, and check it completed."""
    for _ in range(400):
        jobs = (await client.get(f"{base_url}/api/v1/downloads")).json()["jobs"]
        if jobs and jobs[0]["state"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.05)
    assert len(jobs) == 1 and jobs[0]["state"] == "completed", jobs


@pytest.mark.parametrize("door_name", sorted(DOORS))
async def test_linked_folders_through_the_routes(sandbox, fake_hub, door_name):
    f, url = _hub_file(fake_hub)
    disk = _disk2(sandbox)
    refused = [_plant(sandbox, k) for k in ("sub-folder-link-outside", "models-link-to-user",
                                            "pack-model-folder-linked-to-user")]
    sandbox.mark()
    async with DOORS[door_name](sandbox, door_environ(sandbox, fake_hub, CMR_WRITE_ROOTS=str(disk))) as door:
        for folder, filename in refused:
            status, body, _ = await door.request("POST", "/downloads",
                                                 json_body={"url": url, "folder": folder, "filename": filename})
            err = assert_error_shape(status, body, statuses=(400,))
            assert err["type"] == "UnsafePath" and "resolver" in err["message"], err
        status, body, _ = await door.request("GET", "/downloads")
        assert status == 200 and body["jobs"] == []
        status, body, _ = await door.request("POST", "/downloads",
                                             json_body={"url": url, "folder": "checkpoints/disk", "filename": NAME})
        assert status in (200, 202), body
        job = await _wait_job(door, (body.get("jobs") or [body])[0]["id"])
        assert job["state"] == "completed" and job["sha256"] == f.sha256, job
    assert (disk / NAME).read_bytes() == f.read(0, f.size)
    assert [r for r in fake_hub.requests(server="cdn") if r["method"] == "GET"]  # the allowed one was fetched


@pytest.mark.timeout(180)
async def test_linked_folders_through_the_gradio_download(sandbox, fake_hub):
    pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")
    import httpx

    from comfyui_model_resolver.settings import Settings
    from sidecar.main import create_app

    from .test_gradio_cross_site import _call, _server

    f, url = _hub_file(fake_hub)
    disk = _disk2(sandbox)
    folder, _ = _plant(sandbox, "sub-folder-link-outside")
    sandbox.mark()
    env = door_environ(sandbox, fake_hub, CMR_WRITE_ROOTS=str(disk))
    settings = Settings.load(env, env_file="/nonexistent", comfyui_root=sandbox.base, enable_ui=True)
    server = await asyncio.to_thread(_server, create_app(settings, environ=env, enable_ui=True))
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            ui = f"{server.url}/gradio"
            status, text = await _call(client, ui, "download_url", [url, folder, NAME, "", []], {})
            assert status == 200 and "outside the folders the resolver may write to" in text, text[:500]
            assert (await client.get(f"{server.url}/api/v1/downloads")).json()["jobs"] == []
            status, text = await _call(client, ui, "download_url", [url, "checkpoints/disk", NAME, "", []], {})
            assert status == 200 and "Queued 1 download" in text, text[:500]
            await _only_job_completes(client, server.url)
    finally:
        await asyncio.to_thread(server.stop)
    assert (disk / NAME).read_bytes() == f.read(0, f.size)


# ---- the command line ----------------------------------------------------------------------------
def _cmr(sandbox: Sandbox, hub, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(sandbox.parent / "home"), "PYTHONPATH": str(REPO),
            "CMR_COMFYUI_ROOT": str(sandbox.base), "CMR_DATA_DIR": str(sandbox.data),
            "CMR_HF_ENDPOINT": hub.url, "CMR_ENV_FILE": "/nonexistent", "CMR_DISABLE_CATALOG": "1",
            "CMR_ALLOWED_HOSTS": hub.cdn_url.split("//", 1)[1]}
    return subprocess.run([sys.executable, "-m", "comfyui_model_resolver", *args], capture_output=True, text=True,
                          env={**base, **env}, timeout=120)


def test_linked_folders_through_the_command_line(sandbox, fake_hub_thread):
    hub = fake_hub_thread
    f = FakeFile.safetensors(NAME, 8192, seed=63)
    hub.add_repo("org/cli", [f])
    url = f"{hub.url}/org/cli/resolve/main/{NAME}"
    disk = _disk2(sandbox)
    folder, _ = _plant(sandbox, "sub-folder-link-outside")
    sandbox.mark()
    proc = _cmr(sandbox, hub, "download", url, "--folder", folder, "--filename", NAME, "--json", "--no-progress")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
    assert err["type"] == "UnsafePath" and "CMR_WRITE_ROOTS=" in err["hint"], err
    proc = _cmr(sandbox, hub, "download", url, "--folder", "checkpoints/disk", "--filename", NAME, "--json",
                "--no-progress", CMR_WRITE_ROOTS=str(disk))
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert (disk / NAME).read_bytes() == f.read(0, f.size)


# ---- /health and `cmr serve --check` name the refused links ---------------------------------------
async def test_health_names_each_linked_folder_with_the_line_that_allows_it(sandbox, fake_hub):
    disk = _disk2(sandbox)
    _plant(sandbox, "sub-folder-link-outside")
    _plant(sandbox, "models-link-to-user")
    sandbox.mark()
    from .conftest import sidecar_door

    async with sidecar_door(sandbox, door_environ(sandbox, fake_hub, CMR_WRITE_ROOTS=str(disk))) as door:
        status, body, _ = await door.request("GET", "/health", raw_path=True)
    assert status == 200 and body["ready"], body
    report = body["write_roots"]
    assert str(disk.resolve()) in report["roots"] and str(sandbox.models.resolve()) in report["roots"]
    by_path = {item["path"]: item for item in report["refused_links"]}
    out = by_path[str(sandbox.models / "checkpoints" / "linkout")]
    assert out["folder"] == "checkpoints/linkout" and out["target"] == str(sandbox.outside.resolve())
    assert out["allow"] == f"CMR_WRITE_ROOTS={disk}{os.pathsep}{sandbox.outside.resolve()}"
    user = by_path[str(sandbox.models / "userlink")]
    assert user["allow"] is None and "inside ComfyUI's own files" in user["message"]
    assert str(sandbox.models / "checkpoints" / "disk") not in by_path  # allowed: not named


def test_serve_check_names_each_linked_folder(sandbox, fake_hub_thread):
    _plant(sandbox, "sub-folder-link-outside")
    disk = _disk2(sandbox)
    sandbox.mark()
    proc = _cmr(sandbox, fake_hub_thread, "serve", "--check")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    line = next(ln for ln in proc.stdout.splitlines() if "linkout" in ln)
    assert line.endswith(f"to allow it: CMR_WRITE_ROOTS={sandbox.outside.resolve()}"), line
    assert any(ln.endswith(f"CMR_WRITE_ROOTS={disk.resolve()}") for ln in proc.stdout.splitlines()), proc.stdout
    proc = _cmr(sandbox, fake_hub_thread, "serve", "--check", CMR_WRITE_ROOTS=str(disk))
    assert "checkpoints/disk" not in proc.stdout and "linkout" in proc.stdout, proc.stdout
