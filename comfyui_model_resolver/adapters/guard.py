"""The one request guard: every door calls `check_request` before anything else. Pure: no framework, no I/O.

Each route declares its checks as data (`RouteGuard`: which bodies, which size limit, which
authentication); `GuardPolicy` holds what the configuration says (trusted origins and names, the API
key, the limits); `GuardRequest` is what arrived. `check_request` answers None (go on) or the refusal
to send, in the one error shape. The checks, in order:

1. **Host (DNS rebinding).** A page at `http://evil.example:8188` can re-point its own name to
   127.0.0.1; its requests are then *same-origin* and an Origin check passes. Only `Host` tells (a
   browser always sends the URL's name; a page cannot change it). So a request that arrived on a
   loopback socket must name this machine: an IP literal, exactly `localhost`, this machine's name, or
   the host of a configured origin. Not `*.localhost` and not a trailing-dot name (`localhost.`):
   browsers send those to loopback too, but they are other origins, and Gradio treats only exact
   `localhost`/`127.0.0.1`/`0.0.0.0` as local, granting any origin CORS with credentials otherwise.
2. **Origin (CSRF, cross-site reads).** An `Origin` that is neither this server (`Host`,
   `X-Forwarded-Host`, default ports filled in) nor a configured origin (CMR_CORS_ORIGINS, ComfyUI's
   --enable-cors-header) is refused on every route, reads included: a multipart analyze needs no CORS
   pre-flight, and the UI's own CORS rules must never be what decides. Without an Origin,
   `Sec-Fetch-Site: cross-site` is refused too, except a top-level GET navigation (a link to the UI).
3. **Content type.** POST/PATCH/PUT bodies are JSON, or a workflow upload (multipart, raw PNG/WebP
   bytes) where the route takes one: a `<form>` post or a `text/plain` fetch never reaches a handler.
4. **Size.** A declared Content-Length over the route's limit is refused before reading (doors also
   count streamed bodies against `body_limit`), with the one "too large" error (`errors.too_large`).
5. **Authentication.** Routes that change state need `Authorization: Bearer <CMR_API_KEY>` when the
   sidecar listens beyond loopback or the request arrived on another address (no key configured
   there: refused, fail closed); a wrong key is refused everywhere. The UI needs its login beyond
   loopback. The ComfyUI door has no keys (ComfyUI has no authentication of its own).
"""
from __future__ import annotations

import hmac
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Literal, Mapping, Sequence
from urllib.parse import urlsplit

from ..errors import too_large
from .seam import ApiResponse, error_body

__all__ = ["GuardPolicy", "GuardRequest", "RouteGuard", "check_request", "body_limit", "is_loopback_address",
           "is_local_name", "machine_names", "normalise_origin", "origin_hosts", "match_route", "too_large_response",
           "API_READ", "API_CHANGE", "API_UPLOAD", "UI", "SERVICE", "RAW_UPLOAD_TYPES", "MULTIPART_OVERHEAD"]

#: Host names that are this machine for browsers and for Gradio alike; nothing else is "local".
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Raw workflow bytes accepted on upload routes besides JSON and multipart.
RAW_UPLOAD_TYPES = frozenset({"image/png", "image/webp", "application/octet-stream"})
#: Room a multipart envelope may take beyond the workflow file itself.
MULTIPART_OVERHEAD = 64 * 1024
_JSON = "json"


@dataclass(frozen=True)
class RouteGuard:
    """The checks one route needs, declared beside it (routes.ROUTES) or for a group of paths."""

    body: Literal["none", "json", "upload", "any"] = "none"  # what a POST/PATCH/PUT may carry
    limit: Literal["request", "workflow"] = "request"  # which size limit applies to the body
    auth: Literal["none", "key", "login"] = "none"  # key: it changes state; login: the UI


API_READ = RouteGuard()
API_CHANGE = RouteGuard(body="json", auth="key")
API_UPLOAD = RouteGuard(body="upload", limit="workflow")
#: The Gradio UI, mounted or on its own port: its API posts JSON and uploads workflow files.
UI = RouteGuard(body="any", limit="workflow", auth="login")
#: /health, /metrics, /docs, /openapi.json and anything else a door serves beside the routes.
SERVICE = RouteGuard(body="json")


@dataclass(frozen=True)
class GuardPolicy:
    """What the configuration says, built once per door (and again when settings change)."""

    max_request_bytes: int
    max_workflow_bytes: int
    origins: frozenset[str] = frozenset()  # normalised "scheme://host:port"
    any_origin: bool = False  # CMR_CORS_ORIGINS=*
    names: frozenset[str] = frozenset()  # host names that are this machine (configured and own)
    api_key: str | None = None  # None: no key configured
    keys: bool = False  # this door checks API keys (the sidecar)
    public_bind: bool = False  # configured to listen beyond loopback
    ui_login: bool = False  # the UI asks for a login

    @classmethod
    def build(cls, *, max_request_bytes: int, max_workflow_bytes: int, origins: Iterable[str] = (),
              names: Iterable[str] = (), api_key: str | None = None, keys: bool = False, bind: str | None = None,
              ui_login: bool = False) -> "GuardPolicy":
        origins = [o for o in origins if o]
        normal = {n for n in (normalise_origin(o) for o in origins if o != "*") if n}
        bind_names = {bind.strip("[]").lower()} if bind else set()
        return cls(max_request_bytes, max_workflow_bytes, frozenset(normal), "*" in origins,
                   frozenset(set(names) | origin_hosts(origins) | bind_names), api_key or None, keys,
                   bind is not None and not is_loopback_address(bind), ui_login)


@dataclass(frozen=True)
class GuardRequest:
    """What arrived, in the door's words. Header names are lower case."""

    method: str
    headers: Mapping[str, str]
    local_addr: str | None  # the address of the socket it arrived on; None: a unix socket or in-process
    content_length: int | None = None
    has_body: bool = False
    forwarded_hosts: Sequence[str] = field(default_factory=tuple)  # X-Forwarded-Host values


# ---- the local-name rules (written once) ------------------------------------------------------
def is_loopback_address(addr: str | None) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped), exactly `localhost`, or no address (a unix socket)."""
    if addr is None or addr == "":
        return True
    host = addr.strip().strip("[]").split("%", 1)[0].lower()
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _host_of(host_header: str) -> str | None:
    """`Host` value -> lower-case name or IP, exactly as sent (a trailing dot is kept: another name)."""
    try:
        return urlsplit("//" + host_header.strip()).hostname
    except ValueError:
        return None


def is_local_name(name: str) -> bool:
    return name in LOCAL_NAMES


@lru_cache(maxsize=1)
def machine_names() -> frozenset[str]:
    """This machine's host names (what `Host` says when a user opens http://<hostname>:port). Blocking
    (asks the resolver for the FQDN): doors call it once when they build their policy."""
    names = {socket.gethostname().lower()}
    try:
        names.add(socket.getfqdn().lower())
    except OSError:  # pragma: no cover - resolver trouble
        pass
    names |= {n.split(".", 1)[0] for n in names}
    return frozenset(n for n in names if n and n != "localhost" and not n.endswith("."))


def origin_hosts(origins: Iterable[str]) -> frozenset[str]:
    """`https://comfy.example.com:8443` -> `comfy.example.com` (configured origins name trusted hosts)."""
    out = set()
    for origin in origins:
        if not origin or origin == "*":
            continue
        try:
            host = urlsplit(origin.strip()).hostname
        except ValueError:
            continue
        if host:
            out.add(host.lower())
    return frozenset(out)


def normalise_origin(origin: str) -> str | None:
    """`HTTP://Example.com` -> `http://example.com:80`; None for `null` or garbage."""
    try:
        parts = urlsplit(origin.strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
            return None
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None
    host = parts.hostname.lower()
    return f"{parts.scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


def _host_port(value: str, scheme: str) -> str | None:
    """`Host` header value -> `host:port` (the default port of the Origin's scheme when absent)."""
    try:
        parts = urlsplit("//" + value.strip().lower())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return f"{'[' + host + ']' if ':' in host else host}:{port or _DEFAULT_PORTS[scheme]}"


# ---- the checks -----------------------------------------------------------------------------
def _refuse(status: int, type_: str, code: str, message: str, hint: str | None,
            headers: dict[str, str] | None = None) -> ApiResponse:
    return ApiResponse(error_body(type_, message, hint, code=code), status, headers or {})


def _check_host(req: GuardRequest, policy: GuardPolicy) -> ApiResponse | None:
    host = req.headers.get("host")
    if not host or not is_loopback_address(req.local_addr):
        return None  # HTTP/1.0 without Host, or a LAN address (the API key guards those)
    name = _host_of(host)
    if name is not None:
        try:
            ipaddress.ip_address(name)
            return None  # an IP literal: the browser really is talking to that address
        except ValueError:
            pass
        if is_local_name(name) or name in policy.names:
            return None
    return _refuse(403, "HostNotTrusted", "host_not_trusted",
                   f"Request for host {host[:100]!r} refused: this server listens on loopback, and only "
                   "'localhost', an IP address or this machine's name may reach it (any other name can be "
                   "a web page re-pointing its own name here: DNS rebinding).",
                   "Open it at http://127.0.0.1:<port> or http://localhost:<port>, or add the address you "
                   "use to CMR_CORS_ORIGINS (e.g. https://comfy.example.com for a reverse proxy).")


def _cross_origin(what: str) -> ApiResponse:
    return _refuse(403, "CrossOriginRejected", "cross_origin", what,
                   "Use the Model Resolver from its own page (or ComfyUI's), or add the page's origin to "
                   "CMR_CORS_ORIGINS.")


def _check_origin(req: GuardRequest, policy: GuardPolicy) -> ApiResponse | None:
    origin = req.headers.get("origin")
    if origin is None:
        site = (req.headers.get("sec-fetch-site") or "").lower()
        navigation = req.method in ("GET", "HEAD") and (req.headers.get("sec-fetch-mode") or "").lower() == "navigate"
        if site == "cross-site" and not navigation:
            return _cross_origin("Cross-site request refused.")
        return None
    if policy.any_origin:
        return None
    norm = normalise_origin(origin)
    if norm is not None:
        if norm in policy.origins:
            return None
        scheme, _, hostport = norm.partition("://")
        hosts = [req.headers.get("host") or "", *req.forwarded_hosts]
        if any(h and _host_port(h.split(",")[0], scheme) == hostport for h in hosts):
            return None
    return _cross_origin(f"Cross-origin request from {origin[:100]!r} refused.")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _check_content_type(route: RouteGuard, req: GuardRequest, path: str) -> ApiResponse | None:
    if req.method not in ("POST", "PATCH", "PUT") or route.body == "any":
        return None
    ctype = _media_type(req.headers.get("content-type"))
    if route.body != "none" and (ctype == "application/json" or ctype.endswith("+json")):
        return None
    if not ctype and not req.has_body:
        return None  # a bodiless action (pause, resume)
    if route.body == "upload" and (ctype == "multipart/form-data" or ctype in RAW_UPLOAD_TYPES):
        return None
    wanted = "application/json" + (" or a multipart/form-data file upload" if route.body == "upload" else "")
    return _refuse(415, "UnsupportedMediaType", "unsupported_media_type",
                   f"{req.method} {path} needs Content-Type {wanted} (got {req.headers.get('content-type') or 'none'}).",
                   "Send the body as JSON with the header 'Content-Type: application/json'.")


def body_limit(route: RouteGuard, policy: GuardPolicy) -> tuple[int, str, str]:
    """(bytes a door may read, what it is, the setting that raises it) for a route's body."""
    if route.limit == "workflow":
        return (min(policy.max_request_bytes, policy.max_workflow_bytes + MULTIPART_OVERHEAD), "workflow",
                "CMR_MAX_WORKFLOW_BYTES")
    return policy.max_request_bytes, "request body", "CMR_MAX_REQUEST_BYTES"


def too_large_response(route: RouteGuard, policy: GuardPolicy, size: int, *, at_least: bool = False) -> ApiResponse:
    """The 413 for a body over `body_limit` (declared, or counted while it streamed)."""
    limit, what, setting = body_limit(route, policy)
    err = too_large(what, size, limit, setting, at_least=at_least)
    return ApiResponse({"error": err.to_dict()}, 413)


def _unauthorized(message: str) -> ApiResponse:
    return _refuse(401, "Unauthorized", "unauthorized", message, "Send 'Authorization: Bearer <CMR_API_KEY>'.",
                   {"WWW-Authenticate": 'Bearer realm="cmr"'})


def _check_auth(route: RouteGuard, req: GuardRequest, policy: GuardPolicy) -> ApiResponse | None:
    beyond_loopback = policy.public_bind or not is_loopback_address(req.local_addr)
    if route.auth == "login":
        if beyond_loopback and not policy.ui_login:
            return _refuse(403, "Forbidden", "ui_loopback_only",
                           "The UI has no login on this address, so it is served over loopback only.",
                           "Set CMR_API_KEY and CMR_API_HOST/CMR_GRADIO_HOST to the address you listen on.")
        return None
    if route.auth != "key" or not policy.keys:
        return None
    auth = req.headers.get("authorization") or ""
    scheme, _, given = auth.partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else ""
    if auth and policy.api_key:
        if hmac.compare_digest(given.encode(), policy.api_key.encode()):
            return None
        return _unauthorized("The API key is wrong.")
    if not beyond_loopback:
        return None
    if not policy.api_key:
        return _refuse(403, "Forbidden", "api_key_not_configured",
                       "This server listens beyond loopback and has no API key, so it refuses changes.",
                       "Set CMR_API_KEY on the server and send 'Authorization: Bearer <key>', or bind to 127.0.0.1.")
    return _unauthorized("This request changes state and needs the API key.")


def check_request(route: RouteGuard, req: GuardRequest, policy: GuardPolicy, path: str = "") -> ApiResponse | None:
    """The one guard. None when the request may proceed, else the refusal to send (and nothing else
    happens: no handler runs, no body is read)."""
    for refusal in (_check_host(req, policy), _check_origin(req, policy), _check_content_type(route, req, path)):
        if refusal is not None:
            return refusal
    limit, _what, _setting = body_limit(route, policy)
    if req.content_length is not None and req.content_length > limit:
        return too_large_response(route, policy, req.content_length)
    return _check_auth(route, req, policy)


# ---- which guard a path has -------------------------------------------------------------------
_PARAM = re.compile(r"{(\w+)}")


def match_route(routes: Iterable, prefix: str, method: str, path: str):
    """The route (anything with `.method`, `.path`) serving `method path` under `prefix`, or None."""
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix):]
    for route in routes:
        pattern = "^" + _PARAM.sub(r"[^/]+", re.escape(route.path).replace(r"\{", "{").replace(r"\}", "}")) + "$"
        if route.method == method and re.match(pattern, rest):
            return route
    return None
