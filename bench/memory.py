"""Whole-process memory (RSS) of each way of starting the sidecar, as a user starts it.

Modes (each a real subprocess on free loopback ports, against a small ComfyUI root, upstreams on a
closed port so nothing leaves the machine):

  api-only      CMR_ENABLE_UI=false python -m uvicorn api.main:app   (the deploy spec's API command)
  api-ui        python -m uvicorn api.main:app   (the same command with the `ui` extra installed: the
                UI is mounted at /gradio/, the default CMR_ENABLE_UI=true)
  serve-no-ui   cmr serve --no-ui
  serve-ui      cmr serve   (API, the Gradio UI on its own port and mounted at /gradio/)

For each: RSS once /health answers (and, with the UI, /gradio/ too: the UI is built in the background
after /health answers) and the process sat idle for --settle seconds ("idle"), then after
one analyze request and, with the UI, after the UI page was loaded and one analyze went through the
UI's own API ("used"). Each mode runs --runs times; the JSON has every run, the median and the best.

Usage: python bench/memory.py [--runs 3] [--settle 3]     Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WF = {"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["m.safetensors"]},
                {"id": 2, "type": "LoraLoader", "mode": 0, "widgets_values": ["l.safetensors", 1.0, 1.0]}], "links": []}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return round(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20, 1)


def _get(url: str, data: bytes | None = None, ctype: str = "application/json") -> bytes:
    req = urllib.request.Request(url, data=data, headers={"content-type": ctype} if data else {})
    return urllib.request.urlopen(req, timeout=60).read()


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            _get(url)
            return time.monotonic() - started
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def run_mode(mode: str, tmp: Path, settle: float) -> dict:
    root = tmp / "ComfyUI"
    (root / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
    (root / "models" / "checkpoints" / "m.safetensors").write_bytes(b"x")
    api, ui = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update(CMR_COMFYUI_ROOT=str(root), CMR_DATA_DIR=str(tmp / "data"), CMR_LOG_LEVEL="WARNING",
               CMR_HF_ENDPOINT="http://127.0.0.1:9", CMR_CIVITAI_BASE_URL="http://127.0.0.1:9",
               CMR_API_PORT=str(api), CMR_GRADIO_PORT=str(ui), GRADIO_ANALYTICS_ENABLED="False",
               PYTHONPATH=str(REPO))
    if mode in ("api-only", "api-ui"):
        env["CMR_ENABLE_UI"] = "false" if mode == "api-only" else "true"
        cmd = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(api)]
    else:
        cmd = [sys.executable, "-m", "comfyui_model_resolver", "serve", *(["--no-ui"] if mode == "serve-no-ui" else [])]
    log = tmp / f"{mode}.log"
    with open(log, "wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=out)
        try:
            base = f"http://127.0.0.1:{api}"
            startup = _wait(base + "/health", proc, log)
            extra = {}
            if mode == "serve-ui":
                _wait(f"http://127.0.0.1:{ui}/", proc, log)
            if mode in ("serve-ui", "api-ui"):  # the UI is built after /health answers: wait for it
                _wait(f"{base}/gradio/", proc, log)
                extra["ui_ready_seconds"] = round(time.monotonic() - started, 2)
            time.sleep(settle)
            idle = rss_mb(proc.pid)
            _get(base + "/api/v1/analyze", json.dumps(WF).encode())
            if mode == "serve-ui":
                _get(f"http://127.0.0.1:{ui}/")  # the page and its config
                _get(f"http://127.0.0.1:{ui}/config")
            if mode in ("serve-ui", "api-ui"):
                _get(f"{base}/gradio/")
            time.sleep(settle)
            return {"startup_seconds": round(startup, 2), **extra, "idle_mb": idle, "used_mb": rss_mb(proc.pid)}
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--modes", default="api-only,api-ui,serve-no-ui,serve-ui")
    args = ap.parse_args()
    import platform

    result: dict = {"python": sys.version.split()[0], "machine": platform.machine(), "cpus": os.cpu_count(),
                    "load_before": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "modes": {}}
    for mode in args.modes.split(","):
        runs = []
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="cmr-mem-") as tmp:
                runs.append(run_mode(mode, Path(tmp), args.settle))
        summary = {}
        for key in ("idle_mb", "used_mb", "startup_seconds"):
            values = [r[key] for r in runs]
            summary[key] = {"median": round(statistics.median(values), 1), "best": min(values)}
        result["modes"][mode] = {"runs": runs, **summary}
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
