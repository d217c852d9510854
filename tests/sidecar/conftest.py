"""Sidecar fixtures: the app in-process (httpx ASGITransport) and a real uvicorn server on loopback."""
from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from comfyui_model_resolver.settings import Settings  # noqa: E402
from sidecar.main import create_app  # noqa: E402

#: Upstreams on a closed loopback port: health probes never leave the machine.
CLOSED = "http://127.0.0.1:9"
LOOPBACK = "http://127.0.0.1"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    root = tmp_path / "ComfyUI"
    (root / "models" / "checkpoints" / "SD1.5").mkdir(parents=True, exist_ok=True)
    (root / "models" / "loras").mkdir(parents=True, exist_ok=True)
    (root / "models" / "checkpoints" / "SD1.5" / "fake_model.safetensors").write_bytes(b"x")
    base: dict[str, Any] = dict(comfyui_root=root, data_dir=tmp_path / "data", hf_endpoint=CLOSED,
                                civitai_base_url=CLOSED, enable_ui=False)
    base.update(overrides)
    return Settings.load({}, env_file="/nonexistent", **base)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return make_settings(tmp_path)


@asynccontextmanager
async def running(app, base_url: str = LOOPBACK):
    """The app with its lifespan run, and an httpx client on it."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
            yield client


@pytest.fixture
async def client(settings):
    app = create_app(settings, enable_ui=False)
    async with running(app) as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """uvicorn serving `app` in a thread on 127.0.0.1:<free port>, with its own event loop."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.app = app
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on", timeout_graceful_shutdown=3))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def start(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) on the server's loop (e.g. publish an event)."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        from sidecar.main import begin_shutdown

        if self.loop is not None and hasattr(self.app, "state"):
            self.loop.call_soon_threadsafe(begin_shutdown, self.app)
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "the test server did not stop"


@pytest.fixture
def live(settings):
    server = LiveServer(create_app(settings, enable_ui=False, sse_keepalive=0.5)).start()
    yield server
    server.stop()
