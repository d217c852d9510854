"""DNS-rebinding protection, shared by the ComfyUI routes and the sidecar. Pure: no framework.

A web page at `http://evil.example:8188` can make its own name resolve to 127.0.0.1 after it has
loaded ("DNS rebinding"). Its requests then reach a server on loopback as *same-origin* requests:
`Origin: http://evil.example:8188` equals `Host: evil.example:8188`, so an Origin check passes, and
the page may read every answer and call every route (start downloads, change the allowlist).
Only the `Host` header tells: a browser always sends the name from the URL, and a page cannot
change it.

So a request that arrived on a **loopback socket** must name this machine in `Host`: an IP literal,
`localhost` / `*.localhost`, this machine's host name, or the host of an origin the user configured
(CMR_CORS_ORIGINS, ComfyUI's --enable-cors-header). Requests that arrive on another address
(`--listen 0.0.0.0`, reached over the LAN by name) are not checked here: a rebinding page would have
to know that address, and the sidecar asks for its API key there.

A reverse proxy on the same machine either passes `Host: 127.0.0.1:<port>` (nginx's default) or the
public name, which then belongs in CMR_CORS_ORIGINS.
"""
from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import Iterable
from urllib.parse import urlsplit

from .routes import ApiResponse, error_body

__all__ = ["host_names_of_origins", "rebinding_refusal"]


def _is_loopback_addr(addr: str | None) -> bool:
    if not addr:
        return False
    try:
        ip = ipaddress.ip_address(addr.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _host_name(host_header: str) -> str | None:
    try:
        name = urlsplit("//" + host_header.strip()).hostname
    except ValueError:
        return None
    return name.rstrip(".").lower() if name else None


@lru_cache(maxsize=1)
def _own_names() -> frozenset[str]:
    names = {socket.gethostname().lower()}
    try:
        names.add(socket.getfqdn().lower())
    except OSError:  # pragma: no cover - resolver trouble
        pass
    names |= {n.split(".", 1)[0] for n in names}
    return frozenset(n for n in names if n)


def host_names_of_origins(origins: Iterable[str]) -> frozenset[str]:
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
            out.add(host.rstrip(".").lower())
    return frozenset(out)


def rebinding_refusal(host_header: str | None, local_addr: str | None,
                      trusted_names: Iterable[str] = ()) -> ApiResponse | None:
    """None when the request may proceed, else the 403 to send."""
    if not host_header or not _is_loopback_addr(local_addr):
        return None
    name = _host_name(host_header)
    if name is None:
        return _refuse(host_header)
    try:
        ipaddress.ip_address(name)
        return None  # an IP literal: the browser really is talking to that address
    except ValueError:
        pass
    if name == "localhost" or name.endswith(".localhost") or name in _own_names() or name in set(trusted_names):
        return None
    return _refuse(host_header)


def _refuse(host_header: str) -> ApiResponse:
    shown = host_header[:100]
    return ApiResponse(error_body(
        "HostNotTrusted",
        f"Request for host {shown!r} refused: this server listens on loopback, so a page under another name "
        "reaching it is a DNS-rebinding attack.",
        hint="Open it at http://127.0.0.1:<port> or http://localhost:<port>, or add the address you use to "
             "CMR_CORS_ORIGINS (e.g. https://comfy.example.com for a reverse proxy).",
        code="host_not_trusted"), 403)
