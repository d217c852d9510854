"""Real processes: kill -9 mid-download then resume in a new process, and two processes (or hosts)
asking for the same file — with the file lock and with a real redis-server."""
from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from support.downloads import finish, sha256_of, start_cli

MiB = 1 << 20


def stored_done(db: Path) -> list[list[int]]:
    """What the job database says is on disk (read like a second process would)."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT data FROM jobs").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()
    return [span for (data,) in rows for span in json.loads(data)["done"]]


async def until(predicate, timeout=30.0, what="condition"):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def range_start(record) -> int:
    return int((record["range"] or "bytes=0-").split("=")[1].split("-")[0])


async def test_kill_9_mid_download_then_resume_in_a_new_process(env):
    f = env.add(size=8 * MiB)
    env.hub.switch(on="cdn", throttle_bps=MiB // 2)  # 4 connections x 0.5 MiB/s: seconds, not minutes
    db = env.data / "downloads.sqlite"
    proc = await start_cli(env)
    try:
        await until(lambda: sum(b - a for a, b in stored_done(db)) >= MiB, what="a checkpoint of 1 MiB")
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not env.final().exists() and Path(str(env.final()) + ".part").exists()
    held = sorted(stored_done(db))
    first_hole = held[0][1] if held[0][0] == 0 else 0
    assert first_hole > 0

    env.hub.clear_switches()
    env.hub.reset_log()
    code, line, err = await finish(await start_cli(env))
    assert code == 0, err
    assert line["path"] == str(env.final()) and line["size"] == f.size and line["sha256"] == f.sha256
    assert sha256_of(env.final()) == f.sha256 and env.leftovers() == []
    gets = [r for r in env.hub.requests() if r["method"] == "GET"]
    assert range_start(gets[0]) == first_hole  # the new process resumed with Range at the first missing byte
    held_bytes = {(a, b) for a, b in held}
    for r in gets:  # and never fetched again what the killed process had stored
        s = range_start(r)
        assert not any(a <= s < b for a, b in held_bytes), r["range"]


async def test_two_processes_one_download_with_the_file_lock(env, tmp_path):
    f = env.add(size=4 * MiB)
    env.hub.switch(on="cdn", throttle_bps=MiB)
    a = await start_cli(env, data_dir=tmp_path / "host-a")
    lock = Path(str(env.final()) + ".lock")
    await until(lock.exists, what="the first process's lock file")
    owner = json.loads(lock.read_text())
    assert owner["pid"] == a.pid
    b = await start_cli(env, data_dir=tmp_path / "host-b")  # another "host": its own job database
    assert not env.final().exists()
    (code_a, line_a, err_a), (code_b, line_b, err_b) = await asyncio.gather(finish(a), finish(b))
    assert code_a == 0 and code_b == 0, (err_a, err_b)
    assert line_a is not None and line_b is not None, ("last stdout line not JSON", err_a[-2000:], err_b[-2000:])
    assert line_a["path"] == line_b["path"] == str(env.final())
    assert line_a["sha256"] == line_b["sha256"] == f.sha256 == sha256_of(env.final())
    cdn_from_zero = [r for r in env.hub.requests(server="cdn") if r["method"] == "GET" and range_start(r) == 0]
    assert len(cdn_from_zero) == 1  # only one process downloaded the body
    assert env.leftovers() == []


@pytest.fixture
def redis_url(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_two_processes_one_download_with_redis(env, tmp_path, redis_url):
    """With CMR_REDIS_URL both processes join the fleet queue of the models volume: one job, one
    transfer, and both report the verified file."""
    import redis.asyncio as redis_asyncio

    f = env.add(size=4 * MiB)
    env.hub.switch(on="cdn", throttle_bps=MiB)
    client = redis_asyncio.from_url(redis_url, decode_responses=True)
    try:
        a = await start_cli(env, data_dir=tmp_path / "host-a", CMR_REDIS_URL=redis_url, CMR_FLEET_HOST="host-a")

        async def leased():
            vol = json.loads((env.models / ".cmr-volume").read_text())["volume"]
            return await client.zrange(f"cmr:{{{vol}}}:leases", 0, -1)

        end = time.monotonic() + 30
        while not (env.models / ".cmr-volume").exists() or not await leased():
            if time.monotonic() >= end:
                pytest.fail("the first process never took the job's lease")
            await asyncio.sleep(0.02)
        vol = json.loads((env.models / ".cmr-volume").read_text())["volume"]
        job_id = (await leased())[0]
        secs, micros = await client.time()
        expires_in = await client.zscore(f"cmr:{{{vol}}}:leases", job_id) - (int(secs) * 1000 + int(micros) // 1000)
        assert 0 < expires_in <= 30_000  # a lease in Redis time, not a forever lock
        b = await start_cli(env, data_dir=tmp_path / "host-b", CMR_REDIS_URL=redis_url, CMR_FLEET_HOST="host-b")
        (code_a, line_a, err_a), (code_b, line_b, err_b) = await asyncio.gather(finish(a), finish(b))
        assert code_a == 0 and code_b == 0, (err_a, err_b)
        # b joined a's job, or (if a had finished first) its own job found a's verified file
        states = await client.hgetall(f"cmr:{{{vol}}}:state")
        assert job_id in states and set(states.values()) == {"completed"}
        assert line_a["sha256"] == line_b["sha256"] == f.sha256 == sha256_of(env.final())
        cdn_from_zero = [r for r in env.hub.requests(server="cdn") if r["method"] == "GET" and range_start(r) == 0]
        assert len(cdn_from_zero) == 1
        assert await leased() == []  # released
    finally:
        await client.aclose()
