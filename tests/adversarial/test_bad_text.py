"""Hole 5 (issue 12): one bad byte broke the job list.

A hostile upstream answered a download with a redirect whose ``Location`` held a raw 0xFF byte.
aiohttp turns such a byte into a lone surrogate (``\\udcff``), which went into the job's error; from
then on ``GET /downloads`` and ``GET /downloads/{id}`` answered 500 on both doors, and the job
database kept the string across restarts until the job was deleted. Now every text that enters a
job, a log line or an answer goes through `text.encodable` (U+FFFD for what cannot be encoded, the
job kept), the job database loads old bad rows clean, and every door's JSON answer encodes.

The upstream is a real loopback socket that writes raw bytes (no HTTP library would send them).
Positive control: a job whose text is legitimate non-ASCII keeps it unchanged.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from contextlib import asynccontextmanager

import pytest

from comfyui_model_resolver.downloads.store import JobRecord, JobStore
from comfyui_model_resolver.downloads.volume import volume_id
from comfyui_model_resolver.text import encodable, json_bytes
from comfyui_model_resolver.types import DownloadRequest

from .conftest import DOORS, core_settings, door_environ
from .harness import Sandbox
from .test_write_roots import _wait_job

BAD = "\ufffd"
UNICODE = "modèle ünïcode 模型 🎨"  # legitimate non-ASCII: must come back exactly


@asynccontextmanager
async def raw_redirector(location: bytes):
    """A loopback server that answers every request with a 302 to `location` (raw bytes, PORT = its port)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            port = writer.get_extra_info("sockname")[1]
            writer.write(b"HTTP/1.1 302 Found\r\nLocation: " + location.replace(b"PORT", str(port).encode())
                         + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


LOCATIONS = [b"http://127.0.0.1:1/\xff.safetensors", b"http://127.0.0.1:1/\xc3\x28\xed\xa0\x80.safetensors",
             b"http://\xff\xfe/x.safetensors"]


def test_encodable_replaces_only_what_cannot_be_encoded():
    assert encodable("a\udcffb") == f"a{BAD}b" and encodable("\ud800") == BAD
    assert encodable("\ud83c\udfa8") == "🎨"  # a pair spelled as two halves is the character it stands for
    assert encodable(UNICODE) is UNICODE  # nothing to fix: the same object
    nested = encodable({"k\udcff": ["x\udcff", ("y\ud800",), 3, None], "n": 1.5})
    assert nested == {f"k{BAD}": [f"x{BAD}", (f"y{BAD}",), 3, None], "n": 1.5}
    assert json.loads(json_bytes({"m": "\udcff" + UNICODE})) == {"m": BAD + UNICODE}


@pytest.mark.parametrize("location", LOCATIONS, ids=range(len(LOCATIONS)))
async def test_a_redirect_with_raw_bytes_fails_the_job_with_text_that_encodes(sandbox, managers, location):
    async with raw_redirector(location) as hostport:
        m = managers(core_settings(sandbox, allowed_hosts=(hostport,), download_retries=0))
        job = await m.submit(DownloadRequest(url=f"http://{hostport}/f/x.safetensors", folder="loras"))
        job = await m.wait(job.id, timeout=30)
    assert job.state == "failed", job
    text = json.dumps(job.model_dump(mode="json"), ensure_ascii=False)
    text.encode("utf-8")  # the whole job encodes
    assert job.error["type"] in ("HostNotAllowed", "DownloadError", "SourceError"), job.error
    if b"\xff" in location:
        assert BAD in job.error["message"], job.error


@pytest.mark.parametrize("door_name", sorted(DOORS))
async def test_a_bad_byte_never_breaks_the_job_list_on_either_door_even_after_a_restart(sandbox, door_name):
    async with raw_redirector(LOCATIONS[0]) as hostport:
        env = door_environ(sandbox, CMR_ALLOWED_HOSTS=hostport, CMR_DOWNLOAD_RETRIES="0")
        async with DOORS[door_name](sandbox, env) as door:
            status, body, _ = await door.request("POST", "/downloads", json_body={
                "url": f"http://{hostport}/f/x.safetensors", "folder": "loras"})
            assert status in (200, 202), body
            job_id = (body.get("jobs") or [body])[0]["id"]
            job = await _wait_job(door, job_id)
            assert job["state"] == "failed" and BAD in job["error"]["message"], job
            status, body, _ = await door.request("GET", "/downloads")
            assert status == 200 and [j["id"] for j in body["jobs"]] == [job_id], body
    for name in sorted(DOORS):  # a restart, through each door: the stored job loads and lists
        async with DOORS[name](sandbox, door_environ(sandbox)) as door:
            status, body, _ = await door.request("GET", "/downloads")
            assert status == 200 and [j["id"] for j in body["jobs"]] == [job_id], (name, body)
            status, job, _ = await door.request("GET", f"/downloads/{job_id}")
            assert status == 200 and BAD in job["error"]["message"], (name, job)


def _plant_bad_rows(sandbox: Sandbox) -> tuple[str, str]:
    """Rows as an earlier version stored them: lone surrogates escaped in the JSON text."""
    store = JobStore(sandbox.data / "downloads.sqlite", volume_id(str(sandbox.models)))
    bad = JobRecord(id="bad1", url="https://huggingface.co/org/m/resolve/main/x.safetensors", folder="loras",
                    filename="x.safetensors", path=str(sandbox.models / "loras" / "x.safetensors"), state="failed")
    data = json.loads(bad.to_json())
    data.update(error={"type": "HostNotAllowed", "code": "host_not_allowed", "hint": None,
                       "message": "127.0.0.1:9 is not on the download allowlist (http://127.0.0.1:9/\udcff.x)."},
                detail="\ud800", warnings=["w\udcfe"])
    store.save_row("bad1", bad.path, "failed", bad.updated, json.dumps(data))  # ensure_ascii: "\\udcff" in the row
    good = JobRecord(id="good1", url="https://huggingface.co/org/m/resolve/main/y.safetensors", folder="loras",
                     filename="y.safetensors", path=str(sandbox.models / "loras" / "y.safetensors"), state="failed",
                     error={"type": "SourceError", "code": "source_error", "hint": None, "message": UNICODE})
    store.save(good)
    store.close()
    return "bad1", "good1"


@pytest.mark.parametrize("door_name", sorted(DOORS))
async def test_a_job_store_already_holding_bad_text_loads_and_lists(sandbox, door_name):
    bad, good = _plant_bad_rows(sandbox)
    async with DOORS[door_name](sandbox, door_environ(sandbox)) as door:
        status, body, text = await door.request("GET", "/downloads")
        assert status == 200, text[:300]
        assert sorted(j["id"] for j in body["jobs"]) == [bad, good]
        status, job, _ = await door.request("GET", f"/downloads/{bad}")
        assert status == 200 and BAD in job["error"]["message"] and job["detail"] == BAD, job
        assert job["warnings"] == [f"w{BAD}"]
        status, job, _ = await door.request("GET", f"/downloads/{good}")
        assert status == 200 and job["error"]["message"] == UNICODE, job  # positive control: unchanged
        status, job, _ = await door.request("POST", f"/downloads/{bad}/resume")  # acting on it answers too
        assert status == 200 and job["state"] in ("queued", "running", "failed"), job


@pytest.mark.timeout(180)
async def test_the_gradio_jobs_table_lists_a_store_with_bad_text(sandbox):
    pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")
    import httpx

    from comfyui_model_resolver.settings import Settings
    from sidecar.main import create_app

    from .test_gradio_cross_site import _call, _server

    _plant_bad_rows(sandbox)
    env = door_environ(sandbox)
    settings = Settings.load(env, env_file="/nonexistent", comfyui_root=sandbox.base, enable_ui=True)
    server = await asyncio.to_thread(_server, create_app(settings, environ=env, enable_ui=True))
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            status, text = await _call(client, f"{server.url}/gradio", "jobs", [{}, []], {})
            assert status == 200 and "event: complete" in text, text[:500]
            table = json.loads(text.split("data: ", 1)[1].splitlines()[0])[0]
            messages = {row[0]: row[-1] for row in table["data"]}
            assert BAD in messages["bad1"] and messages["good1"] == UNICODE, messages
            r = await client.get(f"{server.url}/api/v1/downloads")
            assert r.status_code == 200 and len(r.json()["jobs"]) == 2
    finally:
        await asyncio.to_thread(server.stop)


async def test_the_command_line_reports_bad_text_and_exits_cleanly(sandbox):
    from support.paths import REPO

    async with raw_redirector(LOCATIONS[0]) as hostport:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(sandbox.parent / "home"), "PYTHONPATH": str(REPO),
               "CMR_MODELS_ROOT": str(sandbox.models), "CMR_DATA_DIR": str(sandbox.data), "CMR_ENV_FILE": "/nonexistent",
               "CMR_ALLOWED_HOSTS": hostport, "CMR_DOWNLOAD_RETRIES": "0", "PYTHONIOENCODING": "utf-8:strict"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "comfyui_model_resolver", "download", f"http://{hostport}/f/x.safetensors",
            "--folder", "loras", "--json", "--no-progress", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode in (1, 2), (out, err)
    stdout, stderr = out.decode("utf-8"), err.decode("utf-8")  # strict: every byte printed is UTF-8
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr
    error = json.loads(stdout.strip().splitlines()[-1])["error"]
    assert BAD in error["message"], error


def test_log_lines_always_encode():
    from sidecar.logs import configure_logging

    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        for fmt in ("json", "text"):
            configure_logging("INFO", fmt=fmt, stream=stream)
            logging.getLogger("comfyui_model_resolver.test").warning("upstream said %s", "x\udcffy " + UNICODE)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = raw.getvalue().decode("utf-8").splitlines()
    assert len(lines) == 2 and all(f"x{BAD}y {UNICODE}" in line for line in lines), lines
