"""Token leakage. The Hugging Face token goes only to the Hub, the Civitai key only to Civitai —
in the Authorization header, never in a URL — and neither ever appears in a log line, an error
message, a job, an event, a response, or the command line's output; not even when an upstream
echoes it back in an error.

Evidence: the fakes' request logs (every request with its Authorization header and raw path),
caplog at DEBUG for everything in-process, and stdout/stderr of real `cmr` processes.
"""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys

import pytest
from aiohttp import web

from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.types import DownloadRequest
from fakes.blobs import FakeFile, make_safetensors
from fakes.civitai import FakeCivitai
from support.paths import REPO

from .conftest import core_settings, door_environ, hostport, sidecar_door
from .harness import CIVITAI_KEY, HF_TOKEN, assert_no_secret

BEARER_HF = f"Bearer {HF_TOKEN}"
BEARER_CIV = f"Bearer {CIVITAI_KEY}"


@pytest.fixture(autouse=True)
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    yield caplog
    assert_no_secret(caplog.text, *(r.getMessage() for r in caplog.records))


def _all_text(job) -> str:
    return job.model_dump_json() + json.dumps(job.event().model_dump(mode="json"))


def _assert_header_only_at_home(records: list[dict], home_servers: set[str], bearer: str) -> None:
    for r in records:
        assert HF_TOKEN not in r["raw_path"] and CIVITAI_KEY not in r["raw_path"], r
        if r["server"] in home_servers:
            assert r["authorization"] == bearer, r
        else:
            assert r["authorization"] is None, r


# ---- downloads -----------------------------------------------------------------------------------
async def test_hub_token_goes_to_the_hub_only_not_the_cdn(sandbox, fake_hub, managers):
    f = FakeFile.safetensors("model.safetensors", 3 << 20, seed=51)
    fake_hub.add_repo("org/gated", [f], gated="manual")
    fake_hub.approve_token("org/gated", HF_TOKEN)
    fake_hub.switch(on="cdn", drop_after=1 << 20, times=1)  # a resume: the token must stay home on retries too
    m = managers(core_settings(sandbox, fake_hub, hf_token=HF_TOKEN))
    sub = m.events.subscribe()
    job = await m.wait((await m.submit(DownloadRequest(url=f"{fake_hub.url}/org/gated/resolve/main/model.safetensors",
                                                       folder="checkpoints"))).id, timeout=30)
    assert job.state == "completed" and job.sha256 == f.sha256
    _assert_header_only_at_home(fake_hub.requests(), {"hub"}, BEARER_HF)
    assert len(fake_hub.requests(server="cdn")) >= 2
    events = []
    while sub._items:
        events.append(sub._items.popleft())
    assert_no_secret(_all_text(job), repr(events), (sandbox.data / "downloads.sqlite").read_bytes().decode("latin-1"))


@pytest.mark.parametrize("target", ["scripted", "civitai-api"])
async def test_a_hub_redirect_to_another_allowlisted_host_gets_no_token(sandbox, fake_hub, managers, scripted, target):
    body = make_safetensors(4096, seed=52)
    fake_hub.add_repo("org/m", [FakeFile.safetensors("model.safetensors", 4096, seed=52)])
    async with FakeCivitai() as civ:
        if target == "scripted":
            location = scripted.set("model.safetensors", headers={"Content-Length": str(len(body))}, body=body)
        else:  # to Civitai's origin: the Civitai key must not be sent for a hop the Hub chose either
            location = f"{civ.url}/api/download/models/999999"
        fake_hub.switch("resolve", on="hub", status=302, location=location)
        s = core_settings(sandbox, fake_hub, hf_token=HF_TOKEN, civitai_base_url=civ.url, civitai_api_key=CIVITAI_KEY,
                          allowed_hosts=(hostport(fake_hub.cdn_url), scripted.hostport()))
        m = managers(s)
        job = await m.wait((await m.submit(DownloadRequest(
            url=f"{fake_hub.url}/org/m/resolve/main/model.safetensors", folder="checkpoints"))).id, timeout=30)
        assert_no_secret(_all_text(job))
        for r in scripted.log:
            assert "Authorization" not in r["headers"], r
        for r in civ.requests():
            assert r["authorization"] in (None, BEARER_CIV) and HF_TOKEN not in json.dumps(r)
    _assert_header_only_at_home(fake_hub.requests(), {"hub"}, BEARER_HF)


async def test_civitai_key_only_in_the_header_of_civitai_requests(sandbox, fake_hub, managers):
    async with FakeCivitai() as civ:
        blob = FakeFile.safetensors("civ.safetensors", 2 << 20, seed=53)
        version = civ.add_model("Key Test", "LORA", files=[blob]).versions[0]
        version.require_auth = True
        civ.add_api_key(CIVITAI_KEY)
        s = core_settings(sandbox, fake_hub, hf_token=HF_TOKEN, civitai_base_url=civ.url, civitai_api_key=CIVITAI_KEY,
                          allowed_hosts=(hostport(fake_hub.cdn_url), hostport(civ.storage_url)))
        m = managers(s)
        job = await m.wait((await m.submit(DownloadRequest(url=f"{civ.url}/api/download/models/{version.id}",
                                                           folder="loras", sha256=blob.sha256))).id, timeout=30)
        assert job.state == "completed", job.error
        _assert_header_only_at_home(civ.requests(), {"civitai"}, BEARER_CIV)
        assert all("token" not in r["query"] for r in civ.requests())
        assert_no_secret(_all_text(job))
    assert fake_hub.requests() == []


async def test_resolve_sends_each_token_home_only(sandbox, fake_hub):
    """The sources (Hub API through huggingface_hub, Civitai through aiohttp) and the pre-flight."""
    fake_hub.add_repo("acme/tok-lora", [FakeFile.safetensors("tok_lora.safetensors", 4096, seed=54)], downloads=10)
    fake_hub.add_token(HF_TOKEN)
    async with FakeCivitai() as civ:
        civ.add_model("Tok Lora", "LORA", files=[FakeFile.safetensors("civ_tok.safetensors", 4096, seed=55)])
        civ.add_api_key(CIVITAI_KEY)
        s = core_settings(sandbox, fake_hub, hf_token=HF_TOKEN, civitai_base_url=civ.url, civitai_api_key=CIVITAI_KEY,
                          allowed_hosts=(hostport(fake_hub.cdn_url), hostport(civ.storage_url)))
        resolver = await build_resolver(s)
        try:
            wf = {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": "tok_lora.safetensors"}},
                  "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "civ_tok.safetensors"}}}
            res = await resolver.resolve(wf, "tokens.json")
            text = res.model_dump_json()
        finally:
            await resolver.close()
        assert_no_secret(text)
        _assert_header_only_at_home(civ.requests(), {"civitai"}, BEARER_CIV)
        assert civ.requests(server="civitai")
    _assert_header_only_at_home(fake_hub.requests(), {"hub"}, BEARER_HF)
    assert fake_hub.requests(server="hub")


# ---- upstreams that echo the token back --------------------------------------------------------
def _echo(request: web.Request) -> web.Response:
    """An upstream that quotes the credential it got (without the 'Bearer ' a redactor would spot)."""
    got = request.headers.get("Authorization", "").removeprefix("Bearer ")
    return web.json_response({"error": f"Invalid credentials: {got}", "message": f"token {got} refused"},
                             status=401, headers={"X-Error-Message": f"Bad token {got}"})


@pytest.mark.parametrize("kind", ["hf", "civitai"])
async def test_tokens_echoed_by_an_upstream_never_reach_errors_or_logs(sandbox, managers, scripted, kind):
    url = scripted.on("model.safetensors", _echo)
    if kind == "hf":
        s = core_settings(sandbox, hf_endpoint=scripted.url, hf_token=HF_TOKEN)
    else:
        s = core_settings(sandbox, civitai_base_url=scripted.url, civitai_api_key=CIVITAI_KEY)
    m = managers(s)
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder="loras"))).id, timeout=30)
    assert job.state == "failed" and job.error["type"] == "AuthRequired"
    assert scripted.log and scripted.log[0]["headers"]["Authorization"].startswith("Bearer ")
    assert_no_secret(_all_text(job))


@pytest.mark.parametrize("kind", ["hf", "civitai"])
async def test_tokens_echoed_to_the_sources_never_reach_resolve_output(sandbox, scripted, kind):
    scripted.fallback = _echo
    if kind == "hf":
        s = core_settings(sandbox, hf_endpoint=scripted.url, hf_token=HF_TOKEN)
    else:  # the Hub answers (anonymously) from the same echoing server, so nobody waits on a closed port
        s = core_settings(sandbox, hf_endpoint=scripted.url, civitai_base_url=scripted.url, civitai_api_key=CIVITAI_KEY)
    resolver = await build_resolver(s)
    try:
        res = await resolver.resolve({"1": {"class_type": "LoraLoader", "inputs": {"lora_name": "echo_me.safetensors"}}})
        search = await resolver.search("echo me", "loras")
    finally:
        await resolver.close()
    assert scripted.log, "the sources never asked the echoing upstream"
    assert_no_secret(res.model_dump_json(), search.model_dump_json())


async def test_a_token_in_a_user_given_url_is_redacted_everywhere(sandbox, managers, scripted):
    body = make_safetensors(2048, seed=56)
    url = scripted.set("m.safetensors", headers={"Content-Length": str(len(body))}, body=body)
    m = managers(core_settings(sandbox, allowed_hosts=(scripted.hostport(),)))
    job = await m.wait((await m.submit(DownloadRequest(url=f"{url}?token={HF_TOKEN}&sig={CIVITAI_KEY}",
                                                       folder="loras"))).id, timeout=30)
    assert job.state == "completed"
    assert "***" in job.url
    assert_no_secret(_all_text(job), m.jobs()[0].model_dump_json())


# ---- the HTTP doors and settings ---------------------------------------------------------------
async def test_config_never_shows_tokens_and_the_file_is_private(sandbox, fake_hub):
    env = door_environ(sandbox, fake_hub, CMR_HF_TOKEN=HF_TOKEN)
    async with sidecar_door(sandbox, env) as door:
        status, before, text1 = await door.request("GET", "/config")
        assert status == 200 and before["hf_token"] == {"set": True}
        status, after, text2 = await door.request("PATCH", "/config", json_body={"civitai_api_key": CIVITAI_KEY})
        assert status == 200 and after["civitai_api_key"] == {"set": True}
        assert_no_secret(text1, text2)
    path = sandbox.data / "settings.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the key now


async def test_download_routes_and_jobs_never_carry_tokens(door, sandbox):
    door.hub.add_repo("org/g", [FakeFile.safetensors("g.safetensors", 8192, seed=57)], gated="manual")
    status, _, _ = await door.request("PATCH", "/config", json_body={"hf_token": HF_TOKEN})
    assert status == 200
    door.hub.approve_token("org/g", HF_TOKEN)
    url = f"{door.hub.url}/org/g/resolve/main/g.safetensors"
    status, job, text = await door.request("POST", "/downloads", json_body={"url": url, "folder": "loras"})
    assert status == 202
    await door.resolver.downloads.wait(job["id"], timeout=30)
    status, jobs, text2 = await door.request("GET", "/downloads")
    assert jobs["jobs"][0]["state"] == "completed"
    assert_no_secret(text, text2)
    _assert_header_only_at_home(door.hub.requests(), {"hub"}, BEARER_HF)


# ---- the command line ----------------------------------------------------------------------------
def _cli(sandbox, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(sandbox.parent / "home"), "PYTHONPATH": str(REPO),
            "CMR_MODELS_ROOT": str(sandbox.models), "CMR_DATA_DIR": str(sandbox.data), "CMR_ENV_FILE": "/nonexistent",
            "CMR_LOG_LEVEL": "DEBUG", "CMR_DISABLE_CATALOG": "1"}
    base.update(env)
    return subprocess.run([sys.executable, "-m", "comfyui_model_resolver", *args], capture_output=True, text=True,
                          env=base, timeout=120)


def test_cli_download_and_resolve_print_no_token(sandbox, fake_hub_thread):
    hub = fake_hub_thread
    hub.add_repo("org/cli", [FakeFile.safetensors("cli.safetensors", 1 << 20, seed=58)], gated="manual")
    hub.add_token(HF_TOKEN)
    hub.approve_token("org/cli", HF_TOKEN)
    env = {"CMR_HF_ENDPOINT": hub.url, "CMR_ALLOWED_HOSTS": hostport(hub.cdn_url), "CMR_HF_TOKEN": HF_TOKEN,
           "CMR_CIVITAI_API_KEY": CIVITAI_KEY, "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9"}
    ok = _cli(sandbox, "download", f"{hub.url}/org/cli/resolve/main/cli.safetensors", "--folder", "loras", "--json",
              "--no-progress", **env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    denied = _cli(sandbox, "download", f"{hub.url}/org/cli/resolve/main/cli.safetensors", "--folder", "loras",
                  "--filename", "other.safetensors", "--json", "--no-progress",
                  **{**env, "CMR_HF_TOKEN": "hf_WrongTokenButStillSecret123"})
    assert denied.returncode != 0
    wf = sandbox.parent.parent / "wf.json"  # beside the sandbox
    wf.write_text(json.dumps({"1": {"class_type": "LoraLoader", "inputs": {"lora_name": "cli.safetensors"}}}))
    res = _cli(sandbox, "resolve", str(wf), "--json", **env)
    assert res.returncode in (0, 1), res.stderr[-2000:]
    assert_no_secret(ok.stdout, ok.stderr, denied.stdout, denied.stderr, res.stdout, res.stderr)
    assert "hf_WrongTokenButStillSecret123" not in denied.stdout + denied.stderr
    for r in hub.requests():
        assert r["server"] == "hub" or r["authorization"] is None
        assert HF_TOKEN not in r["raw_path"]
    assert os.path.exists(sandbox.models / "loras" / "cli.safetensors")
