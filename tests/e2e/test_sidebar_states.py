"""Every state of the sidebar in a real ComfyUI at 1280x800, installed through the real ComfyUI-Manager.

The "every state" workflow (states_world.py) is loaded the way a user's file ends up, with ComfyUI's own
missing-models dialog on. `states_flow.mjs` drives the page in Chromium and checks what the issue asks:
the tab's name, "Resolve with Model Resolver" in ComfyUI's dialog, one analyze and one resolve request for
the load (counted in the browser), one count with its parts, a misplaced file moved, a relink refused with
its reason on a node whose pack is not installed, subgraphs by title, a sharded model as one item, the
legacy `unet/` folder said, "Find this model" in the node menu, and, offline (the real huggingface.co and
civitai.com, no network), one banner, `unavailable` items and a disabled "Download all (0)" that says why.
Issue 11: a model a preset implies says so (node title, preset, node pack); a loader nobody describes says
"folder unknown" with its candidate folders and is downloaded into the one picked; an ambiguous model is a
choice of its candidates with their reasons.

Skips cleanly without COMFYUI_SRC (and the harness: COMFYUI_HARNESS). Screenshots go to E2E_SHOT_DIR.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.comfyui_run import PACK, free_port, frontend_root, start_comfyui, stop_comfyui
from support.paths import REPO

pytestmark = [
    pytest.mark.skipif(not os.environ.get("COMFYUI_SRC"), reason="set COMFYUI_SRC to run the real-ComfyUI tests"),
    pytest.mark.timeout(1500),
]


def _flow(installed: dict, url: str, workflow: Path, mode: str, shots: Path, tag: str) -> dict:
    proc = subprocess.run(
        ["node", str(REPO / "tests/e2e/states_flow.mjs"), "--url", url, "--workflow", str(workflow), "--mode", mode,
         "--shots", str(shots), "--tag", tag],
        env={**os.environ, "PW_DIR": str(installed["pw"]), "CHROMIUM": installed["chromium"]},
        capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {"raw": proc.stdout[-3000:]}
    report["returncode"] = proc.returncode
    report["stderr"] = proc.stderr[-2000:]
    return report


def _failed(report: dict) -> str:
    failed = {k: v for k, v in report.get("checks", {}).items() if not v.get("ok")}
    return json.dumps({"failed": failed, "error": report.get("error"), "stderr": report.get("stderr"),
                       "raw": report.get("raw")}, indent=1)[:8000]


@pytest.mark.parametrize("frontend", ["1.27.10", "1.58.1"])
@pytest.mark.parametrize("mode", ["online", "offline"])
def test_every_state_at_1280x800(installed, frontend, mode, tmp_path):
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from e2e.states_world import MYSTERY, UNET, UPSCALE, T5, populate_hub, prepare_models, states_workflow
    from fakes import FakeCivitai, FakeHub

    if installed["rc"] != 0:
        pytest.fail("the Manager install failed; see test_installed_through_comfyui_manager")
    models = installed["base"] / "models"
    prepare_models(models)
    shutil.rmtree(installed["base"] / "user" / PACK, ignore_errors=True)
    shots = Path(os.environ.get("E2E_SHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    args = "" if frontend == "1.27.10" else f"--front-end-root {frontend_root(frontend)}"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with FakeHub.running_in_thread() as hub, FakeCivitai.running_in_thread() as civitai:
        files = populate_hub(hub)
        workflow = tmp_path / "states.json"
        workflow.write_text(json.dumps(states_workflow(hub.url)))
        env = {"COMFYUI_ARGS": args, "CMR_DISABLE_CATALOG": "1"}
        if mode == "online":
            hosts = ",".join(u.split("://", 1)[1] for u in (hub.url, hub.cdn_url, civitai.url))
            env.update(CMR_HF_ENDPOINT=hub.url, CMR_CIVITAI_BASE_URL=civitai.url, CMR_ALLOWED_HOSTS=hosts)
        # offline: the real huggingface.co and civitai.com, which this machine can't reach
        start = start_comfyui(installed, port, env)
        assert start.returncode == 0, start.stdout + start.stderr
        try:
            report = _flow(installed, url, workflow, mode, shots, frontend)
        finally:
            stop_comfyui(installed, port)
    assert report["returncode"] == 0 and report.get("ok"), _failed(report)
    assert report["frontendVersion"] == frontend
    # 1.27 shows its own missing-models dialog for workflow links, 1.58 an "issues found" overlay: ours is in it
    assert report["checks"]["Resolve with Model Resolver offered in ComfyUI's missing-models dialog"]["ok"]
    assert report["checks"]["one analyze and one resolve for the workflow load"]["counts"] == {"analyze": 1, "resolve": 1}
    if mode == "online":
        # the bytes on disk are the Hub's, the diffusion model in ComfyUI's first diffusion_models folder (unet/)
        assert hashlib.sha256((models / "unet" / UNET).read_bytes()).hexdigest() == files[UNET].sha256
        assert hashlib.sha256((models / "upscale_models" / UPSCALE).read_bytes()).hexdigest() == files[UPSCALE].sha256
        assert sorted(p.name for p in (models / "unet").glob("e2e_big*")) == [
            "e2e_big-00001-of-00003.safetensors", "e2e_big-00002-of-00003.safetensors",
            "e2e_big-00003-of-00003.safetensors", "e2e_big.safetensors.index.json"]
        # the folder the user picked for the model whose folder nothing tells (issue 11), the Hub's bytes
        assert hashlib.sha256((models / "loras" / MYSTERY).read_bytes()).hexdigest() == files[MYSTERY].sha256
        assert [p.parent.name for p in models.glob(f"*/{MYSTERY}")] == ["loras"]
        # moved, not copied: one name, the same bytes
        assert (models / "text_encoders" / T5).read_bytes() == b"t5 encoder bytes" * 64
        assert not (models / "loras" / T5).exists()
        assert not list(models.rglob("*.part"))
    else:
        assert report["downloadAll"]["text"] == "Download all (0)" and report["downloadAll"]["disabled"]
        assert (models / "loras" / T5).exists()  # offline run changes nothing on disk
