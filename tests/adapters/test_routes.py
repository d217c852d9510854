"""The shared route handlers, called directly (both HTTP adapters bind these)."""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.adapters.routes import ROUTES, ApiRequest, dispatch, error_response
from comfyui_model_resolver.errors import RateLimited, WorkflowTooLarge
from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.settings import Settings
from support.images import make_png
from support.paths import FRONTEND_FIXTURES

BY_NAME = {r.name: r for r in ROUTES}


@pytest.fixture
async def resolver(tmp_path):
    root = tmp_path / "ComfyUI"
    (root / "models/checkpoints/SD1.5").mkdir(parents=True)
    (root / "models/checkpoints/SD1.5/fake_model.safetensors").write_bytes(b"x")
    settings = Settings.load({}, env_file="/nonexistent", comfyui_root=root, data_dir=tmp_path / "data")
    r = await build_resolver(settings)
    yield r
    await r.close()


async def call(resolver, name, **kw):
    return await dispatch(BY_NAME[name], resolver, ApiRequest(**kw))


async def test_analyze_json_body_and_upload(resolver):
    wf = json.loads((FRONTEND_FIXTURES / "missing/missing_models.json").read_text())
    resp = await call(resolver, "analyze", body=wf, query={"name": "shared.json"})
    assert resp.status == 200 and resp.body["workflow"] == "shared.json"
    assert {m["status"] for m in resp.body["models"]} == {"relocated"}
    resp = await call(resolver, "analyze", upload=make_png({"workflow": json.dumps(wf)}), upload_name="x.png")
    assert resp.body["format"] == "png" and len(resp.body["models"]) == 2


async def test_errors_have_one_shape(resolver):
    resp = await call(resolver, "analyze", body=[1, 2])
    assert resp.status == 400
    assert set(resp.body["error"]) >= {"type", "code", "message", "hint"}
    assert resp.body["error"]["type"] == "WorkflowError"
    resp = await call(resolver, "analyze")
    assert resp.status == 400 and "JSON body" in resp.body["error"]["message"]
    assert error_response(WorkflowTooLarge("big")).status == 413
    limited = error_response(RateLimited("slow down", retry_after=2.5))
    assert limited.status == 429 and limited.headers["Retry-After"] == "3"
    boom = error_response(RuntimeError("secret internals"))
    assert boom.status == 500 and "secret" not in json.dumps(boom.body)


async def test_relink_route(resolver):
    wf = json.loads((FRONTEND_FIXTURES / "missing/missing_models.json").read_text())
    analysis = (await call(resolver, "analyze", body=wf)).body
    m = analysis["models"][0]
    change = {k: m[k] for k in ("node_id", "subgraph_id", "subgraph_path", "input", "widget_index", "widget_key")}
    change.update(old_value=m["filename"], new_value=m["relink_value"])
    resp = await call(resolver, "relink", body={"workflow": wf, "changes": [change]})
    assert resp.status == 200 and resp.body["applied"] == 1
    assert resp.body["workflow"]["nodes"][0]["widgets_values"] == ["SD1.5/fake_model.safetensors"]
    bad = await call(resolver, "relink", body={"workflow": wf, "changes": []})
    assert bad.status == 422


async def test_config_secrets_are_write_only_and_persisted(resolver, tmp_path):
    resp = await call(resolver, "patch_config", body={"hf_token": "hf_topsecret", "max_concurrent_downloads": 5})
    assert resp.status == 200
    assert resp.body["hf_token"] == {"set": True} and resp.body["max_concurrent_downloads"] == 5
    assert "hf_topsecret" not in json.dumps((await call(resolver, "get_config")).body)
    persisted = tmp_path / "data" / "settings.yaml"
    assert persisted.stat().st_mode & 0o077 == 0  # only the owner may read tokens
    again = Settings.load({"CMR_DATA_DIR": str(tmp_path / "data")}, env_file="/nonexistent")
    assert again.hf_token.get_secret_value() == "hf_topsecret" and again.max_concurrent_downloads == 5
    bad = await call(resolver, "patch_config", body={"api_port": 1})
    assert bad.status == 422
    empty = await call(resolver, "patch_config", body={})
    assert empty.status == 400


async def test_models_route(resolver):
    resp = await call(resolver, "list_models")
    assert resp.body["folders"]["checkpoints"][0]["name"] == "SD1.5/fake_model.safetensors"
    assert resp.body["files"] == 1
