"""Helpers for download tests: Settings pointing at the fakes, managers that close, file checks."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from comfyui_model_resolver.downloads import DownloadManager, RetryPolicy
from comfyui_model_resolver.index.layout import build_layout
from comfyui_model_resolver.settings import Settings
from fakes.blobs import FakeFile

#: Retries in tests: the same code path, milliseconds instead of seconds.
FAST_RETRY = RetryPolicy(base=0.01, cap=0.05)
REPO = "org/model"
REPO_ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def hostport(url: str) -> str:
    return urlsplit(url).netloc


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Env:
    hub: object
    root: Path
    settings: Settings
    managers: list[DownloadManager] = field(default_factory=list)

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def with_settings(self, **overrides) -> Settings:
        return self.settings.with_overrides(**overrides)

    def manager(self, settings: Settings | None = None, **kw) -> DownloadManager:
        s = settings or self.settings
        kw.setdefault("retry", FAST_RETRY)
        m = DownloadManager(s, build_layout(s.models_root), **kw)
        self.managers.append(m)
        return m

    def add(self, name: str = "model.safetensors", size: int = 3 << 20, *, seed: int = 1, repo: str = REPO,
            safetensors: bool | None = None) -> FakeFile:
        """Put one LFS file in `repo` (replacing the repo's files) and return it."""
        if safetensors is None:
            safetensors = name.endswith(".safetensors")
        f = FakeFile.safetensors(name, size, seed=seed) if safetensors else FakeFile(name, size=size, seed=seed)
        self.hub.add_repo(repo, [f])  # type: ignore[attr-defined]
        _ = f.sha256
        return f

    def url(self, name: str = "model.safetensors", repo: str = REPO) -> str:
        return f"{self.hub.url}/{repo}/resolve/main/{name}"  # type: ignore[attr-defined]

    def final(self, name: str = "model.safetensors", folder: str = "checkpoints") -> Path:
        return self.models / folder / name

    def leftovers(self, folder: str = "checkpoints") -> list[str]:
        """Files other than completed models in the folder (part files, lock files)."""
        return sorted(p.name for p in (self.models / folder).rglob("*") if p.suffix in (".part", ".lock"))


def make_settings(root: Path, hub, **overrides) -> Settings:
    base = dict(models_root=root / "models", data_dir=root / "data", hf_endpoint=hub.url,
                allowed_hosts=(hostport(hub.cdn_url),), segment_threshold=1 << 20, segments=4, download_ramp_probe=0,
                stall_timeout=1.0, download_timeout=5.0, download_retries=3)
    base.update(overrides)
    return Settings(**base)



def cli_env(env: Env, data_dir: Path | None = None, **extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    e.update({
        "PYTHONPATH": str(REPO_ROOT),
        "CMR_DATA_DIR": str(data_dir or env.data),
        "CMR_MODELS_ROOT": str(env.models),
        "CMR_HF_ENDPOINT": env.hub.url,
        "CMR_ALLOWED_HOSTS": hostport(env.hub.cdn_url),
        "CMR_SEGMENT_THRESHOLD": str(MiB),
        "CMR_STALL_TIMEOUT": "5",
        **extra,
    })
    return e


async def start_cli(env: Env, *args: str, data_dir: Path | None = None, url: str | None = None,
                    json_out: bool = True, **extra: str):
    """`cmr download <url> --folder checkpoints [--json] *args` in a real process."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "comfyui_model_resolver", "download", url or env.url(), "--folder", "checkpoints",
        *(["--json"] if json_out else []), *args, env=cli_env(env, data_dir, **extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def finish(proc, timeout=60) -> tuple[int, dict | None, str]:
    """(exit code, last stdout line as JSON or None, stderr)."""
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    lines = out.decode().strip().splitlines()
    try:
        last = json.loads(lines[-1]) if lines else None
    except ValueError:
        last = None
    return proc.returncode, last, err.decode()




async def open_env(hub, root: Path):
    """Create the models folders and an Env for `hub` (close its managers with `close_env`)."""
    for folder in ("checkpoints", "loras", "vae"):
        (root / "models" / folder).mkdir(parents=True, exist_ok=True)
    return Env(hub, root, make_settings(root, hub))


async def close_env(env: Env) -> None:
    for m in env.managers:
        await m.close()
