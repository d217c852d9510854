"""The request guard on the sidecar and the Gradio UI: one ASGI middleware in front of everything.

`GuardMiddleware` calls the one guard (`comfyui_model_resolver.adapters.guard.check_request`) for
every HTTP request and websocket, with the checks the path declares: each API route its own
(`Route.guard`: JSON or workflow bodies, the API key for changes), the Gradio UI `guard.UI` (its
login beyond loopback), and the service pages (/health, /metrics, /docs) `guard.SERVICE`. Then it
counts the body as it streams against the same limit (a body without Content-Length is cut off at
the limit with the same 413). Nothing behind it (routes, Gradio, CORS) runs for a refused request.

Policy (documented in the README and SECURITY.md, written once in adapters/guard.py):
* DNS rebinding: on a loopback socket `Host` must be an IP, exactly `localhost`, this machine's name,
  CMR_API_HOST or a CMR_CORS_ORIGINS host, on every path;
* a foreign `Origin` (or `Sec-Fetch-Site: cross-site`) is refused on every path, reads and uploads
  included; CORS itself is off unless CMR_CORS_ORIGINS lists origins;
* routes that change state need `Authorization: Bearer <CMR_API_KEY>` beyond loopback (refused, fail
  closed, when no key is configured there); a wrong key is refused (401) even over loopback;
* bodies over CMR_MAX_REQUEST_BYTES, and workflow uploads over CMR_MAX_WORKFLOW_BYTES, get 413.
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from comfyui_model_resolver.adapters.guard import (
    SERVICE, UI, GuardPolicy, GuardRequest, RouteGuard, check_request, is_loopback_address, machine_names,
    match_route, body_limit, too_large_response,
)
from comfyui_model_resolver.adapters.routes import ROUTES, SIDECAR_PREFIX, ApiResponse
from comfyui_model_resolver.settings import Settings

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]
#: The API's default for a path under the prefix that no route serves (FastAPI answers 404/405).
_API_OTHER = RouteGuard()


def is_loopback(host: str | None) -> bool:
    """A bind or socket address on loopback (adapters/guard.py's rule, used for binds and logins)."""
    return is_loopback_address(host)


def sidecar_policy(settings: Settings, *, ui_login: bool = False, bind: str | None = None) -> GuardPolicy:
    """The guard's policy for a sidecar (or standalone UI) listening on `bind` (default CMR_API_HOST)."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return GuardPolicy.build(max_request_bytes=settings.max_request_bytes, max_workflow_bytes=settings.max_workflow_bytes,
                             origins=settings.cors_origins, names=machine_names(), api_key=key, keys=True,
                             bind=settings.api_host if bind is None else bind, ui_login=ui_login)


GuardFor = Callable[[str, str], tuple[RouteGuard, str]]


def sidecar_guard_for(ui_prefix: str | None) -> GuardFor:
    """Which checks a path has on the sidecar (its route's, the UI's under `ui_prefix`, else SERVICE),
    and the path to name in a refusal (a route's own path, as the ComfyUI door names it)."""
    def guard_for(method: str, path: str) -> tuple[RouteGuard, str]:
        if path.startswith(SIDECAR_PREFIX + "/"):
            route = match_route(ROUTES, SIDECAR_PREFIX, "GET" if method == "HEAD" else method, path)
            return (route.guard, route.path) if route is not None else (_API_OTHER, path)
        if ui_prefix is not None and (path == ui_prefix or path.startswith(ui_prefix.rstrip("/") + "/")):
            return UI, path
        return SERVICE, path
    return guard_for


def guard_request(scope: Scope) -> GuardRequest:
    headers: dict[str, str] = {}
    forwarded: list[str] = []
    for k, v in scope.get("headers", ()):
        name = k.decode("latin-1").lower()
        value = v.decode("latin-1")
        if name == "x-forwarded-host":
            forwarded.append(value)
        headers[name] = headers[name] + "," + value if name in headers and name != "host" else value
    server = scope.get("server")
    length = headers.get("content-length")
    declared = int(length) if length is not None and length.strip().isdigit() else None
    method = scope.get("method", "GET")
    has_body = bool(declared) or "chunked" in (headers.get("transfer-encoding") or "").lower()
    return GuardRequest(method=method, headers=headers, local_addr=server[0] if server else None,
                        content_length=declared, has_body=has_body, forwarded_hosts=tuple(forwarded))


class BodyTooLarge(Exception):
    def __init__(self, response: ApiResponse) -> None:
        super().__init__(response.body["error"]["message"])
        self.response = response


class GuardMiddleware:
    """The one guard for every path of an ASGI app, then the body counted against its limit."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy, guard_for: GuardFor) -> None:
        self.app = app
        self.policy = policy
        self.guard_for = guard_for

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        route, shown = self.guard_for(scope.get("method", "GET"), scope.get("path", ""))
        refused = check_request(route, guard_request(scope), self.policy, shown)
        if refused is not None:
            if scope["type"] == "http":
                await send_response(send, refused)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(route, self.policy)[0]
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(too_large_response(route, self.policy, limit, at_least=True))
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
            await send_response(send, exc.response)


async def send_response(send, response: ApiResponse) -> None:
    """Send an ApiResponse (an error) straight from ASGI, closing the connection."""
    body = json.dumps(response.body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    headers += [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
