"""`ensure`: every model of some workflows on this host's models volume — the core through the
sidecar's POST /api/v1/ensure, and `cmr ensure` in a real process (the fake Hub on loopback)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from fakes.blobs import FakeFile
from sidecar.main import create_app
from support.paths import REPO
from support.sources import fake_hosts, make_settings, workflow

VAE = "wan_2.1_vae.safetensors"
REPO_ID = "Comfy-Org/Wan_2.1_ComfyUI_repackaged"


def _world(hub):
    hub.add_repo(REPO_ID, [
        FakeFile.safetensors(f"split_files/vae/{VAE}", 4096, seed=1),
        FakeFile.safetensors("split_files/text_encoders/umt5_xxl_fp16.safetensors", 2048, seed=2),
        FakeFile.safetensors("split_files/loras/wan_lora.safetensors", 1024, seed=3)], downloads=1000)


def _body_gets(hub, name: str) -> int:
    return len([r for r in hub.requests() if r["method"] == "GET" and r["path"].endswith(name)])


async def test_the_route_queues_what_is_missing_says_what_cannot_be_ensured_and_is_idempotent(fake_hub, tmp_path):
    _world(fake_hub)
    settings = make_settings(tmp_path, fake_hub, comfyui_root=tmp_path / "ComfyUI", disable_catalog=True,
                             enable_ui=False)
    (tmp_path / "ComfyUI" / "models").mkdir(parents=True)
    app = create_app(settings, enable_ui=False)
    needs_all = workflow(("VAELoader", [VAE]), ("CLIPLoader", ["umt5_xxl_bf16.safetensors", "wan"]))
    bypassed = workflow(("LoraLoaderModelOnly", ["wan_lora.safetensors", 1.0]))
    bypassed["nodes"][0]["mode"] = 4
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            r = await c.post("/api/v1/ensure", json={"workflows": [needs_all, bypassed], "names": ["wan.json", "lora.json"],
                                                     "wait": True, "timeout": 60})
            assert r.status_code == 200, r.text
            report = r.json()
            by = {m["filename"]: m for m in report["models"]}
            assert by[VAE]["state"] == "downloaded" and by[VAE]["path"].endswith(f"vae/{VAE}")
            assert (tmp_path / "ComfyUI" / "models" / "vae" / VAE).stat().st_size == 4096
            ambiguous = by["umt5_xxl_bf16.safetensors"]
            assert ambiguous["state"] == "missing" and "pick one" in ambiguous["reason"]  # only confident answers
            assert by["wan_lora.safetensors"]["state"] == "not_needed" and "bypassed" in by["wan_lora.safetensors"]["reason"]
            assert report["ok"] is False and report["counts"] == {"downloaded": 1, "missing": 1, "not_needed": 1}
            fetched = _body_gets(fake_hub, VAE)

            again = await c.post("/api/v1/ensure", json={"workflows": [workflow(("VAELoader", [VAE]))], "wait": True})
            assert again.json()["ok"] is True and again.json()["models"][0]["state"] == "present"
            assert _body_gets(fake_hub, VAE) == fetched  # idempotent: nothing fetched again

            bad = await c.post("/api/v1/ensure", json={"workflows": []})
            assert bad.status_code == 422 and "workflows" in bad.json()["error"]["message"]


def _cmr(*args, hub, tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update({"CMR_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(REPO), "CMR_HF_ENDPOINT": hub.url,
                "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9", "CMR_ALLOWED_HOSTS": ",".join(fake_hosts(hub)),
                "CMR_DISABLE_CATALOG": "1", "CMR_COMFYUI_ROOT": str(tmp / "ComfyUI")})
    return subprocess.run([sys.executable, "-m", "comfyui_model_resolver.adapters.cli", "ensure", *args],
                          capture_output=True, text=True, env=env, cwd=tmp, timeout=120)


def test_cmr_ensure_exit_codes_in_plain_words(fake_hub_thread, tmp_path):
    _world(fake_hub_thread)
    (tmp_path / "ComfyUI" / "models").mkdir(parents=True)
    vae_only = tmp_path / "vae.json"
    vae_only.write_text(json.dumps(workflow(("VAELoader", [VAE]))))
    both = tmp_path / "both.json"
    both.write_text(json.dumps(workflow(("VAELoader", [VAE]), ("CLIPLoader", ["umt5_xxl_bf16.safetensors", "wan"]))))

    r = _cmr(str(vae_only), "--wait", hub=fake_hub_thread, tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"vae/{VAE}: downloaded" in r.stderr and "all needed models are here" in r.stderr
    r = _cmr(str(vae_only), hub=fake_hub_thread, tmp=tmp_path)  # again: nothing to do
    assert r.returncode == 0 and "1 present" in r.stderr

    r = _cmr(str(both), "--wait", "--json", hub=fake_hub_thread, tmp=tmp_path)
    assert r.returncode == 1
    report = json.loads(r.stdout)
    (missing,) = [m for m in report["models"] if m["state"] == "missing"]
    assert missing["filename"] == "umt5_xxl_bf16.safetensors" and "pick one" in missing["reason"]
    r = _cmr(str(both), hub=fake_hub_thread, tmp=tmp_path)
    assert r.returncode == 1 and "umt5_xxl_bf16.safetensors: NOT ensured: several candidates" in r.stderr

    r = _cmr(str(tmp_path / "nope.json"), hub=fake_hub_thread, tmp=tmp_path)
    assert r.returncode == 2 and "cannot ensure its models" in r.stderr
