"""Pre-flight of a chosen candidate: one HEAD for its size and access, and the disk check.

Hub: `HEAD /{repo}/resolve/main/{path}` answers 302 with X-Linked-Size / X-Linked-Etag (sha256)
without following to the CDN, or 401/403 `GatedRepo`. Civitai: `HEAD /api/download/models/{id}`
answers 307 to signed storage (one more HEAD there, without credentials, gives the size and the
served file name), or 401/403 whose reason (login, early access) is only in a JSON body, which a
small GET reads. Every request goes through the upstream transport (each URL checked against the
allowlist); status codes become states through `upstream.error_for_status`.
"""
from __future__ import annotations

import os
import re
import shutil
from collections import defaultdict
from typing import Iterable
from urllib.parse import urlparse, unquote, urljoin

from ..errors import AuthRequired, NotFound, RateLimited, SourceError
from ..settings import Settings
from ..types import Candidate, DiskCheck, Preflight
from .base import LookupContext
from ..hosts import is_allowed, redact_error
from ..upstream import error_for_status
from .http import Upstream
from .urls import origin_of

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_HOPS = 3
_DISPOSITION = re.compile(r"""filename\*=UTF-8''([^;]+)|filename="?([^";]+)"?""", re.I)
_STATE_OF_REASON = {"gated": "gated", "login_required": "login_required", "early_access": "early_access",
                    "no_access": "no_access"}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _filename(disposition: str | None) -> str | None:
    if not disposition:
        return None
    m = _DISPOSITION.search(disposition)
    if not m:
        return None
    return unquote(m.group(1)) if m.group(1) else m.group(2)


def _from_error(url: str, status: int, err: SourceError) -> Preflight:
    if isinstance(err, AuthRequired):
        return Preflight(url=url, state=_STATE_OF_REASON.get(err.reason or "", "login_required"),  # type: ignore[arg-type]
                         http_status=status, message=err.message + (f" — {err.hint}" if err.hint else ""),
                         token_env=err.token_env)
    if isinstance(err, NotFound):
        return Preflight(url=url, state="not_found", http_status=status, message=err.message)
    if isinstance(err, RateLimited):
        return Preflight(url=url, state="rate_limited", http_status=status, message=err.message)
    return Preflight(url=url, state="unavailable", http_status=status, message=err.message)


async def preflight(cand: Candidate, upstream: Upstream, ctx: LookupContext, settings: Settings) -> Preflight:
    url = cand.url
    source = cand.source if cand.source in ("huggingface", "civitai") else "preflight"
    if not is_allowed(url, settings):
        return Preflight(url=url, state="not_allowed", message="the host is not on the allowlist (CMR_ALLOWED_HOSTS)")
    size = sha = name = None
    for _hop in range(_MAX_HOPS + 1):
        try:
            res = await upstream.head(url, source=source, ctx=ctx)
        except SourceError as exc:
            return _from_error(cand.url, 0, exc)
        h = res.headers
        size = size or _int(h.get("X-Linked-Size"))
        etag = (h.get("X-Linked-Etag") or "").strip('W/"')
        if len(etag) == 64:
            sha = sha or etag.lower()
        if res.status in _REDIRECTS and h.get("Location"):
            nxt = urljoin(url, h["Location"])
            if size is not None and origin_of(nxt) != origin_of(url):
                break  # the Hub told us everything; the CDN adds nothing
            if not is_allowed(nxt, settings):
                return Preflight(url=cand.url, state="not_allowed", http_status=res.status,
                                 message=f"redirects to {origin_of(nxt)}, which is not on the allowlist")
            url = nxt
            continue
        if res.status >= 400:
            body = None
            if res.status in (401, 403) and source == "civitai":
                try:  # HEAD has no body; Civitai says why (login, early access) only in JSON
                    body = (await upstream.get_status(url, source=source, ctx=ctx)).body
                except SourceError:
                    body = None
            err = error_for_status(res.status, h, body, source=source, token_env=upstream.token_env_for(url),
                                   authed=upstream.has_token(url), label=urlparse(url).hostname or source)
            err = redact_error(err, settings)  # the upstream may quote the token it was sent
            return _from_error(cand.url, res.status, err)
        if size is None:
            cr = h.get("Content-Range", "")
            size = _int(cr.rsplit("/", 1)[-1]) if "/" in cr else _int(h.get("Content-Length"))
        name = _filename(h.get("Content-Disposition"))
        return Preflight(url=cand.url, state="ok", http_status=res.status, size=size, sha256=sha,
                         filename=name if name and name != cand.filename else None)
    return Preflight(url=cand.url, state="ok", http_status=302, size=size, sha256=sha)


def _free_bytes(directory: str | None) -> int | None:
    if not directory:
        return None
    d = os.path.abspath(directory)
    while d and not os.path.exists(d):
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent
    try:
        return shutil.disk_usage(d).free
    except OSError:
        return None


def disk_checks(planned: Iterable[tuple[str, str | None, int | None]]) -> tuple[DiskCheck, ...]:
    """(folder, target directory, size) of each planned download -> one check per filesystem target."""
    groups: dict[tuple[str, str | None], list[int | None]] = defaultdict(list)
    for folder, directory, size in planned:
        groups[(folder, directory)].append(size)
    out = []
    for (folder, directory), sizes in sorted(groups.items(), key=lambda kv: kv[0][0]):
        needed = sum(s for s in sizes if s)
        unknown = sum(1 for s in sizes if not s)
        free = _free_bytes(directory)
        out.append(DiskCheck(folder=folder, directory=directory, needed=needed, free=free, unknown_sizes=unknown,
                             enough=None if free is None else free >= needed))
    # Folders on the same filesystem share its free space: check their sum too.
    by_fs: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(out):
        if c.directory and c.free is not None:
            try:
                probe = c.directory
                while not os.path.exists(probe):
                    probe = os.path.dirname(probe)
                by_fs[os.stat(probe).st_dev].append(i)
            except OSError:
                continue
    for idx in by_fs.values():
        total = sum(out[i].needed for i in idx)
        for i in idx:
            if out[i].free is not None and total > out[i].free:
                out[i] = out[i].model_copy(update={"enough": False})
    return tuple(out)
