"""Fixtures for fleet tests: a real redis-server and a models folder against the Hub fake (hosts
on it: support.fleet.host).

Teardown is bounded and always stops the redis-server, also when a test fails or closing a host
hangs (then the test fails, saying so, instead of waiting for pytest's timeout)."""
from __future__ import annotations

import asyncio

import pytest

from support.downloads import close_env, open_env
from support.redis_server import RedisServer

CLOSE_BOUND = 60.0  # closing every host of a test takes far less; more is a hang


@pytest.fixture
async def fleet(fake_hub, tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        env = await open_env(fake_hub, tmp_path)
        try:
            yield env, server
        finally:
            closing = asyncio.ensure_future(close_env(env))
            done, _ = await asyncio.wait({closing}, timeout=CLOSE_BOUND)
            if not done:
                pytest.fail(f"closing the fleet hosts took longer than {CLOSE_BOUND:.0f} s (a shutdown hang)")
            closing.result()

