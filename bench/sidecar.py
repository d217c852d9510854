"""Benchmark the sidecar as a real uvicorn subprocess on loopback.

1. Idle RSS of the API without Gradio (goal <= 120 MB), after start-up and a short settle; with
   --with-ui also the RSS with the Gradio UI mounted, for comparison.
2. Latency of POST /api/v1/analyze with a generated 200-node workflow under 50 concurrent clients
   (aiohttp), p50/p99 and throughput, against baselines from the same run and server: GET / (a
   trivial JSON route) and GET /health (readiness checks: two small file creations); and analyze with
   one client, i.e. the service time without queueing.

Usage: python bench/sidecar.py [--requests 2000] [--concurrency 50] [--nodes 200] [--with-ui]
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOADERS = [("CheckpointLoaderSimple", "checkpoints", "ckpt_name"), ("LoraLoader", "loras", "lora_name"),
           ("VAELoader", "vae", "vae_name"), ("ControlNetLoader", "controlnet", "control_net_name"),
           ("UpscaleModelLoader", "upscale_models", "model_name")]
OTHERS = ["KSampler", "CLIPTextEncode", "EmptyLatentImage", "VAEDecode", "SaveImage", "ImageScale"]


def workflow(nodes: int) -> dict:
    """A UI-format workflow: one node in four is a model loader (a fifth of them missing locally)."""
    out, links = [], []
    for i in range(1, nodes + 1):
        if i % 4 == 0:
            kind, folder, _ = LOADERS[(i // 4) % len(LOADERS)]
            name = f"model_{i % 37}.safetensors" if i % 5 else f"missing/model_{i}.safetensors"
            widgets = [name, 1.0, 1.0] if kind == "LoraLoader" else [name]
        else:
            kind, widgets = OTHERS[i % len(OTHERS)], [i, "fixed", 20, 7.0, "euler", "normal", 1.0]
        out.append({"id": i, "type": kind, "pos": [i * 10, 0], "size": [300, 100], "flags": {}, "order": i,
                    "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": widgets})
        if i > 1:
            links.append([i - 1, i - 1, 0, i, 0, "MODEL"])
    return {"last_node_id": nodes, "last_link_id": len(links), "nodes": out, "links": links, "groups": [],
            "config": {}, "extra": {}, "version": 0.4}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


class Server:
    def __init__(self, tmp: Path, ui: bool) -> None:
        root = tmp / "ComfyUI"
        for _, folder, _ in LOADERS:
            (root / "models" / folder).mkdir(parents=True, exist_ok=True)
            for n in range(0, 37, 3):
                (root / "models" / folder / f"model_{n}.safetensors").write_bytes(b"x")
        # a file, not a pipe: an unread pipe fills up and blocks the server's logging
        self.log = open(tmp / "sidecar.log", "w+b")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
        env.update(CMR_COMFYUI_ROOT=str(root), CMR_DATA_DIR=str(tmp / "data"), CMR_ENABLE_UI="true" if ui else "false",
                   CMR_LOG_LEVEL="WARNING", CMR_HF_ENDPOINT="http://127.0.0.1:9", CMR_CIVITAI_BASE_URL="http://127.0.0.1:9",
                   GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "sidecar.main:app", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--no-access-log"], cwd=tmp, env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def wait(self, timeout: float = 120) -> float:
        import urllib.request

        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read().decode())
            try:
                urllib.request.urlopen(self.url + "/health", timeout=2)
                return time.monotonic() - started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the sidecar did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def load(url: str, method: str, body: bytes | None, requests: int, concurrency: int) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    todo = iter(range(requests))
    headers = {"content-type": "application/json"} if body is not None else {}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for _ in todo:
            t = time.perf_counter()
            async with session.request(method, url, data=body, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm = iter(range(min(100, requests)))
        for _ in warm:
            async with session.request(method, url, data=body, headers=headers) as r:
                await r.read()
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "errors": errors, "p50_ms": round(q[49] * 1000, 2),
            "p99_ms": round(q[98] * 1000, 2), "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
            "rps": round(len(latencies) / elapsed, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds idle before measuring RSS")
    ap.add_argument("--with-ui", action="store_true", help="also measure the RSS with the Gradio UI mounted")
    args = ap.parse_args()

    wf = json.dumps(workflow(args.nodes)).encode()
    result: dict = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "concurrency": args.concurrency,
                    "workflow": {"nodes": args.nodes, "bytes": len(wf)}}
    with tempfile.TemporaryDirectory(prefix="cmr-bench-") as tmp:
        server = Server(Path(tmp), ui=False)
        try:
            result["startup_seconds"] = round(server.wait(), 2)
            time.sleep(args.settle)
            idle = rss_mb(server.proc.pid)
            result["idle_rss_mb"] = {"api": idle, "goal": 120, "ok": idle <= 120}
            import urllib.request

            req = urllib.request.Request(server.url + "/api/v1/analyze", data=wf,
                                         headers={"content-type": "application/json"})
            models = json.loads(urllib.request.urlopen(req).read())["models"]
            result["workflow"]["models"] = len(models)
            result["workflow"]["missing"] = sum(m["status"] == "missing" for m in models)
            result["analyze"] = asyncio.run(load(server.url + "/api/v1/analyze", "POST", wf, args.requests,
                                                 args.concurrency))
            # one client at a time: the service time, without queueing
            result["analyze_one_client"] = asyncio.run(load(server.url + "/api/v1/analyze", "POST", wf,
                                                            min(args.requests, 500), 1))
            result["baseline_index"] = asyncio.run(load(server.url + "/", "GET", None, args.requests, args.concurrency))
            result["baseline_health"] = asyncio.run(load(server.url + "/health", "GET", None, args.requests,
                                                         args.concurrency))
            result["ratio_p50_analyze_vs_index"] = round(result["analyze"]["p50_ms"] / result["baseline_index"]["p50_ms"], 2)
            result["rss_after_load_mb"] = rss_mb(server.proc.pid)
        finally:
            server.stop()
        if args.with_ui:
            server = Server(Path(tmp) / "ui", ui=True)
            try:
                server.wait()
                time.sleep(args.settle)
                result["idle_rss_mb"]["api_with_gradio"] = rss_mb(server.proc.pid)
            finally:
                server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
