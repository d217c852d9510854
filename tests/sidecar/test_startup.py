"""Start-up: a wrong or unset ComfyUI root is caught before serving (every way of starting), and a
server beyond loopback without CMR_API_KEY makes one, keeps it 0600 and says it once."""
from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from comfyui_model_resolver.errors import ConfigError
from comfyui_model_resolver.settings import Settings
from sidecar.startup import KEY_FILE, check_install, ensure_api_key
from support.paths import REPO

from .conftest import CLOSED, free_port


def _settings(tmp_path: Path, **kw) -> Settings:
    return Settings.load({}, env_file="/nonexistent", data_dir=tmp_path / "data", **kw)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update(CMR_DATA_DIR=str(tmp_path / "data"), CMR_HF_ENDPOINT=CLOSED, CMR_CIVITAI_BASE_URL=CLOSED,
               PYTHONPATH=str(REPO), GRADIO_ANALYTICS_ENABLED="False", CMR_ENABLE_UI="false", **extra)
    return env


def _comfyui(tmp_path: Path) -> Path:
    root = tmp_path / "ComfyUI"
    (root / "models" / "loras").mkdir(parents=True)
    (root / "main.py").write_text("")
    return root


def test_check_install_says_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="No ComfyUI install is configured") as e:
        check_install(_settings(tmp_path))
    assert "CMR_COMFYUI_ROOT" in e.value.hint
    with pytest.raises(ConfigError, match="does not exist"):
        check_install(_settings(tmp_path, comfyui_root=tmp_path / "ComfyUl"))  # a typo
    (tmp_path / "Downloads").mkdir()
    with pytest.raises(ConfigError, match="does not look like a ComfyUI install"):
        check_install(_settings(tmp_path, comfyui_root=tmp_path / "Downloads"))
    with pytest.raises(ConfigError, match="CMR_MODELS_ROOT=.* does not exist"):
        check_install(_settings(tmp_path, models_root=tmp_path / "nowhere"))
    check_install(_settings(tmp_path, comfyui_root=_comfyui(tmp_path)))
    # a fresh ComfyUI checkout whose models folder is not there yet: it is made
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "main.py").write_text("")
    check_install(_settings(tmp_path, comfyui_root=fresh))
    assert (fresh / "models").is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_check_install_refuses_an_unwritable_models_folder(tmp_path):
    root = _comfyui(tmp_path)
    (root / "models").chmod(0o555)
    try:
        with pytest.raises(ConfigError, match="not writable"):
            check_install(_settings(tmp_path, comfyui_root=root))
    finally:
        (root / "models").chmod(0o755)


@pytest.mark.parametrize("case", ["unset", "typo", "not-comfyui"])
def test_every_way_of_starting_refuses_a_wrong_root_with_the_reason(tmp_path, case):
    env = _env(tmp_path)
    if case == "typo":
        env["CMR_COMFYUI_ROOT"] = str(tmp_path / "ComfyUl")
    elif case == "not-comfyui":
        (tmp_path / "empty").mkdir()
        env["CMR_COMFYUI_ROOT"] = str(tmp_path / "empty")
    expected = {"unset": "No ComfyUI install is configured", "typo": "does not exist",
                "not-comfyui": "does not look like a ComfyUI install"}[case]
    port = str(free_port())
    for cmd in ([sys.executable, "-m", "comfyui_model_resolver", "serve", "--check"],
                [sys.executable, "-m", "comfyui_model_resolver", "serve", "--port", port],
                ["env", f"PYTHON={sys.executable}", str(REPO / "start-production.sh"), "--port", port],
                [sys.executable, "-m", "uvicorn", "sidecar.main:app", "--port", port]):
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, (cmd, out.stdout, out.stderr)
        assert expected in out.stderr and "Traceback" not in out.stderr, (cmd, out.stderr)


def test_check_passes_a_good_root_and_names_the_models_folder(tmp_path):
    root = _comfyui(tmp_path)
    out = subprocess.run([sys.executable, "-m", "comfyui_model_resolver", "serve", "--check", "--host", "0.0.0.0"],
                         cwd=tmp_path, env=_env(tmp_path, CMR_COMFYUI_ROOT=str(root)), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"configuration OK: models in {root / 'models'}" in out.stdout
    assert "a key will be generated on first start" in out.stdout
    assert not (tmp_path / "data" / KEY_FILE).exists()  # --check changes nothing


def test_ensure_api_key_generates_keeps_and_reuses(tmp_path):
    out = io.StringIO()
    settings = _settings(tmp_path)
    with_key = ensure_api_key(settings, urls=["API: http://<this host>:5002/"], out=out)
    key = with_key.api_key.get_secret_value()
    assert len(key) >= 32 and out.getvalue().count(key) == 1 and "http://<this host>:5002/" in out.getvalue()
    kept = tmp_path / "data" / KEY_FILE
    assert kept.read_text().strip() == key and stat.S_IMODE(kept.stat().st_mode) == 0o600
    again = io.StringIO()
    assert ensure_api_key(settings, out=again).api_key.get_secret_value() == key and again.getvalue() == ""
    mine = _settings(tmp_path, api_key="chosen-by-me")
    assert ensure_api_key(mine, out=again).api_key.get_secret_value() == "chosen-by-me" and again.getvalue() == ""


def test_ensure_api_key_without_a_writable_data_dir_still_serves(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = io.StringIO()
    settings = Settings.load({}, env_file="/nonexistent", data_dir=blocker / "data")
    key = ensure_api_key(settings, out=out).api_key.get_secret_value()
    assert key in out.getvalue() and "for this run only" in out.getvalue()


def test_serve_beyond_loopback_without_a_key_makes_one(tmp_path):
    """What the image does: `cmr serve` on 0.0.0.0 with no CMR_API_KEY starts, with a generated key."""
    root = _comfyui(tmp_path)
    port = free_port()
    env = _env(tmp_path, CMR_COMFYUI_ROOT=str(root), CMR_API_HOST="0.0.0.0", CMR_API_PORT=str(port))
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "comfyui_model_resolver", "serve", "--log-format", "text"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:  # a hang guard, not a timing check
                    pytest.fail("no /health within 60 s:\n" + log.read_text())
                time.sleep(0.1)
        assert health.status_code == 200
        [key] = re.findall(r"API key: (\S+)", log.read_text())
        assert (tmp_path / "data" / KEY_FILE).read_text().strip() == key
        assert f"API: http://<this host>:{port}/" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def test_unfinished_downloads_resume_once_the_server_answers(fake_hub, tmp_path):
    """The lifespan does not wait for the download stack: it starts in the background and resumes what
    the previous run left (here: a job stopped at shutdown, halfway), with no request asking for it."""
    import asyncio

    from comfyui_model_resolver.downloads.store import JobStore
    from comfyui_model_resolver.types import DownloadRequest
    from sidecar.main import create_app
    from support.downloads import close_env, open_env, sha256_of

    from .conftest import running

    env = await open_env(fake_hub, tmp_path)
    try:
        f = env.add(size=3 << 20)
        env.hub.switch(on="cdn", throttle_bps=2 << 20, times=1)
        settings = env.with_settings(segment_threshold=64 << 20, enable_ui=False)
        first = env.manager(settings)
        job = await first.submit(DownloadRequest(url=env.url(), folder="checkpoints"))
        while first.job(job.id).bytes_done < 512 * 1024:
            await asyncio.sleep(0.01)
        await first.close()  # checkpointed, left queued for the next start
        assert JobStore(env.data / "downloads.sqlite").get(job.id).state == "queued"
        app = create_app(settings, enable_ui=False)
        async with running(app) as c:
            assert (await c.get("/health")).json()["features"]["downloads"] is True
            for _ in range(3000):
                r = await c.get(f"/api/v1/downloads/{job.id}")
                if r.status_code == 200 and r.json()["state"] == "completed":
                    break
                await asyncio.sleep(0.01)
            assert r.status_code == 200 and r.json()["state"] == "completed", r.text
        assert sha256_of(env.final()) == f.sha256
    finally:
        await close_env(env)


def test_the_download_stack_loads_in_a_thread_not_on_the_event_loop(tmp_path):
    """`start_downloads` runs on the event loop: by then the manager (aiohttp and the rest) must be
    imported already, in a worker thread, or the loop stops answering for a quarter of a second."""
    probe = ("import asyncio, json, sys, threading\n"
             "from sidecar.main import _start_downloads\n"
             "before = 'aiohttp' in sys.modules\n"
             "seen = {}\n"
             "class Resolver:\n"
             "    async def start_downloads(self):\n"
             "        seen['manager'] = 'comfyui_model_resolver.downloads.manager' in sys.modules\n"
             "        seen['aiohttp'] = 'aiohttp' in sys.modules\n"
             "asyncio.run(_start_downloads(Resolver()))\n"
             "print(json.dumps({'before': before, **seen}))\n")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={**_env(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == '{"before": false, "manager": true, "aiohttp": true}'


def test_building_the_app_leaves_the_openapi_work_for_the_document(tmp_path):
    """API-only start-up is under a second (bench/run.py): building the app must not import pydantic.v1
    (FastAPI does, for any typed query parameter) nor build the request bodies' JSON schemas, which the
    document gets when it is first asked for."""
    probe = ("import json, sys\n"
             "import pydantic.main\n"
             "built = []\n"
             "real = pydantic.main.BaseModel.model_json_schema.__func__\n"
             "pydantic.main.BaseModel.model_json_schema = classmethod(lambda cls, *a, **k: built.append(cls.__name__)"
             " or real(cls, *a, **k))\n"
             "from fastapi.testclient import TestClient\n"
             "from sidecar.main import create_app\n"
             "from comfyui_model_resolver.settings import Settings\n"
             "app = create_app(Settings.load({}, env_file='/nonexistent', data_dir=sys.argv[1]), enable_ui=False)\n"
             "at_start = {'v1': 'pydantic.v1' in sys.modules, 'schemas': list(built)}\n"
             "doc = TestClient(app).get('/openapi.json').json()\n"
             "print(json.dumps({**at_start, 'components': sorted(doc['components']['schemas']),\n"
             "                  'health': [p['name'] for p in doc['paths']['/health']['get']['parameters']]}))\n")
    r = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "data")], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    out = __import__("json").loads(r.stdout.strip().splitlines()[-1])
    assert out["v1"] is False and out["schemas"] == []
    assert {"DownloadCreate", "ConfigPatch", "Error"} <= set(out["components"]) and out["health"] == ["upstreams"]
