"""Run the sidecar (and the Gradio UI on its own port) in one process, with one Resolver.

Both uvicorn servers share one event loop. SIGTERM/SIGINT stop the UI, end the event streams, then
stop the API (whose lifespan closes the Resolver); the process then exits 0.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any, Callable, Mapping

import uvicorn

from comfyui_model_resolver.settings import Settings

from .logs import UVICORN_LOG_CONFIG
from .main import begin_shutdown, check_bind, create_app

log = logging.getLogger("cmr.serve")
GRACEFUL_SECONDS = 5


class _Server(uvicorn.Server):
    """A uvicorn server whose signals are handled by `serve` (two servers share them)."""

    @contextlib.contextmanager
    def capture_signals(self):  # uvicorn >= 0.29
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn
        return None


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_config=UVICORN_LOG_CONFIG, lifespan="on",
                          timeout_graceful_shutdown=GRACEFUL_SECONDS, server_header=False, proxy_headers=False)


async def serve(settings: Settings, *, ui: bool, environ: Mapping[str, str] | None = None,
                api_url: str | None = None) -> int:
    """Serve until a signal. `ui`: also the Gradio UI on settings.gradio_host:gradio_port.
    With `api_url`, serve only the UI, against that sidecar's HTTP API. Returns an exit code."""
    from .gradio_ui import gradio_available

    if ui and not gradio_available():
        log.warning("CMR_ENABLE_UI is on but gradio is not installed: serving the API only "
                    "(pip install 'comfyui-model-resolver[ui]')")
        ui = False
    servers: list[_Server] = []
    app = None
    if api_url is None:
        check_bind(settings)
        app = create_app(settings, environ=environ, enable_ui=ui)
        servers.append(_Server(_config(app, settings.api_host, settings.api_port)))
    ui_app: Callable[[], Any] | None = None
    if ui or api_url is not None:
        check_bind(settings, settings.gradio_host)
        from .backend import HttpBackend, InProcessBackend

        if api_url is not None:
            key = settings.api_key.get_secret_value() if settings.api_key else None
            backend: Any = HttpBackend(api_url, api_key=key)
        else:
            backend = InProcessBackend(lambda: app.state.resolver, observe=lambda *a: app.state.metrics.observe(*a))

        def ui_app() -> Any:  # imports gradio: seconds; built in a worker thread once the API serves
            from .gradio_ui import create_ui_app

            return create_ui_app(settings, backend)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: int) -> None:
        log.info("received %s: shutting down", signal.Signals(sig).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)

    tasks: list[asyncio.Task] = []
    try:
        # the API first (/health answers while the UI is built; the in-process UI needs its Resolver)
        for server in [*servers, None] if ui_app is not None else servers:
            if server is None:  # the UI on its own port, built in a worker thread; a signal stops the wait
                building = asyncio.ensure_future(asyncio.to_thread(ui_app))  # type: ignore[arg-type]
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait([building, stopping], return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not building.done():
                    return 0
                server = _Server(_config(building.result(), settings.gradio_host, settings.gradio_port))
                servers.append(server)
            task = asyncio.create_task(_run(server))
            tasks.append(task)
            while not server.started and not task.done():
                await asyncio.sleep(0.05)
            if not server.started:
                log.error("could not start the server on %s:%s", server.config.host, server.config.port)
                return 1
        log.info("serving", extra={"api": None if app is None else f"http://{settings.api_host}:{settings.api_port}",
                                   "ui": f"http://{settings.gradio_host}:{settings.gradio_port}" if len(servers) > 1
                                   or api_url else None})
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        failed = [t for t in tasks if t.done() and not stop.is_set()]
        return 1 if failed else 0
    finally:
        for server in reversed(servers):  # the UI first, then the API (closes the Resolver)
            server.should_exit = True
            if app is not None and server.config.app is app:
                begin_shutdown(app)
            idx = servers.index(server)
            if idx < len(tasks):
                with contextlib.suppress(Exception, SystemExit):
                    await tasks[idx]
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


async def _run(server: _Server) -> None:
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits on a bind error; report it as a finished task
        log.error("server on %s:%s stopped", server.config.host, server.config.port)
