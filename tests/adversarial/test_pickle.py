"""Pickle-based model files (.ckpt .pt .pt2 .pth .bin .pkl) can run code when loaded. The product
marks them (`pickle: true` in analyze and resolve rows, a tag in the sidebar — tests/web), warns on
download, and CMR_SAFETENSORS_ONLY refuses them however they are asked for. A pickle cannot be
smuggled in under a .safetensors name: that name only ever holds a verified safetensors header.
"""
from __future__ import annotations

import pytest

from comfyui_model_resolver.errors import UnsafeFormat
from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.types import DownloadRequest
from fakes.blobs import FakeFile

from .conftest import core_settings
from .harness import assert_error_shape

#: what torch.save writes, more or less: a pickle that calls os.system on load
PICKLE = b"\x80\x02cposix\nsystem\nq\x00X\x0b\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03." + b"\0" * 4000

NAMES = {"a.ckpt": True, "b.PT": True, "c.pt2": True, "d.pth": True, "e.bin": True, "f.pkl": True,
         "g.safetensors": False, "h.sft": False, "i.gguf": False, "j.onnx": False, "k.ckpt.safetensors": False}


def _api_workflow() -> dict:
    return {str(i): {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}}
            for i, name in enumerate(NAMES, 1)}


async def test_analyze_and_resolve_mark_pickle_files(sandbox, fake_hub):
    resolver = await build_resolver(core_settings(sandbox, fake_hub))
    try:
        analysis = await resolver.analyze(_api_workflow())
        assert {m.filename: m.pickle for m in analysis.models} == NAMES
        resolution = await resolver.resolve(analysis)
        assert {m.filename: m.pickle for m in resolution.models} == NAMES
    finally:
        await resolver.close()


async def test_both_doors_mark_pickle_files(door):
    status, body, _ = await door.request("POST", "/analyze", json_body=_api_workflow())
    assert status == 200
    assert {m["filename"]: m["pickle"] for m in body["models"]} == NAMES


def _served(hub, name: str, data: bytes = PICKLE) -> str:
    hub.add_repo("org/pickles", [FakeFile(name, data=data, lfs=True)])
    return f"{hub.url}/org/pickles/resolve/main/{name}"


@pytest.mark.parametrize("name", [n for n, p in NAMES.items() if p] + ["x.safetensors.ckpt", "sub/y.Pth"])
async def test_safetensors_only_refuses_pickle_names(sandbox, fake_hub, managers, name):
    url = _served(fake_hub, name.rsplit("/", 1)[-1])
    m = managers(core_settings(sandbox, fake_hub, safetensors_only=True))
    with pytest.raises(UnsafeFormat) as exc:
        await m.submit(DownloadRequest(url=url, folder="checkpoints", filename=name))
    assert "CMR_SAFETENSORS_ONLY" in exc.value.message and exc.value.hint
    with pytest.raises(UnsafeFormat):  # named by the URL instead
        await m.submit(DownloadRequest(url=url, folder="checkpoints"))
    assert fake_hub.requests(server="cdn") == []


async def test_safetensors_only_refuses_pickles_from_a_resolve_result(sandbox, fake_hub):
    url = _served(fake_hub, "model.ckpt")
    wf = {"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["model.ckpt"],
                     "properties": {"models": [{"name": "model.ckpt", "url": url, "directory": "checkpoints"}]}}],
          "links": [], "version": 0.4}
    resolver = await build_resolver(core_settings(sandbox, fake_hub, safetensors_only=True))
    try:
        res = (await resolver.resolve(wf)).model_dump(mode="json")
        assert res["models"][0]["pickle"] is True
        jobs, _, errors = await resolver.download_resolution(res["models"])
    finally:
        await resolver.close()
    assert jobs == [] and [e["error"]["type"] for e in errors] == ["UnsafeFormat"]


async def test_safetensors_only_switched_on_at_run_time_through_the_routes(door):
    url = _served(door.hub, "model.pth")
    status, cfg, _ = await door.request("PATCH", "/config", json_body={"safetensors_only": True})
    assert status == 200 and cfg["safetensors_only"] is True
    status, body, _ = await door.request("POST", "/downloads", json_body={"url": url, "folder": "upscale_models"})
    err = assert_error_shape(status, body, statuses=(400,))
    assert err["type"] == "UnsafeFormat" and err["code"] == "unsafe_format"


async def test_without_the_option_a_pickle_downloads_with_a_warning(sandbox, fake_hub, managers):
    url = _served(fake_hub, "model.ckpt")
    m = managers(core_settings(sandbox, fake_hub))
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder="checkpoints"))).id, timeout=30)
    assert job.state == "completed"
    assert any("pickle" in w and "run code" in w for w in job.warnings)


@pytest.mark.parametrize("safetensors_only", [False, True])
async def test_a_pickle_under_a_safetensors_name_never_gets_that_name(sandbox, fake_hub, managers, safetensors_only):
    """The server (or a mirror) sends pickle bytes for a .safetensors request: the header check fails,
    the bytes go to quarantine outside the models folder."""
    url = _served(fake_hub, "model.safetensors")
    m = managers(core_settings(sandbox, fake_hub, safetensors_only=safetensors_only))
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder="checkpoints"))).id, timeout=30)
    assert job.state == "failed" and job.error["type"] == "IntegrityError"
    assert "not a valid safetensors file" in job.error["message"]
    assert not (sandbox.models / "checkpoints" / "model.safetensors").exists()
    assert [p.parent.name for p in (sandbox.data / "quarantine").iterdir()] == ["quarantine"]


def test_the_command_line_tables_say_pickle(sandbox, tmp_path):
    import subprocess
    import sys
    import json

    from support.paths import REPO

    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "old.ckpt"}}}))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(sandbox.parent / "home"), "PYTHONPATH": str(REPO),
           "CMR_MODELS_ROOT": str(sandbox.models), "CMR_DATA_DIR": str(sandbox.data), "CMR_ENV_FILE": "/nonexistent",
           "CMR_HF_ENDPOINT": "http://127.0.0.1:9", "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9",
           "CMR_DISABLE_CATALOG": "1", "CMR_HTTP_TIMEOUT": "1"}
    for cmd in ("analyze", "resolve"):
        proc = subprocess.run([sys.executable, "-m", "comfyui_model_resolver", cmd, str(wf)], capture_output=True,
                              text=True, env=env, timeout=120)
        assert "pickle format: loading it can run code" in proc.stdout, (cmd, proc.stdout, proc.stderr[-1000:])
