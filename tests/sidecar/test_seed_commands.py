"""The deploy spec's commands, run as written in a fresh venv (pip from the configured registry):

    pip install -r requirements-production.txt
    python -m uvicorn api.main:app --host 0.0.0.0 --port 5002
    pip install -r requirements-ui.txt -r requirements-optional.txt

and the image's entry point (`./start-production.sh` with the Dockerfile's ENV and the spec's
`-e CMR_COMFYUI_ROOT=…`, no API key), which `docker run … comfyui-resolver:production` runs. No key
given: one is generated on first start, kept 0600 in the data dir, printed once with the URLs;
/health stays open. The ports are free ones standing in for the spec's 5002 and 5001.
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from comfyui_model_resolver.adapters.routes import SIDECAR_PREFIX
from support.paths import REPO

from .test_deploy import _env as dockerfile_env

pytestmark = pytest.mark.timeout(900)
WF = {"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["x.safetensors"]}],
      "links": []}


def _port(wanted: int) -> int:
    """A free port standing in for `wanted` (the spec's): taking 5002 itself when free raced with other
    test runs on the same machine, which took it between our check and the server's bind."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def _outside_address() -> str | None:
    """This machine's non-loopback address (requests from it are not loopback requests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # UDP: no packet is sent
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    where = tmp_path_factory.mktemp("seed") / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", str(where)], check=True, timeout=120)
    return where


def _shell(command: str, venv: Path, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """A command as a user types it with the venv activated, from the checkout."""
    env = {**(env or _clean_env()), "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(venv)}
    return subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, **kw)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMR_", "PYTHON", "VIRTUAL_ENV"))}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    return env


def _spawn(command: str, venv: Path, env: dict, log: Path) -> subprocess.Popen:
    env = {**env, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(venv)}
    return subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=REPO, env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            return httpx.get(url, timeout=3)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _install(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "workspace" / "ComfyUI"
    (root / "models" / "checkpoints").mkdir(parents=True)
    (root / "main.py").write_text("# ComfyUI\n")
    return root, tmp_path / "data"


def _printed_key(log: Path) -> str:
    found = re.findall(r"API key: (\S+)", log.read_text())
    assert len(found) == 1, log.read_text()[-3000:]
    return found[0]


def _kept_key(data: Path, key: str) -> None:
    kept = data / "api_key"
    assert kept.read_text().strip() == key
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_production_requirements_and_the_uvicorn_command(venv, tmp_path):
    pip = _shell("pip install -q -r requirements-production.txt", venv, timeout=600)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]
    root, data = _install(tmp_path)
    port = _port(5002)
    command = "python -m uvicorn api.main:app --host 0.0.0.0 --port 5002".replace("5002", str(port))
    env = {**_clean_env(), "CMR_COMFYUI_ROOT": str(root), "CMR_DATA_DIR": str(data),
           "CMR_HF_ENDPOINT": "http://127.0.0.1:9", "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9"}
    log = tmp_path / "uvicorn.log"
    proc = _spawn(command, venv, env, log)
    try:
        health = _wait(f"http://127.0.0.1:{port}/health", proc, log)
        assert health.status_code == 200 and health.json()["ready"], health.text
        key = _printed_key(log)
        _kept_key(data, key)
        local = httpx.post(f"http://127.0.0.1:{port}{SIDECAR_PREFIX}/analyze", json=WF, timeout=30)
        assert local.status_code == 200 and local.json()["models"][0]["status"] == "missing"
        outside = _outside_address()
        if outside:  # beyond loopback: health open, changes need the generated key
            base = f"http://{outside}:{port}"
            assert httpx.get(f"{base}/health", timeout=10).status_code == 200
            body = {"url": "https://huggingface.co/a/b/resolve/main/x.safetensors", "folder": "lorass"}
            anonymous = httpx.post(f"{base}{SIDECAR_PREFIX}/downloads", json=body, timeout=10)
            assert anonymous.status_code == 401, anonymous.text
            keyed = httpx.post(f"{base}{SIDECAR_PREFIX}/downloads", json=body, timeout=10,
                               headers={"Authorization": f"Bearer {key}"})
            assert keyed.status_code == 400 and keyed.json()["error"]["code"] == "unknown_folder", keyed.text
    finally:
        _stop(proc)
    # a second start reuses the kept key and does not print it again
    log2 = tmp_path / "uvicorn2.log"
    proc = _spawn(command, venv, env, log2)
    try:
        assert _wait(f"http://127.0.0.1:{port}/health", proc, log2).status_code == 200
    finally:
        _stop(proc)
    assert "API key:" not in log2.read_text() and key not in log2.read_text()
    _kept_key(data, key)


def test_ui_and_optional_requirements_and_the_image_entry_point(venv, tmp_path):
    first = _shell("pip install -q -r requirements-production.txt", venv, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    pip = _shell("pip install -q -r requirements-ui.txt -r requirements-optional.txt", venv, timeout=600)
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-3000:]
    probe = _shell("python -c 'import gradio, redis, psutil'", venv, timeout=120)
    assert probe.returncode == 0, probe.stderr[-2000:]
    root, data = _install(tmp_path)
    api, ui = _port(5002), _port(5001)
    # what `docker run -d -e CMR_COMFYUI_ROOT=… -p 5002:5002 -p 5001:5001 comfyui-resolver:production` runs
    env = {**_clean_env(), **dockerfile_env(), "CMR_COMFYUI_ROOT": str(root), "CMR_DATA_DIR": str(data),
           "CMR_API_PORT": str(api), "CMR_GRADIO_PORT": str(ui), "CMR_HF_ENDPOINT": "http://127.0.0.1:9",
           "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9", "PYTHON": str(venv / "bin" / "python")}
    assert "CMR_API_KEY" not in env
    log = tmp_path / "entrypoint.log"
    proc = _spawn(shlex.quote(str(REPO / "start-production.sh")), venv, env, log)
    try:
        health = _wait(f"http://127.0.0.1:{api}/health", proc, log)
        assert health.status_code == 200 and health.json()["ready"], health.text
        _wait(f"http://127.0.0.1:{ui}/", proc, log)
        key = _printed_key(log)
        _kept_key(data, key)
        text = log.read_text()
        assert f":{api}/" in text and f":{ui}/" in text  # the URLs, with the key
        outside = _outside_address()
        if outside:
            from gradio_client import Client

            assert httpx.get(f"http://{outside}:{api}/health", timeout=10).status_code == 200
            with pytest.raises(Exception):
                Client(f"http://{outside}:{ui}/", verbose=False)  # the UI asks for the login
            client = Client(f"http://{outside}:{ui}/", auth=("cmr", key), verbose=False)
            jobs = client.predict(api_name="/jobs")
            assert isinstance(jobs, (list, tuple, dict))
    finally:
        _stop(proc)
