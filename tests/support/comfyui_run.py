"""Running a real ComfyUI for the end-to-end tests (tests/e2e): the shared harness, a git copy of this
repo for ComfyUI-Manager to install, free ports, a pinned newer frontend, and starting ComfyUI against
loopback fakes. Everything skips (pytest.skip) when a piece is missing; nothing here is imported by CI
unless COMFYUI_SRC is set."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from support.paths import REPO

PACK = "comfyui-model-resolver"


def harness() -> Path:
    for cand in (os.environ.get("COMFYUI_HARNESS"), REPO.parent / "shared/harness/comfyui",
                 REPO.parent.parent / "shared/harness/comfyui"):
        if cand and (Path(cand) / "manager-install.sh").is_file():
            return Path(cand)
    pytest.skip("the ComfyUI harness (shared/harness/comfyui) was not found; set COMFYUI_HARNESS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def requirements() -> dict:
    if not os.environ.get("COMFYUI_SRC"):
        pytest.skip("set COMFYUI_SRC to a ComfyUI source tree to run the real-ComfyUI tests")
    src = Path(os.environ["COMFYUI_SRC"])
    venv = Path(os.environ.get("COMFYUI_VENV", "/tmp/comfyui-venv"))
    manager = Path(os.environ.get("MANAGER_DIR", "/tmp/cmgr/ComfyUI-Manager"))
    pw = Path(os.environ.get("PW_DIR", "/tmp/comfyui-pw"))
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not (src / "main.py").is_file():
        pytest.skip(f"COMFYUI_SRC={src} has no main.py")
    if not (venv / "bin/python").is_file():
        pytest.skip(f"no ComfyUI venv at {venv}: run shared/harness/comfyui/setup.sh")
    if not (manager / "glob/manager_server.py").is_file():
        pytest.skip(f"no ComfyUI-Manager checkout at {manager} (set MANAGER_DIR)")
    if not (pw / "node_modules/playwright-core").is_dir() or not Path(chromium).is_file() or not shutil.which("node"):
        pytest.skip("chromium + node + playwright-core (PW_DIR) are needed: run setup.sh")
    return {"src": src, "venv": venv, "manager": manager, "pw": pw, "chromium": chromium, "harness": harness()}


def git_copy(dest: Path) -> str:
    """A git repo at `dest` holding the tracked files of this working tree, committed: the Manager clones it."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    env = {**os.environ, "GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@localhost",
           "GIT_COMMITTER_NAME": "e2e", "GIT_COMMITTER_EMAIL": "e2e@localhost"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "e2e snapshot"]):
        subprocess.run(cmd, cwd=dest, check=True, env=env, capture_output=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, capture_output=True, text=True, check=True).stdout.strip()


def frontend_root(version: str) -> Path:
    env = os.environ.get("FRONTEND_158_ROOT")
    if env and (Path(env) / "index.html").is_file():
        return Path(env)
    cache = Path(tempfile.gettempdir()) / f"cmr-e2e-frontend-{version}"
    static = cache / "comfyui_frontend_package" / "static"
    if (static / "index.html").is_file():
        return static
    cache.mkdir(parents=True, exist_ok=True)
    dl = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                         f"comfyui-frontend-package=={version}", "-d", str(cache)], capture_output=True, text=True)
    wheels = list(cache.glob(f"comfyui_frontend_package-{version}-*.whl"))
    if dl.returncode != 0 or not wheels:
        pytest.skip(f"comfyui-frontend-package {version} is not available (set FRONTEND_158_ROOT): {dl.stderr[-300:]}")
    with zipfile.ZipFile(wheels[0]) as z:
        z.extractall(cache)
    return static


def start_comfyui(installed: dict, port: int, env: dict) -> subprocess.CompletedProcess:
    """start.sh with the Manager-installed pack; `env` adds CMR_* settings, COMFYUI_ARGS, COMFYUI_VENV."""
    full = {**os.environ, "PORT": str(port), "COMFYUI_BASE": str(installed["base"]), "KEEP_BASE": "1",
            "COMFYUI_VENV": str(installed["venv_copy"]), "COMFYUI_SRC": str(installed["src"]), **env}
    return subprocess.run(["bash", str(installed["harness"] / "start.sh")], env=full, capture_output=True, text=True,
                          timeout=300)


def stop_comfyui(installed: dict, port: int) -> None:
    env = {**os.environ, "PORT": str(port), "COMFYUI_BASE": str(installed["base"])}
    subprocess.run(["bash", str(installed["harness"] / "stop.sh")], env=env, capture_output=True, timeout=60)
