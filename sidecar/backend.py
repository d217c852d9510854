"""How the Gradio UI reaches the core: the shared route handlers, in-process or over HTTP.

Both backends take a route *name* from the shared table and return the route's `ApiResponse`, so the
UI sees the same JSON either way and holds no resolver logic of its own.

* `InProcessBackend`: `dispatch` on this process's Resolver (the sidecar's own app, `cmr serve`).
* `HttpBackend`: the sidecar's `/api/v1` over HTTP (`cmr ui --api-url`), e.g. a UI on a laptop for
  the sidecar of a render farm.
"""
from __future__ import annotations

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
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 120.0,
                 prefix: str = SIDECAR_PREFIX, transport: Any = None) -> None:
        import httpx

        self.where = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(base_url=self.where + prefix, headers=headers, timeout=timeout,
                                         transport=transport)

    async def call(self, name, *, body=None, upload=None, upload_name=None, query=None, params=None) -> ApiResponse:
        import httpx

        route = BY_NAME[name]
        path = route.path.format(**{k: _quote(v) for k, v in (params or {}).items()})
        kwargs: dict[str, Any] = {"params": dict(query or {})}
        if upload is not None:
            kwargs["files"] = {"file": (upload_name or "upload", upload)}
        elif body is not None:
            kwargs["json"] = body
        try:
            r = await self._client.request(route.method, path, **kwargs)
        except httpx.HTTPError as exc:
            return ApiResponse({"error": {"type": "SourceUnavailable", "code": "unavailable",
                                          "message": f"Cannot reach the sidecar at {self.where}: {type(exc).__name__}",
                                          "hint": "Check that the sidecar runs and the URL is right."}}, 502)
        try:
            data = r.json()
        except ValueError:
            data = {"error": {"type": "HTTPError", "code": "bad_response",
                              "message": f"The sidecar answered {r.status_code} without JSON.", "hint": None}}
        return ApiResponse(data, r.status_code, {k: v for k, v in r.headers.items() if k.lower() == "retry-after"})

    async def close(self) -> None:
        await self._client.aclose()


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(str(value), safe="")
