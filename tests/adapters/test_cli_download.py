"""`cmr download`: the --json line, exit codes (0 done, 1 failed, 2 bad usage, 130 paused), messages
without tracebacks or tokens, and Ctrl-C that pauses so the same command resumes."""
from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from support.downloads import MiB, close_env, finish, open_env, sha256_of, start_cli


@pytest.fixture
async def env(fake_hub, tmp_path):
    e = await open_env(fake_hub, tmp_path)
    try:
        yield e
    finally:
        await close_env(e)


async def test_json_line_on_success(env):
    f = env.add(size=2 * MiB)
    code, line, err = await finish(await start_cli(env))
    assert code == 0, err
    assert list(line) == ["path", "size", "sha256", "seconds"]
    assert line["path"] == str(env.final()) and line["size"] == f.size and line["sha256"] == f.sha256
    assert isinstance(line["seconds"], float) and line["seconds"] >= 0
    assert sha256_of(env.final()) == f.sha256


async def test_plain_output_and_explicit_name_and_hash(env):
    f = env.add(size=MiB)
    proc = await start_cli(env, "--filename", "SD1.5\\renamed.safetensors", "--sha256", f.sha256.upper(),
                           json_out=False)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    final = env.models / "checkpoints" / "SD1.5" / "renamed.safetensors"
    assert out.decode().startswith(str(final)) and f.sha256 in out.decode()
    assert sha256_of(final) == f.sha256


@pytest.mark.parametrize("args, url, message", [
    (["--sha256", "abc"], None, "sha256"),
    (["--filename", "../../etc/x.safetensors"], None, "goes up a directory"),
    ([], "https://evil.example/model.safetensors", "not on the download allowlist"),
    ([], "file:///etc/passwd", "Only http and https"),
])
async def test_bad_usage_exits_2_with_a_message(env, args, url, message):
    env.add(size=MiB)
    code, line, err = await finish(await start_cli(env, *args, url=url))
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not env.final().exists()


async def test_failure_exits_1_with_a_clear_error_and_no_token(env):
    env.add(size=MiB)
    env.hub.add_token("hf_sekrit")
    env.hub.switch(on="cdn", wrong_bytes=True)
    code, line, err = await finish(await start_cli(env, CMR_HF_TOKEN="hf_sekrit", CMR_DOWNLOAD_RETRIES="0"))
    assert code == 1
    assert "SHA-256 mismatch" in err and "quarantine" in err and "Traceback" not in err
    assert line["error"]["type"] == "IntegrityError"
    assert "hf_sekrit" not in err + json.dumps(line)
    assert not env.final().exists()


async def test_ctrl_c_pauses_and_the_same_command_resumes(env):
    f = env.add(size=4 * MiB)
    env.hub.switch(on="cdn", throttle_bps=MiB // 2)
    proc = await start_cli(env, CMR_SEGMENT_THRESHOLD=str(64 * MiB))
    part = env.final().with_name("model.safetensors.part")
    end = time.monotonic() + 30
    while not [r for r in env.hub.requests(server="cdn") if r["method"] == "GET"]:
        if time.monotonic() >= end:
            pytest.fail("timed out waiting (a hang, not a speed check)")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)  # let some bytes arrive
    proc.send_signal(signal.SIGINT)
    code, line, err = await finish(proc)
    assert code == 130, err
    assert "paused" in err and "run the same command again" in err and "Traceback" not in err
    assert line["paused"] is True and line["bytes_done"] > 0
    assert part.exists() and not env.final().exists()

    env.hub.clear_switches()
    env.hub.reset_log()
    code, line, err = await finish(await start_cli(env, CMR_SEGMENT_THRESHOLD=str(64 * MiB)))
    assert code == 0, err
    assert line["sha256"] == f.sha256 == sha256_of(env.final())
    first = [r for r in env.hub.requests() if r["method"] == "GET"][0]
    assert first["range"] != "bytes=0-"  # resumed, not restarted


async def test_a_mistyped_folder_is_refused_unless_asked_to_create_it(env):
    """`--folder lorass` would land where ComfyUI never looks: refused, with the likely folder named."""
    f = env.add(size=MiB)
    code, line, err = await finish(await start_cli(env, "--folder", "lorass"))
    assert code == 2 and line["error"]["code"] == "unknown_folder", err
    assert "'lorass' is not a ComfyUI model folder: did you mean loras?" in err and "Traceback" not in err
    assert "--create-folder" in err
    assert not (env.models / "lorass").exists()
    # an existing folder ComfyUI does not list by default is fine (a node pack's, made by hand)
    (env.models / "my_pack_models").mkdir()
    code, line, err = await finish(await start_cli(env, "--folder", "my_pack_models"))
    assert code == 0, err
    assert line["path"] == str(env.models / "my_pack_models" / f.path.rsplit("/", 1)[-1])
    # asked for: created
    code, line, err = await finish(await start_cli(env, "--folder", "brand_new", "--create-folder"))
    assert code == 0, err
    assert line["path"].startswith(str(env.models / "brand_new") + "/")
