"""One contract: the same requests sent to the sidecar and to the ComfyUI routes (an aiohttp app bound
with the ComfyUI adapter's binding) give the same status and the same JSON.

The ComfyUI side is the real binding (`adapters/aiohttp_routes.bind_routes`) with the guard the
ComfyUI adapter uses, on a plain aiohttp app standing in for PromptServer."""
from __future__ import annotations

import json
from typing import Any

import httpx

from comfyui_model_resolver.adapters.routes import COMFYUI_PREFIX, SIDECAR_PREFIX
from comfyui_model_resolver.service import build_resolver
from sidecar.main import create_app
from support.images import make_png
from support.paths import FRONTEND_FIXTURES

from .conftest import make_settings, running
from .test_api import WF


def _relink_body() -> dict:
    return {"workflow": WF, "changes": [{"node_id": "1", "input": "ckpt_name", "widget_index": 0,
                                         "old_value": "fake_model.safetensors",
                                         "new_value": "SD1.5/fake_model.safetensors"}]}


#: (method, path under the prefix, request kwargs for httpx)
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/analyze", {"json": WF}),
    ("POST", "/analyze", {"json": WF, "params": {"name": "named.json"}}),
    ("POST", "/analyze", {"files": {"file": ("wf.png", make_png({"workflow": json.dumps(WF)}))}}),
    ("POST", "/analyze", {"content": b"{broken", "headers": {"content-type": "application/json"}}),
    ("POST", "/analyze", {"json": [1, 2, 3]}),
    ("POST", "/analyze", {"json": json.loads((FRONTEND_FIXTURES / "missing/missing_models_in_subgraph.json").read_text())}),
    ("POST", "/relink", {"json": _relink_body()}),
    ("POST", "/relink", {"json": {"workflow": WF, "changes": []}}),
    ("GET", "/search", {}),
    ("PATCH", "/config", {"content": b'{"safetensors_only": true}', "headers": {"content-type": "text/plain"}}),
    ("POST", "/relink", {"content": json.dumps(_relink_body()).encode(), "headers": {"content-type": "text/plain"}}),
    ("POST", "/analyze", {"content": b"a=b", "headers": {"content-type": "application/x-www-form-urlencoded"}}),
    ("POST", "/analyze", {"content": json.dumps(WF).encode(), "headers": {"content-type": "application/octet-stream"}}),
    ("GET", "/config", {}),
    ("PATCH", "/config", {"json": {}}),
    ("PATCH", "/config", {"json": {"max_concurrent_downloads": 0}}),
    ("PATCH", "/config", {"json": {"civitai_api_key": "contract-secret", "safetensors_only": True}}),
    ("GET", "/config", {}),
    ("GET", "/models", {}),
    ("GET", "/models", {"params": {"folder": "checkpoints"}}),
]
DOWNLOAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/downloads", {}),
    ("GET", "/downloads/no-such-job", {}),
    ("DELETE", "/downloads/no-such-job", {}),
    ("POST", "/downloads/no-such-job/pause", {}),
    ("POST", "/downloads", {"json": {"url": "https://evil.example/x.safetensors", "folder": "loras"}}),
    ("POST", "/downloads", {"json": {"url": "https://huggingface.co/a/b/resolve/main/x.safetensors",
                                     "folder": "../../etc"}}),
]


def _stable(body: Any) -> Any:
    """Drop the values that legitimately differ between two processes (timings, own data dir)."""
    if isinstance(body, dict):
        return {k: _stable(v) for k, v in body.items() if k not in {"scan", "seconds", "data_dir"}}
    if isinstance(body, list):
        return [_stable(v) for v in body]
    return body


async def test_sidecar_and_comfyui_routes_answer_alike(tmp_path):
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from comfyui_model_resolver.adapters.aiohttp_routes import bind_routes
    from comfyui_model_resolver.adapters.guard import GuardPolicy

    comfy_settings = make_settings(tmp_path, data_dir=tmp_path / "comfy-data")
    comfy_resolver = await build_resolver(comfy_settings)
    table = web.RouteTableDef()
    policy = GuardPolicy.build(max_request_bytes=comfy_settings.max_request_bytes,
                               max_workflow_bytes=comfy_settings.max_workflow_bytes)
    async def get_resolver():
        return comfy_resolver

    bind_routes(table, COMFYUI_PREFIX, get_resolver, lambda: policy)
    aio = web.Application(client_max_size=comfy_settings.max_request_bytes)
    aio.add_routes(table)
    server = TestServer(aio, host="127.0.0.1")
    await server.start_server()
    requests = REQUESTS + DOWNLOAD_REQUESTS
    try:
        sidecar = create_app(make_settings(tmp_path, data_dir=tmp_path / "sidecar-data"), enable_ui=False)
        async with running(sidecar) as side, httpx.AsyncClient(base_url=str(server.make_url(""))) as comfy:
            for method, path, kwargs in requests:
                a = await side.request(method, SIDECAR_PREFIX + path, **kwargs)
                b = await comfy.request(method, COMFYUI_PREFIX + path, **kwargs)
                where = f"{method} {path} {kwargs.get('params', '')}"
                assert a.status_code == b.status_code, f"{where}: sidecar {a.status_code}, comfyui {b.status_code}"
                assert _stable(a.json()) == _stable(b.json()), where
                assert "contract-secret" not in a.text + b.text
    finally:
        await server.close()
        await comfy_resolver.close()
