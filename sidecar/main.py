"""The sidecar app factory.

    python -m uvicorn sidecar.main:app --host 127.0.0.1 --port 5002   # settings from CMR_* / .env
    cmr serve                                                         # the same, plus the Gradio UI

`create_app(settings)` builds an app; the Resolver is built in its lifespan (once per app) and closed
on shutdown. `sidecar.main:app` is created on first access (PEP 562), so importing this module reads
no environment and builds nothing.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from contextlib import asynccontextmanager
from typing import Any, Awaitable, Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from comfyui_model_resolver import __version__
from comfyui_model_resolver.adapters.routes import ROUTES, SIDECAR_PREFIX, error_body
from comfyui_model_resolver.errors import ConfigError
from comfyui_model_resolver.service import Resolver, build_resolver
from comfyui_model_resolver.settings import Settings

from .deps import MetricsDep, ProbeDep, ResolverDep
from .health import UpstreamProbe, health_report
from .metrics import CONTENT_TYPE, Metrics
from .routes import JsonAnswer, bind_routes, body_schemas
from .security import GuardMiddleware, is_loopback, sidecar_guard_for, sidecar_policy

log = logging.getLogger("cmr.sidecar")

ResolverFactory = Callable[[Settings], Awaitable[Resolver]]
GRADIO_PATH = "/gradio"
DOWNLOAD_STACK = "comfyui_model_resolver.downloads.manager"


def check_bind(settings: Settings, host: str | None = None) -> None:
    """Refuse to serve beyond loopback without an API key (mutating routes would be open)."""
    host = settings.api_host if host is None else host
    if not is_loopback(host) and settings.api_key is None:
        raise ConfigError(f"Refusing to listen on {host} without an API key: anyone who can reach it could "
                          "start downloads and change settings.",
                          hint="Set CMR_API_KEY (clients send 'Authorization: Bearer <key>'), "
                               "or listen on 127.0.0.1.")


def create_app(settings: Settings, *, resolver_factory: ResolverFactory | None = None,
               environ: Mapping[str, str] | None = None, enable_ui: bool | None = None,
               sse_keepalive: float = 15.0) -> FastAPI:
    """Build the sidecar. `resolver_factory(settings)` defaults to `build_resolver`; `environ` is
    passed to it (folder layout variables). The Gradio UI is mounted at /gradio when `enable_ui`
    (default: Settings.enable_ui) and gradio is installed; it is built in the background once the
    server starts, so the API does not wait for it (ui_mount.py)."""
    factory = resolver_factory or (lambda s: build_resolver(s, environ=environ or {}))
    metrics = Metrics()
    probe = UpstreamProbe({"huggingface": settings.hf_endpoint, "civitai": settings.civitai_base_url})

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        check_bind(settings)
        state = app.state
        state.stopping.clear()
        resolver = await factory(settings)
        state.resolver = resolver
        metrics.start(resolver.events)
        # resume what a previous run left unfinished (a crash, kill -9) without making /health wait: the
        # download stack (aiohttp, the job database) is imported in a worker thread meanwhile, and the
        # API's routes wait for it (routes.downloads_started)
        resuming = state.downloads_started = asyncio.ensure_future(_start_downloads(resolver))
        if state.ui is not None:
            state.ui.start()  # built in a worker thread while the API answers (ui_mount.py)
        restore = _follow_server_exit(lambda: begin_shutdown(app))
        log.info("sidecar ready", extra={"version": __version__, "models_root": str(settings.effective_models_root),
                                         "api_key": settings.api_key is not None, "ui": state.ui_mounted})
        try:
            yield
        finally:
            restore()
            begin_shutdown(app)
            if not resuming.done():
                resuming.cancel()
            await asyncio.gather(resuming, return_exceptions=True)
            if state.ui is not None:
                await state.ui.close()
            await metrics.stop()
            await probe.close()
            await resolver.close()
            log.info("sidecar stopped")

    app = FastAPI(title="ComfyUI Model Resolver sidecar", version=__version__, lifespan=lifespan,
                  description="Find, resolve and download the models a ComfyUI workflow needs. The routes under "
                              f"`{SIDECAR_PREFIX}` are the same contract (and JSON) as the ComfyUI extension's.")
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.probe = probe
    app.state.stopping = asyncio.Event()
    app.state.sse_keepalive = sse_keepalive
    app.state.ui_mounted = False
    app.state.ui = None

    _install_error_handlers(app)
    bind_routes(app)
    _add_service_routes(app)
    _install_openapi(app)

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=sorted({r.method for r in ROUTES}), allow_credentials=False,
                           allow_headers=["Authorization", "Content-Type"], expose_headers=["Retry-After"],
                           max_age=600)
    ui_login = False
    if settings.enable_ui if enable_ui is None else enable_ui:
        from .gradio_ui import gradio_available, mounted_ui, ui_auth

        if gradio_available():
            from .ui_mount import LazyUI

            app.state.ui = LazyUI(lambda: mounted_ui(app, settings, GRADIO_PATH), GRADIO_PATH)
            app.mount(GRADIO_PATH, app.state.ui)
            ui_login = ui_auth(settings, settings.api_host) is not None
            app.state.ui_mounted = True
        else:
            log.info("gradio is not installed: no UI at /gradio (pip install 'comfyui-model-resolver[ui]')")
    # outermost: the one request guard runs before CORS, the routes and the UI
    app.add_middleware(GuardMiddleware, policy=sidecar_policy(settings, ui_login=ui_login),
                       guard_for=sidecar_guard_for(GRADIO_PATH if app.state.ui_mounted else None))
    return app


async def _start_downloads(resolver: Resolver) -> None:
    start_downloads = getattr(resolver, "start_downloads", None)
    if start_downloads is None:
        return
    try:
        # the manager's module, which imports aiohttp and the rest of the stack (the package itself
        # loads its names lazily): in a thread, so that the event loop answers /health meanwhile
        await asyncio.to_thread(importlib.import_module, DOWNLOAD_STACK)
        await start_downloads()
    except Exception as exc:  # noqa: BLE001 - the API still works; the first submit retries
        log.warning("could not resume earlier downloads: %s", getattr(exc, "message", exc))


def begin_shutdown(app: FastAPI) -> None:
    """Tell long-lived streams to end so the server can stop promptly."""
    stopping = getattr(app.state, "stopping", None)
    if stopping is not None:
        stopping.set()


def _follow_server_exit(callback: Callable[[], None]) -> Callable[[], None]:
    """Under the uvicorn command line, end SSE streams as soon as uvicorn starts to shut down (it waits
    for open responses before the lifespan shutdown). Wraps only uvicorn's own signal handlers."""
    try:
        loop = asyncio.get_running_loop()
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(sig)
            owner = getattr(handler, "__self__", None)
            if owner is None or not type(owner).__module__.startswith("uvicorn"):
                continue

            def chained(signum, frame, _handler=handler):
                loop.call_soon_threadsafe(callback)
                _handler(signum, frame)

            previous[sig] = handler
            signal.signal(sig, chained)
    except (ValueError, RuntimeError):  # not the main thread
        return lambda: None

    def restore() -> None:
        for sig, handler in previous.items():
            try:
                if signal.getsignal(sig) is not handler:
                    signal.signal(sig, handler)
            except ValueError:
                pass
    return restore


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kind = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestTooLarge"}.get(exc.status_code, "HTTPError")
        message = {404: f"No such endpoint: {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return JsonAnswer(error_body(kind, message, hint="See /docs for the API." if exc.status_code < 500 else None,
                                       code=kind.lower()), exc.status_code, headers=getattr(exc, "headers", None))

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
        return JsonAnswer(error_body("ValidationError", f"Invalid request: {problems}", code="invalid_request"), 422)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _add_service_routes(app: FastAPI) -> None:
    # `upstreams` is read from the query and documented by hand: a typed query parameter would make
    # FastAPI check its annotation against pydantic.v1, importing it (~50 ms of every start-up).
    @app.get("/health", tags=["service"], summary="Liveness and readiness; upstream reachability as information.",
             responses={200: {"description": "Ready"}, 503: {"description": "Alive but not ready (see checks)"}},
             openapi_extra={"parameters": [{"name": "upstreams", "in": "query", "required": False,
                                            "schema": {"type": "string", "enum": ["check"]},
                                            "description": "`check`: wait for a fresh reachability check"}]})
    async def health(request: Request, resolver: ResolverDep, probe: ProbeDep) -> Response:
        """Ready = configuration loaded, models root and data dir writable. `?upstreams=check` waits for
        a fresh reachability check of the Hugging Face and Civitai endpoints."""
        wait = request.query_params.get("upstreams") == "check"
        body, ready = await health_report(resolver, probe, version=__version__, wait_upstreams=wait)
        return JsonAnswer(body, 200 if ready else 503)

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics (text exposition format).",
             response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def prometheus(resolver: ResolverDep, metrics: MetricsDep) -> Response:
        return Response(metrics.render(resolver, version=__version__), media_type=CONTENT_TYPE)

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        return JsonAnswer({"name": "comfyui-model-resolver", "version": __version__, "api": SIDECAR_PREFIX,
                             "docs": "/docs", "openapi": "/openapi.json", "health": "/health",
                             "ui": GRADIO_PATH + "/" if request.app.state.ui_mounted else None})


def _install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(body_schemas(app.state.openapi_bodies))  # built now, not at start-up
            schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                                  "description": "CMR_API_KEY"}}
            for route in ROUTES:
                if route.mutating:
                    op = schema["paths"][SIDECAR_PREFIX + route.path][route.method.lower()]
                    op["security"] = [{}, {"bearer": []}]  # optional over loopback
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _app_from_environment() -> FastAPI:
    """The app `uvicorn sidecar.main:app` (and `api.main:app`) serves. It cannot know the address
    uvicorn binds, so it always has an API key (generated once; see startup.ensure_api_key): requests
    from beyond loopback need it. A wrong or unset ComfyUI root stops the start, with the reason."""
    import sys

    from comfyui_model_resolver.settings import process_environ

    from .logs import configure_logging
    from .startup import check_install, ensure_api_key

    environ = process_environ()
    try:
        settings = Settings.load(environ)
        configure_logging(settings.log_level)
        check_install(settings)
    except ConfigError as exc:
        print(f"cmr: configuration error: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""),
              file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    settings = ensure_api_key(settings, urls=["API: http://<this host>:<port>/ (the address uvicorn listens on)"])
    return create_app(settings, environ=environ)


_lazy: dict[str, FastAPI] = {}


def __getattr__(name: str) -> Any:
    """`sidecar.main:app` for uvicorn: built from CMR_* settings when first asked for."""
    if name == "app":
        if "app" not in _lazy:
            _lazy["app"] = _app_from_environment()
        return _lazy["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
