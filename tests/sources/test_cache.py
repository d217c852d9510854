"""The response cache: one interface over memory, SQLite and a real redis-server."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from comfyui_model_resolver.sources.cache import MemoryCache, RedisCache, SqliteCache, open_cache


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


async def _exercise(cache, clock=None):
    assert await cache.get("k") is None
    await cache.set("k", {"a": [1, 2]}, ttl=10)
    assert await cache.get("k") == {"a": [1, 2]}
    await cache.set("zero", 1, ttl=0)  # a zero TTL stores nothing
    assert await cache.get("zero") is None
    if clock is not None:
        clock.t += 11
        assert await cache.get("k") is None


async def test_memory():
    clock = Clock()
    await _exercise(MemoryCache(clock), clock)


async def test_sqlite_persists_across_instances(tmp_path):
    clock = Clock()
    c = SqliteCache(tmp_path / "r.sqlite", clock)
    await _exercise(c, clock)
    await c.set("keep", "v", ttl=100)
    await c.close()
    c2 = SqliteCache(tmp_path / "r.sqlite", clock)
    assert await c2.get("keep") == "v"
    await c2.close()


def test_open_cache_picks_the_store(tmp_path):
    assert open_cache(None, tmp_path).kind == "sqlite"
    assert open_cache(None, None).kind == "memory"
    assert open_cache("redis://127.0.0.1:1/0", tmp_path).kind == "redis"


@pytest.fixture
def redis_url():
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_redis_with_real_server_and_real_expiry(redis_url):
    import redis.asyncio as aioredis

    c = RedisCache(redis_url)
    try:
        await _exercise(c)
        await c.set("short", [1], ttl=0.2)
        assert await c.get("short") == [1]
        raw = aioredis.from_url(redis_url)
        assert 0 < await raw.pttl("cmr:resp:short") <= 200  # a Redis expiry, not a stored timestamp
        await raw.aclose()
        time.sleep(0.3)
        assert await c.get("short") is None
    finally:
        await c.close()


async def test_redis_outage_degrades_to_misses():
    c = RedisCache("redis://127.0.0.1:1/0")
    assert await c.get("k") is None
    await c.set("k", 1, ttl=10)  # no exception
    await c.close()
