"""A world for the README's gradio_client example (run by test_gradio_readme.py, usually inside its own
network namespace so the README's own port 5001 is free): the fake Hub with the example's models,
`cmr serve` (API on 5002, UI on 5001) around a ComfyUI root, `shared.png` and `a.json` in the working
directory, then the README's code block executed as written. Prints one JSON report on stdout.

    python readme_client_world.py <work dir> <file with the code block>
"""
from __future__ import annotations

import hashlib
import json
import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))  # tests/: fakes, support

from fakes import FakeFile, FakeHub  # noqa: E402
from support.images import make_png  # noqa: E402
from support.sources import fake_hosts, workflow  # noqa: E402

REPO_ID = "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
SIZE = 192 * 1024
API, UI = 5002, 5001


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cmr serve exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def main(work: Path, code_file: Path) -> dict:
    root = work / "ComfyUI"
    (root / "models" / "vae").mkdir(parents=True)
    (root / "models" / "loras").mkdir(parents=True)
    (root / "main.py").write_text("# stand-in\n")
    (work / "shared.png").write_bytes(make_png({"workflow": json.dumps(
        workflow(("VAELoader", ["wan_2.1_vae.safetensors"])))}))
    (work / "a.json").write_text(json.dumps(workflow(("VAELoader", ["wan_2.1_vae.safetensors"]),
                                                     ("LoraLoaderModelOnly", ["extra.safetensors"]))))
    files = [FakeFile.safetensors("split_files/vae/wan_2.1_vae.safetensors", SIZE, seed=1),
             FakeFile.safetensors("split_files/loras/extra.safetensors", SIZE, seed=2)]
    with FakeHub.running_in_thread() as hub:
        hub.add_repo(REPO_ID, files, downloads=1000)
        env = {**os.environ, "CMR_COMFYUI_ROOT": str(root), "CMR_DATA_DIR": str(work / "data"),
               "CMR_HF_ENDPOINT": hub.url, "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9",
               "CMR_ALLOWED_HOSTS": ",".join(fake_hosts(hub)), "CMR_DISABLE_CATALOG": "true",
               "CMR_API_PORT": str(API), "CMR_GRADIO_PORT": str(UI), "GRADIO_ANALYTICS_ENABLED": "False"}
        server = subprocess.Popen([sys.executable, "-m", "comfyui_model_resolver", "serve", "--log-format", "text"],
                                  env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=open(work / "serve.log", "w"))
        try:
            _wait_up(f"http://127.0.0.1:{API}/health", server)
            _wait_up(f"http://127.0.0.1:{UI}/", server)
            os.chdir(work)
            scope = runpy.run_path(str(code_file), run_name="__readme__")  # the block, as written
            c = scope["c"]
            deadline = time.monotonic() + 60
            jobs = scope.get("jobs")
            while time.monotonic() < deadline:
                jobs, log = c.predict(api_name="/jobs")
                if jobs["data"] and all(row[2] in ("completed", "failed", "cancelled") for row in jobs["data"]):
                    break
                time.sleep(0.2)
            placed = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in (root / "models").rglob("*.safetensors")}
            expected = {f.name: f.sha256 for f in files}
            return {k: scope.get(k) for k in ("models", "workflows", "ticks", "details", "log")} | {
                "final_jobs": jobs, "final_log": log, "placed": placed, "expected": expected}
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
