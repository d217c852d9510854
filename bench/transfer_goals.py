"""The transfer sections of bench/run.py: verified downloads against curl, a capped CDN against aria2c.

nginx (Debian package) serves generated safetensors files on loopback twice: at full speed and with
``limit_rate`` capping every connection (what CDNs do). Files are made by bench/download.py.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class Unavailable(Exception):
    """A tool a section needs is missing (the section is reported as skipped)."""


def _download_module():
    from run import bench_module  # bench/run.py

    return bench_module("download")


class Servers:
    def __init__(self, work: Path, fast: str, slow: str) -> None:
        self.work, self.fast, self.slow = work, fast, slow

    @property
    def hosts(self) -> str:
        return ",".join(u.split("//")[1] for u in (self.fast, self.slow))

    def file(self, size: int) -> tuple[str, str]:
        """(path on the servers, sha256) of a generated safetensors file of `size` bytes."""
        blob, _path = _download_module().make_file(self.work, size)
        return f"/blobs/{blob.sha256}", blob.sha256


@contextlib.contextmanager
def nginx_servers(work: Path, capped_rate: int):
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        yield None
        return
    with _download_module().nginx(work, capped_rate) as (fast, slow):
        yield Servers(work, fast, slow)


def one_kib(work: Path, cdn: Servers | None) -> tuple[str, str]:
    if cdn is None:
        raise Unavailable("nginx is not installed (apt-get install nginx)")
    path, sha = cdn.file(1024)
    return cdn.fast + path, sha


def cmr_download_cmd(url: str, sha: str, comfy_root: Path, filename: str) -> list[str]:
    from run import cmr_exe

    return [cmr_exe(), "download", url, "--folder", "checkpoints", "--filename", filename, "--sha256", sha,
            "--comfyui-root", str(comfy_root), "--no-progress"]


def _env(work: Path, cdn: Servers, tag: str) -> dict:
    from run import proc_env

    data = work / f"data-{tag}"
    shutil.rmtree(data, ignore_errors=True)
    return proc_env(CMR_ALLOWED_HOSTS=cdn.hosts, CMR_DATA_DIR=str(data))


def _settle() -> None:
    """Flush the previous run's dirty pages so every run starts from the same state (not timed)."""
    os.sync()


def _curl(url: str, out: Path) -> float:
    out.unlink(missing_ok=True)
    _settle()
    t = time.perf_counter()
    subprocess.run(["curl", "-sS", "--fail", "-o", str(out), url], check=True)
    dt = time.perf_counter() - t
    out.unlink()
    return dt


def _cmr(url: str, sha: str, work: Path, cdn: Servers, tag: str) -> float:
    from run import timed

    root = work / f"comfy-{tag}"
    target = root / "models" / "checkpoints" / "big.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    env = _env(work, cdn, tag)
    _settle()
    dt = timed(cmr_download_cmd(url, sha, root, "big.safetensors"), env)
    if not target.exists():
        raise RuntimeError("cmr download did not produce the file")
    target.unlink()
    return dt


async def _in_process(url: str, sha: str, work: Path, cdn: Servers) -> float:
    from comfyui_model_resolver.downloads import DownloadManager
    from comfyui_model_resolver.index.layout import build_layout
    from comfyui_model_resolver.settings import Settings
    from comfyui_model_resolver.types import DownloadRequest

    models = work / "inproc-models"
    (models / "checkpoints").mkdir(parents=True, exist_ok=True)
    final = models / "checkpoints" / "big.safetensors"
    final.unlink(missing_ok=True)
    data = work / "inproc-data"
    shutil.rmtree(data, ignore_errors=True)
    settings = Settings(models_root=models, data_dir=data, allowed_hosts=tuple(cdn.hosts.split(",")))
    manager = DownloadManager(settings, build_layout(models))
    _settle()
    try:
        t = time.perf_counter()
        job = await manager.submit(DownloadRequest(url=url, folder="checkpoints", filename="big.safetensors",
                                                   sha256=sha))
        job = await manager.wait(job.id)
        dt = time.perf_counter() - t
    finally:
        await manager.close()
    if job.state != "completed" or job.sha256 != sha:
        raise RuntimeError(f"the in-process download failed: {job.error}")
    final.unlink()
    return dt


def bench_download(args, work: Path, cdn: Servers | None) -> dict:
    from run import figure

    if cdn is None:
        raise Unavailable("nginx is not installed (apt-get install nginx)")
    if not shutil.which("curl"):
        raise Unavailable("curl is not installed (apt-get install curl)")
    size = args.size_mib << 20
    path, sha = cdn.file(size)
    url = cdn.fast + path
    curl_s, inproc_s, cmr_s = [], [], []
    # The first round warms up and is dropped, as in the other sections: on a VM the first GiB written
    # to the page cache lands on memory the guest never touched (curl measured 146 MB/s there, then
    # 423-614), and this process's own heap grows during its first in-process download.
    for _ in range(args.runs + (0 if args.tiny else 1)):
        curl_s.append(size / _curl(url, work / "curl.out") / 1e6)
        inproc_s.append(size / asyncio.run(_in_process(url, sha, work, cdn)) / 1e6)
        cmr_s.append(size / _cmr(url, sha, work, cdn, "fast") / 1e6)
    if not args.tiny:
        curl_s, inproc_s, cmr_s = curl_s[1:], inproc_s[1:], cmr_s[1:]
    common = dict(higher_is_better=True, unit="MB/s", baseline="curl -o (no hashing)", file_mib=args.size_mib)
    return {"in_process": figure(inproc_s, curl_s, goal=0.9, **common),
            "cmr_download_end_to_end": figure(cmr_s, curl_s, goal=0.8, **common)}


def ensure_aria2(no_install: bool) -> str:
    exe = shutil.which("aria2c")
    if exe:
        return exe
    if no_install or os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable("aria2c is not installed (apt-get install aria2; run as root to let the bench do it)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-q", "aria2"], env=env, stdout=subprocess.DEVNULL, check=False)
    if not shutil.which("aria2c"):
        subprocess.run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL, check=False)
        subprocess.run(["apt-get", "install", "-y", "-q", "aria2"], env=env, stdout=subprocess.DEVNULL, check=False)
    exe = shutil.which("aria2c")
    if not exe:
        raise Unavailable("apt-get install aria2 failed")
    return exe


def _aria2(exe: str, url: str, sha: str | None, work: Path) -> float:
    from run import timed

    out = work / "aria2-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    _settle()
    check = [f"--checksum=sha-256={sha}"] if sha else []
    dt = timed([exe, "-x4", "-s4", *check, "-d", str(out), "-o", "big.safetensors",
                "--console-log-level=warn", "--summary-interval=0", "--download-result=hide",
                "--allow-overwrite=true", "--auto-file-renaming=false", url])
    if not (out / "big.safetensors").exists():
        raise RuntimeError("aria2c did not produce the file")
    shutil.rmtree(out)
    return dt


def bench_capped(args, work: Path, cdn: Servers | None) -> dict:
    from run import figure

    if cdn is None:
        raise Unavailable("nginx is not installed (apt-get install nginx)")
    exe = ensure_aria2(args.no_install)
    size = args.capped_size_mib << 20
    path, sha = cdn.file(size)
    url = cdn.slow + path
    aria, aria_checked, ours = [], [], []
    for _ in range(max(1, args.runs)):
        aria.append(size / _aria2(exe, url, None, work) / 1e6)
        ours.append(size / _cmr(url, sha, work, cdn, "slow") / 1e6)
        aria_checked.append(size / _aria2(exe, url, sha, work) / 1e6)
    common = dict(higher_is_better=True, unit="MB/s", file_mib=args.capped_size_mib,
                  limit_rate_mib_per_s_per_connection=args.capped_mib_per_s,
                  ours_is="cmr download, whole process, SHA-256 verified")
    return {"cmr_download_vs_aria2c_x4": figure(ours, aria, goal=0.95, baseline="aria2c -x4 -s4 (no verification)",
                                                **common),
            "cmr_download_vs_aria2c_x4_checksum": figure(
                ours, aria_checked, goal=0.95, baseline="aria2c -x4 -s4 --checksum=sha-256 (verifies after)", **common)}


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run bench/run.py")
