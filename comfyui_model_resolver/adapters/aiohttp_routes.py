"""Bind the shared route table (`routes.ROUTES`) to any aiohttp `RouteTableDef`: one generic binding.

Used inside ComfyUI (`PromptServer.instance.routes`, which ComfyUI also serves under `/api`) and by
the tests' stand-in server. Each request passes the one request guard first (`guard.check_request`:
host, origin, content type, size; ComfyUI has no API keys), then its body is read with a cap
(`guard.body_limit`) and decoded by the shared decoder. Handlers never see aiohttp: they get an
`ApiRequest` and return an `ApiResponse`.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Awaitable, Callable, Iterable

from aiohttp import web

from ..text import json_bytes
from .guard import GuardPolicy, GuardRequest, RouteGuard, body_limit, check_request, too_large_response
from .routes import ROUTES, ApiRequest, ApiResponse, Route, decode_request, dispatch, download_event_stream, error_response

log = logging.getLogger(__name__)

ResolverGetter = Callable[[], Awaitable[Any]]
PolicyGetter = Callable[[], GuardPolicy]
_READ_CHUNK = 256 * 1024


class _Refused(Exception):
    def __init__(self, response: ApiResponse) -> None:
        super().__init__(response.status)
        self.response = response


def guard_request(request: web.BaseRequest) -> GuardRequest:
    """What the guard needs to know about an aiohttp request."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    local = sockname[0] if isinstance(sockname, (tuple, list)) and sockname else None
    return GuardRequest(method=request.method, headers={k.lower(): v for k, v in request.headers.items()},
                        local_addr=local, content_length=request.content_length, has_body=request.body_exists,
                        forwarded_hosts=tuple(request.headers.getall("X-Forwarded-Host", [])))


async def _read_capped(stream: Any, route: RouteGuard, policy: GuardPolicy) -> bytearray:
    """The body, read into one buffer (no list of chunks joined into a second copy), at most the limit."""
    limit = body_limit(route, policy)[0]
    body = bytearray()
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            break
        if len(body) + len(chunk) > limit:
            raise _Refused(too_large_response(route, policy, limit, at_least=True))
        body += chunk
    return body


async def build_api_request(request: web.Request, route: Route, policy: GuardPolicy) -> ApiRequest:
    """Read the body (capped) and decode it with the shared decoder."""
    raw = b""
    if request.method in ("POST", "PATCH", "PUT") and request.body_exists:
        raw = await _read_capped(request.content, route.guard, policy)
    return decode_request(route, request.method, request.headers.get("Content-Type"), raw, request.query,
                          request.match_info, max_workflow_bytes=policy.max_workflow_bytes)


def _json_response(resp: ApiResponse) -> web.Response:
    return web.Response(body=json_bytes(resp.body), status=resp.status, headers=resp.headers or None,
                        content_type="application/json")


def _make_handler(route: Route, get_resolver: ResolverGetter, policy: PolicyGetter) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            current = policy()
            refused = check_request(route.guard, guard_request(request), current, route.path)
            if refused is not None:
                return _json_response(refused)
            resolver = await get_resolver()
        except Exception as exc:  # noqa: BLE001 - e.g. a ConfigError while building the resolver
            return _json_response(error_response(exc))
        if route.handler is None:
            return await _stream_events(request, resolver)
        # a big workflow upload is read, decoded and analyzed holding the input gate (one at a time)
        big = route.accepts_upload and request.method == "POST"
        async with resolver.input_gate.hold(request.content_length) if big else contextlib.nullcontext():
            try:
                api_request = await build_api_request(request, route, current)
            except _Refused as rej:
                return _json_response(rej.response)
            except Exception as exc:  # noqa: BLE001 - a bad body, in the one error shape
                return _json_response(error_response(exc))
            answer = await dispatch(route, resolver, api_request)
            del api_request
        return _json_response(answer)

    handle.__name__ = f"cmr_{route.name}"
    return handle


async def _stream_events(request: web.Request, resolver: Any) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    stream = download_event_stream(resolver)
    try:
        async for chunk in stream:
            await response.write(chunk)
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away
    finally:
        await stream.aclose()
    return response


def bind_routes(table: web.RouteTableDef, prefix: str, get_resolver: ResolverGetter, policy: PolicyGetter,
                routes: Iterable[Route] = ROUTES) -> list[str]:
    """Add every route under `prefix` to `table`; `policy()` gives the guard's policy for each request
    (it follows settings changed at run time). Returns the bound "METHOD path" strings."""
    bound = []
    for route in routes:
        path = prefix.rstrip("/") + route.path
        table.route(route.method, path)(_make_handler(route, get_resolver, policy))
        bound.append(f"{route.method} {path}")
    return bound


__all__ = ["bind_routes", "build_api_request", "guard_request"]
