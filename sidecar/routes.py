"""The one generic binding of the shared route table (`ROUTES`) into FastAPI, and the SSE stream.

For every Route: its method and path under the prefix, path and query parameters and the JSON body
documented from the Route's data (`query`, `body`), multipart/raw-image uploads for `accepts_upload`
routes, then `dispatch` on the app's Resolver. The request guard (host, origin, content type, size,
the API key for `mutating` routes) already ran in `security.GuardMiddleware`. The response is exactly
what `dispatch` returns, so the JSON is the same as the ComfyUI routes'.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from comfyui_model_resolver.text import json_bytes
from comfyui_model_resolver.adapters.routes import (
    ROUTES, SIDECAR_PREFIX, ApiRequest, ApiResponse, Route, decode_request, dispatch, download_event_stream,
    error_response,
)

from .security import BodyTooLarge

#: JSON bodies larger than this are parsed in a worker thread.
_THREAD_PARSE_BYTES = 256 * 1024
_PATH_PARAM = re.compile(r"{(\w+)}")
ERROR_SCHEMA_NAME = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["type", "code", "message"],
        "properties": {"type": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"},
                       "hint": {"type": ["string", "null"]}},
        "additionalProperties": True,
    }},
}


class JsonAnswer(JSONResponse):
    """Every JSON answer of the sidecar: text that cannot be encoded is normalised, never a 500."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def as_response(resp: ApiResponse) -> Response:
    return JsonAnswer(resp.body, resp.status, headers=resp.headers or None)


# ---- request decoding ------------------------------------------------------------------------
async def _read_request(route: Route, request: Request) -> ApiRequest:
    """The body (counted against its limit by GuardMiddleware), decoded by the shared decoder. Read into
    one buffer this call owns (starlette's `body()` would join a second copy and keep it on the request
    until the answer is sent, while the next big upload is already being read)."""
    settings = request.app.state.settings
    raw = bytearray()
    if request.method in ("POST", "PATCH", "PUT"):
        async for chunk in request.stream():
            raw += chunk
    args = (route, request.method, request.headers.get("content-type"), raw, dict(request.query_params),
            dict(request.path_params))
    if len(raw) > _THREAD_PARSE_BYTES:
        return await asyncio.to_thread(decode_request, *args, max_workflow_bytes=settings.max_workflow_bytes)
    return decode_request(*args, max_workflow_bytes=settings.max_workflow_bytes)


def _gate(route: Route, request: Request) -> contextlib.AbstractAsyncContextManager:
    """A big workflow upload is read, decoded and analyzed while holding the resolver's input gate (one
    at a time): what bounds the memory of several at once. Small bodies and other routes go straight."""
    if not route.accepts_upload or request.method != "POST":
        return contextlib.nullcontext()
    length = request.headers.get("content-length", "")
    return request.app.state.resolver.input_gate.hold(int(length) if length.isdigit() else None)


async def downloads_started(state: Any) -> None:
    """Wait until the download manager has loaded the jobs of earlier runs (the server starts it in
    the background, main.py): a job list asked for right after a restart is complete."""
    task = getattr(state, "downloads_started", None)
    if task is not None and not task.done():
        await asyncio.shield(task)


def _endpoint(route: Route):
    async def endpoint(request: Request) -> Response:
        state = request.app.state
        await downloads_started(state)
        started = time.perf_counter()
        async with _gate(route, request):
            try:
                api_request = await _read_request(route, request)
            except BodyTooLarge as exc:
                resp = exc.response
            except Exception as exc:  # noqa: BLE001 - a bad body is the client's error, in the one shape
                resp = error_response(exc)
            else:
                resp = await dispatch(route, state.resolver, api_request)
                del api_request  # the body goes before the answer is rendered
        state.metrics.observe(route.name, resp.status, time.perf_counter() - started)
        return as_response(resp)

    endpoint.__name__ = route.name
    return endpoint


# ---- server-sent events ----------------------------------------------------------------------
async def events_endpoint(request: Request) -> Response:
    """The shared event stream (`routes.download_event_stream`: `snapshot`, then `progress` events and
    keep-alive comments), ended early when the server starts to shut down so it can stop promptly."""
    state = request.app.state
    await downloads_started(state)
    stopping: asyncio.Event = state.stopping
    source = download_event_stream(state.resolver, heartbeat=state.sse_keepalive)

    async def stream() -> AsyncIterator[bytes]:
        stop = asyncio.ensure_future(stopping.wait())
        step: asyncio.Future | None = None
        try:
            while not stopping.is_set():
                step = asyncio.ensure_future(source.__anext__())
                await asyncio.wait({step, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    return
                try:
                    chunk = step.result()
                except StopAsyncIteration:
                    return
                step = None
                yield chunk
        finally:
            stop.cancel()
            if step is not None and not step.done():
                step.cancel()  # the generator's own finally closes its subscription
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
            await source.aclose()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ---- OpenAPI documentation from the route data -----------------------------------------------
def _parameters(route: Route) -> list[dict]:
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
              for n in _PATH_PARAM.findall(route.path)]
    for q in route.query:
        schema: dict[str, Any] = {"type": q.type}
        if q.max_length:
            schema["maxLength"] = q.max_length
        params.append({"name": q.name, "in": "query", "required": q.required, "description": q.description,
                       "schema": schema})
    return params


def _request_body(route: Route, bodies: list[Any]) -> dict | None:
    if route.accepts_upload:
        binary = {"type": "string", "format": "binary"}
        return {"required": True, "description": "A ComfyUI workflow as JSON (UI or API format), or a .json, "
                "PNG or WebP file saved by ComfyUI, uploaded as the multipart field `file` or sent raw.",
                "content": {
                    "application/json": {"schema": {"type": "object", "additionalProperties": True}},
                    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                                       "properties": {"file": binary}}},
                    "image/png": {"schema": binary}, "image/webp": {"schema": binary}}}
    if route.body is None:
        return None
    bodies.append(route.body)  # its schema is built with the document (body_schemas), not at start-up
    return {"required": route.method != "PATCH",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}}}}


def body_schemas(bodies: list[Any]) -> dict[str, Any]:
    """The OpenAPI component schemas of the request bodies (and what they refer to). Built when the
    document is first asked for: pydantic's JSON schema generation is ~50 ms of a start-up."""
    schemas: dict[str, Any] = {ERROR_SCHEMA_NAME: ERROR_SCHEMA}
    for body in bodies:
        schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[body.__name__] = schema
    return schemas


def _responses(route: Route) -> dict:
    err = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}}}
    ok_description = "Server-sent events" if route.handler is None else "Success"
    out: dict[Any, Any] = {str(route.status): {"description": ok_description}}
    out["4XX"] = {"description": "The request cannot be served (the error shape)", **err}
    out["5XX"] = {"description": "An upstream or internal failure (the error shape)", **err}
    if route.mutating:
        out["401"] = {"description": "Missing or wrong API key", **err}
        out["403"] = {"description": "Cross-origin request, or no API key configured on a public bind", **err}
    if route.accepts_upload:
        out["413"] = {"description": "The workflow or request is over the size limit", **err}
    return out


def bind_routes(app: FastAPI, *, prefix: str = SIDECAR_PREFIX) -> None:
    """Add every Route of the shared table to `app` under `prefix`, documented in its OpenAPI."""
    bodies: list[Any] = []
    for route in ROUTES:
        extra: dict[str, Any] = {"parameters": _parameters(route)}
        body = _request_body(route, bodies)
        if body is not None:
            extra["requestBody"] = body
        if route.handler is None:
            endpoint = events_endpoint
            extra["responses"] = {"200": {"description": "Server-sent events",
                                          "content": {"text/event-stream": {"schema": {"type": "string"}}}}}
        else:
            endpoint = _endpoint(route)
        app.add_api_route(prefix + route.path, endpoint, methods=[route.method], name=route.name,
                          operation_id=route.name, summary=route.summary, status_code=route.status,
                          tags=["downloads" if "/downloads" in route.path else "workflows"
                                if route.accepts_upload or route.name in ("search", "relink") else "settings"],
                          responses=_responses(route), openapi_extra=extra,
                          description=("Needs `Authorization: Bearer <CMR_API_KEY>` when the server listens "
                                       "beyond loopback." if route.mutating else None))
    app.state.openapi_bodies = bodies
