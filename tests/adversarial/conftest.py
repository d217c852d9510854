"""Fixtures of the hostile-input suite: the sandbox (checked after every test), Settings over the
fakes, a download manager, the two HTTP doors (ComfyUI routes and sidecar), and a loopback server
whose answers (Content-Disposition, redirects, echoed tokens) a test chooses."""
from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from comfyui_model_resolver.downloads import DownloadManager, RetryPolicy
from comfyui_model_resolver.index.layout import build_layout
from comfyui_model_resolver.settings import Settings

from .harness import Door, Sandbox

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

FAST_RETRY = RetryPolicy(base=0.01, cap=0.05)
#: A loopback port nothing listens on: upstreams a test does not want are unreachable, fast.
CLOSED = "http://127.0.0.1:9"


def hostport(url: str) -> str:
    return urlsplit(url).netloc


@pytest.fixture
def sandbox(tmp_path):
    sb = Sandbox.create(tmp_path / "sandbox")
    yield sb
    sb.assert_safe()  # every hostile case: nothing outside the models root, no model file lost


def core_settings(sb: Sandbox, hub: Any = None, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        models_root=sb.models, data_dir=sb.data, hf_endpoint=hub.url if hub else CLOSED,
        civitai_base_url=CLOSED, allowed_hosts=(hostport(hub.cdn_url),) if hub else (),
        segment_threshold=1 << 20, segments=3, stall_timeout=2.0, download_timeout=10.0, download_retries=2,
        http_timeout=5.0, disable_catalog=True)
    base.update(overrides)
    return Settings(**base)


@pytest.fixture
async def managers():
    """Build managers with `make(settings)`; all are closed after the test."""
    made: list[DownloadManager] = []

    def make(settings: Settings) -> DownloadManager:
        m = DownloadManager(settings, build_layout(settings.models_root, write_roots=settings.write_roots),
                            retry=FAST_RETRY)
        made.append(m)
        return m

    yield make
    for m in made:
        await m.close()


# ---- the two doors --------------------------------------------------------------------------
def door_environ(sb: Sandbox, hub: Any = None, civitai: Any = None, **extra: str) -> dict[str, str]:
    hosts = [hostport(hub.cdn_url)] if hub else []
    if civitai is not None:
        hosts.append(hostport(civitai.storage_url))
    env = {"CMR_ENV_FILE": "/nonexistent", "CMR_DATA_DIR": str(sb.data), "CMR_MODELS_ROOT": str(sb.models),
           "CMR_HF_ENDPOINT": hub.url if hub else CLOSED,
           "CMR_CIVITAI_BASE_URL": civitai.url if civitai else CLOSED,
           "CMR_ALLOWED_HOSTS": ",".join(hosts), "CMR_DISABLE_CATALOG": "1", "CMR_HTTP_TIMEOUT": "5",
           "CMR_SEGMENT_THRESHOLD": str(1 << 20), "CMR_DOWNLOAD_RETRIES": "2", "CMR_STALL_TIMEOUT": "2",
           "CMR_MAX_WORKFLOW_BYTES": str(2 << 20), "CMR_MAX_REQUEST_BYTES": str(4 << 20)}
    env.update(extra)
    return env


@asynccontextmanager
async def comfyui_door(sb: Sandbox, environ: dict[str, str]):
    from comfyui_model_resolver.adapters import comfyui
    from support.comfy_standin import StandInServer, make_folder_paths, make_nodes

    fp = make_folder_paths(sb.base)
    server = StandInServer(asyncio.get_running_loop())
    adapter = comfyui.install(server, fp, make_nodes(fp), environ=environ)
    client = TestClient(TestServer(server.build_app(), host="127.0.0.1"))
    await client.start_server()
    try:
        door = Door("comfyui", client)
        door.origin = f"http://127.0.0.1:{client.port}"  # type: ignore[attr-defined]
        door.adapter = adapter  # type: ignore[attr-defined]
        door.resolver = await adapter.get_resolver()  # type: ignore[attr-defined]
        yield door
    finally:
        await client.close()
        await adapter.close()


@asynccontextmanager
async def sidecar_door(sb: Sandbox, environ: dict[str, str], base_url: str = "http://127.0.0.1"):
    from sidecar.main import create_app

    settings = Settings.load(environ, env_file="/nonexistent", comfyui_root=sb.base, enable_ui=False)
    app = create_app(settings, environ=environ, enable_ui=False)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
            door = Door("sidecar", client)
            door.origin = base_url  # type: ignore[attr-defined]
            door.app = app  # type: ignore[attr-defined]
            door.resolver = app.state.resolver  # type: ignore[attr-defined]
            yield door


DOORS = {"comfyui": comfyui_door, "sidecar": sidecar_door}


@pytest.fixture(params=sorted(DOORS))
async def door(request, sandbox, fake_hub):
    """Each test using it runs twice: through the ComfyUI routes and through the sidecar."""
    async with DOORS[request.param](sandbox, door_environ(sandbox, fake_hub)) as d:
        d.hub = fake_hub  # type: ignore[attr-defined]
        yield d


# ---- a loopback server that answers what the test says --------------------------------------
class Scripted:
    """`GET /f/<name>`: `routes[name]` = (status, headers, body) or a callable(request) -> Response.
    Every request is logged with its headers."""

    def __init__(self) -> None:
        self.routes: dict[str, Any] = {}
        self.fallback: Callable[[web.Request], Any] | None = None  # answers every other path
        self.log: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    def hostport(self) -> str:
        return hostport(self.url)

    def set(self, name: str, status: int = 200, headers: dict[str, str] | None = None, body: bytes = b"") -> str:
        self.routes[name] = (status, headers or {}, body)
        return f"{self.url}/f/{name}"

    def on(self, name: str, handler: Callable[[web.Request], Any]) -> str:
        self.routes[name] = handler
        return f"{self.url}/f/{name}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.log.append({"method": request.method, "path": request.path_qs, "headers": dict(request.headers)})
        spec = self.routes.get(request.match_info["name"]) if request.path.startswith("/f/") else None
        if spec is None and self.fallback is not None:
            spec = self.fallback
        if spec is None:
            return web.Response(status=404, text="no such file")
        if callable(spec):
            out = spec(request)
            return await out if asyncio.iscoroutine(out) else out
        status, headers, body = spec
        return web.Response(status=status, headers=headers, body=body)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/f/{name:.*}", self._handle)
        app.router.add_route("*", "/{name:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def scripted():
    s = Scripted()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def canary():
    """A loopback server that must never be contacted (it is on no allowlist)."""
    s = Scripted()
    await s.start()
    yield s
    await s.stop()
