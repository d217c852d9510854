"""Bind the shared route table (`routes.ROUTES`) to any aiohttp `RouteTableDef`: one generic binding.

Used inside ComfyUI (`PromptServer.instance.routes`, which ComfyUI also serves under `/api`) and by
the tests' stand-in server. Each request passes `RequestGuard` first:

* DNS rebinding is refused (403): on a loopback socket `Host` must name this machine (hostcheck.py);
* cross-site browser requests are refused (403): `Sec-Fetch-Site: cross-site`, or an `Origin` that
  is neither this server (`Host` / `X-Forwarded-Host`) nor an explicitly allowed origin;
* POST/PATCH bodies must not be a CORS "simple" request: `application/json` (or multipart / raw
  file bytes on upload routes) — a cross-site form or `text/plain` fetch cannot reach a handler
  without a preflight, which these routes never grant (415 otherwise);
* bodies are read with a cap: `Settings.max_request_bytes`, or `max_workflow_bytes` for workflow
  uploads (413 with the usual error shape).

Handlers never see aiohttp: they get an `ApiRequest` and return an `ApiResponse`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web

from .hostcheck import host_names_of_origins, rebinding_refusal
from .routes import RAW_UPLOAD_TYPES, body_limit, decode_request, ROUTES, ApiRequest, ApiResponse, Route, dispatch, download_event_stream, error_body, error_response

log = logging.getLogger(__name__)

ResolverGetter = Callable[[], Awaitable[Any]]

#: Content types a browser may send cross-site without a preflight ("simple requests").
_SIMPLE_TYPES = {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_READ_CHUNK = 256 * 1024


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard enforces; read from the live Settings on every request."""

    max_request_bytes: int
    max_workflow_bytes: int
    allowed_origins: frozenset[str] = frozenset()  # normalised "scheme://host:port", beside same-origin


def normalise_origin(origin: str) -> str | None:
    """`HTTP://Example.com` -> `http://example.com:80`; None for `null` or garbage."""
    try:
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except (ValueError, KeyError):
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


def _host_port(value: str, scheme: str) -> str | None:
    """`Host` header value -> `host:port` (default port of the Origin's scheme when absent)."""
    value = value.strip().lower()
    if not value:
        return None
    try:
        parts = urlsplit("//" + value)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port or _DEFAULT_PORTS.get(scheme, 80)}"


class RequestRejected(Exception):
    def __init__(self, status: int, type_: str, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.response = ApiResponse(error_body(type_, message, hint, code=code), status)


class RequestGuard:
    def __init__(self, policy: Callable[[], GuardPolicy]) -> None:
        self._policy = policy

    def check_host(self, request: web.BaseRequest) -> None:
        """DNS rebinding (see hostcheck.py): on a loopback socket, Host must name this machine."""
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        local = sockname[0] if isinstance(sockname, (tuple, list)) and sockname else None
        trusted = host_names_of_origins(self._policy().allowed_origins)
        refused = rebinding_refusal(request.headers.get("Host"), local, trusted)
        if refused is not None:
            err = refused.body["error"]
            raise RequestRejected(refused.status, err["type"], err["code"], err["message"], err["hint"])

    def check_origin(self, request: web.BaseRequest) -> None:
        policy = self._policy()
        origin = request.headers.get("Origin")
        fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
        norm = normalise_origin(origin) if origin else None
        if norm is not None and norm in policy.allowed_origins:
            return
        if origin is not None:
            same = False
            if norm is not None:
                scheme, _, hostport = norm.partition("://")
                hosts = [request.headers.get("Host", "")]
                hosts += [h.split(",")[0] for h in request.headers.getall("X-Forwarded-Host", [])]
                same = any(_host_port(h, scheme) == hostport for h in hosts if h)
            if not same:
                raise RequestRejected(
                    403, "CrossOriginRejected", "cross_origin",
                    f"Cross-origin request from {origin!r} refused.",
                    "Use the Model Resolver from ComfyUI's own page, or add the origin to CMR_CORS_ORIGINS.")
        if fetch_site == "cross-site":
            raise RequestRejected(
                403, "CrossOriginRejected", "cross_origin", "Cross-site request refused.",
                "Use the Model Resolver from ComfyUI's own page, or add the origin to CMR_CORS_ORIGINS.")

    def check_content_type(self, request: web.BaseRequest, route: Route) -> None:
        if request.method not in ("POST", "PATCH", "PUT"):
            return
        ctype = request.content_type.lower() if request.headers.get("Content-Type") else ""
        if ctype == "application/json" or ctype.endswith("+json"):
            return
        if not ctype and not request.body_exists:
            return  # a bodiless action (pause, resume): browsers send Origin with it, checked above
        if route.accepts_upload and (ctype == "multipart/form-data" or ctype in RAW_UPLOAD_TYPES):
            return
        if ctype in _SIMPLE_TYPES or not route.accepts_upload:
            wanted = "application/json" + (" or a multipart/form-data file upload" if route.accepts_upload else "")
            raise RequestRejected(
                415, "UnsupportedMediaType", "unsupported_media_type",
                f"{request.method} {route.path} needs Content-Type {wanted}"
                f" (got {request.headers.get('Content-Type') or 'none'}).",
                "Send the body as JSON with the header 'Content-Type: application/json'.")

    def limits(self) -> GuardPolicy:
        return self._policy()


async def _read_capped(stream: Any, limit: int, declared: int | None, what: str) -> bytes:
    if declared is not None and declared > limit:
        raise _too_large(declared, limit, what)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, what, at_least=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int, what: str, at_least: bool = False) -> RequestRejected:
    var = "CMR_MAX_WORKFLOW_BYTES" if what == "workflow" else "CMR_MAX_REQUEST_BYTES"
    amount = f"more than {limit:,}" if at_least else f"{size:,}"
    return RequestRejected(413, "RequestTooLarge", "request_too_large",
                           f"The {what} is {amount} bytes, over the {limit:,}-byte limit.",
                           f"Raise {var} if this is genuine.")


async def build_api_request(request: web.Request, route: Route, policy: GuardPolicy) -> ApiRequest:
    """Read the body (capped) and decode it with the shared decoder."""
    raw = b""
    if request.method in ("POST", "PATCH", "PUT") and request.body_exists:
        limit, _var = body_limit(route, policy.max_request_bytes, policy.max_workflow_bytes)
        raw = await _read_capped(request.content, limit, request.content_length,
                                 "workflow" if route.accepts_upload else "request body")
    return decode_request(route, request.method, request.headers.get("Content-Type"), raw, request.query,
                          request.match_info, max_workflow_bytes=policy.max_workflow_bytes)


def _json_response(resp: ApiResponse) -> web.Response:
    return web.json_response(resp.body, status=resp.status, headers=resp.headers or None,
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _make_handler(route: Route, get_resolver: ResolverGetter, guard: RequestGuard) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            guard.check_host(request)
            guard.check_origin(request)
            guard.check_content_type(request, route)
            api_request = await build_api_request(request, route, guard.limits())
            resolver = await get_resolver()
        except RequestRejected as rej:
            return _json_response(rej.response)
        except Exception as exc:  # noqa: BLE001 - e.g. a ConfigError while building the resolver
            return _json_response(error_response(exc))
        if route.handler is None:
            return await _stream_events(request, resolver)
        return _json_response(await dispatch(route, resolver, api_request))

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


def bind_routes(table: web.RouteTableDef, prefix: str, get_resolver: ResolverGetter, guard: RequestGuard,
                routes: Iterable[Route] = ROUTES) -> list[str]:
    """Add every route under `prefix` to `table`. Returns the bound "METHOD path" strings."""
    bound = []
    for route in routes:
        path = prefix.rstrip("/") + route.path
        table.route(route.method, path)(_make_handler(route, get_resolver, guard))
        bound.append(f"{route.method} {path}")
    return bound


__all__ = ["GuardPolicy", "RequestGuard", "bind_routes", "build_api_request", "normalise_origin"]
