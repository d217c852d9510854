"""Hole 2: SSRF through the Hub API. A Hub endpoint (a mirror set with CMR_HF_ENDPOINT or HF_ENDPOINT)
answers API calls — search, listings, trees — with a redirect to a host:port on no allowlist.

huggingface_hub's client follows such redirects wherever they point; resolve made 6 requests to the
target and search 1. The Hub API is now called with our own client, whose transport checks every hop
(`upstream.send`), so the redirect is refused before anything is sent. A `canary` loopback server is
the redirect target: each case passes only if it received not one request, through every door that
resolves or searches — the core, the ComfyUI routes and the sidecar, the Gradio UI, the CLI. Positive
control: the same request without the redirect finds the file on the Hub.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.settings import Settings
from fakes.blobs import FakeFile
from support.paths import REPO

from .conftest import DOORS, door_environ, hostport

FILE = "ssrf_probe_lora.safetensors"
WF = {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": FILE}}}


def _publish(hub) -> None:
    hub.add_repo("Comfy-Org/ssrf-probe", [FakeFile.safetensors(FILE, 4096, seed=71)], downloads=50_000)


def _redirect_api(hub, canary, status: int = 307) -> None:
    """Every API answer of the Hub becomes a redirect to the canary (same path, its host:port)."""
    hub.switch("api", status=status, location=f"{canary.url}/api/models?search=x")


def _hf(res) -> object:
    return next(p for p in res.providers if p.name == "huggingface")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("env_name", ["CMR_HF_ENDPOINT", "HF_ENDPOINT"])
async def test_resolve_and_search_never_follow_an_api_redirect_off_the_allowlist(sandbox, fake_hub, canary,
                                                                                  env_name, status):
    _publish(fake_hub)
    _redirect_api(fake_hub, canary, status)
    env = {env_name: fake_hub.url, "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9", "CMR_DISABLE_CATALOG": "1",
           "CMR_ALLOWED_HOSTS": hostport(fake_hub.cdn_url), "CMR_HTTP_TIMEOUT": "5"}
    s = Settings.load(env, env_file="/nonexistent", models_root=sandbox.models, data_dir=sandbox.data)
    assert s.hf_endpoint == fake_hub.url
    resolver = await build_resolver(s)
    try:
        res = await resolver.resolve(WF, "ssrf.json")
        found = await resolver.search("ssrf probe", "loras")
    finally:
        await resolver.close()
    assert canary.log == []
    assert fake_hub.log.filter(server="hub"), "the Hub was asked (and answered with the redirect)"
    m = res.models[0]
    assert m.status != "resolved" and m.chosen is None
    hf = _hf(res)
    assert hf.state == "unavailable" and "not on the download allowlist" in (hf.detail or ""), hf
    assert found.candidates == () or all(c.source != "huggingface" for c in found.candidates)


async def test_positive_control_the_same_resolve_and_search_without_the_redirect(sandbox, fake_hub, canary):
    _publish(fake_hub)
    env = {"HF_ENDPOINT": fake_hub.url, "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9", "CMR_DISABLE_CATALOG": "1",
           "CMR_ALLOWED_HOSTS": hostport(fake_hub.cdn_url)}
    s = Settings.load(env, env_file="/nonexistent", models_root=sandbox.models, data_dir=sandbox.data)
    resolver = await build_resolver(s)
    try:
        res = await resolver.resolve(WF, "ssrf.json")
        found = await resolver.search("ssrf-probe", "loras")
    finally:
        await resolver.close()
    assert res.models[0].status == "resolved" and res.models[0].chosen.repo == "Comfy-Org/ssrf-probe"
    assert any(c.repo == "Comfy-Org/ssrf-probe" for c in found.candidates)
    assert canary.log == []


async def test_a_next_page_link_off_the_allowlist_is_not_followed(sandbox, fake_hub, canary):
    """Pagination is another hop: a `Link: <…>; rel="next"` to the canary is refused the same way."""
    from comfyui_model_resolver.sources.http import Upstream
    from comfyui_model_resolver.sources.huggingface import HuggingFaceSource

    for i in range(3):
        fake_hub.add_repo(f"acme/page-{i}", [FakeFile.safetensors(f"p{i}.safetensors", 1024, seed=80 + i)])
    fake_hub.page_size = 1
    s = Settings.load({}, env_file="/nonexistent", hf_endpoint=fake_hub.url, data_dir=sandbox.data,
                      civitai_base_url="http://127.0.0.1:9")
    up = Upstream(s)
    hub = HuggingFaceSource(s, up)
    try:
        page, nxt = await up.get_page(f"{fake_hub.url}/api/models", source="huggingface", ctx=None,
                                      params=[("limit", "3")])
        assert len(page) == 1 and nxt and nxt.startswith(fake_hub.url)  # the fake pages, like the Hub
        fake_hub.switch("search", status=302, location=f"{canary.url}/api/models?cursor=2")
        from comfyui_model_resolver.errors import SourceUnavailable

        with pytest.raises(SourceUnavailable) as exc:
            await hub.listing([("search", "page")], 3, None, "search 'page'")
        assert "not on the download allowlist" in exc.value.message
    finally:
        await up.close()
    assert canary.log == []


# ---- the HTTP doors: ComfyUI routes and sidecar ---------------------------------------------------
@pytest.mark.parametrize("door_name", sorted(DOORS))
@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "control"])
async def test_the_doors_resolve_and_search_without_reaching_the_canary(sandbox, fake_hub, canary, door_name,
                                                                        redirect):
    _publish(fake_hub)
    if redirect:
        _redirect_api(fake_hub, canary)
    async with DOORS[door_name](sandbox, door_environ(sandbox, fake_hub)) as door:
        status, res, text = await door.request("POST", "/resolve", content=json.dumps(WF).encode(),
                                               headers={"Content-Type": "application/json"})
        assert status == 200, text[:500]
        s_status, found, s_text = await door.request("GET", "/search", params={"q": "ssrf-probe", "folder": "loras"})
        assert s_status == 200, s_text[:500]
    assert canary.log == []
    model = res["models"][0]
    hf = next(p for p in res["providers"] if p["name"] == "huggingface")
    if redirect:
        assert model["status"] != "resolved" and hf["state"] == "unavailable"
        assert not any(c["source"] == "huggingface" for c in found["candidates"])
    else:  # positive control: the same requests find the file
        assert model["status"] == "resolved" and model["chosen"]["repo"] == "Comfy-Org/ssrf-probe"
        assert any(c["repo"] == "Comfy-Org/ssrf-probe" for c in found["candidates"])


# ---- the Gradio UI (real gradio_client over a live sidecar) ----------------------------------------
@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "control"])
def test_the_gradio_ui_resolves_without_reaching_the_canary(sandbox, fake_hub_thread, tmp_path, redirect):
    pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")
    gradio_client = pytest.importorskip("gradio_client", reason="gradio_client is not installed")
    from fakes.hub import FakeHub  # noqa: F401  (the thread fixture runs one)
    from sidecar.main import create_app

    from .test_gradio_cross_site import _server

    hub = fake_hub_thread
    _publish(hub)
    with _Canary() as canary:
        if redirect:
            _redirect_api(hub, canary)
        env = door_environ(sandbox, hub)
        settings = Settings.load(env, env_file="/nonexistent", comfyui_root=sandbox.base, enable_ui=True)
        server = _server(create_app(settings, environ=env, enable_ui=True))
        try:
            wf = tmp_path / "ssrf.json"
            wf.write_text(json.dumps(WF))
            client = gradio_client.Client(f"{server.url}/gradio/", verbose=False, download_files=False,
                                          analytics_enabled=False)
            _table, _workflows, _choices, details, _log = client.predict(gradio_client.handle_file(str(wf)),
                                                                         api_name="/resolve")
            details = json.loads(details)  # the UI gives the route's JSON as text
        finally:
            server.stop()
        assert canary.log == []
    model = details["models"][0]
    if redirect:
        assert model["status"] != "resolved"
        assert next(p for p in details["providers"] if p["name"] == "huggingface")["state"] == "unavailable"
    else:
        assert model["status"] == "resolved" and model["chosen"]["repo"] == "Comfy-Org/ssrf-probe"


# ---- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "control"])
def test_cmr_resolve_does_not_reach_the_canary(sandbox, fake_hub_thread, tmp_path, redirect):
    hub = fake_hub_thread
    _publish(hub)
    with _Canary() as canary:
        if redirect:
            _redirect_api(hub, canary)
        wf = tmp_path / "ssrf.json"
        wf.write_text(json.dumps(WF))
        env = {"PATH": "/usr/bin:/bin", "HOME": str(sandbox.parent / "home"), "PYTHONPATH": str(REPO),
               "CMR_MODELS_ROOT": str(sandbox.models), "CMR_DATA_DIR": str(sandbox.data),
               "CMR_ENV_FILE": "/nonexistent", "CMR_DISABLE_CATALOG": "1", "HF_ENDPOINT": hub.url,
               "CMR_CIVITAI_BASE_URL": "http://127.0.0.1:9", "CMR_ALLOWED_HOSTS": hostport(hub.cdn_url)}
        out = subprocess.run([sys.executable, "-m", "comfyui_model_resolver", "resolve", str(wf), "--json"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert canary.log == []
    assert out.returncode in (0, 1, 3, 4), out.stderr[-2000:]
    res = json.loads(out.stdout.splitlines()[0])
    model = res["models"][0]
    if redirect:
        assert model["status"] != "resolved"
    else:
        assert model["status"] == "resolved" and model["chosen"]["repo"] == "Comfy-Org/ssrf-probe"


class _Canary:
    """The canary for tests whose fake Hub runs in a thread: a loopback server in a thread of its own."""

    def __init__(self) -> None:
        import http.server
        import threading

        log: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                log.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"[]")

            do_HEAD = do_GET  # noqa: N815

            def log_message(self, *args):  # quiet
                return None

        self.log = log
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "_Canary":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


# ---- the other upstream requests: Civitai's API and the pre-flight HEAD ----------------------------
@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "control"])
async def test_civitai_api_redirects_off_the_allowlist_are_not_followed(sandbox, canary, redirect):
    from fakes.civitai import FakeCivitai

    from .conftest import CLOSED, core_settings

    async with FakeCivitai() as civ:
        civ.add_model("Civ Probe", "LORA", files=[FakeFile.safetensors("civ_probe.safetensors", 4096, seed=72)])
        if redirect:
            civ.switch(None, on="civitai", status=307, location=f"{canary.url}/api/v1/models")
        s = core_settings(sandbox, hf_endpoint=CLOSED, civitai_base_url=civ.url,
                          allowed_hosts=(hostport(civ.storage_url),))
        resolver = await build_resolver(s)
        try:
            res = await resolver.resolve({"1": {"class_type": "LoraLoader",
                                                "inputs": {"lora_name": "civ_probe.safetensors"}}}, "civ.json")
        finally:
            await resolver.close()
        assert civ.requests(server="civitai"), "Civitai was asked"
    assert canary.log == []
    civitai = next(p for p in res.providers if p.name == "civitai")
    if redirect:
        assert civitai.state == "unavailable" and "not on the download allowlist" in (civitai.detail or "")
        assert not any(c.source == "civitai" for c in res.models[0].candidates)
    else:
        assert any(c.source == "civitai" and c.filename == "civ_probe.safetensors" for c in res.models[0].candidates)


@pytest.mark.parametrize("redirect", [True, False], ids=["redirect", "control"])
async def test_a_preflight_redirect_off_the_allowlist_is_not_followed(sandbox, fake_hub, canary, redirect):
    """The chosen file's pre-flight HEAD gets a redirect to the canary instead of the CDN."""
    from .conftest import core_settings

    _publish(fake_hub)
    if redirect:
        fake_hub.switch("resolve", status=302, location=f"{canary.url}/blobs/x")
    resolver = await build_resolver(core_settings(sandbox, fake_hub))
    try:
        res = await resolver.resolve(WF, "preflight.json")
    finally:
        await resolver.close()
    assert canary.log == []
    m = res.models[0]
    assert m.chosen is not None and m.chosen.repo == "Comfy-Org/ssrf-probe"
    assert m.preflight.state == ("not_allowed" if redirect else "ok"), m.preflight
