"""The sidecar as a real server on loopback: a uvicorn thread, `uvicorn sidecar.main:app`, `cmr serve`
and ./start-production.sh as subprocesses, SIGTERM included."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from comfyui_model_resolver.adapters.routes import SIDECAR_PREFIX
from comfyui_model_resolver.types import DownloadState, ProgressEvent
from sidecar.gradio_ui import gradio_available
from support.paths import REPO

from .conftest import CLOSED, free_port
from .test_api import WF


def read_events(lines, count: int, timeout: float = 10.0) -> list[tuple[str, dict]]:
    """Parse `count` SSE events (event name, JSON data) from an iterator of lines."""
    events, name, data = [], None, []
    deadline = time.monotonic() + timeout
    for line in lines:
        if time.monotonic() > deadline:
            break
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and name:
            events.append((name, json.loads("\n".join(data))))
            name, data = None, []
            if len(events) == count:
                break
    return events


def test_api_over_loopback(live):
    with httpx.Client(base_url=live.url, timeout=10) as c:
        assert c.get("/health").json()["ready"] is True
        r = c.post(f"{SIDECAR_PREFIX}/analyze", files={"file": ("wf.json", json.dumps(WF).encode())})
        assert r.status_code == 200 and len(r.json()["models"]) == 2
        assert c.get("/openapi.json").json()["paths"][f"{SIDECAR_PREFIX}/analyze"]["post"]["operationId"] == "analyze"
        assert "cmr_route_duration_seconds_count{route=\"analyze\"} 1" in c.get("/metrics").text


def test_sse_streams_progress_events(live):
    resolver = live.app.state.resolver
    events = [ProgressEvent(job_id="j1", state=DownloadState.running, filename="a.safetensors", folder="loras",
                            bytes_done=512, total=1024, speed=2048.0, eta=0.25),
              ProgressEvent(job_id="j1", state=DownloadState.completed, filename="a.safetensors", folder="loras",
                            bytes_done=1024, total=1024, path="/m/loras/a.safetensors", sha256="ab" * 32)]
    with httpx.Client(base_url=live.url, timeout=10) as c:
        with c.stream("GET", f"{SIDECAR_PREFIX}/downloads/events") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            [(name, snapshot)] = read_events(lines, 1)
            assert name == "snapshot" and "jobs" in snapshot
            for e in events:
                live.call(resolver.events.publish, e)
            got = read_events(lines, 2)
        assert [n for n, _ in got] == ["progress", "progress"]
        assert [d for _, d in got] == [e.model_dump(mode="json") for e in events]
        metrics = c.get("/metrics").text
        assert "cmr_downloads_completed_total 1" in metrics and "cmr_download_bytes_total 1024" in metrics


def test_sse_keeps_idle_connections_alive_and_ends_on_shutdown(live):
    with httpx.Client(base_url=live.url, timeout=10) as c:
        with c.stream("GET", f"{SIDECAR_PREFIX}/downloads/events") as r:
            lines = r.iter_lines()
            seen = []
            for line in lines:
                seen.append(line)
                if line.startswith(": keep-alive"):
                    break
            assert any(s.startswith("event: snapshot") for s in seen)
            live.stop()  # ends the stream: the server stops (stop() fails if it hangs) with a client attached
            rest = list(lines)
            assert not any(s.startswith("event:") for s in rest)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    root = tmp_path / "ComfyUI"
    (root / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update(CMR_COMFYUI_ROOT=str(root), CMR_DATA_DIR=str(tmp_path / "data"), CMR_HF_ENDPOINT=CLOSED,
               CMR_CIVITAI_BASE_URL=CLOSED, PYTHONPATH=str(REPO), GRADIO_ANALYTICS_ENABLED="False", **extra)
    return env


def _spawn(cmd: list[str], tmp_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start a server with stderr in a file (an unread pipe fills up and blocks the server)."""
    log = open(tmp_path / f"server-{time.monotonic_ns()}.log", "w+")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _log(proc: subprocess.Popen) -> str:
    proc.log.flush()  # type: ignore[attr-defined]
    proc.log.seek(0)  # type: ignore[attr-defined]
    return proc.log.read()  # type: ignore[attr-defined]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {_log(proc)}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def _stop(proc: subprocess.Popen, hang: float = 60) -> tuple[int, str]:
    """SIGTERM, then wait for the process to end by itself. `hang` only tells a process that never
    ends (a stream holding the server open forever) from one that does: not a speed check."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=hang)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running {hang:.0f} s after SIGTERM:\n{_log(proc)}") from None
    return proc.returncode, _log(proc)


def _refused(port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
    except httpx.ConnectError:
        return True
    return False


def test_uvicorn_command_line(tmp_path):
    """`python -m uvicorn sidecar.main:app`: settings from CMR_*, and a SIGTERM ends even an open SSE stream."""
    port = free_port()
    proc = _spawn([sys.executable, "-m", "uvicorn", "sidecar.main:app", "--host", "127.0.0.1", "--port", str(port)],
                  tmp_path, _env(tmp_path, CMR_ENABLE_UI="false"))
    try:
        health = _wait_http(f"http://127.0.0.1:{port}/health", proc)
        assert health.status_code == 200 and health.json()["checks"]["models_root"]["path"].startswith(str(tmp_path))
        with httpx.Client(timeout=10) as c, c.stream("GET", f"http://127.0.0.1:{port}{SIDECAR_PREFIX}/downloads/events") as r:
            assert read_events(r.iter_lines(), 1)[0][0] == "snapshot"
            code, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled once it has shut down
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(rec["msg"] == "sidecar stopped" for rec in logs), err  # the lifespan closed the Resolver


def _serve_and_stop(cmd: list[str], tmp_path: Path, ui: bool) -> None:
    api, gui = free_port(), free_port()
    env = _env(tmp_path, CMR_API_PORT=str(api), CMR_GRADIO_PORT=str(gui), CMR_ENABLE_UI="true" if ui else "false")
    proc = _spawn(cmd, tmp_path, env)
    try:
        health = _wait_http(f"http://127.0.0.1:{api}/health", proc, timeout=120)
        assert health.status_code == 200 and health.json()["ready"]
        if ui:
            page = _wait_http(f"http://127.0.0.1:{gui}/", proc)
            assert page.status_code == 200 and "<html" in page.text.lower()
            assert httpx.get(f"http://127.0.0.1:{api}/gradio/", timeout=5).status_code == 200
        # an open SSE stream must not hold the server until uvicorn's graceful-shutdown deadline
        with httpx.Client(timeout=10) as c, c.stream("GET", f"http://127.0.0.1:{api}{SIDECAR_PREFIX}/downloads/events") as r:
            assert read_events(r.iter_lines(), 1)[0][0] == "snapshot"
            code, err = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    assert "graceful shutdown exceeded" not in err  # ended by itself, not by uvicorn's deadline
    assert _refused(api) and _refused(gui)
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert any(r["msg"] == "sidecar stopped" for r in records)


@pytest.mark.parametrize("ui", [False, pytest.param(True, marks=pytest.mark.skipif(
    not gradio_available(), reason="gradio is not installed (the 'ui' extra)"))], ids=["api", "api+ui"])
def test_cmr_serve_stops_cleanly_on_sigterm(tmp_path, ui):
    _serve_and_stop([sys.executable, "-m", "comfyui_model_resolver", "serve"], tmp_path, ui)


@pytest.mark.parametrize("ui", [False, pytest.param(True, marks=pytest.mark.skipif(
    not gradio_available(), reason="gradio is not installed (the 'ui' extra)"))], ids=["api", "api+ui"])
def test_start_production_script(tmp_path, ui):
    _serve_and_stop(["env", f"PYTHON={sys.executable}", str(REPO / "start-production.sh")], tmp_path, ui)
