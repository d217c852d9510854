"""The ComfyUI adapter over real HTTP: a stand-in PromptServer, ComfyUI's route layout, loopback."""
from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import sys

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from comfyui_model_resolver.adapters import comfyui
from comfyui_model_resolver.adapters.comfyui_schemas import collect
from comfyui_model_resolver.adapters.routes import COMFYUI_EVENT, COMFYUI_PREFIX, ROUTES
from comfyui_model_resolver.types import DownloadState, ProgressEvent
from support.comfy_standin import StandInServer, make_folder_paths, make_nodes
from support.images import make_png
from support.paths import FRONTEND_FIXTURES, REPO

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def comfy_base(tmp_path):
    base = tmp_path / "ComfyUI"
    models = base / "models"
    for d in ("checkpoints/SD1.5", "loras", "vae", "configs", "upscale_models", "clip"):
        (models / d).mkdir(parents=True)
    (models / "checkpoints/SD1.5/fake_model.safetensors").write_bytes(b"x")
    (models / "configs/v1-inference.yaml").write_text("model: {}\n")
    (models / "upscale_models/4x_foo.pth").write_bytes(b"x")
    (models / "clip/t5xxl.safetensors").write_bytes(b"x")
    extra = tmp_path / "elsewhere"
    (extra / "my_loras").mkdir(parents=True)
    (extra / "my_loras/detail.safetensors").write_bytes(b"x")
    return base, extra


@pytest.fixture
async def comfy(comfy_base, tmp_path):
    """(client, server stand-in, adapter): the package installed as ComfyUI would."""
    base, extra = comfy_base
    fp = make_folder_paths(base, extra={"loras": [extra / "my_loras"], "pack_models": [base / "models/pack_models"]})
    nodes = make_nodes(fp)
    server = StandInServer(asyncio.get_running_loop())
    adapter = comfyui.install(server, fp, nodes, environ={"CMR_ENV_FILE": "/nonexistent"})
    client = TestClient(TestServer(server.build_app()))
    await client.start_server()
    yield client, server, adapter
    await client.close()
    await adapter.close()


def test_every_route_is_bound_once_under_the_prefix(comfy_base):
    base, _ = comfy_base
    fp = make_folder_paths(base)
    server = StandInServer()
    nodes = make_nodes(fp)
    fp.calls.clear()
    adapter = comfyui.install(server, fp, nodes, environ={"CMR_ENV_FILE": "/nonexistent"})
    bound = [(r.method, r.path) for r in server.routes]
    assert bound == [(r.method, COMFYUI_PREFIX + r.path) for r in ROUTES]
    assert adapter.resolver is None  # nothing is built at import time
    assert fp.calls == []  # and no node schema was read yet


def test_settings_inside_comfyui(comfy_base, tmp_path):
    base, _ = comfy_base
    fp = make_folder_paths(base)
    s = comfyui.comfyui_settings(fp, {"CMR_ENV_FILE": "/nonexistent"})
    assert s.comfyui_root == base and s.models_root == base / "models"
    assert s.effective_data_dir == base / "user" / "comfyui-model-resolver"
    s = comfyui.comfyui_settings(fp, {"CMR_ENV_FILE": "/nonexistent", "CMR_DATA_DIR": str(tmp_path / "d"),
                                      "CMR_MAX_CONCURRENT_DOWNLOADS": "7"})
    assert s.effective_data_dir == tmp_path / "d" and s.max_concurrent_downloads == 7


def test_runtime_settings_survive_a_restart(comfy_base):
    """PATCH /config persists in the data dir under ComfyUI's user dir; the next start reads it."""
    base, _ = comfy_base
    fp = make_folder_paths(base)
    s = comfyui.comfyui_settings(fp, {"CMR_ENV_FILE": "/nonexistent"})
    from comfyui_model_resolver.settings import persist_runtime_settings

    persist_runtime_settings(s, {"hf_token": "hf_x", "max_concurrent_downloads": 2})
    again = comfyui.comfyui_settings(fp, {"CMR_ENV_FILE": "/nonexistent"})
    assert again.hf_token.get_secret_value() == "hf_x" and again.max_concurrent_downloads == 2


def test_schemas_name_the_folder_of_every_model_input(comfy_base):
    base, extra = comfy_base
    fp = make_folder_paths(base, extra={"loras": [extra / "my_loras"], "pack_models": [base / "models/pack_models"]})
    nodes = make_nodes(fp)
    original = fp.get_filename_list
    schemas = collect(fp, nodes.NODE_CLASS_MAPPINGS, nodes.NODE_DISPLAY_NAME_MAPPINGS)
    assert fp.get_filename_list is original  # the wrapper is gone afterwards
    f = schemas.input_folders
    assert f["CheckpointLoaderSimple"] == {"ckpt_name": ("checkpoints",)}
    assert f["CheckpointLoader"] == {"ckpt_name": ("checkpoints",)}  # configs is not a model folder
    assert f["PackLoraLoader"] == {"lora": ("loras",)}  # names survived ["None"] + list
    assert f["ClipLoaderLegacy"] == {"clip_name": ("text_encoders",)}  # legacy "clip" canonicalised
    assert f["PackV3Loader"] == {"weights": ("pack_models",)}  # V3 node, empty folder: the list itself
    assert f["ImportTimeLister"] == {"model": ("upscale_models",)}  # equal to the folder's files
    assert f["TripleV3Copies"] == {f"clip_name{i}": ("text_encoders",) for i in (1, 2, 3)}  # names survive copies
    assert set(f["MergedLoader"]["model_name"]) == {"checkpoints"}  # diffusion_models is empty
    assert "BrokenNode" in schemas.failed and "BrokenNode" not in schemas.object_info
    info = schemas.object_info["CheckpointLoaderSimple"]
    assert info["display_name"] == "Load Checkpoint"
    assert info["input"]["required"]["ckpt_name"][0] == ["SD1.5/fake_model.safetensors"]
    assert type(info["input"]["required"]["ckpt_name"][0][0]) is str  # tags never leave collect()
    json.dumps(schemas.object_info)


def test_empty_folders_are_still_attributed(tmp_path):
    base = tmp_path / "ComfyUI"
    (base / "models").mkdir(parents=True)
    fp = make_folder_paths(base, extra={"pack_models": [base / "models/pack_models"]})
    nodes = make_nodes(fp)
    f = collect(fp, nodes.NODE_CLASS_MAPPINGS).input_folders
    assert f["CheckpointLoaderSimple"] == {"ckpt_name": ("checkpoints",)}
    assert f["PackLoraLoader"] == {"lora": ("loras",)}  # ["None"] only: one folder asked, one combo left
    assert f["PackV3Loader"] == {"weights": ("pack_models",)}
    assert f["MergedLoader"] == {"model_name": ("checkpoints", "diffusion_models")}  # in call order
    assert f["TripleV3Copies"] == {f"clip_name{i}": ("text_encoders",) for i in (1, 2, 3)}  # copies of empty lists


def test_other_threads_never_get_tagged_values(comfy_base):
    import threading

    base, _ = comfy_base
    fp = make_folder_paths(base)
    seen = []
    go = threading.Event()

    class SlowNode:
        @classmethod
        def INPUT_TYPES(cls):
            go.set()
            t = threading.Thread(target=lambda: seen.append(fp.get_filename_list("checkpoints")))
            t.start()
            t.join()
            return {"required": {"ckpt_name": (fp.get_filename_list("checkpoints"),)}}

    collect(fp, {"SlowNode": SlowNode})
    assert go.is_set() and seen and type(seen[0]) is list and all(type(x) is str for x in seen[0])


async def test_analyze_uses_live_schemas_and_folder_paths(comfy):
    client, server, adapter = comfy
    wf = {"nodes": [
        {"id": 1, "type": "PackV3Loader", "widgets_values": ["pack/weights.safetensors"], "mode": 0},
        {"id": 2, "type": "PackLoraLoader", "widgets_values": ["detail.safetensors", 1.0], "mode": 0},
        {"id": 3, "type": "CheckpointLoaderSimple", "widgets_values": ["fake_model.safetensors"], "mode": 0},
    ], "links": [], "version": 0.4}
    resp = await client.post("/api/cmr/v1/analyze?name=pack.json", json=wf)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    by_node = {m["node_id"]: m for m in body["models"]}
    assert by_node["1"]["folder"] == "pack_models" and by_node["1"]["folder_source"] == "schema"
    assert by_node["1"]["status"] == "missing"
    # the lora lives in a directory registered like extra_model_paths.yaml does
    assert by_node["2"]["folder"] == "loras" and by_node["2"]["status"] == "present"
    assert by_node["3"]["status"] == "relocated" and by_node["3"]["relink_value"] == "SD1.5/fake_model.safetensors"
    assert adapter.schemas is not None and adapter.resolver is not None
    layout = (await (await client.get("/cmr/v1/models")).json())["layout"]
    assert any(d.endswith("my_loras") for d in layout["loras"])


async def test_bare_and_api_paths_both_answer(comfy):
    client, _, _ = comfy
    for path in ("/cmr/v1/config", "/api/cmr/v1/config"):
        resp = await client.get(path)
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")


async def test_upload_png_and_multipart(comfy):
    client, _, _ = comfy
    wf = json.loads((FRONTEND_FIXTURES / "missing/missing_models.json").read_text())
    png = make_png({"workflow": json.dumps(wf)})
    resp = await client.post("/cmr/v1/analyze", data=png, headers={"Content-Type": "image/png"})
    assert resp.status == 200 and (await resp.json())["format"] == "png"
    form = aiohttp.FormData()
    form.add_field("file", png, filename="shared.png", content_type="image/png")
    resp = await client.post("/cmr/v1/analyze", data=form)
    body = await resp.json()
    assert resp.status == 200 and body["workflow"] == "shared.png" and len(body["models"]) == 2


async def test_config_never_shows_tokens(comfy):
    client, _, adapter = comfy
    resp = await client.patch("/cmr/v1/config", json={"hf_token": "hf_secret_value", "civitai_api_key": "civ_secret"})
    assert resp.status == 200
    text = await (await client.get("/cmr/v1/config")).text()
    assert "hf_secret_value" not in text and "civ_secret" not in text
    cfg = json.loads(text)
    assert cfg["hf_token"] == {"set": True} and cfg["civitai_api_key"] == {"set": True}
    assert adapter.resolver.settings.hf_token.get_secret_value() == "hf_secret_value"


# ---- security -------------------------------------------------------------------------------------
async def test_cross_site_requests_are_refused(comfy):
    client, _, _ = comfy
    host = f"{client.host}:{client.port}"
    wf = {"nodes": [], "links": []}
    cases = [
        ({"Origin": "http://evil.example"}, "/cmr/v1/analyze"),
        ({"Origin": "http://evil.example", "Host": "comfy.lan:8188"}, "/cmr/v1/analyze"),  # non-loopback host too
        ({"Origin": "null"}, "/cmr/v1/analyze"),
        ({"Sec-Fetch-Site": "cross-site"}, "/cmr/v1/analyze"),
        ({"Origin": f"http://{client.host}:1"}, "/cmr/v1/analyze"),  # another port is another origin
    ]
    for headers, path in cases:
        resp = await client.post(path, json=wf, headers=headers)
        assert resp.status == 403, headers
    # ComfyUI's own middleware answers some of them before us; ours gives the JSON error shape
    resp = await client.patch("/cmr/v1/config", json={"hf_token": "x"},
                              headers={"Origin": "http://evil.example", "Host": "127.0.0.2:8188"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "cross_origin"
    resp = await client.get("/cmr/v1/config", headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status == 403
    # same origin, same-site fetch metadata and proxies that keep the original host are fine (a proxy
    # reaching ComfyUI on loopback sends an IP Host, nginx's default; a name there is DNS rebinding:
    # tests/adversarial/test_cross_origin.py). 127.0.0.2: an IP ComfyUI's own middleware leaves to us.
    for headers in ({"Origin": f"http://{host}"}, {"Sec-Fetch-Site": "same-origin"},
                    {"Origin": "https://comfy.example.com", "Host": "127.0.0.2:8188",
                     "X-Forwarded-Host": "comfy.example.com"}):
        resp = await client.post("/cmr/v1/analyze", json=wf, headers=headers)
        assert resp.status == 200, headers


async def test_allowed_origins_from_settings(comfy_base):
    base, _ = comfy_base
    fp = make_folder_paths(base)
    server = StandInServer(asyncio.get_running_loop())
    adapter = comfyui.install(server, fp, make_nodes(fp), environ={"CMR_ENV_FILE": "/nonexistent",
                                                                    "CMR_CORS_ORIGINS": "https://my.tools:9000"})
    async with TestClient(TestServer(server.build_app())) as client:
        ok = await client.post("/cmr/v1/analyze", json={"nodes": []}, headers={
            "Origin": "https://my.tools:9000", "Host": "127.0.0.2:8188"})
        bad = await client.post("/cmr/v1/analyze", json={"nodes": []}, headers={
            "Origin": "https://my.tools:9001", "Host": "127.0.0.2:8188"})
        assert ok.status == 200 and bad.status == 403
    await adapter.close()


async def test_simple_requests_cannot_reach_handlers(comfy):
    """A cross-site <form> or no-cors fetch can only send simple content types: all refused."""
    client, _, adapter = comfy
    cases = [
        ("POST", "/cmr/v1/downloads", "text/plain", '{"url": "https://huggingface.co/x", "folder": "loras"}'),
        ("POST", "/cmr/v1/downloads", "application/x-www-form-urlencoded", "url=x"),
        ("POST", "/cmr/v1/downloads", None, '{"url": "x"}'),
        ("PATCH", "/cmr/v1/config", "text/plain", '{"hf_token": "x"}'),
        ("POST", "/cmr/v1/analyze", "text/plain", "{}"),
        ("POST", "/cmr/v1/relink", "multipart/form-data; boundary=x", "--x--"),
    ]
    for method, path, ctype, data in cases:
        headers = {"Content-Type": ctype} if ctype else {}
        resp = await client.request(method, path, data=data.encode(), headers=headers,
                                    skip_auto_headers=["Content-Type"])
        assert resp.status == 415, (method, path, ctype)
        err = (await resp.json())["error"]
        assert err["code"] == "unsupported_media_type" and "application/json" in err["message"]
    assert adapter.resolver is None or not adapter.resolver.settings.hf_token


async def test_body_limits_give_413(comfy_base):
    base, _ = comfy_base
    fp = make_folder_paths(base)
    server = StandInServer(asyncio.get_running_loop())
    adapter = comfyui.install(server, fp, make_nodes(fp), environ={
        "CMR_ENV_FILE": "/nonexistent", "CMR_MAX_REQUEST_BYTES": "2048", "CMR_MAX_WORKFLOW_BYTES": "4096"})
    big = json.dumps({"nodes": [], "pad": "x" * 5000}).encode()
    async with TestClient(TestServer(server.build_app())) as client:
        resp = await client.post("/cmr/v1/analyze", data=big, headers=JSON)
        err = (await resp.json())["error"]
        assert resp.status == 413 and err["code"] == "workflow_too_large" and "CMR_MAX_WORKFLOW_BYTES" in err["hint"]

        async def chunked():
            for _ in range(10):
                yield b"x" * 1000

        resp = await client.patch("/cmr/v1/config", data=chunked(), headers=JSON)  # no Content-Length
        assert resp.status == 413 and "CMR_MAX_REQUEST_BYTES" in (await resp.json())["error"]["hint"]
        small = await client.post("/cmr/v1/analyze", data=b'{"nodes": []}', headers=JSON)
        assert small.status == 200
        bad = await client.patch("/cmr/v1/config", data=b"{nope", headers=JSON)
        assert bad.status == 400 and "request body is not valid JSON" in (await bad.json())["error"]["message"]
    await adapter.close()


# ---- progress ------------------------------------------------------------------------------------
def _event(job="j1", state=DownloadState.running, done=10):
    return ProgressEvent(job_id=job, state=state, filename="x.safetensors", folder="loras", bytes_done=done,
                         total=100, speed=5.0, eta=18.0)


async def test_progress_is_pushed_with_send_sync(comfy):
    client, server, adapter = comfy
    resolver = await adapter.get_resolver()
    for i in range(5):  # a burst of running updates is throttled ...
        resolver.events.publish(_event(done=10 + i))
    resolver.events.publish(_event(state=DownloadState.completed, done=100))  # ... terminal ones never are
    for _ in range(50):
        if any(d["state"] == "completed" for _, d, _ in server.sent):
            break
        await asyncio.sleep(0.02)
    events = [(e, d) for e, d, _ in server.sent]
    assert all(e == COMFYUI_EVENT for e, _ in events)
    states = [d["state"] for _, d in events]
    assert states[0] == "running" and states[-1] == "completed" and states.count("running") == 1
    assert events[0][1]["bytes_done"] == 10 and events[-1][1]["job_id"] == "j1"


async def test_download_events_stream(comfy):
    client, _, adapter = comfy
    resolver = await adapter.get_resolver()
    resp = await client.get("/api/cmr/v1/downloads/events")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    assert (await resp.content.readline()) == b"retry: 3000\n"
    await resp.content.readline()
    lines = []

    async def read_event():
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("event: progress"):
                data = (await resp.content.readline()).decode()
                return json.loads(data.removeprefix("data: "))
            lines.append(line)

    reader = asyncio.create_task(read_event())
    await asyncio.sleep(0.05)
    resolver.events.publish(_event(state=DownloadState.failed, done=3))
    data = await asyncio.wait_for(reader, 5)
    assert data["state"] == "failed" and data["bytes_done"] == 3
    resp.close()


def test_outside_comfyui_the_package_does_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "server", raising=False)
    spec = importlib.util.spec_from_file_location("cmr_root_pkg", REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.NODE_CLASS_MAPPINGS == {} and module.NODE_DISPLAY_NAME_MAPPINGS == {}
    assert module.WEB_DIRECTORY == "./web/js" and (REPO / "web/js").is_dir()
    assert not hasattr(module, "_ADAPTER")
    assert "server" not in sys.modules and "folder_paths" not in sys.modules


def test_only_the_comfyui_adapter_imports_comfyui_modules():
    import ast

    pkg = REPO / "comfyui_model_resolver"
    comfy_modules = {"server", "folder_paths", "nodes", "comfy", "comfy_api", "execution"}
    for path in pkg.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] in comfy_modules:
                    assert path == pkg / "adapters" / "comfyui.py", f"{path} imports {name}"


# ---- sources through the ComfyUI routes (fake Hub on loopback) -------------------------------------
@pytest.fixture
async def comfy_with_hub(comfy_base, fake_hub):
    from fakes import FakeFile

    base, extra = comfy_base
    fake_hub.add_repo("acme/detail-lora", [FakeFile.safetensors("detail_lora.safetensors", size=4096, seed=3)],
                      downloads=500)
    fp = make_folder_paths(base, extra={"loras": [extra / "my_loras"]})
    nodes = make_nodes(fp)
    server = StandInServer(asyncio.get_running_loop())
    hosts = ",".join(u.split("://", 1)[1] for u in (fake_hub.url, fake_hub.cdn_url))
    adapter = comfyui.install(server, fp, nodes, environ={
        "CMR_ENV_FILE": "/nonexistent", "CMR_HF_ENDPOINT": fake_hub.url, "CMR_ALLOWED_HOSTS": hosts,
        "CMR_DISABLE_CATALOG": "1"})
    client = TestClient(TestServer(server.build_app()))
    await client.start_server()
    yield client, fake_hub
    await client.close()
    await adapter.close()


async def test_resolve_route_finds_the_workflow_link(comfy_with_hub):
    client, hub = comfy_with_hub
    url = f"{hub.url}/acme/detail-lora/resolve/main/detail_lora.safetensors"
    wf = {"nodes": [{"id": 2, "type": "PackLoraLoader", "mode": 0, "widgets_values": ["detail_lora.safetensors", 1.0],
                     "properties": {"models": [{"name": "detail_lora.safetensors", "url": url, "directory": "loras"}]}}],
          "links": [], "version": 0.4}
    resp = await client.post("/api/cmr/v1/resolve?name=shared.json", json=wf)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    (model,) = body["models"]
    assert model["folder"] == "loras" and model["local_status"] == "missing" and model["status"] == "resolved"
    best = model["candidates"][0]
    assert best["url"] == url and best["size"] == 4096 and best["reasons"]
    assert body["workflow"] == "shared.json"


async def test_search_route(comfy_with_hub):
    client, _ = comfy_with_hub
    resp = await client.get("/cmr/v1/search", params={"q": "detail-lora", "folder": "loras"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["query"] == "detail-lora" and body["folder"] == "loras"
    assert any(c["url"].endswith("/detail_lora.safetensors") for c in body["candidates"])
    assert {p["name"] for p in body["providers"]} >= {"huggingface"}
    empty = await client.get("/cmr/v1/search?q=")
    assert empty.status == 400 and "search text" in (await empty.json())["error"]["message"]


# ---- downloads through the ComfyUI routes ---------------------------------------------------------
async def _wait_for(server, job_id, states=("completed", "failed", "cancelled"), timeout=30):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for event, data, _ in server.sent:
            if event == COMFYUI_EVENT and data.get("job_id") == job_id and data.get("state") in states:
                return data
        server.sent_event.clear()
        try:
            await asyncio.wait_for(server.sent_event.wait(), 0.5)
        except asyncio.TimeoutError:
            pass
    raise AssertionError(f"job {job_id} did not reach {states}: {[d for _, d, _ in server.sent][-5:]}")


@pytest.fixture
async def comfy_downloads(comfy_base, fake_hub):
    from fakes import FakeFile

    base, extra = comfy_base
    files = {"lora": FakeFile.safetensors("detail_lora.safetensors", size=3 << 20, seed=5),
             "upscale": FakeFile.safetensors("up_4x.safetensors", size=1 << 20, seed=6)}
    fake_hub.add_repo("acme/detail-lora", [files["lora"]])
    fake_hub.add_repo("acme/upscale", [files["upscale"]])
    fp = make_folder_paths(base, extra={"loras": [extra / "my_loras"]})
    server = StandInServer(asyncio.get_running_loop())
    hosts = ",".join(u.split("://", 1)[1] for u in (fake_hub.url, fake_hub.cdn_url))
    adapter = comfyui.install(server, fp, make_nodes(fp), environ={
        "CMR_ENV_FILE": "/nonexistent", "CMR_HF_ENDPOINT": fake_hub.url, "CMR_ALLOWED_HOSTS": hosts,
        "CMR_DISABLE_CATALOG": "1"})
    client = TestClient(TestServer(server.build_app()))
    await client.start_server()
    yield client, server, fake_hub, files, base
    await client.close()
    await adapter.close()


async def test_download_all_missing_from_a_resolve_result(comfy_downloads):
    client, server, hub, files, base = comfy_downloads
    lora_url = f"{hub.url}/acme/detail-lora/resolve/main/detail_lora.safetensors"
    up_url = f"{hub.url}/acme/upscale/resolve/main/up_4x.safetensors"
    wf = {"nodes": [
        {"id": 1, "type": "PackLoraLoader", "mode": 0, "widgets_values": ["detail_lora.safetensors", 1.0],
         "properties": {"models": [{"name": "detail_lora.safetensors", "url": lora_url, "directory": "loras"}]}},
        {"id": 2, "type": "ImportTimeLister", "mode": 0, "widgets_values": ["x4/up_4x.safetensors"],
         "properties": {"models": [{"name": "x4/up_4x.safetensors", "url": up_url, "directory": "upscale_models"}]}},
        {"id": 3, "type": "PackLoraLoader", "mode": 4, "widgets_values": ["detail_lora.safetensors", 0.5]},  # bypassed
        {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["SD1.5/fake_model.safetensors"]},
    ], "links": [], "version": 0.4}
    resolution = await (await client.post("/api/cmr/v1/resolve", json=wf)).json()
    rows = resolution["models"]
    assert [r["local_status"] for r in rows] == ["missing", "missing", "missing", "present"]
    resp = await client.post("/api/cmr/v1/downloads", json={"models": rows})
    assert resp.status == 202, await resp.text()
    body = await resp.json()
    jobs = body["jobs"]
    assert len(jobs) == 2 and len({j["id"] for j in jobs}) == 2  # the bypassed duplicate and the present one: no job
    assert body["errors"] == []
    for job in jobs:
        final = await _wait_for(server, job["id"])
        assert final["state"] == "completed", final
    lora_path = base / "models/loras/detail_lora.safetensors"
    up_path = base / "models/upscale_models/x4/up_4x.safetensors"  # the sub-folder the workflow names
    assert hashlib.sha256(lora_path.read_bytes()).hexdigest() == files["lora"].sha256
    assert hashlib.sha256(up_path.read_bytes()).hexdigest() == files["upscale"].sha256
    listed = (await (await client.get("/cmr/v1/downloads")).json())["jobs"]
    assert {j["state"] for j in listed} == {"completed"}
    one = await client.get(f"/cmr/v1/downloads/{jobs[0]['id']}")
    assert (await one.json())["state"] == "completed"
    again = (await (await client.post("/api/cmr/v1/analyze", json=wf)).json())["models"]
    assert [m["status"] for m in again[:2]] == ["present", "present"]
    nothing = await (await client.post("/api/cmr/v1/downloads", json={"models": [rows[3]]})).json()
    assert nothing["jobs"] == [] and nothing["errors"] == []  # present: nothing to do


async def test_download_refusals_and_cancel(comfy_downloads):
    client, server, hub, files, base = comfy_downloads
    bad_host = await client.post("/cmr/v1/downloads", json={"url": "https://evil.example/x.safetensors", "folder": "loras"})
    assert bad_host.status == 400 and (await bad_host.json())["error"]["code"] == "host_not_allowed"
    url = f"{hub.url}/acme/detail-lora/resolve/main/detail_lora.safetensors"
    escape = await client.post("/cmr/v1/downloads", json={"url": url, "folder": "loras", "filename": "../../evil.safetensors"})
    assert escape.status == 400 and (await escape.json())["error"]["code"] == "unsafe_path"
    for folder in ("../custom_nodes", "/etc", "C:\\Windows"):
        not_a_folder = await client.post("/cmr/v1/downloads", json={"url": url, "folder": folder})
        assert not_a_folder.status == 400 and (await not_a_folder.json())["error"]["code"] == "unsafe_path", folder
    hub.switch(None, on="cdn", throttle_bps=256 << 10)  # slow enough to cancel mid-way
    resp = await client.post("/cmr/v1/downloads", json={"url": url, "folder": "loras", "filename": "slow.safetensors"})
    assert resp.status == 202
    job = await resp.json()
    await _wait_for(server, job["id"], states=("running",))
    cancel = await client.delete(f"/cmr/v1/downloads/{job['id']}")
    assert cancel.status == 200 and (await cancel.json())["state"] == "cancelled"
    await _wait_for(server, job["id"], states=("cancelled",))
    assert not (base / "models/loras/slow.safetensors").exists()
    missing = await client.delete("/cmr/v1/downloads/nope")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "job_not_found"


async def test_gated_model_token_set_in_the_sidebar_form_unlocks_it(comfy_downloads):
    """What the sidebar does for a gated model: resolve says which token, PATCH /config sets it
    (write-only), resolve again finds it, and the download sends the token to the Hub only."""
    from fakes import FakeFile

    client, server, hub, files, base = comfy_downloads
    gated = FakeFile.safetensors("gated_lora.safetensors", size=1 << 20, seed=9)
    hub.add_repo("acme/gated", [gated], gated="manual")
    hub.approve_token("acme/gated", "hf_user_ok")
    url = f"{hub.url}/acme/gated/resolve/main/gated_lora.safetensors"
    wf = {"nodes": [{"id": 1, "type": "PackLoraLoader", "mode": 0, "widgets_values": ["gated_lora.safetensors", 1.0],
                     "properties": {"models": [{"name": "gated_lora.safetensors", "url": url, "directory": "loras"}]}}],
          "links": [], "version": 0.4}
    (row,) = (await (await client.post("/cmr/v1/resolve", json=wf)).json())["models"]
    assert row["status"] == "auth_required", row
    assert row["preflight"]["token_env"] == "CMR_HF_TOKEN" or row["candidates"][0]["token_env"] == "CMR_HF_TOKEN"
    resp = await client.patch("/cmr/v1/config", json={"hf_token": "hf_user_ok"})
    assert resp.status == 200 and (await resp.json())["hf_token"] == {"set": True}
    (row,) = (await (await client.post("/cmr/v1/resolve", json=wf)).json())["models"]
    assert row["status"] == "resolved", row
    jobs = (await (await client.post("/cmr/v1/downloads", json={"models": [row]})).json())["jobs"]
    final = await _wait_for(server, jobs[0]["id"])
    assert final["state"] == "completed", final
    assert hashlib.sha256((base / "models/loras/gated_lora.safetensors").read_bytes()).hexdigest() == gated.sha256
    cdn = hub.requests(server="cdn")
    assert cdn and all(r["authorization"] is None for r in cdn)  # the token never goes to the CDN
    assert "hf_user_ok" not in await (await client.get("/cmr/v1/config")).text()
