"""Who may call what: the API key for mutating routes, cross-origin refusal, and body size limits.

Policy (documented in the README):
* A request needs `Authorization: Bearer <CMR_API_KEY>` for a mutating route (`Route.mutating`) when the
  server is configured to listen on a non-loopback address (`CMR_API_HOST`) or when the request arrived
  on a non-loopback local address (e.g. `uvicorn --host 0.0.0.0` without `CMR_API_HOST`). Without a
  configured key such requests are refused (403): the server fails closed. `cmr serve` refuses to start
  on a non-loopback address without a key.
* A wrong key is refused (401) even over loopback: it is a misconfigured client.
* DNS rebinding: a request that arrived on a loopback socket must name this machine in `Host`
  (an IP, localhost, the machine's name, CMR_API_HOST or a CMR_CORS_ORIGINS host), on every route.
* Browsers: a mutating request carrying an `Origin` that is not in `CMR_CORS_ORIGINS` (and is not the
  server's own origin) is refused (403), so a web page cannot make a local sidecar download or change
  settings. CORS itself is off unless `CMR_CORS_ORIGINS` lists origins.
* Bodies larger than `CMR_MAX_REQUEST_BYTES` are refused with 413 before they are read; workflow
  uploads are also held to `CMR_MAX_WORKFLOW_BYTES` (413 `WorkflowTooLarge`).
"""
from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from comfyui_model_resolver.adapters.hostcheck import host_names_of_origins, rebinding_refusal
from comfyui_model_resolver.adapters.routes import RAW_UPLOAD_TYPES, ApiResponse, Route, error_body
from comfyui_model_resolver.settings import Settings

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1, 'localhost' and unix sockets (None). '0.0.0.0' and '::' are not."""
    if host is None or host == "":
        return True
    host = host.strip("[]")
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def key_required(settings: Settings, local_host: str | None) -> bool:
    return not is_loopback(settings.api_host) or not is_loopback(local_host)


def check_api_key(settings: Settings, headers: Mapping[str, str], local_host: str | None) -> ApiResponse | None:
    """None when a mutating request may proceed, else the error response to send."""
    expected = settings.api_key.get_secret_value() if settings.api_key else ""
    auth = headers.get("authorization") or ""
    scheme, _, given = auth.partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else ""
    if auth and expected:
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return _unauthorized("The API key is wrong.")
    if not key_required(settings, local_host):
        return None
    if not expected:
        return ApiResponse(error_body(
            "Forbidden", "This server listens beyond loopback and has no API key, so it refuses changes.",
            hint="Set CMR_API_KEY on the server and send 'Authorization: Bearer <key>', "
                 "or bind to 127.0.0.1.", code="api_key_not_configured"), 403)
    return _unauthorized("This request changes state and needs the API key.")


def _unauthorized(message: str) -> ApiResponse:
    return ApiResponse(error_body("Unauthorized", message, hint="Send 'Authorization: Bearer <CMR_API_KEY>'.",
                                  code="unauthorized"), 401, {"WWW-Authenticate": 'Bearer realm="cmr"'})


def check_host(settings: Settings, headers: Mapping[str, str], local_host: str | None) -> ApiResponse | None:
    """DNS rebinding: on a loopback socket the Host header must name this machine (see
    comfyui_model_resolver/adapters/hostcheck.py). Applies to every API route, reads included."""
    trusted = set(host_names_of_origins(settings.cors_origins))
    trusted.add(settings.api_host.strip("[]").lower())
    return rebinding_refusal(headers.get("host"), local_host, trusted)


def check_origin(settings: Settings, headers: Mapping[str, str], scheme: str) -> ApiResponse | None:
    """Refuse a browser's cross-origin mutating request unless its origin is configured."""
    origin = headers.get("origin")
    if not origin:
        if (headers.get("sec-fetch-site") or "").lower() == "cross-site":
            return _cross_origin(None)
        return None  # not a browser, or a same-origin GET
    if "*" in settings.cors_origins or origin in settings.cors_origins:
        return None
    host = headers.get("host") or ""
    parts = urlsplit(origin)
    if parts.netloc and parts.netloc.lower() == host.lower() and parts.scheme in {scheme, "http", "https"}:
        return None  # same origin (e.g. the mounted UI or a page served by this host)
    return _cross_origin(origin)


def _cross_origin(origin: str | None) -> ApiResponse:
    return ApiResponse(error_body(
        "CrossOriginRejected", f"Cross-origin request from {origin!r} refused." if origin else "Cross-site request refused.",
        hint="Add the origin to CMR_CORS_ORIGINS if this page should control the sidecar.",
        code="cross_origin"), 403)


def check_content_type(route: Route, method: str, content_type: str | None, has_body: bool) -> ApiResponse | None:
    """Bodies are JSON (or, for analyze/resolve, a multipart or raw file upload): a web page cannot
    send those cross-site without a CORS preflight. The same rule and answer as the ComfyUI routes."""
    if method not in ("POST", "PATCH", "PUT"):
        return None
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        return None
    if not ctype and not has_body:
        return None  # a bodiless action (pause, resume)
    if route.accepts_upload and (ctype == "multipart/form-data" or ctype in RAW_UPLOAD_TYPES):
        return None
    if ctype in _SIMPLE_TYPES or not route.accepts_upload:
        wanted = "application/json" + (" or a multipart/form-data file upload" if route.accepts_upload else "")
        return ApiResponse(error_body(
            "UnsupportedMediaType", f"{method} {route.path} needs Content-Type {wanted} (got {content_type or 'none'}).",
            hint="Send the body as JSON with the header 'Content-Type: application/json'.",
            code="unsupported_media_type"), 415)
    return None


_SIMPLE_TYPES = {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""}


class HostCheckMiddleware:
    """DNS-rebinding protection for the whole app — API, event stream, docs, metrics and the Gradio UI
    (which can start downloads too): `check_host` on every HTTP request and websocket."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
            server = scope.get("server")
            denied = check_host(self.settings, headers, server[0] if server else None)
            if denied is not None:
                if scope["type"] == "http":
                    await _send(send, denied)
                else:
                    await send({"type": "websocket.close", "code": 1008})
                return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    def __init__(self, response: ApiResponse) -> None:
        super().__init__(response.body["error"]["message"])
        self.response = response


class BodyLimitMiddleware:
    """Refuse request bodies over a limit with 413 and the standard error shape.

    `limit_for(path)` gives (limit, error factory) for a path. A declared Content-Length over the limit
    is refused before reading; a chunked body is counted as it streams and cut off at the limit.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], tuple[int, Callable[[int], ApiResponse]]]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, too_large = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send(send, too_large(declared))
            return
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(too_large(received))
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _send(send, exc.response)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send(send, response: ApiResponse) -> None:
    body = json.dumps(response.body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    headers += [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def request_too_large(limit: int) -> Callable[[int], ApiResponse]:
    def make(size: int) -> ApiResponse:
        return ApiResponse(error_body(
            "RequestTooLarge", f"The request body is {size:,} bytes or more, over the {limit:,}-byte limit.",
            hint="Raise CMR_MAX_REQUEST_BYTES if this is a genuine request.", code="request_too_large"), 413)
    return make
