"""The fleet for real: a real redis-server, a real nginx serving model files at a capped rate per
connection, and 4 sidecar processes (uvicorn, as deployed) with their own job databases on one
models root. Bytes served come from nginx's access log, not from our own counters.

1. the same download submitted to all 4 hosts: one transfer (<= 1.1x the file) and one verified file;
2. the host running a download is kill -9'd at ~30%: another host finishes it after the lease runs
   out, resuming from the part file (<= 1.5x the file served in total);
3. host B lists and cancels a job submitted to host C;
4. Redis stopped mid-run and started again empty: no job lost, no corrupt file, the fleet
   reconciled (a job submitted while Redis was away included).

No timing assertions: the waits only bound the test. Figures (ratios, takeover time) are printed
(`pytest -s`) and written to <tmp>/figures.json.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fakes.blobs import make_safetensors
from support.nginx import Nginx
from support.paths import REPO
from support.redis_server import RedisServer, free_port

MiB = 1 << 20
SIZE = 16 * MiB
RATE = MiB  # bytes/s per connection: a 16 MiB file takes ~16 s on one connection (a checkpoint every 2 s)
#: seconds (CMR_FLEET_LEASE_SECONDS): how long a dead host's job waits for another host. CI runs 6 s;
#: FLEET_TEST_LEASE_SECONDS runs it shorter (more lease churn on a loaded machine: the fencing under test).
LEASE = float(os.environ.get("FLEET_TEST_LEASE_SECONDS") or 6)
HOSTS = ("h1", "h2", "h3", "h4")


class Host:
    def __init__(self, name: str, proc: subprocess.Popen, port: int) -> None:
        self.name, self.proc, self.port = name, proc, port
        self.api = f"http://127.0.0.1:{port}/api/v1"


def _env(name: str, models: Path, data: Path, redis: RedisServer, nginx: Nginx) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update({"PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False",
                "CMR_MODELS_ROOT": str(models), "CMR_DATA_DIR": str(data / name), "CMR_REDIS_URL": redis.url,
                "CMR_FLEET_HOST": name, "CMR_FLEET_LEASE_SECONDS": str(LEASE),
                "CMR_ALLOWED_HOSTS": f"127.0.0.1:{nginx.port}", "CMR_HF_ENDPOINT": "http://127.0.0.1:9",
                "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9", "CMR_DISABLE_CATALOG": "1", "CMR_ENABLE_UI": "0",
                "CMR_SEGMENTS": "1", "CMR_STALL_TIMEOUT": "5", "CMR_LOG_LEVEL": "INFO"})
    return env


def _spawn(name: str, env: dict[str, str], logs: Path) -> Host:
    port = free_port()
    log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "sidecar.main:app", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    log.close()
    return Host(name, proc, port)


async def _until(check, what: str, timeout: float = 90.0, every: float = 0.1):
    """Call `check()` (async) until it returns something truthy; fail with `what` after `timeout`."""
    end = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


async def _get(c: httpx.AsyncClient, url: str):
    try:
        r = await c.get(url, timeout=10)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


@pytest.fixture
async def fleet(tmp_path):
    redis = RedisServer(tmp_path / "redis")
    nginx = Nginx(tmp_path / "nginx", rate_bytes=RATE)
    redis.start()
    nginx.start()
    models, data, logs = tmp_path / "models", tmp_path / "data", tmp_path / "logs"
    (models / "checkpoints").mkdir(parents=True)
    logs.mkdir()
    hosts = {name: _spawn(name, _env(name, models, data, redis, nginx), logs) for name in HOSTS}
    figures: dict = {}
    try:
        # uvicorn closes a connection idle for 5 s (timeout_keep_alive); a request sent on it just then
        # fails with ReadError (seen once in CI, right after the 5 s `redis.stop()`). So the client
        # reuses a connection only within 2 s: a test of the fleet, not of keep-alive races.
        async with httpx.AsyncClient(limits=httpx.Limits(keepalive_expiry=2.0)) as c:
            for h in hosts.values():
                await _until(lambda h=h: _get(c, h.api + "/downloads"), f"{h.name} to answer", timeout=120)
            yield c, hosts, redis, nginx, models, figures
    finally:
        for h in hosts.values():
            if h.proc.poll() is None:
                h.proc.send_signal(signal.SIGTERM)
        for h in hosts.values():
            try:
                h.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                h.proc.kill()
                h.proc.wait()
        nginx.stop()
        redis.stop()
        (tmp_path / "figures.json").write_text(json.dumps(figures, indent=2))
        print("\nfleet figures:", json.dumps(figures))
        for name in HOSTS:  # what a host said, for a failure's report
            log = logs / f"{name}.log"
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {name} (last lines)\n" + "\n".join(tail))


def _file(nginx: Nginx, name: str, seed: int) -> str:
    data = make_safetensors(SIZE, seed=seed)
    (nginx.root / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


async def _submit(c, host: Host, nginx: Nginx, name: str, sha: str) -> dict:
    r = await c.post(host.api + "/downloads", json={"url": f"{nginx.url}/{name}", "folder": "checkpoints",
                                                    "filename": name, "sha256": sha}, timeout=30)
    assert r.status_code == 202, r.text
    return r.json()


async def _state(c, host: Host, job_id: str) -> dict | None:
    return await _get(c, f"{host.api}/downloads/{job_id}")


def _leftovers(models: Path) -> list[str]:
    return sorted(p.name for p in (models / "checkpoints").iterdir() if p.suffix == ".part")


async def test_four_sidecars_one_volume_one_redis_one_nginx(fleet):
    c, hosts, redis, nginx, models, figures = fleet
    h1, h2, h3, h4 = (hosts[n] for n in HOSTS)
    alive = dict(hosts)

    # ---- 1. the same download on all 4 hosts: one transfer, one verified file -------------------
    sha = _file(nginx, "same.safetensors", seed=1)
    jobs = await asyncio.gather(*(_submit(c, h, nginx, "same.safetensors", sha) for h in hosts.values()))
    assert len({j["id"] for j in jobs}) == 1, jobs
    job_id = jobs[0]["id"]
    done = await _until(lambda: _done(c, h4, job_id), "the shared download to complete")
    assert done["state"] == "completed" and done["host"] in HOSTS
    assert _sha256(models / "checkpoints" / "same.safetensors") == sha
    served = nginx.bytes_served("same.safetensors")
    figures["same_download_4_hosts"] = {"bytes_served_ratio": round(served / SIZE, 3),
                                        "requests": len(nginx.served("same.safetensors")), "ran_on": done["host"]}
    assert served <= 1.1 * SIZE, nginx.served("same.safetensors")
    for h in hosts.values():  # every host lists it (once), completed, with the host that ran it
        async def listed(h=h) -> list | None:
            jobs = [j for j in (await _get(c, h.api + "/downloads"))["jobs"] if j["id"] == job_id]
            return jobs if jobs and jobs[0]["state"] == "completed" else None
        (shown,) = await _until(listed, f"{h.name} to list the job completed")
        assert shown["host"] == done["host"]

    # ---- 2. kill -9 the host that runs a download at ~30%: another host finishes it --------------
    sha = _file(nginx, "killed.safetensors", seed=2)
    job = await _submit(c, h1, nginx, "killed.safetensors", sha)

    async def running_at_30() -> dict | None:
        j = await _state(c, h1, job["id"])
        return j if j and j["state"] == "running" and j["host"] and j["bytes_done"] >= 0.3 * SIZE else None

    at = await _until(running_at_30, "the download to reach 30%", every=0.05)
    victim = alive.pop(at["host"])
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    killed_at = time.monotonic()
    watcher = next(iter(alive.values()))

    async def taken_over() -> dict | None:
        j = await _state(c, watcher, job["id"])
        return j if j and j["host"] not in (None, victim.name) and j["state"] in ("running", "completed") else None

    took = await _until(taken_over, "another host to take the job over")
    takeover = time.monotonic() - killed_at
    done = await _until(lambda: _done(c, watcher, job["id"]), "the taken-over download to complete")
    finished = time.monotonic() - killed_at
    # another host finished it (on a loaded machine a slow host may lose its short lease and hand it on once more)
    assert done["state"] == "completed" and done["host"] != victim.name and took["host"] != victim.name
    assert _sha256(models / "checkpoints" / "killed.safetensors") == sha
    served = nginx.bytes_served("killed.safetensors")
    figures["kill_9_at_30_percent"] = {
        "bytes_served_ratio": round(served / SIZE, 3), "killed_at_fraction": round(at["bytes_done"] / SIZE, 3),
        "lease_seconds": LEASE, "takeover_seconds": round(takeover, 2), "taken_by": took["host"], "finished_by": done["host"], "finished_seconds_after_kill": round(finished, 2),
        "ranges": [rng for _, _, rng in nginx.served("killed.safetensors")]}
    assert served <= 1.5 * SIZE, nginx.served("killed.safetensors")
    assert any(rng.startswith("bytes=") and not rng.startswith("bytes=0-")
               for _, _, rng in nginx.served("killed.safetensors")), "the new host resumed with a Range request"

    # ---- 3. host B lists and cancels a job submitted to host C ----------------------------------
    b, c_host = list(alive.values())[:2]
    sha = _file(nginx, "cancelled.safetensors", seed=3)
    job = await _submit(c, c_host, nginx, "cancelled.safetensors", sha)

    async def listed_on_b() -> dict | None:
        jobs = (await _get(c, b.api + "/downloads") or {}).get("jobs", [])
        return next((j for j in jobs if j["id"] == job["id"] and j["state"] == "running" and j["bytes_done"] > 0), None)

    seen = await _until(listed_on_b, "host B to list host C's job while it runs")
    assert seen["host"] in alive and seen["lease"] == "held"
    r = await c.delete(f"{b.api}/downloads/{job['id']}", timeout=30)
    assert r.status_code == 200, r.text

    async def cancelled_everywhere() -> bool:
        states = [await _state(c, h, job["id"]) for h in alive.values()]
        return all(s and s["state"] == "cancelled" for s in states)

    await _until(cancelled_everywhere, "every host to show the job cancelled")
    await _until(lambda: _async(not (models / "checkpoints" / "cancelled.safetensors.part").exists()),
                 "the cancelled job's part file to be removed")
    assert not (models / "checkpoints" / "cancelled.safetensors").exists()
    figures["cancel_from_another_host"] = {"submitted_to": c_host.name, "cancelled_from": b.name, "ran_on": seen["host"],
                                           "cancelled_at_fraction": round(seen["bytes_done"] / SIZE, 3),
                                           "cancelled_everywhere": True, "part_file_removed": True, "no_final_file": True}

    # ---- 4. Redis stopped mid-run and started again (empty): no job lost, no corrupt file --------
    sha = _file(nginx, "outage.safetensors", seed=4)
    sha_late = _file(nginx, "during.safetensors", seed=5)
    first, second = list(alive.values())[:2]
    job = await _submit(c, first, nginx, "outage.safetensors", sha)

    async def running_some() -> dict | None:
        j = await _state(c, first, job["id"])
        return j if j and j["state"] == "running" and j["bytes_done"] >= 0.2 * SIZE else None

    await _until(running_some, "the download to be under way")
    redis.stop()
    late = await _submit(c, second, nginx, "during.safetensors", sha_late)  # Redis is away: runs on `second`

    async def fleet_health(online: bool) -> dict | None:
        body = await _get(c, f"http://127.0.0.1:{second.port}/health")
        return body if body and body.get("fleet", {}).get("online") is online else None

    away = await _until(lambda: fleet_health(False), "/health to say Redis is away")
    assert "cannot be reached" in away["fleet"]["warning"] and away["ready"] is True
    await asyncio.sleep(LEASE)  # longer than a lease: leases in Redis would all have run out
    redis.start()
    await _until(lambda: fleet_health(True), "/health to say the host is back in the fleet")
    outcome = {}
    for jid, name, want in ((job["id"], "outage.safetensors", sha), (late["id"], "during.safetensors", sha_late)):
        for h in alive.values():  # every host shows both jobs completed once the fleet is reconciled
            got = await _until(lambda h=h, jid=jid: _done(c, h, jid), f"{name} completed as seen from {h.name}")
            assert got["state"] == "completed", got
        assert _sha256(models / "checkpoints" / name) == want
        outcome[name] = {"bytes_served_ratio": round(nginx.bytes_served(name) / SIZE, 3),
                         "ranges": [rng for _, _, rng in nginx.served(name)]}
    figures["redis_restart_mid_run"] = outcome
    assert _leftovers(models) == []


async def _async(value):
    return value


async def _done(c, host: Host, job_id: str) -> dict | None:
    j = await _state(c, host, job_id)
    return j if j and j["state"] in ("completed", "failed", "cancelled") else None
