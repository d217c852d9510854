"""GET /health: liveness and readiness, with upstream reachability as information only.

Ready means: the configuration loaded (it did, or the app would not have started), a models root is
configured, exists and is writable, and the data dir is writable. Upstream reachability (a HEAD of
the Hugging Face and Civitai endpoints) never changes readiness: a render farm behind a proxy may
legitimately not see them. It is checked in the background at most once a minute, so health probes
stay cheap; `?upstreams=check` waits (up to a few seconds) for a fresh check.

`write_roots` says where downloads may land and names each model folder that is a link leading
elsewhere (downloads into it are refused), with the one line that allows it — information too: the
server works, those folders just take no downloads (downloads/containment.py).
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

UPSTREAM_TTL = 60.0
UPSTREAM_TIMEOUT = 3.0


def _writable_dir(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {"ok": False, "path": None, "message": "not configured",
                "hint": "Set CMR_COMFYUI_ROOT (models in <root>/models) or CMR_MODELS_ROOT."}
    info: dict[str, Any] = {"path": str(path)}
    if not path.is_dir():
        return {**info, "ok": False, "message": "does not exist or is not a directory"}
    try:  # os.access lies on some network filesystems and for root: really create a file
        with tempfile.NamedTemporaryFile(dir=path, prefix=".cmr-health-", delete=True):
            pass
    except OSError as exc:
        return {**info, "ok": False, "message": f"not writable: {exc.strerror or exc}"}
    return {**info, "ok": True}


def write_roots_report(layout: Any) -> dict[str, Any]:
    """{"roots": [...], "refused_links": [{folder, path, target, allow, message}]}. Blocking."""
    from comfyui_model_resolver.downloads.containment import linked_folders, write_roots

    return {"roots": list(write_roots(layout).roots), "refused_links": linked_folders(layout)}


def linked_folder_lines(report: dict[str, Any]) -> list[str]:
    """One line per refused link, for people (`cmr serve --check`)."""
    return [f"warning: {item['message']}" + (f"; to allow it: {item['allow']}" if item["allow"] else "")
            for item in report["refused_links"]]


class UpstreamProbe:
    """Cached HEAD checks of the configured upstream endpoints."""

    def __init__(self, endpoints: dict[str, str]) -> None:
        self.endpoints = endpoints
        self.results: dict[str, dict[str, Any]] = {
            name: {"url": url, "reachable": None, "status": None, "checked_at": None} for name, url in endpoints.items()}
        self._checked = 0.0
        self._task: asyncio.Task | None = None

    async def _check_one(self, name: str, url: str) -> None:
        import aiohttp

        from comfyui_model_resolver.upstream import fetch_configured

        started = time.monotonic()
        result: dict[str, Any] = {"url": url, "checked_at": time.time()}
        try:
            status, _ = await fetch_configured(url, method="HEAD", timeout=UPSTREAM_TIMEOUT)
            result.update(reachable=True, status=status)
        except asyncio.TimeoutError:
            result.update(reachable=False, status=None, error="timed out")
        except (aiohttp.ClientError, OSError, ValueError) as exc:  # information only
            result.update(reachable=False, status=None, error=type(exc).__name__)
        result["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        self.results[name] = result

    async def _check_all(self) -> None:
        await asyncio.gather(*(self._check_one(n, u) for n, u in self.endpoints.items()))
        self._checked = time.monotonic()

    def refresh(self) -> asyncio.Task | None:
        """Start a background check if the last one is stale; return the running check, if any."""
        if self._task is None or self._task.done():
            if time.monotonic() - self._checked < UPSTREAM_TTL and self._checked:
                return None
            self._task = asyncio.get_running_loop().create_task(self._check_all(), name="cmr-upstream-probe")
        return self._task

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


async def health_report(resolver: Any, probe: UpstreamProbe, *, version: str, wait_upstreams: bool) -> tuple[dict, bool]:
    settings = resolver.settings
    models_root = settings.effective_models_root
    models, data, roots = await asyncio.gather(asyncio.to_thread(_writable_dir, models_root),
                                               asyncio.to_thread(_writable_dir, settings.effective_data_dir),
                                               asyncio.to_thread(write_roots_report, resolver.layout))
    task = probe.refresh()
    if wait_upstreams and task is not None:
        try:
            await asyncio.wait_for(asyncio.shield(task), UPSTREAM_TIMEOUT + 1)
        except asyncio.TimeoutError:
            pass
    checks = {"config": {"ok": True}, "models_root": models, "data_dir": data}
    ready = all(c["ok"] for c in checks.values())
    # the manager as built so far: a health check never imports the download stack (the server
    # starts it in the background, main.py), and it may answer before that is done
    downloads = getattr(resolver, "built_downloads", None) if hasattr(resolver, "built_downloads") \
        else getattr(resolver, "downloads", None)
    body = {
        "status": "ok" if ready else "unavailable",
        "live": True,
        "ready": ready,
        "version": version,
        "pid": os.getpid(),
        "checks": checks,
        "upstreams": dict(probe.results),
        "write_roots": roots,
        "features": {"downloads": downloads is not None or hasattr(resolver, "start_downloads"),
                     "resolve": hasattr(resolver, "resolve")},
    }
    fleet = getattr(downloads, "fleet", None)
    if fleet is not None:  # information only: a host whose Redis is away keeps working on its own
        body["fleet"] = fleet.status()
    return body, ready
