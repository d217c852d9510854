"""End to end in a real ComfyUI, installed through a real ComfyUI-Manager, driven in real Chromium.

Runs only when COMFYUI_SRC points at a ComfyUI source tree (skips cleanly otherwise). Uses the shared
harness (`../shared/harness/comfyui`: setup.sh must have run) and a classic ComfyUI-Manager checkout
(MANAGER_DIR, default /tmp/cmgr/ComfyUI-Manager).

1. `manager-install.sh`: the Manager's "Install via Git URL" clones a local git copy of this repo
   (the tracked files of the working tree), runs install.py, restarts ComfyUI; 0 import failures, JS
   served. install.py needs PyPI for what ComfyUI lacks (fastapi, uvicorn, aiofiles), so the Manager
   runs on the host network (NETNS=0; set E2E_NETNS=1 to force the harness's no-network namespace).
2. For frontend 1.27.10 (what ComfyUI 0.3.64 pins) and 1.58.1 (`--front-end-root`): start ComfyUI
   with CMR_HF_ENDPOINT / CMR_ALLOWED_HOSTS pointing at a fake Hub on loopback, load a workflow with
   one present model, one relocated (inside a subgraph) and two missing, open the sidebar, see all
   four, "Download all missing" (throttled, so live progress shows), relink, and check that the
   nodes' combo lists hold the new files and that the bytes on disk are the Hub's.

Env: COMFYUI_SRC (required), COMFYUI_VENV, MANAGER_DIR, PW_DIR, CHROMIUM, COMFYUI_HARNESS,
FRONTEND_158_ROOT (an unzipped comfyui-frontend-package 1.58.1 `static` dir; else pip-downloaded once
to /tmp/cmr-e2e-frontend), E2E_SHOT_DIR (keep screenshots there), E2E_KEEP=1 (keep the work dir).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.comfyui_run import PACK, free_port, frontend_root
from support.downloads import sha256_of
from support.paths import REPO

SRC = os.environ.get("COMFYUI_SRC")
pytestmark = [
    pytest.mark.skipif(not SRC, reason="set COMFYUI_SRC to a ComfyUI source tree to run the real-ComfyUI test"),
    pytest.mark.timeout(1500),
]
NEW_FRONTEND = "1.58.1"
LORA = "e2e_detail_lora.safetensors"
UPSCALE = "e2e_upscale_4x.safetensors"


def test_installed_through_comfyui_manager(installed):
    results = installed["results"]
    fails = [line for line in results.splitlines() if line.startswith("FAIL")]
    assert installed["rc"] == 0 and not fails, installed["output"][-6000:]
    for expected in ("PASS POST /customnode/install/git_url", f"PASS pack cloned to custom_nodes/{PACK}",
                     "PASS Manager ran install.py", f"PASS ComfyUI imported custom_nodes/{PACK}",
                     "PASS /api/extensions lists", f"PASS Manager lists {PACK} as installed"):
        assert any(line.startswith(expected) for line in results.splitlines()), (expected, results)
    served = next(line for line in results.splitlines() if line.startswith("PASS /api/extensions lists"))
    assert f"/extensions/{PACK}/model_resolver.js" in served
    # install.py put what ComfyUI lacked into ComfyUI's Python, and left torch alone
    py = installed["venv_copy"] / "bin/python"
    probe = subprocess.run([str(py), "-c", "import importlib.metadata as m, json; print(json.dumps("
                            "{p: m.version(p) for p in ('fastapi', 'uvicorn', 'aiofiles', 'torch', 'pydantic')}))"],
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    after = json.loads(probe.stdout)
    before = subprocess.run([str(installed["venv"] / "bin/python"), "-c",
                             "import importlib.metadata as m; print(m.version('torch'), m.version('pydantic'))"],
                            capture_output=True, text=True).stdout.split()
    assert [after["torch"], after["pydantic"]] == before
    # running it again (as the Manager's "Try fix" does) changes nothing and prints nothing
    again = subprocess.run([str(py), "install.py"], cwd=installed["base"] / "custom_nodes" / PACK,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout == "" and again.stderr == "", again.stdout + again.stderr


@pytest.mark.parametrize("frontend", ["1.27.10", NEW_FRONTEND])
def test_sidebar_resolves_downloads_and_relinks(installed, frontend, tmp_path):
    from fakes import FakeFile, FakeHub

    if installed["rc"] != 0:
        pytest.fail("the Manager install failed; see test_installed_through_comfyui_manager")
    args = "" if frontend == "1.27.10" else f"--front-end-root {frontend_root(frontend)}"
    base = installed["base"]
    models = base / "models"
    for rel in ("loras", "upscale_models", "vae", "checkpoints/SD1.5"):
        (models / rel).mkdir(parents=True, exist_ok=True)
    (models / "vae/present_vae.safetensors").write_bytes(b"present")
    (models / "checkpoints/SD1.5/dream.safetensors").write_bytes(b"relocated")
    for leftover in (models / "loras" / LORA, models / "upscale_models" / UPSCALE):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(base / "user" / "comfyui-model-resolver", ignore_errors=True)

    lora = FakeFile.safetensors(LORA, size=6 << 20, seed=11)
    upscale = FakeFile.safetensors(UPSCALE, size=5 << 20, seed=12)
    with FakeHub.running_in_thread() as hub:
        hub.add_repo("cmr-e2e/detail-lora", [lora], downloads=1200)
        hub.add_repo("cmr-e2e/upscale", [upscale], downloads=800)
        hub.switch(None, on="cdn", throttle_bps=3 << 20)  # ~2 s per file: progress is visible
        hosts = ",".join(u.split("://", 1)[1] for u in (hub.url, hub.cdn_url))
        port = free_port()
        env = {**os.environ, "PORT": str(port), "COMFYUI_BASE": str(base), "KEEP_BASE": "1",
               "COMFYUI_VENV": str(installed["venv_copy"]), "COMFYUI_SRC": str(installed["src"]), "COMFYUI_ARGS": args,
               "CMR_HF_ENDPOINT": hub.url, "CMR_ALLOWED_HOSTS": hosts, "CMR_DISABLE_CATALOG": "1"}
        start = subprocess.run(["bash", str(installed["harness"] / "start.sh")], env=env, capture_output=True, text=True,
                               timeout=300)
        assert start.returncode == 0, start.stdout + start.stderr
        try:
            log = (base / "comfyui.log").read_text(errors="replace")
            assert f"custom_nodes/{PACK}" in log and "IMPORT FAILED" not in "\n".join(
                line for line in log.splitlines() if PACK in line)
            url = f"http://127.0.0.1:{port}"
            _http_checks(url)
            wf = json.loads((REPO / "tests/e2e/workflow_e2e.json").read_text().replace("{HUB}", hub.url))
            wf_path = tmp_path / "workflow.json"
            wf_path.write_text(json.dumps(wf))
            shot_dir = Path(os.environ.get("E2E_SHOT_DIR") or tmp_path)
            shot_dir.mkdir(parents=True, exist_ok=True)
            expect = {"LoraLoaderModelOnly.lora_name": [LORA], "UpscaleModelLoader.model_name": [UPSCALE],
                      "CheckpointLoaderSimple.ckpt_name": ["SD1.5/dream.safetensors"]}
            flow = subprocess.run(
                ["node", str(REPO / "tests/e2e/sidebar_flow.mjs"), "--url", f"{url}/", "--workflow", str(wf_path),
                 "--expect-files", json.dumps(expect), "--shot", str(shot_dir / f"sidebar-{frontend}.png"),
                 "--shot-progress", str(shot_dir / f"sidebar-{frontend}-downloading.png"),
                 "--shot-after", str(shot_dir / f"sidebar-{frontend}-after.png")],
                env={**os.environ, "PW_DIR": str(installed["pw"]), "CHROMIUM": installed["chromium"]},
                capture_output=True, text=True, timeout=600)
            report = json.loads(flow.stdout) if flow.stdout.strip().startswith("{") else {"raw": flow.stdout[-3000:]}
            failed = {k: v for k, v in report.get("checks", {}).items() if not v.get("ok")}
            assert flow.returncode == 0 and report.get("ok"), json.dumps(
                {"failed": failed, "error": report.get("error"), "stderr": flow.stderr[-2000:],
                 "log": (base / "comfyui.log").read_text(errors="replace")[-4000:]}, indent=1)
            if frontend == "1.27.10":
                assert report["frontendVersion"] == "1.27.10"
            else:
                assert report["frontendVersion"] == frontend
            # the Hub's bytes, in the folders the workflow's loaders read
            assert sha256_of(models / "loras" / LORA) == lora.sha256
            assert sha256_of(models / "upscale_models" / UPSCALE) == upscale.sha256
            assert not list(models.rglob("*.part")) and not list(models.rglob("*.incomplete"))
            assert any("%" in p or "left" in p or "Verifying" in p for p in report["progressSeen"]), report["progressSeen"]
            # the relink reached the loader inside the subgraph
            assert any(v.endswith("CheckpointLoaderSimple.ckpt_name=SD1.5/dream.safetensors") for v in report["widgetValues"])
        finally:
            subprocess.run(["bash", str(installed["harness"] / "stop.sh")], env=env, capture_output=True, timeout=60)


def _http_checks(url: str) -> None:
    """Routes under both prefixes, the JS served, and cross-site requests refused by the real server."""
    import urllib.error
    import urllib.request

    def req(path, method="GET", body=None, headers=None):
        r = urllib.request.Request(url + path, method=method, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    exts = json.loads(req("/api/extensions")[1])
    assert f"/extensions/{PACK}/model_resolver.js" in exts
    status, js = req(f"/extensions/{PACK}/model_resolver.js")
    assert status == 200 and b"registerExtension" in js
    for prefix in ("/cmr/v1", "/api/cmr/v1"):
        status, body = req(prefix + "/config")
        assert status == 200 and json.loads(body)["hf_token"] == {"set": False}
    wf = json.dumps({"nodes": [], "links": []}).encode()
    assert req("/api/cmr/v1/analyze", "POST", wf, {"Content-Type": "application/json"})[0] == 200
    assert req("/api/cmr/v1/analyze", "POST", wf, {"Content-Type": "text/plain"})[0] == 415
    assert req("/api/cmr/v1/analyze", "POST", wf, {"Content-Type": "application/json",
                                                   "Origin": "http://evil.example"})[0] == 403
    assert req("/api/cmr/v1/config", "PATCH", b'{"hf_token": "x"}', {"Content-Type": "application/json",
                                                                    "Sec-Fetch-Site": "cross-site"})[0] == 403
    with urllib.request.urlopen(url + "/api/cmr/v1/downloads/events", timeout=30) as stream:  # SSE
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.readline() == b"retry: 3000\n"
