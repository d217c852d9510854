"""The ComfyUI adapter: the only module that imports ComfyUI's `server`, `folder_paths` and `nodes`.

`install()` runs when ComfyUI imports the custom-node package (root `__init__.py`). It is cheap:
it builds Settings, binds every route of `routes.ROUTES` on `PromptServer.instance.routes` under
`/cmr/v1` (ComfyUI also serves them under `/api/cmr/v1`) and returns. The Resolver is built later,
in the server's loop — on the first request, or a moment after the server starts — from:

* `folder_paths`: every registered model folder with its directories (the default models dir,
  `extra_model_paths.yaml`, folders added by node packs) -> `folder_dirs`;
* live node schemas (`comfyui_schemas.collect`, in a worker thread) -> `object_info` plus
  `input_folders`, so the folder of every installed loader is known even when it is empty.

Download progress from `resolver.events` is pushed to the browser with
`PromptServer.instance.send_sync("cmr.progress", …)` and streamed at `/cmr/v1/downloads/events`.
Imported outside ComfyUI, this module does nothing.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..settings import Settings, process_environ
from .aiohttp_routes import bind_routes
from .guard import GuardPolicy, machine_names
from .comfyui_schemas import NodeSchemas, collect, folder_dirs
from .routes import COMFYUI_EVENT, COMFYUI_PREFIX, event_payload

log = logging.getLogger("comfyui_model_resolver")

#: Seconds after the server starts before the Resolver is built in the background.
WARMUP_DELAY = 2.0
#: Minimum seconds between two "running" progress pushes of one job (state changes always go out).
PROGRESS_INTERVAL = 0.25
DATA_DIR_NAME = "comfyui-model-resolver"


def comfyui_settings(folder_paths: Any, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings inside ComfyUI: CMR_* as usual; the ComfyUI root and models dir come from
    folder_paths, and the data dir (caches, job state, tokens set in the sidebar) defaults to
    `<ComfyUI user dir>/comfyui-model-resolver`."""
    env = process_environ() if environ is None else dict(environ)
    user_dir = _user_directory(folder_paths)
    if user_dir and not env.get("CMR_DATA_DIR"):
        env["CMR_DATA_DIR"] = os.path.join(user_dir, DATA_DIR_NAME)
    overrides: dict[str, Any] = {"comfyui_root": Path(folder_paths.base_path)}
    models_dir = getattr(folder_paths, "models_dir", None)
    if models_dir and not env.get("CMR_MODELS_ROOT"):
        overrides["models_root"] = Path(models_dir)
    return Settings.load(env, **overrides)


def _user_directory(folder_paths: Any) -> str | None:
    getter = getattr(folder_paths, "get_user_directory", None)
    if callable(getter):
        try:
            return str(getter())
        except Exception:  # noqa: BLE001
            pass
    base = getattr(folder_paths, "base_path", None)
    return os.path.join(base, "user") if base else None


class ComfyUIAdapter:
    """Owns the lazily built Resolver and the glue to PromptServer."""

    def __init__(self, server: Any, folder_paths: Any, nodes: Any, *,
                 environ: Mapping[str, str] | None = None, comfy_cors_origin: str | None = None) -> None:
        self.server = server
        self.folder_paths = folder_paths
        self.nodes = nodes
        self._environ = process_environ() if environ is None else dict(environ)
        self._comfy_cors_origin = comfy_cors_origin
        self.settings: Settings | None = None
        self.settings_error: ConfigError | None = None
        try:
            self.settings = comfyui_settings(folder_paths, self._environ)
        except ConfigError as exc:
            self.settings_error = exc
            log.error("[Model Resolver] %s %s", exc.message, exc.hint or "")
        self.resolver: Any = None
        self.schemas: NodeSchemas | None = None
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task] = set()
        self._last_sent: dict[str, tuple[str, float]] = {}
        self._names = machine_names()
        self.routes: list[str] = []

    # ---- binding ------------------------------------------------------------------------------
    def register(self) -> list[str]:
        self.routes = bind_routes(self.server.routes, COMFYUI_PREFIX, self.get_resolver, self.policy)
        app = getattr(self.server, "app", None)
        if app is not None:
            try:
                app.on_startup.append(self._on_startup)
                app.on_cleanup.append(self._on_cleanup)
            except (AttributeError, RuntimeError):  # frozen app (already started): build on first request
                pass
        return self.routes

    def policy(self) -> GuardPolicy:
        """The request guard's policy from the live settings (ComfyUI has no API keys: none are checked)."""
        settings = self.resolver.settings if self.resolver is not None else self.settings
        if settings is None:
            settings = Settings()  # the limits' defaults; the routes answer the ConfigError
        origins = list(settings.cors_origins)
        if self._comfy_cors_origin and self._comfy_cors_origin != "*":
            origins.append(self._comfy_cors_origin)
        return GuardPolicy.build(max_request_bytes=settings.max_request_bytes,
                                 max_workflow_bytes=settings.max_workflow_bytes, origins=origins, names=self._names)

    # ---- the Resolver -------------------------------------------------------------------------
    async def get_resolver(self) -> Any:
        if self.resolver is not None:
            return self.resolver
        if self.settings is None:
            raise self.settings_error or ConfigError("The Model Resolver settings could not be built.")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.resolver is None:
                await self._build()
        return self.resolver

    async def _build(self) -> None:
        from ..service import build_resolver  # the core is imported only when first needed

        t0 = time.perf_counter()
        dirs = folder_dirs(self.folder_paths)
        mappings = dict(getattr(self.nodes, "NODE_CLASS_MAPPINGS", {}) or {})
        names = dict(getattr(self.nodes, "NODE_DISPLAY_NAME_MAPPINGS", {}) or {})
        self.schemas = await asyncio.to_thread(collect, self.folder_paths, mappings, names)
        assert self.settings is not None
        resolver = await build_resolver(self.settings, object_info=self.schemas.object_info,
                                        input_folders=self.schemas.input_folders, folder_dirs=dirs,
                                        environ=self._environ)
        self._forward_events(resolver)
        try:
            await resolver.start_downloads()  # resume downloads a previous run left unfinished
        except Exception as exc:  # noqa: BLE001 - the routes still work; the first submit retries
            log.warning("[Model Resolver] could not resume earlier downloads: %s", getattr(exc, "message", exc))
        self.resolver = resolver
        from ..downloads.containment import linked_folders

        for item in await asyncio.to_thread(linked_folders, resolver.layout):  # downloads there are refused
            log.warning("[Model Resolver] %s%s", item["message"], f"; to allow it: {item['allow']}" if item["allow"] else "")
        stats = self.schemas.stats()
        log.info("[Model Resolver] ready in %.1f s: %d node types (%d model inputs), %d model folders%s",
                 time.perf_counter() - t0, stats["node_types"], stats["model_inputs"], len(dirs),
                 f"; {stats['failed']} node schemas unreadable" if stats["failed"] else "")

    # ---- progress push ------------------------------------------------------------------------
    def _forward_events(self, resolver: Any) -> None:
        sub = resolver.events.subscribe()
        self._spawn(self._pump(sub))

    async def _pump(self, sub: Any) -> None:
        try:
            while True:
                try:
                    event = await sub.get()
                except StopAsyncIteration:
                    return
                payload = event_payload(event)
                if self._should_send(payload):
                    try:
                        self.server.send_sync(COMFYUI_EVENT, payload)
                    except Exception:  # noqa: BLE001 - the websocket layer must not stop the pump
                        log.debug("send_sync failed", exc_info=True)
        finally:
            sub.close()

    def _should_send(self, payload: Any) -> bool:
        """Throttle: a job's repeated "running" updates at most every PROGRESS_INTERVAL seconds."""
        if not isinstance(payload, dict):
            return True
        job = str(payload.get("job_id") or payload.get("id") or "")
        state = str(payload.get("state") or "")
        now = time.monotonic()
        last = self._last_sent.get(job)
        if state in ("completed", "failed", "cancelled"):
            self._last_sent.pop(job, None)
            return True
        if last is not None and last[0] == state and now - last[1] < PROGRESS_INTERVAL:
            return False
        self._last_sent[job] = (state, now)
        return True

    # ---- lifecycle ----------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_startup(self, app: Any) -> None:
        self._spawn(self._warm_up())

    async def _warm_up(self) -> None:
        await asyncio.sleep(WARMUP_DELAY)
        try:
            await self.get_resolver()
        except Exception as exc:  # noqa: BLE001 - reported again on the first request
            log.error("[Model Resolver] could not start: %s", getattr(exc, "message", exc))

    async def _on_cleanup(self, app: Any) -> None:
        await self.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.resolver is not None:
            await self.resolver.close()
            self.resolver = None


def install(server: Any = None, folder_paths: Any = None, nodes: Any = None, *,
            environ: Mapping[str, str] | None = None) -> ComfyUIAdapter:
    """Register the routes on ComfyUI's PromptServer. Arguments are for tests; ComfyUI passes none."""
    comfy_cors = None
    if server is None:  # inside ComfyUI: its modules are importable by these names
        import server as comfy_server  # noqa: PLC0415

        server = comfy_server.PromptServer.instance
        try:
            from comfy.cli_args import args as comfy_args  # noqa: PLC0415

            comfy_cors = getattr(comfy_args, "enable_cors_header", None)  # --enable-cors-header ORIGIN
        except Exception:  # noqa: BLE001 - another ComfyUI version
            comfy_cors = None
    if folder_paths is None:
        import folder_paths  # noqa: PLC0415
    if nodes is None:
        import nodes  # noqa: PLC0415
    adapter = ComfyUIAdapter(server, folder_paths, nodes, environ=environ, comfy_cors_origin=comfy_cors)
    adapter.register()
    log.info("[Model Resolver] %d routes at %s (also /api%s); sidebar tab 'Model Resolver'",
             len(adapter.routes), COMFYUI_PREFIX, COMFYUI_PREFIX)
    return adapter


__all__ = ["ComfyUIAdapter", "comfyui_settings", "install"]
