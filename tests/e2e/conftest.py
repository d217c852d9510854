"""The real-ComfyUI tests share one install through ComfyUI-Manager (it takes minutes)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from support.comfyui_run import PACK, free_port, git_copy, requirements


@pytest.fixture(scope="session")
def installed():
    """Install the pack through ComfyUI-Manager's "Install via Git URL"; yields the run's paths."""
    req = requirements()
    work = Path(tempfile.mkdtemp(prefix="cmr-e2e-"))
    repo = work / "src" / PACK
    repo.mkdir(parents=True)
    head = git_copy(repo)
    port = free_port()
    # a short path, like the harness default: the Manager's log line "EXECUTE => [python, install.py]"
    # must not wrap, or the harness cannot see that install.py ran
    run_dir = Path(tempfile.gettempdir()) / f"cmgr-run-{port}"
    env = {**os.environ, "COMFYUI_SRC": str(req["src"]), "COMFYUI_VENV": str(req["venv"]), "MANAGER_DIR": str(req["manager"]),
           "PORT": str(port), "WORK_DIR": str(run_dir), "KEEP": "1", "NETNS": os.environ.get("E2E_NETNS", "0"),
           "ROUTE": "git_url"}
    proc = subprocess.run(["bash", str(req["harness"] / "manager-install.sh"), str(repo)], env=env,
                          capture_output=True, text=True, timeout=900)
    results = (run_dir / "results.txt").read_text() if (run_dir / "results.txt").is_file() else proc.stdout
    info = {**req, "work": work, "repo": repo, "head": head, "run_dir": run_dir, "base": run_dir / "base",
            "venv_copy": run_dir / "venv", "results": results, "rc": proc.returncode, "output": proc.stdout + proc.stderr}
    try:
        yield info
    finally:
        if os.environ.get("E2E_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(run_dir, ignore_errors=True)
