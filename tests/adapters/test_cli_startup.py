"""Start-up: no command imports what it does not use (checked in a new process via sys.modules).

A user meets whole processes: `cmr --help` must not pay for pydantic or aiohttp, and `cmr analyze`
never contacts the Hub, so it must not import the download stack or huggingface_hub.
No timings here (they are measured by bench/run.py); only which modules a command loads.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from support.paths import FRONTEND_FIXTURES, REPO

_PROBE = """
import json, sys
from comfyui_model_resolver.adapters.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

HEAVY = ("aiohttp", "huggingface_hub", "fastapi", "gradio", "tqdm", "redis")


def loaded_by(tmp_path, *argv: str) -> tuple[int, set[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update({"CMR_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)})
    r = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120)
    last = json.loads(r.stdout.strip().splitlines()[-1])
    return last["code"], {m.split(".")[0] for m in last["modules"]}, r.stdout


def test_help_imports_only_argparse_and_the_error_types(tmp_path):
    code, mods, out = loaded_by(tmp_path, "--help")
    assert code == 0 and "analyze" in out and "download" in out
    assert not mods & {*HEAVY, "pydantic", "pydantic_core", "yaml", "asyncio", "sqlite3", "ssl"}


def test_each_commands_help_is_as_light(tmp_path):
    for command in ("analyze", "resolve", "download", "serve", "ui"):
        code, mods, out = loaded_by(tmp_path, command, "--help")
        assert code == 0 and "usage: cmr " + command in out
        assert not mods & {*HEAVY, "pydantic", "asyncio"}, command


def test_analyze_does_not_load_the_download_stack_or_the_hub_client(tmp_path):
    models = tmp_path / "models" / "checkpoints"
    models.mkdir(parents=True)
    (models / "v1-5-pruned-emaonly.safetensors").write_bytes(b"x")
    code, mods, out = loaded_by(tmp_path, "analyze", "--json", "--models-root", str(tmp_path / "models"),
                                str(FRONTEND_FIXTURES / "inputs/checkpoint_loader.json"))
    assert code == 0
    analysis = json.loads(out.strip().splitlines()[0])
    assert analysis["models"] and analysis["models"][0]["folder"] == "checkpoints"
    assert not mods & {*HEAVY, "pydantic", "yaml"}


async def test_download_loads_neither_pydantic_nor_the_hub_client_nor_tqdm(fake_hub, tmp_path):
    """A 1 KiB download is mostly start-up: aiohttp is needed, pydantic and huggingface_hub are not."""
    import asyncio

    from support.downloads import cli_env, close_env, open_env

    env = await open_env(fake_hub, tmp_path)
    try:
        f = env.add(size=1024, safetensors=False, name="tiny.bin")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _PROBE, "download", env.url("tiny.bin"), "--folder", "checkpoints", "--json",
            env=cli_env(env), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await close_env(env)
    lines = out.decode().strip().splitlines()
    probe = json.loads(lines[-1])
    assert probe["code"] == 0, err.decode()
    assert json.loads(lines[0])["sha256"] == f.sha256
    mods = {m.split(".")[0] for m in probe["modules"]}
    assert "aiohttp" in mods
    # no progress bar when stdout/stderr is not a terminal: tqdm is not even imported
    assert not mods & {"pydantic", "huggingface_hub", "fastapi", "gradio", "yaml", "tqdm"}
