"""Helpers for fleet tests: hosts (download managers with their own job database and host name)
on one models volume, and waiting for a condition without timing assertions."""
from __future__ import annotations

import asyncio

LEASE = 1.5  # seconds: a dead host's job is re-claimed after this


def host(env, server, name: str, **overrides):
    """A fleet host: its own job database and host name, the Redis of `server`, short leases."""
    overrides.setdefault("fleet_lease_seconds", LEASE)
    s = env.with_settings(redis_url=server.url, fleet_host=name, data_dir=env.root / f"data-{name}", **overrides)
    return env.manager(s)


async def until(check, what: str, timeout: float = 30.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def ends_cancelled_and_clean(env, manager, job_id: str, who: str = "the host") -> None:
    """`manager` sees the job end cancelled, removes its part file, and no file took the final name."""
    done = await manager.wait(job_id, timeout=60)
    assert done.state.value == "cancelled"
    await until(lambda: env.leftovers() == [], f"{who} to remove the cancelled job's part file")
    assert not env.final().exists()
