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
import gc, json, sys
from comfyui_model_resolver.adapters.cli import main
if len(sys.argv) > 1 and sys.argv[1] == "--as-process":  # main() as the `cmr` script calls it
    sys.argv = ["cmr", *sys.argv[2:]]
    argv = None
else:
    argv = sys.argv[1:]
try:
    code = main(argv)
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules), "gc_enabled": gc.isenabled(),
                          "gc_frozen": gc.get_freeze_count()}))
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
    # a JSON workflow loads neither the A1111 parser nor html (for XMP packets in images)
    full = set(json.loads(out.strip().splitlines()[-1])["modules"])
    assert not full & {"comfyui_model_resolver.workflow.a1111", "html"}


async def test_download_loads_neither_pydantic_nor_the_hub_client_nor_tqdm(fake_hub, tmp_path):
    """A 1 KiB download is mostly start-up: aiohttp is needed, pydantic and huggingface_hub are not."""
    import asyncio

    from support.downloads import cli_env, close_env, open_env

    env = await open_env(fake_hub, tmp_path)
    try:
        f = env.add(size=1024, safetensors=False, name="tiny.bin")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _PROBE, "--as-process", "--log-level", "WARNING", "download",
            env.url("tiny.bin"), "--folder", "checkpoints", "--json",
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
    # nor the analysis stack: the loader table, the workflow parser and detectors, the local index
    analysis = {"comfyui_model_resolver.workflow." + m for m in ("knowledge", "parse", "detect", "decode")}
    analysis |= {"comfyui_model_resolver.index.scan", "comfyui_model_resolver.index.match"}
    assert not analysis & set(probe["modules"])
    # the collector was held back only while the command loaded: it runs again, start-up objects frozen
    assert probe["gc_enabled"] and probe["gc_frozen"] > 10_000
    # what the command imports while aiohttp loads is what it needs anyway: nothing extra
    from comfyui_model_resolver.adapters.cli_download import MEANWHILE

    assert set(MEANWHILE) <= set(probe["modules"])


def test_what_download_imports_meanwhile_does_not_wait_for_aiohttp(tmp_path):
    """`cmr download` imports these while aiohttp loads in another thread: any of them that imported
    aiohttp would wait for that thread instead (and the rest would load after it)."""
    from comfyui_model_resolver.adapters.cli_download import MEANWHILE

    probe = ("import importlib, json, sys\n"
             f"for name in {list(MEANWHILE)!r}: importlib.import_module(name)\n"
             "print(json.dumps(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    mods = {m.split(".")[0] for m in json.loads(r.stdout)}
    assert "comfyui_model_resolver" in mods and not mods & {*HEAVY, "pydantic"}


def test_a_usage_error_while_aiohttp_loads_exits_2_not_with_a_crash(tmp_path):
    """`cmr download` starts loading aiohttp (and the CA certificates) in a thread before it reads its
    arguments. A command that stops at once must not exit under that thread: OpenSSL's exit handler
    would free what the certificate load is using (SIGSEGV, seen as exit code -11)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update({"CMR_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)})
    for argv in (["download", "http://127.0.0.1:9/a.safetensors"],  # no --folder: argparse exits 2
                 ["download", "http://127.0.0.1:9/a.safetensors", "--folder", "checkpoints", "--sha256", "abc"]):
        for _ in range(3):
            r = subprocess.run([sys.executable, "-m", "comfyui_model_resolver", *argv], capture_output=True,
                               text=True, env=env, cwd=tmp_path, timeout=120)
            assert r.returncode == 2, (argv, r.returncode, r.stderr[-500:])
            assert "--folder" in r.stderr or "sha256" in r.stderr


def test_the_named_command_is_found_past_the_global_options():
    from comfyui_model_resolver.adapters.cli import _load_command_modules, _named_command, build_parser

    _load_command_modules()
    assert _named_command(["--log-level", "DEBUG", "download", "http://x/a"]) == "download"
    assert _named_command(["--log-level=DEBUG", "analyze", "a.json"]) == "analyze"
    assert _named_command(["--log-level", "analyze", "download"]) == "download"  # analyze is the level here
    assert _named_command(["--log", "download", "analyze", "a.json"]) == "analyze"  # an abbreviation, as argparse
    assert _named_command(["nonsense", "download"]) is None
    assert _named_command(["--help"]) is None and _named_command(["--log-level"]) is None
    # only the named command is set up, the others are still listed (what `cmr --help` shows)
    parser = build_parser("analyze")
    assert parser.parse_args(["analyze", "a.json"])._runner is not None
    assert not hasattr(parser.parse_args(["download"]), "_runner")  # listed, its arguments not set up
    assert "download" in parser.format_help() and "resolve" in parser.format_help()


def test_a_command_in_process_leaves_the_collector_alone(tmp_path, monkeypatch):
    """`main(argv)` (tests, embedding) never touches the interpreter's garbage collector."""
    import gc

    from comfyui_model_resolver.adapters.cli import main

    monkeypatch.setenv("CMR_DATA_DIR", str(tmp_path / "data"))
    frozen = gc.get_freeze_count()
    models = tmp_path / "models" / "checkpoints"
    models.mkdir(parents=True)
    assert main(["analyze", "--models-root", str(tmp_path / "models"),
                 str(FRONTEND_FIXTURES / "inputs/checkpoint_loader.json")]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen
