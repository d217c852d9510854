"""Load on loopback, through the sidecar as users run it: `uvicorn sidecar.main:app` in its own process,
the fake Hub + CDN as real servers (in a thread of the test process).

* 200 concurrent analyze requests: every one answers 200 with the same analysis;
* 50 downloads queued at once, CMR_MAX_CONCURRENT_DOWNLOADS=3: every one completes, never more than 3
  run at a time, and each final file's sha256 is the source's;
* the sidecar's peak RSS (psutil, sampled all along) stays under a generous bound, and is printed;
* kill -9 of the sidecar in the middle of downloads: a new sidecar resumes them all, and no file
  under a final name is ever wrong (checked right after the kill, and at the end).

No timing assertions: the bounds are counts, states, bytes and memory. Files are small (CI time).
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from fakes.blobs import FakeFile
from support.downloads import sha256_of
from support.paths import FRONTEND_FIXTURES, REPO

from .conftest import hostport
from .harness import Sandbox

psutil = pytest.importorskip("psutil")

PEAK_RSS_BOUND = 400 * 1024 * 1024
API = "/api/v1"
REPORT = Path(os.environ.get("CMR_LOAD_REPORT", "")) if os.environ.get("CMR_LOAD_REPORT") else None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sidecar:
    """`python -m uvicorn sidecar.main:app` on 127.0.0.1:<free port>, and a thread sampling its RSS."""

    def __init__(self, sandbox: Sandbox, hub, **env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
        self.env.update({
            "PYTHONPATH": str(REPO), "CMR_ENV_FILE": "/nonexistent", "CMR_COMFYUI_ROOT": str(sandbox.base),
            "CMR_DATA_DIR": str(sandbox.data), "CMR_HF_ENDPOINT": hub.url, "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9",
            "CMR_ALLOWED_HOSTS": hostport(hub.cdn_url), "CMR_DISABLE_CATALOG": "1", "CMR_ENABLE_UI": "0",
            "CMR_MAX_CONCURRENT_DOWNLOADS": "3", "CMR_SEGMENT_THRESHOLD": str(64 << 20), "CMR_LOG_LEVEL": "WARNING",
            "CMR_HTTP_TIMEOUT": "5", **env})
        self.log = sandbox.parent.parent / f"sidecar-{self.port}.log"
        self.proc: subprocess.Popen | None = None
        self.peak_rss = 0
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    def start(self) -> "Sidecar":
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "sidecar.main:app", "--host", "127.0.0.1", "--port", str(self.port),
                 "--no-access-log", "--log-level", "warning",
                 # uvicorn closes a connection idle for 5 s; on a loaded machine the client's pool reused one
                 # in that instant (httpx.ReadError). Not what the test is about: keep idle connections open.
                 "--timeout-keep-alive", "300"],
                cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() >= deadline:
                pytest.fail("the sidecar did not start: " + self.log.read_text()[-3000:])
            time.sleep(0.1)
        self._sampling.set()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def _sample(self) -> None:
        proc = psutil.Process(self.proc.pid)
        while self._sampling.is_set():
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            except psutil.Error:
                return
            self.peak_rss = max(self.peak_rss, rss)
            time.sleep(0.02)

    def kill9(self) -> None:
        self._sampling.clear()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        self._sampling.clear()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        assert "Traceback" not in self.log.read_text(), self.log.read_text()[-3000:]


@pytest.fixture
def sandbox_for_load(tmp_path):
    sb = Sandbox.create(tmp_path / "sandbox")
    yield sb
    sb.assert_safe()


def _report(**figures) -> None:
    line = json.dumps(figures)
    print(f"\nLOAD {line}")
    if REPORT is not None:
        with open(REPORT, "a") as f:
            f.write(line + "\n")


def _stored(db: Path) -> list[list[list[int]]]:
    """The checkpointed byte ranges of each job, read as another process would."""
    import sqlite3

    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [json.loads(data)["done"] for (data,) in con.execute("SELECT data FROM jobs").fetchall()]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _files(hub, n: int, size: int, seed0: int) -> list[FakeFile]:
    files = [FakeFile.safetensors(f"load_{i:02d}.safetensors", size + i * 1024, seed=seed0 + i) for i in range(n)]
    hub.add_repo("load/models", files)
    return files


async def _wait_all(client: httpx.AsyncClient, ids: set[str], *, seen_running: list[int], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        jobs = {j["id"]: j for j in (await client.get(API + "/downloads")).json()["jobs"] if j["id"] in ids}
        seen_running.append(sum(1 for j in jobs.values() if j["state"] in ("running", "verifying")))
        if len(jobs) == len(ids) and all(j["state"] in ("completed", "failed", "cancelled") for j in jobs.values()):
            return jobs
        if time.monotonic() >= deadline:
            pytest.fail(f"downloads never finished: { {i: j['state'] for i, j in jobs.items()} }")
        await asyncio.sleep(0.05)


async def test_sidecar_under_load(sandbox_for_load, fake_hub_thread):
    sb, hub = sandbox_for_load, fake_hub_thread
    files = _files(hub, 50, 256 * 1024, seed0=100)
    hub.switch(on="cdn", throttle_bps=1 << 20)  # ~0.25 s a file: the queue and its limit are visible
    workflow = json.loads((FRONTEND_FIXTURES / "missing/missing_models_in_subgraph.json").read_text())
    side = Sidecar(sb, hub).start()
    try:
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
        async with httpx.AsyncClient(base_url=side.url, timeout=120, limits=limits) as client:
            idle_rss = side.peak_rss

            # 200 concurrent analyze requests
            answers = await asyncio.gather(*(client.post(API + "/analyze", json=workflow, params={"name": f"wf{i}"})
                                             for i in range(200)))
            assert [r.status_code for r in answers] == [200] * 200
            bodies = [r.json() for r in answers]
            assert {b["workflow"] for b in bodies} == {f"wf{i}" for i in range(200)}
            first = json.dumps(bodies[0]["models"], sort_keys=True)
            assert all(json.dumps(b["models"], sort_keys=True) == first for b in bodies) and bodies[0]["models"]
            analyze_rss = side.peak_rss

            # 50 downloads queued at once, 3 at a time
            posted = await asyncio.gather(*(client.post(API + "/downloads", json={
                "url": f"{hub.url}/load/models/resolve/main/{f.name}", "folder": "checkpoints"}) for f in files))
            assert [r.status_code for r in posted] == [202] * 50, [r.text for r in posted if r.status_code != 202]
            ids = {r.json()["id"] for r in posted}
            running: list[int] = []
            jobs = await _wait_all(client, ids, seen_running=running)
        states = sorted(j["state"] for j in jobs.values())
        assert states == ["completed"] * 50, [j.get("error") for j in jobs.values() if j["state"] != "completed"]
        assert max(running) <= 3
        for f in files:
            final = sb.models / "checkpoints" / f.name
            assert sha256_of(final) == f.sha256, f.name
        assert len({r["path"] for r in hub.requests(server="cdn") if r["method"] == "GET"}) == 50  # really fetched
    finally:
        side.stop()
    _report(analyze_requests=200, downloads=50, concurrency=3, max_running_seen=max(running),
            idle_rss_mb=round(idle_rss / 2**20, 1), analyze_peak_rss_mb=round(analyze_rss / 2**20, 1),
            peak_rss_mb=round(side.peak_rss / 2**20, 1))
    assert side.peak_rss < PEAK_RSS_BOUND, f"peak RSS {side.peak_rss / 2**20:.0f} MiB"


async def test_sidecar_killed_mid_downloads_resumes_them_all_verified(sandbox_for_load, fake_hub_thread):
    sb, hub = sandbox_for_load, fake_hub_thread
    files = _files(hub, 8, 3 << 20, seed0=200)
    sw = hub.switch(on="cdn", throttle_bps=512 << 10)  # slow enough to be caught mid-way (checkpoints every 2 s)
    side = Sidecar(sb, hub).start()
    try:
        async with httpx.AsyncClient(base_url=side.url, timeout=60) as client:
            posted = [await client.post(API + "/downloads", json={
                "url": f"{hub.url}/load/models/resolve/main/{f.name}", "folder": "checkpoints"}) for f in files]
            ids = {r.json()["id"] for r in posted}
            deadline = time.monotonic() + 60
            while True:  # wait until the job database holds checkpoints of a few jobs
                partial = [spans for spans in _stored(sb.data / "downloads.sqlite")
                           if 0 < sum(b - a for a, b in spans) < (3 << 20)]
                if len(partial) >= 2:
                    break
                if time.monotonic() >= deadline:
                    pytest.fail("timed out waiting (a hang, not a speed check)")
                await asyncio.sleep(0.05)
    finally:
        side.kill9()
    # right after the kill: whatever sits under a final name is exact; the rest are part files
    for f in files:
        final = sb.models / "checkpoints" / f.name
        if final.exists():
            assert sha256_of(final) == f.sha256, f"{f.name} is corrupt after kill -9"
    parts = [p.name for p in (sb.models / "checkpoints").glob("*.part")]

    assert parts, "the kill came too late to test a resume"
    hub.clear_switches()
    assert sw is not None
    again = Sidecar(sb, hub).start()
    try:
        async with httpx.AsyncClient(base_url=again.url, timeout=60) as client:
            running: list[int] = []
            jobs = await _wait_all(client, ids, seen_running=running)
        assert sorted(j["state"] for j in jobs.values()) == ["completed"] * len(files)
    finally:
        again.stop()
    for f in files:
        assert sha256_of(sb.models / "checkpoints" / f.name) == f.sha256
    assert list((sb.models / "checkpoints").glob("*.part")) == []
    resumed = [r for r in hub.requests(server="cdn") if r["range"] and not r["range"].startswith("bytes=0-")]
    assert resumed, "the new sidecar started over instead of resuming with Range"
