"""Download throughput: ours (SHA-256 verified) vs curl vs huggingface_hub, against a real nginx.

    python bench/download.py [--size-mib 1024] [--runs 3] [--capped-mib-per-s 64] [--work DIR]

Set-up, all on loopback:
* nginx (Debian package) serves a generated file twice: at full speed, and with ``limit_rate``
  capping each connection (what CDNs do).
* the Hub fake (tests/fakes) answers ``/org/bench/resolve/main/model.safetensors`` with its 302,
  ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``, pointing at nginx as the CDN.

Run 1 (uncapped), same file, same disk, best of `--runs` each:
* ``curl`` straight from nginx (no hashing) — the baseline;
* ours: ``DownloadManager`` through the Hub fake (302 -> nginx), SHA-256 verified, safetensors
  checked, renamed into place — default settings (segments above 64 MiB), and with one connection;
* ``huggingface_hub.hf_hub_download(..., local_dir=…)`` through the Hub fake (no hash check).

Run 2 (capped per connection): ours with 1 and with 4 connections (curl for reference).

Prints one JSON object: MB/s (10^6 bytes per second) per tool, ratios from the same run, and
whether the goals hold (>= 0.9x curl with SHA-256; >= 3x single-stream on the capped server).
Needs: nginx, curl (apt-get install nginx curl); huggingface_hub is optional.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from comfyui_model_resolver.downloads import DownloadManager  # noqa: E402
from comfyui_model_resolver.index.layout import build_layout  # noqa: E402
from comfyui_model_resolver.settings import Settings  # noqa: E402
from comfyui_model_resolver.types import DownloadRequest  # noqa: E402
from fakes.blobs import FakeFile, safetensors_prefix  # noqa: E402
from fakes.hub import FakeHub  # noqa: E402

NAME = "model.safetensors"
REPO_ID = "org/bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_file(work: Path, size: int) -> tuple[FakeFile, Path]:
    """A valid safetensors file of `size` bytes, on disk for nginx and as the Hub fake's FakeFile."""
    blob = FakeFile(NAME, size=size, seed=7, prefix=safetensors_prefix(size))
    www = work / "www" / "blobs"
    www.mkdir(parents=True, exist_ok=True)
    path = www / blob.sha256
    if not path.exists() or path.stat().st_size != size:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for chunk in blob.iter_bytes(chunk_size=8 << 20):
                f.write(chunk)
        os.replace(tmp, path)
    os.chmod(path, 0o644)
    for p in (work, work / "www", www):
        os.chmod(p, 0o755)
    return blob, path


@contextlib.contextmanager
def nginx(work: Path, capped_rate: int):
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(exe):
        sys.exit("nginx is not installed: apt-get install -y nginx")
    fast, slow = free_port(), free_port()
    conf = work / "nginx.conf"
    (work / "tmp").mkdir(exist_ok=True)
    conf.write_text(textwrap.dedent(f"""
        worker_processes 2;
        daemon off;
        pid {work}/nginx.pid;
        error_log {work}/nginx-error.log;
        events {{ worker_connections 1024; }}
        http {{
          access_log off;
          sendfile on; tcp_nopush on; keepalive_requests 10000;
          default_type application/octet-stream;
          client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp; fastcgi_temp_path {work}/tmp;
          uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
          server {{ listen 127.0.0.1:{fast}; root {work}/www; }}
          server {{ listen 127.0.0.1:{slow}; root {work}/www; limit_rate {capped_rate}; }}
        }}
    """))
    proc = subprocess.Popen([exe, "-e", str(work / "nginx-error.log"), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", fast), timeout=0.2).close()
                socket.create_connection(("127.0.0.1", slow), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit("nginx did not start: " + proc.stderr.read().decode(errors="replace"))
                time.sleep(0.05)
        yield f"http://localhost:{fast}", f"http://localhost:{slow}"
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def settle() -> None:
    """Flush the previous run's dirty pages so every run starts from the same state (not timed)."""
    os.sync()


def curl(url: str, out: Path) -> float:
    out.unlink(missing_ok=True)
    settle()
    t = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", str(out), url], check=True)
    dt = time.perf_counter() - t
    size = out.stat().st_size
    out.unlink()
    return size / dt / 1e6


async def ours(settings: Settings, url: str, blob: FakeFile) -> float:
    models = Path(settings.models_root)
    final = models / "checkpoints" / NAME
    final.unlink(missing_ok=True)
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    manager = DownloadManager(settings, build_layout(models))
    settle()
    try:
        t = time.perf_counter()
        job = await manager.submit(DownloadRequest(url=url, folder="checkpoints"))
        job = await manager.wait(job.id)
        dt = time.perf_counter() - t
    finally:
        await manager.close()
    if job.state != "completed" or job.sha256 != blob.sha256:
        raise SystemExit(f"our download failed: {job.error}")
    final.unlink()
    return blob.size / dt / 1e6


HF_SCRIPT = """
import sys, time, os
from huggingface_hub import hf_hub_download
endpoint, repo, name, out = sys.argv[1:5]
t = time.perf_counter()
p = hf_hub_download(repo, name, local_dir=out, endpoint=endpoint)
print(os.path.getsize(p) / (time.perf_counter() - t) / 1e6)
"""


def hf(endpoint: str, work: Path) -> float | None:
    out = work / "hf-out"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HOME": str(work / "hf-home"), "HF_HUB_DOWNLOAD_TIMEOUT": "60"}
    env.pop("HF_TOKEN", None)
    settle()
    try:
        res = subprocess.run([sys.executable, "-c", HF_SCRIPT, endpoint, REPO_ID, NAME, str(out)],
                             capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        return None
    shutil.rmtree(out, ignore_errors=True)
    if res.returncode != 0:
        print(res.stderr[-2000:], file=sys.stderr)
        return None
    return float(res.stdout.strip().splitlines()[-1])


def summary(values: list[float | None]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"runs_mbps": values, "best": None, "median": None}
    return {"runs_mbps": [round(v, 1) for v in vals], "best": round(max(vals), 1),
            "median": round(statistics.median(vals), 1)}


def ratio(a: dict, b: dict, key: str = "best") -> float | None:
    return round(a[key] / b[key], 3) if a.get(key) and b.get(key) else None


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--capped-mib-per-s", type=int, default=64, help="nginx limit_rate per connection")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cmr-bench-download")
    ap.add_argument("--skip-hf", action="store_true")
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    size = args.size_mib << 20
    print(f"preparing a {args.size_mib} MiB file in {work} …", file=sys.stderr)
    blob, _ = make_file(work, size)
    cap = args.capped_mib_per_s << 20

    hub = FakeHub()
    await hub.start()
    try:
        hub.add_repo(REPO_ID, [blob])
        results: dict = {"file_mib": args.size_mib, "runs": args.runs, "cpu_count": os.cpu_count()}
        with nginx(work, cap) as (fast, slow):
            def settings(cdn: str, **kw) -> Settings:
                host = cdn.split("//")[1]
                base = dict(models_root=work / "models", data_dir=work / "data", hf_endpoint=hub.url,
                            allowed_hosts=(host,))
                base.update(kw)
                (work / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
                return Settings(**base)

            url = f"{hub.url}/{REPO_ID}/resolve/main/{NAME}"
            direct = f"{fast}/blobs/{blob.sha256}"
            # Run 1: uncapped. The Hub fake's 302 points at nginx.
            hub.urls["cdn"] = fast
            runs: dict[str, list] = {"curl": [], "ours": [], "ours_1conn": [], "hf_hub_download": []}
            for i in range(args.runs):
                print(f"uncapped run {i + 1}/{args.runs}", file=sys.stderr)
                runs["curl"].append(curl(direct, work / "curl.out"))
                runs["ours"].append(await ours(settings(fast), url, blob))
                runs["ours_1conn"].append(await ours(settings(fast, segments=1), url, blob))
                if not args.skip_hf:
                    runs["hf_hub_download"].append(await asyncio.to_thread(hf, hub.url, work))
            un = {k: summary(v) for k, v in runs.items()}
            un["ratios"] = {"ours/curl": ratio(un["ours"], un["curl"]),
                            "ours_1conn/curl": ratio(un["ours_1conn"], un["curl"]),
                            "ours/hf_hub_download": ratio(un["ours"], un["hf_hub_download"]),
                            "ours/curl (median)": ratio(un["ours"], un["curl"], "median")}
            results["uncapped"] = un
            # Run 2: nginx caps each connection.
            hub.urls["cdn"] = slow
            capped_runs: dict[str, list] = {"curl": [], "ours_1conn": [], "ours_4conn": []}
            for i in range(max(1, args.runs - 1)):
                print(f"capped run {i + 1}", file=sys.stderr)
                capped_runs["ours_1conn"].append(await ours(settings(slow, segments=1), url, blob))
                capped_runs["ours_4conn"].append(await ours(settings(slow, segments=4), url, blob))
            capped_runs["curl"].append(curl(f"{slow}/blobs/{blob.sha256}", work / "curl.out"))
            ca = {k: summary(v) for k, v in capped_runs.items()}
            ca["limit_rate_mib_per_s_per_connection"] = args.capped_mib_per_s
            ca["ratios"] = {"ours_4conn/ours_1conn": ratio(ca["ours_4conn"], ca["ours_1conn"])}
            results["capped"] = ca
        r1 = un["ratios"]["ours/curl"]
        r2 = ca["ratios"]["ours_4conn/ours_1conn"]
        results["goals"] = {"ours_with_sha256 >= 0.9x curl": bool(r1 and r1 >= 0.9),
                            "4 connections >= 3x one on a capped server": bool(r2 and r2 >= 3)}
        print(json.dumps(results, indent=2))
    finally:
        await hub.stop()


if __name__ == "__main__":
    asyncio.run(main())
