"""Properties of the API (hypothesis): any JSON value POSTed to analyze, resolve, relink, downloads or
PATCHed to config — and any bytes — get a result or a 4xx in the one error shape; never a 5xx, a
dropped connection, or an answer that is not JSON. Both doors, each a real server on loopback
(the ComfyUI routes on an aiohttp stand-in of PromptServer, the sidecar under uvicorn), with the fake
Hub as upstream so resolve and search really ask a source.

And of the parser: any JSON text (NaN, lone surrogates and deep nesting included) decodes to a
result or a WorkflowError.
"""
from __future__ import annotations

import asyncio
import json
import threading
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfyui_model_resolver.errors import WorkflowError
from comfyui_model_resolver.workflow.knowledge import Knowledge
from comfyui_model_resolver.workflow.parse import parse_workflow_bytes
from fakes.blobs import FakeFile

from .conftest import door_environ
from .harness import PREFIX, Sandbox

EXAMPLES = 120

# ---- strategies ------------------------------------------------------------------------------------
_any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=24)  # surrogates included
_names = st.sampled_from(["x.safetensors", "../../x.safetensors", "C:\\x.ckpt", "a/b.pt", "__init__.py", "",
                          "model.gguf", "None", "\u202e.ckpt", "loras", "checkpoints", "custom_nodes/x"])
_urls = st.sampled_from(["https://huggingface.co/a/b/resolve/main/x.safetensors", "http://169.254.169.254/",
                         "file:///etc/passwd", "https://evil.example/x", "", "not a url", "ftp://x/y"])
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10 ** 40), max_value=10 ** 40),
                    st.floats(allow_nan=False, allow_infinity=False), _any_text, _names, _urls)
json_values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=5),
                                                       st.dictionaries(_any_text, c, max_size=5)), max_leaves=30)
_keys = st.sampled_from(["nodes", "links", "id", "type", "mode", "widgets_values", "inputs", "properties", "models",
                         "name", "url", "directory", "hash", "definitions", "subgraphs", "class_type", "workflow",
                         "prompt", "folder", "filename", "sha256", "size", "priority", "source", "keep_partial",
                         "include_inactive", "include_optional", "status", "chosen", "changes", "node_id",
                         "old_value", "new_value", "widget_index", "widget_key", "subgraph_path", "hf_token",
                         "civitai_api_key", "max_concurrent_downloads", "safetensors_only", "allowed_hosts", "path", "folder",
                         "filename"])
shaped = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(_keys, c, max_size=6)),
                      max_leaves=40)
bodies = st.one_of(json_values, st.dictionaries(_keys, shaped, max_size=7))
ROUTES = [("POST", "/analyze"), ("POST", "/resolve"), ("POST", "/relink"), ("POST", "/downloads"),
          ("PATCH", "/config"), ("POST", "/move")]


# ---- both doors as real loopback servers ---------------------------------------------------------------
class _Thread:
    """An event loop in a daemon thread; run coroutines on it from the (sync) test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def live_doors(tmp_path, fake_hub_thread):
    from aiohttp import web

    from comfyui_model_resolver.adapters import comfyui
    from support.comfy_standin import StandInServer, make_folder_paths, make_nodes

    from sidecar.main import create_app
    from comfyui_model_resolver.settings import Settings
    from ..sidecar.conftest import LiveServer

    fake_hub_thread.add_repo("acme/prop-lora", [FakeFile.safetensors("x.safetensors", 4096, seed=61)], downloads=5)
    sandbox = Sandbox.create(tmp_path / "sandbox")
    env = door_environ(sandbox, fake_hub_thread, CMR_HTTP_TIMEOUT="3")
    worker = _Thread()

    async def start_comfy():
        fp = make_folder_paths(sandbox.base)
        server = StandInServer(asyncio.get_running_loop())
        adapter = comfyui.install(server, fp, make_nodes(fp), environ=env)
        runner = web.AppRunner(server.build_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return adapter, runner, f"http://127.0.0.1:{port}"

    adapter, runner, comfy_url = worker.run(start_comfy())
    settings = Settings.load(env, env_file="/nonexistent", comfyui_root=sandbox.base, enable_ui=False)
    side = LiveServer(create_app(settings, environ=env, enable_ui=False)).start()
    try:
        yield {"comfyui": comfy_url + PREFIX["comfyui"], "sidecar": side.url + PREFIX["sidecar"]}, sandbox
    finally:
        side.stop()

        async def stop_comfy():
            await runner.cleanup()
            await adapter.close()

        worker.run(stop_comfy())
        worker.stop()
        sandbox.assert_safe()


def _check(resp: httpx.Response, where: str) -> None:
    assert resp.status_code < 500, f"{where}: {resp.status_code} {resp.text[:400]}"
    body = resp.json()  # always JSON
    if resp.status_code >= 400:
        assert set(body) == {"error"}, (where, body)
        err = body["error"]
        assert isinstance(err.get("type"), str) and isinstance(err.get("message"), str) and err["message"], (where, err)
        assert "code" in err and "hint" in err, (where, err)


def test_any_json_to_any_route_gives_a_result_or_a_4xx(live_doors):
    urls, _ = live_doors
    with httpx.Client(timeout=60) as client:
        for method, route in ROUTES:
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(body=bodies)
            def run(body):
                data = json.dumps(body).encode()  # surrogates travel as \\udxxx escapes
                for name, base in urls.items():
                    resp = client.request(method, base + route, content=data,
                                          headers={"Content-Type": "application/json"})
                    _check(resp, f"{name} {method} {route} {data[:200]!r}")

            run()


def test_any_bytes_to_the_upload_routes_give_a_result_or_a_4xx(live_doors):
    urls, _ = live_doors
    prefixes = st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x01\x00\x00WEBP", b"{", b"[", b'{"nodes": ['])
    with httpx.Client(timeout=60) as client:
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(prefix=prefixes, data=st.binary(max_size=400),
               ctype=st.sampled_from(["application/json", "image/png", "image/webp", "application/octet-stream"]),
               route=st.sampled_from(["/analyze", "/resolve"]))
        def run(prefix, data, ctype, route):
            for name, base in urls.items():
                resp = client.post(base + route, content=prefix + data, headers={"Content-Type": ctype})
                _check(resp, f"{name} {route} {ctype} {(prefix + data)[:100]!r}")
                resp = client.post(base + route, files={"file": ("wf.png", prefix + data)})
                _check(resp, f"{name} {route} multipart")

        run()


def test_any_query_to_search_and_models(live_doors):
    urls, _ = live_doors
    with httpx.Client(timeout=60) as client:
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(q=st.text(max_size=300), folder=st.one_of(st.none(), _names, st.text(max_size=20)),
               job=st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and s not in (".", "..")))
        def run(q, folder, job):
            params = {"q": q, **({"folder": folder} if folder is not None else {})}
            for name, base in urls.items():
                _check(client.get(base + "/search", params=params), f"{name} search {params}")
                _check(client.get(base + "/models", params={"folder": folder or ""}), f"{name} models")
                _check(client.get(base + "/downloads/" + quote(job, safe="")), f"{name} job {job!r}")

        run()


# ---- the parser -------------------------------------------------------------------------------------------
KNOWLEDGE = Knowledge()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.one_of(json_values, st.dictionaries(_keys, shaped, max_size=8)),
       wrap=st.sampled_from(["plain", "nodes", "api", "nan", "deep", "bom"]))
def test_any_json_text_parses_or_gives_a_workflow_error(value, wrap):
    if wrap == "nodes":
        value = {"nodes": [value], "links": []}
    elif wrap == "api":
        value = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": value}}
    text = json.dumps(value)
    if wrap == "nan":
        text = text.replace("0.0", "NaN", 1).replace("null", "Infinity", 1)
    elif wrap == "deep":
        text = "[" * 3000 + text + "]" * 3000
    data = text.encode()
    if wrap == "bom":
        data = b"\xef\xbb\xbf" + data
    try:
        parsed = parse_workflow_bytes(data, KNOWLEDGE, max_bytes=1 << 20)
    except WorkflowError as exc:
        assert exc.message
        return
    for ref in parsed.refs:  # whatever came in, what comes out can be written as UTF-8 JSON
        ref.model_dump_json().encode("utf-8")
