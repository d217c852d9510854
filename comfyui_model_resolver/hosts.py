"""Which URLs we may fetch, and which token (if any) goes to each host. Pure: no I/O.

Used by downloads (every redirect hop is checked) and by sources (API calls). The API is small:

    check_url(url, settings) -> str      the URL if allowed, else raises HostNotAllowed
    is_allowed(url, settings) -> bool
    token_for(url, settings) -> str | None   the token to send as "Authorization: Bearer …", if any
    token_kind(url, settings) -> "hf" | "civitai" | None
    redact_url(url) -> str               secrets in a URL replaced by "***"
    redact_text(text) -> str             the same for free text (log lines, error messages)

Allowlist patterns (Settings.all_allowed_hosts = defaults + CMR_ALLOWED_HOSTS):

* ``host``        the host on the default port of the URL's scheme (443 for https, 80 for http);
* ``*.domain``    any subdomain of domain (not domain itself), default port;
* ``host:port``   exactly that host and port, any scheme.

The hosts of ``Settings.hf_endpoint`` and ``Settings.civitai_base_url`` are allowed too, on their
own port. Only http and https. The built-in entries (Hugging Face, its CDNs, Civitai) require
https; http is accepted only for entries the user configured (CMR_ALLOWED_HOSTS, the endpoints).

URLs with user info (``https://user:pw@host/``) are refused, and so are IP literals in loopback,
private, link-local (cloud metadata), unique-local or unspecified ranges, unless that exact
``ip:port`` is configured — tests and benches run their servers on 127.0.0.1 that way.
Note: host *names* are checked as names; a configured name is trusted whatever it resolves to.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .errors import HostNotAllowed
from .settings import DEFAULT_ALLOWED_HOSTS

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings

__all__ = ["check_url", "is_allowed", "token_for", "token_kind", "TOKEN_ENV", "redact_url", "redact_text",
           "Target", "parse_target"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Hosts that get the Hugging Face token besides the configured endpoint (https only).
_HF_HOSTS = ("huggingface.co", "hf.co")
#: Query parameters whose values are secrets (compared case-insensitively).
SECRET_PARAMS = frozenset({
    "token", "access_token", "api_key", "apikey", "key", "sig", "signature", "x-amz-signature",
    "x-amz-credential", "x-amz-security-token", "policy", "key-pair-id", "auth", "password",
})
_SECRET_QS_RE = re.compile(
    r"(?i)([?&;](?:" + "|".join(re.escape(p) for p in sorted(SECRET_PARAMS, key=len, reverse=True))
    + r")=)[^&#\s\"'<>]*")
_BEARER_RE = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
_USERINFO_RE = re.compile(r"(?i)(\bhttps?://)[^/@\s]+@")
_HF_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{8,}\b")


@dataclass(frozen=True)
class Target:
    """A parsed http(s) URL: lower-case scheme and host (IDNA), explicit port."""

    scheme: str
    host: str
    port: int
    url: str

    @property
    def default_port(self) -> bool:
        return self.port == _DEFAULT_PORTS[self.scheme]

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def _safe_for_message(url: str) -> str:
    return redact_url(url) if len(url) <= 300 else redact_url(url[:300]) + "…"


def parse_target(url: str) -> Target:
    """Parse and normalise; raises HostNotAllowed for anything that is not a plain http(s) URL."""
    if not isinstance(url, str) or not url.strip():
        raise HostNotAllowed("Empty URL.", hint="Give an http(s) URL.")
    if any(ord(c) < 0x20 or c == "\x7f" for c in url):
        raise HostNotAllowed("The URL contains control characters.")
    try:
        parts: SplitResult = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise HostNotAllowed(f"Not a valid URL: {_safe_for_message(url)} ({exc}).") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        shown = f"{scheme}://" if scheme else "a URL without a scheme"
        raise HostNotAllowed(f"Only http and https URLs can be downloaded, not {shown} "
                             f"({_safe_for_message(url)}).", hint="Give an https:// URL.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise HostNotAllowed("URLs with a user name or password are not accepted "
                             f"({_safe_for_message(url)}).",
                             hint="Tokens are configured with CMR_HF_TOKEN / CMR_CIVITAI_API_KEY instead.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise HostNotAllowed(f"The URL has no host: {_safe_for_message(url)}.")
    try:
        host = host.encode("idna").decode("ascii").lower() if not _is_ip(host) else host.lower()
    except UnicodeError:
        raise HostNotAllowed(f"Invalid host name in {_safe_for_message(url)}.") from None
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise HostNotAllowed(f"Invalid port in {_safe_for_message(url)}.")
    return Target(scheme, host, port, url.strip())


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _is_internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified
                or ip.is_reserved or ip.is_multicast)


@dataclass(frozen=True)
class _Pattern:
    host: str  # "example.com" or "*.example.com"
    port: int | None  # None: the default port of the URL's scheme
    explicit: bool  # configured by the user (http allowed, IP literals with a port allowed)

    def matches(self, t: Target) -> bool:
        if self.port is None:
            if not t.default_port:
                return False
        elif self.port != t.port:
            return False
        if self.host.startswith("*."):
            suffix = self.host[1:]  # ".example.com"
            return t.host.endswith(suffix) and len(t.host) > len(suffix)
        return t.host == self.host


def _parse_pattern(raw: str, explicit: bool) -> _Pattern | None:
    text = raw.strip().lower()
    if not text:
        return None
    if "://" in text:  # be lenient with "https://host:port/" entries
        try:
            t = parse_target(text)
        except HostNotAllowed:
            return None
        return _Pattern(t.host, t.port if not t.default_port else None, explicit)
    text = text.rstrip("/")
    port: int | None = None
    if text.startswith("["):  # [v6]:port
        end = text.find("]")
        host, rest = text[1:end], text[end + 1:]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit():
            return None
        port = int(p)
    else:
        host = text
    host = host.rstrip(".")
    return _Pattern(host, port, explicit) if host else None


def _endpoint_pattern(url: str | None) -> _Pattern | None:
    if not url:
        return None
    try:
        t = parse_target(url)
    except HostNotAllowed:
        return None
    return _Pattern(t.host, t.port, True)


def _patterns(settings: "Settings") -> list[_Pattern]:
    out: list[_Pattern] = []
    for raw in DEFAULT_ALLOWED_HOSTS:
        p = _parse_pattern(raw, explicit=False)
        if p:
            out.append(p)
    for raw in settings.allowed_hosts:
        p = _parse_pattern(raw, explicit=True)
        if p:
            out.append(p)
    for url in (settings.hf_endpoint, settings.civitai_base_url):
        p = _endpoint_pattern(url)
        if p:
            out.append(p)
    return out


def check_url(url: str, settings: "Settings") -> str:
    """Return `url` if we may fetch it, else raise HostNotAllowed saying why and what to do."""
    t = parse_target(url)
    matches = [p for p in _patterns(settings) if p.matches(t)]
    shown = _safe_for_message(url)
    hostport = f"{t.host}:{t.port}" if ":" not in t.host else f"[{t.host}]:{t.port}"
    if not matches:
        raise HostNotAllowed(f"{hostport} is not on the download allowlist ({shown}).",
                             hint=f"If you trust this host, add it to CMR_ALLOWED_HOSTS (e.g. {hostport}).")
    ip = t.ip
    if ip is not None and _is_internal(ip):
        if not any(p.explicit and p.port is not None and p.host == t.host for p in matches):
            raise HostNotAllowed(f"{hostport} is a loopback, private or link-local address ({shown}).",
                                 hint=f"To allow it on purpose, add exactly {hostport} to CMR_ALLOWED_HOSTS.")
    if t.scheme == "http" and not any(p.explicit for p in matches):
        raise HostNotAllowed(f"{t.host} must be reached over https, not http ({shown}).",
                             hint="Use the https:// URL.")
    return t.url


def is_allowed(url: str, settings: "Settings") -> bool:
    try:
        check_url(url, settings)
        return True
    except HostNotAllowed:
        return False


def _same_origin(t: Target, base_url: str | None) -> bool:
    if not base_url:
        return False
    try:
        b = parse_target(base_url)
    except HostNotAllowed:
        return False
    return (t.scheme, t.host, t.port) == (b.scheme, b.host, b.port)


def token_kind(url: str, settings: "Settings") -> str | None:
    """"hf" or "civitai" when `url` is on a host whose token we hold (or would hold), else None.

    Hugging Face: the configured endpoint's origin (scheme, host, port), plus https://huggingface.co
    and https://hf.co. Civitai: the configured base URL's origin. CDNs and storage hosts: None.
    """
    try:
        t = parse_target(url)
    except HostNotAllowed:
        return None
    if (t.scheme == "https" and t.default_port and t.host in _HF_HOSTS) or _same_origin(t, settings.hf_endpoint):
        return "hf"
    if _same_origin(t, settings.civitai_base_url):
        return "civitai"
    return None


#: The setting to fill in, per token kind (for "this needs a token" hints).
TOKEN_ENV = {"hf": "CMR_HF_TOKEN", "civitai": "CMR_CIVITAI_API_KEY"}


def token_for(url: str, settings: "Settings") -> str | None:
    """The token that belongs to `url`'s host (see `token_kind`), or None. Never for a CDN."""
    kind = token_kind(url, settings)
    secret = settings.hf_token if kind == "hf" else settings.civitai_api_key if kind == "civitai" else None
    if secret is None:
        return None
    return secret.get_secret_value() or None


def redact_url(url: str) -> str:
    """`url` with secret query values (token=, sig=, X-Amz-Signature=, …) and user info replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        items = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in items):
            query = urlencode([(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in items],
                              safe="*", quote_via=quote)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Free text with URL secrets, bearer tokens and hf_… tokens replaced by ***."""
    text = _SECRET_QS_RE.sub(r"\1***", text)
    text = _BEARER_RE.sub(r"\1***", text)
    text = _USERINFO_RE.sub(r"\1***@", text)
    return _HF_TOKEN_RE.sub("hf_***", text)
