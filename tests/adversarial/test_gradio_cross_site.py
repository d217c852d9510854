"""Hole 3: the Gradio UI driven cross-site, through a real Gradio app on a real loopback socket.

Gradio treats only an exact `localhost`/`127.0.0.1`/`0.0.0.0` Host as local; for any other name it
grants every Origin CORS with credentials. The sidecar's host check used to accept `*.localhost` and
`localhost.` (browsers send both to loopback), so a page on a foreign origin that fetched
`http://cmr.localhost:PORT/gradio/gradio_api/call/download_url` started a download, and read
`/gradio/config`. Now the one request guard refuses those names on a loopback socket, and refuses a
foreign Origin on every UI path whatever Gradio would say (an IP literal or this machine's name is a
fine Host, but not with a foreign Origin). Both UIs: mounted on the sidecar, and on its own port.
Positive controls: the same calls without an Origin (gradio_client) and from the UI's own page work.
"""
from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")

from fakes.blobs import FakeFile  # noqa: E402

from .conftest import door_environ  # noqa: E402

EVIL = "https://evil.example"


def _server(app):
    import importlib.util
    from support.paths import REPO

    spec = importlib.util.spec_from_file_location("sidecar_conftest", REPO / "tests" / "sidecar" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.LiveServer(app).start()


def _sidecar_app(sandbox, fake_hub):
    from comfyui_model_resolver.settings import Settings
    from sidecar.main import create_app

    env = door_environ(sandbox, fake_hub)
    settings = Settings.load(env, env_file="/nonexistent", comfyui_root=sandbox.base, enable_ui=True)
    return create_app(settings, environ=env, enable_ui=True), settings


async def _call(client: httpx.AsyncClient, base: str, api: str, data: list, headers: dict) -> tuple[int, str]:
    """Gradio's HTTP API: POST …/call/<api> gives an event id; GET …/call/<api>/<id> streams the result."""
    r = await client.post(f"{base}/gradio_api/call/{api}", json={"data": data}, headers=headers)
    if r.status_code != 200:
        return r.status_code, r.text
    event = r.json()["event_id"]
    r = await client.get(f"{base}/gradio_api/call/{api}/{event}", headers=headers)
    return r.status_code, r.text


def _hosts(port: int) -> list[str]:
    return [f"cmr.localhost:{port}", f"localhost.:{port}", f"LOCALHOST.:{port}", f"a.b.localhost:{port}"]


async def _attack(client, base: str, port: int, url: str) -> None:
    # 1. other names for loopback: refused whatever the Origin (no CORS grant either)
    for host in _hosts(port):
        for origin in (EVIL, None):
            headers = {"Host": host, **({"Origin": origin} if origin else {})}
            r = await client.get(f"{base}/config", headers=headers)
            assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_trusted", (host, r.text[:200])
            assert "access-control-allow-origin" not in r.headers
            status, text = await _call(client, base, "download_url", [url, "loras", "", "", []], headers)
            assert status == 403, (host, text[:200])
            pre = await client.options(f"{base}/gradio_api/call/download_url", headers={
                **headers, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
            assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
    # 2. names that are this machine, but a foreign page: refused on every UI path, reads included
    for host in (f"127.0.0.1:{port}", f"[::1]:{port}", f"localhost:{port}", f"{socket.gethostname()}:{port}",
                 f"0.0.0.0:{port}"):
        for origin in (EVIL, "null", f"http://127.0.0.1:{port + 1}", f"http://{socket.gethostname()}.evil.example"):
            headers = {"Host": host, "Origin": origin}
            r = await client.get(f"{base}/config", headers=headers)
            assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin", (host, origin)
            assert "access-control-allow-origin" not in r.headers
            status, _ = await _call(client, base, "download_url", [url, "loras", "", "", []], headers)
            assert status == 403
        r = await client.get(f"{base}/config", headers={"Host": host, "Sec-Fetch-Site": "cross-site",
                                                        "Sec-Fetch-Mode": "cors"})
        assert r.status_code == 403


async def _jobs(client, api: str) -> list:
    r = await client.get(f"{api}/api/v1/downloads")
    return r.json()["jobs"]


@pytest.mark.timeout(120)
async def test_the_mounted_ui_cannot_be_driven_cross_site(sandbox, fake_hub):
    fake_hub.add_repo("org/m", [FakeFile.safetensors("model.safetensors", 4096, seed=51)])
    url = f"{fake_hub.url}/org/m/resolve/main/model.safetensors"
    app, _ = _sidecar_app(sandbox, fake_hub)
    server = await asyncio.to_thread(_server, app)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            ui = f"{server.url}/gradio"
            await _attack(client, ui, server.port, url)
            assert await _jobs(client, server.url) == []
            assert (sandbox.models / "loras" / "model.safetensors").exists() is False
            # positive controls: gradio_client-style (no Origin), then the UI's own page (same origin)
            r = await client.get(f"{ui}/config")
            assert r.status_code == 200 and "components" in r.json()
            status, text = await _call(client, ui, "download_url", [url, "loras", "", "", []], {})
            assert status == 200 and "event: complete" in text, text[:300]
            own = {"Origin": server.url, "Host": f"127.0.0.1:{server.port}"}
            r = await client.get(f"{ui}/config", headers=own)
            assert r.status_code == 200
            status, _ = await _call(client, ui, "jobs", [{}, []], own)
            assert status == 200
            for _ in range(200):
                jobs = await _jobs(client, server.url)
                if jobs and jobs[0]["state"] == "completed":
                    break
                await asyncio.sleep(0.05)
            assert len(jobs) == 1 and jobs[0]["state"] == "completed", jobs
    finally:
        await asyncio.to_thread(server.stop)


@pytest.mark.timeout(120)
async def test_the_standalone_ui_cannot_be_driven_cross_site(sandbox, fake_hub):
    from sidecar.backend import HttpBackend
    from sidecar.gradio_ui import create_ui_app

    fake_hub.add_repo("org/m", [FakeFile.safetensors("model.safetensors", 4096, seed=52)])
    url = f"{fake_hub.url}/org/m/resolve/main/model.safetensors"
    app, settings = _sidecar_app(sandbox, fake_hub)
    api = await asyncio.to_thread(_server, app)
    ui = await asyncio.to_thread(_server, create_ui_app(settings, HttpBackend(api.url)))
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            await _attack(client, ui.url, ui.port, url)
            assert await _jobs(client, api.url) == []
            r = await client.get(f"{ui.url}/config", headers={"Origin": ui.url})
            assert r.status_code == 200
            status, text = await _call(client, ui.url, "download_url", [url, "loras", "", "", []], {"Origin": ui.url})
            assert status == 200 and "event: complete" in text, text[:300]
            for _ in range(200):
                jobs = await _jobs(client, api.url)
                if jobs and jobs[0]["state"] == "completed":
                    break
                await asyncio.sleep(0.05)
            assert len(jobs) == 1 and jobs[0]["state"] == "completed", jobs
    finally:
        await asyncio.to_thread(ui.stop)
        await asyncio.to_thread(api.stop)
