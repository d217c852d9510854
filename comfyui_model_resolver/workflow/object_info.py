"""Load node schemas (`/object_info`) from a saved file or a running ComfyUI. I/O edge."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from ..errors import ConfigError
from ..upstream import fetch_configured

MAX_OBJECT_INFO_BYTES = 256 * 1024 * 1024


def _check(data: Any, origin: str) -> dict:
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in list(data.values())[:50]):
        raise ConfigError(f"{origin} is not a ComfyUI /object_info document (expected {{node type: schema}}).")
    return data


def read_object_info_file(path: str | Path) -> dict:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_OBJECT_INFO_BYTES:
            raise ConfigError(f"{p} is larger than {MAX_OBJECT_INFO_BYTES:,} bytes.")
        return _check(json.loads(p.read_text(encoding="utf-8")), str(p))
    except OSError as exc:
        raise ConfigError(f"Cannot read object_info file {p}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{p} is not valid JSON: {exc}") from None


async def fetch_object_info(base_url: str, *, timeout: float = 30.0) -> dict:
    """GET {base_url}/object_info from a running ComfyUI (also accepts the full /object_info URL)."""
    url = base_url.rstrip("/")
    if not url.endswith("/object_info"):
        url += "/object_info"
    try:
        status, body = await fetch_configured(url, timeout=timeout, limit=MAX_OBJECT_INFO_BYTES)
        if status != 200:
            raise ConfigError(f"{url} answered HTTP {status}; is CMR_COMFYUI_URL a running ComfyUI?")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ConfigError(f"Cannot reach ComfyUI at {url}: {exc or type(exc).__name__}",
                          hint="Start ComfyUI, fix CMR_COMFYUI_URL, or pass a saved object_info.json.") from None
    if len(body) > MAX_OBJECT_INFO_BYTES:
        raise ConfigError(f"{url} returned more than {MAX_OBJECT_INFO_BYTES:,} bytes.")
    try:
        return _check(json.loads(body), url)
    except ValueError:
        raise ConfigError(f"{url} did not return JSON.") from None


async def load_object_info(source: str | Path | None) -> dict | None:
    """A file path or an http(s) URL; None when not configured."""
    if source is None:
        return None
    s = str(source)
    if s.startswith(("http://", "https://")):
        return await fetch_object_info(s)
    return await asyncio.to_thread(read_object_info_file, s)
