"""Hole 6 (issue 12): configuration and code into node packs.

`folder: "custom_nodes/<pack>"` accepted `requirements.txt` (ComfyUI-Manager installs from it),
`config.ini`, `pyproject.toml`, `web/*.css` and `web/*.svg` (the code block missed `.svg`). Now a node
pack takes downloads only in the model folders packs use (the loader table's and the pack sources'
`custom_nodes/<pack>/<dir>` forms: containment.PACK_MODEL_DIRS), and only model weights — or a file the
loader table itself puts there (a tagger's tag list). Everything else is a 400 with the reason.

Through the core (named by the request, or by the server's Content-Disposition), both HTTP doors, the
Gradio UI's download and `cmr download --folder`. Positive control each time: a tagger model into the
pack's model folder downloads.
"""
from __future__ import annotations

import asyncio
import json
import zlib

import pytest

from comfyui_model_resolver.downloads.containment import PACK_MODEL_DIRS
from comfyui_model_resolver.errors import UnsafeFormat, UnsafePath
from comfyui_model_resolver.types import DownloadRequest
from fakes.blobs import FakeFile

from .conftest import DOORS, core_settings, door_environ
from .harness import Sandbox, assert_error_shape
from .test_write_roots import _cmr, _only_job_completes, _wait_job

PACK = "custom_nodes/ComfyUI-WD14-Tagger"
MODELS = f"{PACK}/models"
MODEL = "wd-vit-tagger-v3.onnx"
TAGS = "wd-vit-tagger-v3.csv"  # the loader table presets it beside the model

#: (folder, file name): every one refused before a byte is fetched.
REFUSED = [
    ("custom_nodes/innocent", "requirements.txt"),
    ("custom_nodes/innocent", "config.ini"),
    ("custom_nodes/innocent", "pyproject.toml"),
    ("custom_nodes/innocent", "model.safetensors"),  # the pack itself is no model folder
    ("custom_nodes/innocent/web", "style.css"),
    ("custom_nodes/innocent/web", "icon.svg"),
    ("custom_nodes/innocent/web/js", "page.html"),
    (MODELS, "requirements.txt"),
    (MODELS, "config.ini"),
    (MODELS, "pyproject.toml"),
    (MODELS, "style.css"),
    (MODELS, "icon.svg"),
    (MODELS, "page.html"),
    (MODELS, "page.xhtml"),
    (MODELS, "x.js"),
    (MODELS, "x.py"),
    (MODELS, "settings.json"),
    (MODELS, "model.yaml"),
    (MODELS, "tags.csv"),  # a .csv the loader table does not name
    (MODELS, "sub/pyproject.toml"),
    (MODELS, "../requirements.txt"),
    (PACK, MODEL),
    (f"{PACK}/web", MODEL),
    (f"{PACK}/models/../web", MODEL),
    ("custom_nodes/ComfyUI-Frame-Interpolation/ckpts", "rife47.pth"),  # pack not installed: never created
]


def _install_tagger(sandbox: Sandbox) -> None:
    pack = sandbox.base / PACK
    (pack / "models").mkdir(parents=True)
    (pack / "__init__.py").write_bytes(b"NODE_CLASS_MAPPINGS = {}\n")
    (pack / "requirements.txt").write_bytes(b"onnxruntime\n")


def _serve(hub, name: str, seed: int = 71) -> tuple[FakeFile, str]:
    data = f"payload for {name}\n".encode() if not name.endswith(".onnx") else bytes(range(256)) * 8
    f = FakeFile(name.rsplit("/", 1)[-1], data=data, lfs=False)
    repo = f"org/p{seed}-{zlib.crc32(name.encode()) % 100_000}"
    hub.add_repo(repo, [f])
    return f, f"{hub.url}/{repo}/resolve/main/{f.name}"


def test_the_pack_model_folders_come_from_the_shipped_tables():
    dirs = PACK_MODEL_DIRS()
    assert MODELS in dirs and "custom_nodes/ComfyUI-Frame-Interpolation/ckpts/rife" in dirs
    assert all(d.startswith("custom_nodes/") and d.count("/") >= 2 for d in dirs), dirs


@pytest.mark.parametrize("folder,filename", REFUSED, ids=[f"{f}:{n}" for f, n in REFUSED])
async def test_only_model_weights_go_into_a_packs_model_folder(sandbox, fake_hub, managers, folder, filename):
    _install_tagger(sandbox)
    sandbox.mark()
    _, url = _serve(fake_hub, filename)
    m = managers(core_settings(sandbox, fake_hub))
    with pytest.raises((UnsafePath, UnsafeFormat)) as exc:
        await m.submit(DownloadRequest(url=url, folder=folder, filename=filename))
    assert "node pack" in exc.value.message or "model" in exc.value.message, exc.value.message
    assert fake_hub.requests(server="cdn") == [] and m.jobs() == []


@pytest.mark.parametrize("name", ["requirements.txt", "pyproject.toml", "icon.svg", "__init__.py"])
async def test_a_server_cannot_name_a_non_model_file_into_a_pack(sandbox, scripted, managers, name):
    _install_tagger(sandbox)
    sandbox.mark()
    url = scripted.set("file", headers={"Content-Disposition": f'attachment; filename="{name}"'}, body=b"evil\n")
    m = managers(core_settings(sandbox, allowed_hosts=(scripted.hostport(),)))
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder=MODELS))).id, timeout=30)
    assert job.state == "failed" and job.error["type"] == "UnsafeFormat", job
    assert not (sandbox.base / MODELS / name).exists()


async def test_tagger_files_go_into_the_packs_model_folder(sandbox, fake_hub, managers):
    """Positive control: the model and the tag list the loader table names."""
    _install_tagger(sandbox)
    sandbox.ALLOWED = (*Sandbox.ALLOWED, f"ComfyUI/{MODELS}")
    sandbox.mark()
    m = managers(core_settings(sandbox, fake_hub))
    for name in (MODEL, TAGS):
        f, url = _serve(fake_hub, name)
        job = await m.wait((await m.submit(DownloadRequest(url=url, folder=MODELS, filename=name))).id, timeout=30)
        assert job.state == "completed", job.error
        assert (sandbox.base / MODELS / name).read_bytes() == f.read(0, f.size)


async def test_a_link_into_a_packs_model_folder_takes_weights_only(sandbox, fake_hub, managers):
    """`checkpoints/tagger` links to the pack's model folder: reached that way, the pack rule holds too."""
    import os

    _install_tagger(sandbox)
    os.symlink(sandbox.base / MODELS, sandbox.models / "checkpoints" / "tagger")
    sandbox.ALLOWED = (*Sandbox.ALLOWED, f"ComfyUI/{MODELS}")
    sandbox.mark()
    m = managers(core_settings(sandbox, fake_hub))
    for name in ("requirements.txt", "config.ini", "icon.svg"):
        _, url = _serve(fake_hub, name)
        with pytest.raises(UnsafeFormat, match="node pack"):
            await m.submit(DownloadRequest(url=url, folder="checkpoints", filename=f"tagger/{name}"))
    f, url = _serve(fake_hub, MODEL)  # positive control: a weight file goes through the same link
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder="checkpoints", filename=f"tagger/{MODEL}"))).id,
                       timeout=30)
    assert job.state == "completed", job.error
    assert (sandbox.base / MODELS / MODEL).read_bytes() == f.read(0, f.size)


@pytest.mark.parametrize("door_name", sorted(DOORS))
async def test_pack_folders_through_the_routes(sandbox, fake_hub, door_name):
    _install_tagger(sandbox)
    sandbox.ALLOWED = (*Sandbox.ALLOWED, f"ComfyUI/{MODELS}")
    sandbox.mark()
    async with DOORS[door_name](sandbox, door_environ(sandbox, fake_hub)) as door:
        for folder, filename in [("custom_nodes/innocent", "requirements.txt"), ("custom_nodes/innocent/web", "a.svg"),
                                 (MODELS, "config.ini"), (MODELS, "pyproject.toml"), (PACK, MODEL)]:
            _, url = _serve(fake_hub, filename)
            status, body, _ = await door.request("POST", "/downloads",
                                                 json_body={"url": url, "folder": folder, "filename": filename})
            err = assert_error_shape(status, body, statuses=(400,))
            assert err["type"] in ("UnsafePath", "UnsafeFormat"), err
            assert "node pack" in err["message"] or "not a model" in err["message"], err
        status, body, _ = await door.request("GET", "/downloads")
        assert status == 200 and body["jobs"] == []
        f, url = _serve(fake_hub, MODEL)
        status, body, _ = await door.request("POST", "/downloads",
                                             json_body={"url": url, "folder": MODELS, "filename": MODEL})
        assert status in (200, 202), body
        job = await _wait_job(door, (body.get("jobs") or [body])[0]["id"])
        assert job["state"] == "completed", job
    assert (sandbox.base / MODELS / MODEL).read_bytes() == f.read(0, f.size)


@pytest.mark.timeout(180)
async def test_pack_folders_through_the_gradio_download(sandbox, fake_hub):
    pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")
    import httpx

    from comfyui_model_resolver.settings import Settings
    from sidecar.main import create_app

    from .test_gradio_cross_site import _call, _server

    _install_tagger(sandbox)
    sandbox.ALLOWED = (*Sandbox.ALLOWED, f"ComfyUI/{MODELS}")
    sandbox.mark()
    env = door_environ(sandbox, fake_hub)
    settings = Settings.load(env, env_file="/nonexistent", comfyui_root=sandbox.base, enable_ui=True)
    server = await asyncio.to_thread(_server, create_app(settings, environ=env, enable_ui=True))
    _, bad = _serve(fake_hub, "requirements.txt")
    f, good = _serve(fake_hub, MODEL)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            ui = f"{server.url}/gradio"
            status, text = await _call(client, ui, "download_url", [bad, "custom_nodes/innocent", "requirements.txt",
                                                                    "", []], {})
            assert status == 200 and "not a model folder" in text, text[:500]
            status, text = await _call(client, ui, "download_url", [bad, MODELS, "requirements.txt", "", []], {})
            assert status == 200 and "is not a model file" in text, text[:500]
            assert (await client.get(f"{server.url}/api/v1/downloads")).json()["jobs"] == []
            status, text = await _call(client, ui, "download_url", [good, MODELS, MODEL, "", []], {})
            assert status == 200 and "Queued 1 download" in text, text[:500]
            await _only_job_completes(client, server.url)
    finally:
        await asyncio.to_thread(server.stop)
    assert (sandbox.base / MODELS / MODEL).read_bytes() == f.read(0, f.size)


def test_pack_folders_through_the_command_line(sandbox, fake_hub_thread):
    hub = fake_hub_thread
    _install_tagger(sandbox)
    sandbox.ALLOWED = (*Sandbox.ALLOWED, f"ComfyUI/{MODELS}")
    sandbox.mark()
    for folder, name in [("custom_nodes/innocent", "requirements.txt"), (MODELS, "config.ini"), (PACK, MODEL)]:
        _, url = _serve(hub, name)
        proc = _cmr(sandbox, hub, "download", url, "--folder", folder, "--filename", name, "--json", "--no-progress")
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        err = json.loads(proc.stdout.strip().splitlines()[-1])["error"]
        assert err["type"] in ("UnsafePath", "UnsafeFormat"), err
    f, url = _serve(hub, MODEL)
    proc = _cmr(sandbox, hub, "download", url, "--folder", MODELS, "--filename", MODEL, "--json", "--no-progress")
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert (sandbox.base / MODELS / MODEL).read_bytes() == f.read(0, f.size)
