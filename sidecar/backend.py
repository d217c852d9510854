"""How the Gradio UI reaches the core: the shared route handlers, in-process or over HTTP.

Both backends take a route *name* from the shared table and return the route's `ApiResponse`, so the
UI sees the same JSON either way and holds no resolver logic of its own.

* `InProcessBackend`: `dispatch` on this process's Resolver (the sidecar's own app, `cmr serve`).
* `HttpBackend`: the sidecar's `/api/v1` over HTTP (`cmr ui --api-url`), e.g. a UI on a laptop for
  the sidecar of a render farm.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Mapping, Protocol

from comfyui_model_resolver.adapters.routes import ROUTES, SIDECAR_PREFIX, ApiRequest, ApiResponse, dispatch

BY_NAME = {r.name: r for r in ROUTES}


class Backend(Protocol):
    where: str

    async def call(self, name: str, *, body: Any = None, upload: bytes | None = None,
                   upload_name: str | None = None, query: Mapping[str, str] | None = None,
                   params: Mapping[str, str] | None = None) -> ApiResponse: ...

    async def close(self) -> None: ...


class InProcessBackend:
    where = "in-process"

    def __init__(self, resolver: Callable[[], Any], *, observe: Callable[[str, int, float], None] | None = None) -> None:
        self._resolver = resolver
        self._observe = observe

    async def call(self, name, *, body=None, upload=None, upload_name=None, query=None, params=None) -> ApiResponse:
        route = BY_NAME[name]
        started = time.perf_counter()
        resp = await dispatch(route, self._resolver(), ApiRequest(body=body, upload=upload, upload_name=upload_name,
                                                                  query=dict(query or {}), params=dict(params or {})))
        if self._observe is not None:
            self._observe(name, resp.status, time.perf_counter() - started)
        return resp

    async def close(self) -> None:
        return None


class HttpBackend:
    """The sidecar's API over HTTP with aiohttp (our one HTTP client); the session opens on first use,
    inside the event loop that serves the UI. This is our own API, not upstream traffic: no allowlist."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 120.0,
                 prefix: str = SIDECAR_PREFIX) -> None:
        self.where = base_url.rstrip("/")
        self._base = self.where + prefix
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout
        self._session: Any = None

    def _client(self) -> Any:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers,
                                                  timeout=aiohttp.ClientTimeout(total=self._timeout))
        return self._session

    async def call(self, name, *, body=None, upload=None, upload_name=None, query=None, params=None) -> ApiResponse:
        import aiohttp

        route = BY_NAME[name]
        path = route.path.format(**{k: _quote(v) for k, v in (params or {}).items()})
        kwargs: dict[str, Any] = {"params": dict(query or {})}
        if upload is not None:
            form = aiohttp.FormData()
            form.add_field("file", upload, filename=upload_name or "upload", content_type="application/octet-stream")
            kwargs["data"] = form
        elif body is not None:
            kwargs["json"] = body
        try:
            async with self._client().request(route.method, self._base + path, **kwargs) as r:
                status, headers, raw = r.status, r.headers, await r.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return ApiResponse({"error": {"type": "SourceUnavailable", "code": "unavailable",
                                          "message": f"Cannot reach the sidecar at {self.where}: {type(exc).__name__}",
                                          "hint": "Check that the sidecar runs and the URL is right."}}, 502)
        try:
            data = json.loads(raw)
        except ValueError:
            data = {"error": {"type": "HTTPError", "code": "bad_response",
                              "message": f"The sidecar answered {status} without JSON.", "hint": None}}
        return ApiResponse(data, status, {k: v for k, v in headers.items() if k.lower() == "retry-after"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(str(value), safe="")
