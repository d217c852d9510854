"""The Gradio UI on the sidecar, without making the API wait for it.

Importing gradio and building the UI takes seconds (8 s on a busy 2-core machine, several times the
whole API's start-up), and an orchestrator probing /health would wait for it. So the sidecar mounts
a `LazyUI` at /gradio instead: when the server starts, it builds the real Gradio app in a worker
thread while the API already answers, then starts it (its own lifespan: queue, startup events) and
hands every /gradio request to it. A request that comes before the UI is ready waits for it; if the
UI cannot be built, /gradio answers 503 with the reason and the API is unaffected.

The UI is built by `gradio_ui.mounted_ui` on a holder app whose lifespan starts it, exactly as
`gradio.mount_gradio_app` would on the sidecar itself; the requests go to the mounted Gradio app
with the scope the sidecar's mount gives them, so paths and root paths are what Gradio expects.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Callable

from comfyui_model_resolver.text import json_bytes

log = logging.getLogger("cmr.ui")


class LazyUI:
    """An ASGI app mounted at `path`: the Gradio app `build()` makes, built and started by `start()`."""

    def __init__(self, build: Callable[[], Any], path: str) -> None:
        self._build, self._path = build, path
        self._task: asyncio.Task | None = None
        self._stack = contextlib.AsyncExitStack()
        self._app: Any = None
        self.error: str | None = None

    @property
    def ready(self) -> bool:
        return self._app is not None

    def start(self) -> None:
        """Begin building the UI (call in the server's lifespan; the server serves meanwhile). After
        `close()` the app may be started again (a new lifespan): the UI is built anew."""
        if self._task is None:
            self.error = None
            self._task = asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        try:
            holder = await asyncio.to_thread(self._build)  # import gradio, build the Blocks: off the loop
            await self._stack.enter_async_context(holder.router.lifespan_context(holder))
            self._app = next(r.app for r in holder.routes if getattr(r, "path", None) == self._path)
            log.info("the UI is ready at %s/", self._path)
        except Exception as exc:  # noqa: BLE001 - the API keeps working; /gradio says why
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("the UI could not be built: %s", self.error, exc_info=True)

    async def close(self) -> None:
        """Stop the UI (its lifespan's shutdown), or stop waiting for a build still under way."""
        task, self._task, self._app = self._task, None, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        await stack.aclose()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        task = self._task
        if self._app is None and task is not None and not task.done():
            try:
                await asyncio.shield(task)  # the first requests wait for the UI
            except asyncio.CancelledError:
                if not task.cancelled():  # this request was cancelled, not the build
                    raise
        if self._app is None:
            await self._unavailable(scope, send)
            return
        await self._app(scope, receive, send)

    async def _unavailable(self, scope: dict, send: Callable) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})
            return
        reason = self.error or "the server has not started it"
        body = json_bytes({"error": {"type": "UIUnavailable", "code": "ui_unavailable",
                                     "message": f"The Gradio UI is not available: {reason}.",
                                     "hint": "The API under /api/v1 works; see the server log."}})
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
