"""Peak memory of a sidecar process analyzing the worst inputs it accepts (issue 12, hole 4).

A real sidecar (uvicorn subprocess on loopback) is started; after a warm-up its idle RSS is taken.
Then each input is uploaded to POST /api/v1/analyze the way any web page can send it (multipart),
and the process's peak RSS (VmHWM, reset before each case through /proc/PID/clear_refs) is read:
`peak_over_idle_mb` = peak - idle. The inputs sit just under every cap (workflow/limits.py and the
default CMR_MAX_WORKFLOW_BYTES), so each is accepted; two over a cap show the refusal costs nothing:

* values:      one node whose widgets hold ~MAX_VALUES short strings (the most Python objects)
* containers:  ~MAX_CONTAINERS empty arrays
* nodes:       MAX_NODES nodes, MAX_MODELS of them loaders with long file names, everything else filled
* api_nodes:   the same in API format
* big_string:  a note of nearly CMR_MAX_WORKFLOW_BYTES
* png:         a PNG as large as allowed, the `nodes` workflow in its text chunk
* worst:       the caps together (values + containers + nodes + the rest of the bytes as one string)
* over_nodes / over_values: 200,000 loader nodes (the reported attack, 16 MB) / 5 M values: refused

Then the worst input three times at once, with /health polled meanwhile (its slowest answer).
Goal: <= 256 MB over idle for every case, and for three at once. Linux only (reads /proc).

Usage: python bench/analyze_memory.py [--cases a,b] [--settle 2]. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
_spec = importlib.util.spec_from_file_location("bench_sidecar", Path(__file__).with_name("sidecar.py"))
bench_sidecar = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_sidecar)  # type: ignore[union-attr]

from comfyui_model_resolver.settings import Settings  # noqa: E402
from comfyui_model_resolver.workflow.limits import MAX_CONTAINERS, MAX_MODELS, MAX_NODES, MAX_VALUES  # noqa: E402

GOAL_MB = 256
MAX_BYTES = Settings().max_workflow_bytes
MARGIN = 0.98  # just under each cap


def _ui(nodes: list[dict], extra: dict | None = None) -> dict:
    return {"last_node_id": len(nodes), "last_link_id": 0, "nodes": nodes, "links": [], "groups": [],
            "config": {}, "extra": extra or {}, "version": 0.4}


def _node(i: int, kind: str, widgets: list) -> dict:
    return {"id": i, "type": kind, "mode": 0, "widgets_values": widgets}


def _loader(i: int) -> dict:
    name = f"loras/{'long_lora_name_' * 12}{i:06d}.safetensors"  # ~200 characters, all different
    return _node(i, "LoraLoader", [name, 1.0, 1.0])


def case_values(budget: float = MARGIN) -> bytes:
    n = int(MAX_VALUES * budget)
    return json.dumps(_ui([_node(1, "Note", [f"v{i % 100000:05d}" for i in range(n)])])).encode()


def case_containers(budget: float = MARGIN) -> bytes:
    n = int(MAX_CONTAINERS * budget) - 10
    return json.dumps(_ui([_node(1, "Note", [[] for _ in range(n)])])).encode()


def _nodes(api: bool) -> dict:
    loaders = int(MAX_MODELS * MARGIN)
    total = int(MAX_NODES * MARGIN)
    if api:
        wf = {str(i): {"class_type": "LoraLoader", "inputs": {"lora_name": _loader(i)["widgets_values"][0],
                                                              "strength_model": 1.0, "strength_clip": 1.0}}
              for i in range(1, loaders + 1)}
        for i in range(loaders + 1, total + 1):
            wf[str(i)] = {"class_type": "KSampler", "inputs": {"seed": i, "steps": 20, "cfg": 7.0,
                                                               "sampler_name": "euler", "model": [str(i - 1), 0]}}
        return wf
    nodes = [_loader(i) for i in range(1, loaders + 1)]
    nodes += [_node(i, "KSampler", [i, "fixed", 20, 7.0, "euler", "normal", 1.0]) for i in range(loaders + 1, total + 1)]
    return _ui(nodes)


def case_nodes() -> bytes:
    return json.dumps(_nodes(api=False)).encode()


def case_api_nodes() -> bytes:
    return json.dumps(_nodes(api=True)).encode()


def case_big_string() -> bytes:
    head = json.dumps(_ui([_node(1, "Note", ["PAD"])])).encode()
    pad = int(MAX_BYTES * MARGIN) - len(head)
    return head.replace(b'"PAD"', b'"' + b"x" * pad + b'"')


def _png(text: bytes, size: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = chunk(b"IHDR", (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
    text_chunk = chunk(b"tEXt", b"workflow\0" + text)
    idat_len = size - 8 - len(ihdr) - len(text_chunk) - 12 * 2
    return b"\x89PNG\r\n\x1a\n" + ihdr + text_chunk + chunk(b"IDAT", os.urandom(max(0, idat_len))) + chunk(b"IEND", b"")


def case_png() -> bytes:
    return _png(case_nodes(), int(MAX_BYTES * MARGIN))


def case_worst() -> bytes:
    wf = _nodes(api=False)
    base = json.dumps(wf).encode()
    free_values = int(MAX_VALUES * MARGIN) - base.count(b",") - 10
    free_containers = int(MAX_CONTAINERS * MARGIN) - base.count(b"{") - base.count(b"[") - 10
    # the last node holds short strings and empty arrays up to the caps (an array costs a value too)
    strings = max(0, free_values - free_containers)
    wf["nodes"][-1]["widgets_values"] = [f"v{i % 100000:05d}" for i in range(strings)] + \
        [[] for _ in range(max(0, free_containers))] + ["PAD"]
    data = json.dumps(wf).encode()
    pad = int(MAX_BYTES * MARGIN) - len(data)
    return data.replace(b'"PAD"', b'"' + b"x" * max(0, pad) + b'"')


def case_over_nodes() -> bytes:
    return json.dumps(_ui([_node(i, "LoraLoader", [f"m{i}.safetensors", 1.0, 1.0]) for i in range(200_000)])).encode()


def case_over_values() -> bytes:
    return case_values(budget=5.0)


CASES = {"values": case_values, "containers": case_containers, "nodes": case_nodes, "api_nodes": case_api_nodes,
         "big_string": case_big_string, "png": case_png, "worst": case_worst, "over_nodes": case_over_nodes,
         "over_values": case_over_values}


def _status(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def _reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS


async def _upload(session, url: str, name: str, data: bytes) -> tuple[int, dict]:
    import aiohttp

    form = aiohttp.FormData()
    ext = "png" if data.startswith(b"\x89PNG") else "json"
    form.add_field("file", data, filename=f"{name}.{ext}",
                   content_type="application/octet-stream")
    async with session.post(url + "/api/v1/analyze", data=form) as r:
        body = await r.read()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, {}


async def _health_poll(session, url: str, stop: asyncio.Event) -> float:
    slowest = 0.0
    while not stop.is_set():
        t = time.perf_counter()
        async with session.get(url + "/health") as r:
            await r.read()
        slowest = max(slowest, time.perf_counter() - t)
        await asyncio.sleep(0.1)
    return slowest


async def _measure(url: str, pid: int, idle: float, name: str, data: bytes, copies: int = 1) -> dict:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        await asyncio.sleep(0.5)
        _reset_peak(pid)
        stop = asyncio.Event()
        health = asyncio.ensure_future(_health_poll(session, url, stop))
        t = time.perf_counter()
        answers = await asyncio.gather(*(_upload(session, url, name, data) for _ in range(copies)))
        seconds = time.perf_counter() - t
        stop.set()
        slowest_health = await health
    peak = _status(pid, "VmHWM")
    status, body = answers[0]
    out = {"bytes": len(data), "status": status, "seconds": round(seconds, 2),
           "peak_over_idle_mb": round(peak - idle, 1), "ok": peak - idle <= GOAL_MB,
           "slowest_health_s": round(slowest_health, 2), "rss_after_mb": round(_status(pid, "VmRSS"), 1)}
    if status == 200:
        out["models"] = len(body.get("models", []))
    else:
        out["error"] = (body.get("error") or {}).get("message")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    ap.add_argument("--settle", type=float, default=2.0, help="seconds idle before measuring the idle RSS")
    args = ap.parse_args()
    names = [c for c in args.cases.split(",") if c]
    result: dict = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "load": os.getloadavg()[0],
                    "goal_mb_over_idle": GOAL_MB,
                    "caps": {"bytes": MAX_BYTES, "nodes": MAX_NODES, "models": MAX_MODELS,
                             "containers": MAX_CONTAINERS, "values": MAX_VALUES}}
    with tempfile.TemporaryDirectory(prefix="cmr-memory-") as tmp:
        server = bench_sidecar.Server(Path(tmp), ui=False)
        try:
            server.wait()
            pid = server.proc.pid
            small = json.dumps(bench_sidecar.workflow(50)).encode()
            for _ in range(3):  # warm up: lazy imports, the index, first allocations
                asyncio.run(_measure(server.url, pid, 0, "warmup", small))
            time.sleep(args.settle)
            idle = _status(pid, "VmRSS")
            result["idle_rss_mb"] = round(idle, 1)
            cases = {}
            for name in names:
                cases[name] = asyncio.run(_measure(server.url, pid, idle, name, CASES[name]()))
            result["cases"] = cases
            accepted = {n: c for n, c in cases.items() if c["status"] == 200}
            if accepted:
                worst = max(accepted, key=lambda n: accepted[n]["peak_over_idle_mb"])
                result["worst_accepted"] = worst
                result["three_at_once"] = {"case": worst, **asyncio.run(
                    _measure(server.url, pid, idle, worst, CASES[worst](), copies=3))}
            result["rss_at_end_mb"] = round(_status(pid, "VmRSS"), 1)
        finally:
            server.stop()
    result["ok"] = all(c["ok"] for c in result.get("cases", {}).values()) and \
        result.get("three_at_once", {}).get("ok", True)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
