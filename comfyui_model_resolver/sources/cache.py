"""TTL cache of upstream search and metadata responses (JSON values).

One interface, three stores: SQLite in the data dir (default), Redis when CMR_REDIS_URL is set,
memory when the data dir is not writable. Keys are built by the callers from the endpoint, the
path, the parameters and whether a token was sent (a gated listing differs with a token); they
never contain a token. Values are JSON; a miss is None.
"""
from __future__ import annotations

import abc
import asyncio
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Marker stored for "the upstream said 404", so repeated misses cost no request either.
NOT_FOUND = {"__cmr_not_found__": True}


def is_not_found(value: Any) -> bool:
    return isinstance(value, dict) and value.get("__cmr_not_found__") is True


class ResponseCache(abc.ABC):
    """get/set JSON values by string key with a TTL in seconds."""

    kind = "abstract"

    @abc.abstractmethod
    async def get(self, key: str) -> Any | None: ...

    @abc.abstractmethod
    async def set(self, key: str, value: Any, ttl: float) -> None: ...

    async def close(self) -> None:
        return None


class MemoryCache(ResponseCache):
    kind = "memory"

    def __init__(self, clock=time.time) -> None:
        self._data: dict[str, tuple[float, str]] = {}
        self._clock = clock

    async def get(self, key: str) -> Any | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        expires, raw = hit
        if expires <= self._clock():
            self._data.pop(key, None)
            return None
        return json.loads(raw)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        if ttl > 0:
            self._data[key] = (self._clock() + ttl, json.dumps(value, separators=(",", ":")))


class SqliteCache(ResponseCache):
    """One table, expired rows purged on open and skipped on read. Blocking calls run in a thread."""

    kind = "sqlite"

    def __init__(self, path: str | Path, clock=time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, expires REAL NOT NULL, "
                             "value TEXT NOT NULL)")
            self._db.execute("DELETE FROM responses WHERE expires <= ?", (self._clock(),))
            self._db.commit()

    def _get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT expires, value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None or row[0] <= self._clock():
            return None
        return json.loads(row[1])

    def _set(self, key: str, value: Any, ttl: float) -> None:
        raw = json.dumps(value, separators=(",", ":"))
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (key, self._clock() + ttl, raw))
            self._db.commit()

    async def get(self, key: str) -> Any | None:
        return await asyncio.to_thread(self._get, key)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        if ttl > 0:
            await asyncio.to_thread(self._set, key, value, ttl)

    async def close(self) -> None:
        with self._lock:
            self._db.close()


class RedisCache(ResponseCache):
    """redis.asyncio; keys are prefixed, TTLs are Redis expiries. A Redis outage degrades to misses."""

    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "cmr:resp:") -> None:
        import redis.asyncio as aioredis  # optional dependency: only when CMR_REDIS_URL is set

        self._redis = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._prefix = prefix
        self._warned = False

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("Redis cache unavailable (%s); continuing without it", type(exc).__name__)
            self._warned = True

    async def get(self, key: str) -> Any | None:
        try:
            raw = await self._redis.get(self._prefix + key)
        except Exception as exc:  # redis.ConnectionError, TimeoutError, …
            self._warn(exc)
            return None
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        try:
            await self._redis.set(self._prefix + key, json.dumps(value, separators=(",", ":")),
                                  px=max(1, int(ttl * 1000)))
        except Exception as exc:
            self._warn(exc)

    async def close(self) -> None:
        try:
            await self._redis.aclose()
        except Exception:  # pragma: no cover - best effort
            pass


def open_cache(redis_url: str | None, data_dir: Path | None) -> ResponseCache:
    """Redis when a URL is configured, else SQLite in the data dir, else memory."""
    if redis_url:
        return RedisCache(redis_url)
    if data_dir is not None:
        try:
            return SqliteCache(Path(data_dir) / "responses.sqlite")
        except (OSError, sqlite3.Error) as exc:
            log.warning("response cache in %s unavailable (%s); using memory", data_dir, exc)
    return MemoryCache()
