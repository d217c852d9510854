"""The sidecar's HTTP API, in-process: the shared routes, health, metrics and the error shape."""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.adapters.routes import ROUTES, SIDECAR_PREFIX
from sidecar.main import create_app
from support.images import make_png, make_webp
from support.paths import FRONTEND_FIXTURES, REPO

from .conftest import make_settings, running

WF = json.loads((FRONTEND_FIXTURES / "missing/missing_models.json").read_text())
ERROR_KEYS = {"type", "code", "message", "hint"}


def assert_error(resp, status: int, type_: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) >= ERROR_KEYS
    if type_:
        assert err["type"] == type_
    return err


async def test_health_is_ready_with_a_writable_models_root(client):
    r = await client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["live"] and body["ready"] and body["status"] == "ok"
    assert body["checks"]["models_root"]["ok"] and body["checks"]["models_root"]["path"].endswith("models")
    assert set(body["upstreams"]) == {"huggingface", "civitai"}


async def test_health_reports_upstreams_as_information_only(client):
    r = await client.get("/health", params={"upstreams": "check"})
    assert r.status_code == 200 and r.json()["ready"]  # unreachable upstreams do not make it unready
    hub = r.json()["upstreams"]["huggingface"]
    assert hub["reachable"] is False and hub["url"] == "http://127.0.0.1:9" and "latency_ms" in hub


async def test_health_is_unavailable_without_a_writable_models_root(tmp_path):
    settings = make_settings(tmp_path, comfyui_root=None, models_root=tmp_path / "absent")
    async with running(create_app(settings, enable_ui=False)) as c:
        r = await c.get("/health")
        assert r.status_code == 503
        body = r.json()
        assert body["live"] and not body["ready"]
        assert body["checks"]["models_root"] == {"path": str(tmp_path / "absent"), "ok": False,
                                                 "message": "does not exist or is not a directory"}


async def test_analyze_json_body(client):
    r = await client.post(f"{SIDECAR_PREFIX}/analyze", json=WF, params={"name": "shared.json"})
    assert r.status_code == 200
    body = r.json()
    assert body["workflow"] == "shared.json" and body["format"] == "ui"
    assert [m["status"] for m in body["models"]] == ["relocated", "relocated"]
    assert body["models"][0]["relink_value"] == "SD1.5/fake_model.safetensors"


@pytest.mark.parametrize("name,data,fmt", [
    ("wf.json", json.dumps(WF).encode(), "ui"),
    ("wf.png", make_png({"workflow": json.dumps(WF)}), "png"),
    ("wf.webp", make_webp(json.dumps(WF)), "webp"),
])
async def test_analyze_multipart_upload(client, name, data, fmt):
    r = await client.post(f"{SIDECAR_PREFIX}/analyze", files={"file": (name, data)})
    assert r.status_code == 200, r.text
    assert r.json()["workflow"] == name and r.json()["format"] == fmt
    assert len(r.json()["models"]) == 2


async def test_analyze_raw_image_body(client):
    png = make_png({"workflow": json.dumps(WF)})
    r = await client.post(f"{SIDECAR_PREFIX}/analyze", content=png, headers={"content-type": "image/png"},
                          params={"name": "shot.png"})
    assert r.status_code == 200 and r.json()["format"] == "png" and r.json()["workflow"] == "shot.png"


async def test_analyze_errors_have_the_one_shape(client):
    err = assert_error(await client.post(f"{SIDECAR_PREFIX}/analyze", content=b"{nope",
                                         headers={"content-type": "application/json"}), 400, "WorkflowError")
    assert "not valid JSON" in err["message"]
    assert_error(await client.post(f"{SIDECAR_PREFIX}/analyze"), 400, "WorkflowError")
    assert_error(await client.post(f"{SIDECAR_PREFIX}/analyze", json=[1, 2]), 400, "WorkflowError")
    err = assert_error(await client.post(f"{SIDECAR_PREFIX}/analyze", files={"x": (None, "y")}), 400)
    assert err["message"] == "The multipart upload holds no file."
    r = await client.post(f"{SIDECAR_PREFIX}/analyze", files={"file": ("cat.jpg", b"\xff\xd8\xff\xe0junk")})
    assert "not supported" in assert_error(r, 400, "WorkflowError")["message"]


async def test_unknown_paths_and_methods_use_the_error_shape(client):
    assert_error(await client.get(f"{SIDECAR_PREFIX}/nope"), 404, "NotFound")
    assert_error(await client.put(f"{SIDECAR_PREFIX}/analyze"), 405, "MethodNotAllowed")


async def test_relink(client):
    analysis = (await client.post(f"{SIDECAR_PREFIX}/analyze", json=WF)).json()
    m = analysis["models"][0]
    change = {k: m[k] for k in ("node_id", "subgraph_id", "subgraph_path", "input", "widget_index", "widget_key")}
    change.update(old_value=m["filename"], new_value=m["relink_value"])
    r = await client.post(f"{SIDECAR_PREFIX}/relink", json={"workflow": WF, "changes": [change]})
    assert r.status_code == 200 and r.json()["applied"] == 1
    assert r.json()["workflow"]["nodes"][0]["widgets_values"] == ["SD1.5/fake_model.safetensors"]
    assert_error(await client.post(f"{SIDECAR_PREFIX}/relink", json={"workflow": WF, "changes": []}),
                 422, "ValidationError")


async def test_config_tokens_are_write_only(client):
    r = await client.patch(f"{SIDECAR_PREFIX}/config", json={"hf_token": "hf_sidecar_secret", "safetensors_only": True})
    assert r.status_code == 200
    assert r.json()["hf_token"] == {"set": True} and r.json()["safetensors_only"] is True
    got = await client.get(f"{SIDECAR_PREFIX}/config")
    assert got.status_code == 200 and "hf_sidecar_secret" not in got.text
    assert got.json()["api_key"] == {"set": False}
    assert_error(await client.patch(f"{SIDECAR_PREFIX}/config", json={"api_key": "x"}), 422, "ValidationError")


async def test_models_lists_the_local_index(client):
    r = await client.get(f"{SIDECAR_PREFIX}/models")
    assert r.status_code == 200
    assert [m["name"] for m in r.json()["folders"]["checkpoints"]] == ["SD1.5/fake_model.safetensors"]
    r = await client.get(f"{SIDECAR_PREFIX}/models", params={"folder": "loras"})
    assert r.json()["files"] == 0


async def test_search_needs_a_query(client):
    err = assert_error(await client.get(f"{SIDECAR_PREFIX}/search"), 400, "WorkflowError")
    assert "?q=" in err["message"]


async def test_metrics_in_prometheus_text_format(client):
    await client.post(f"{SIDECAR_PREFIX}/analyze", json=WF)
    await client.post(f"{SIDECAR_PREFIX}/analyze", json=[1])
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("cmr_downloads_active", "cmr_downloads_completed_total", "cmr_downloads_failed_total",
                 "cmr_download_bytes_total", "process_resident_memory_bytes", "cmr_models_disk_free_bytes"):
        assert f"\n{name}" in text, name
    assert 'cmr_route_requests_total{route="analyze",status="200"} 1' in text
    assert 'cmr_route_requests_total{route="analyze",status="400"} 1' in text
    assert 'cmr_route_duration_seconds_count{route="analyze"} 2' in text
    assert 'cmr_route_duration_seconds_bucket{route="analyze",le="+Inf"} 2' in text
    # every sample line is "name{labels} number"
    for line in text.splitlines():
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


async def test_openapi_documents_every_route_from_the_table(client):
    spec = (await client.get("/openapi.json")).json()
    for route in ROUTES:
        op = spec["paths"][SIDECAR_PREFIX + route.path][route.method.lower()]
        assert op["operationId"] == route.name and op["summary"] == route.summary
        names = {p["name"] for p in op.get("parameters", [])}
        assert names >= {q.name for q in route.query}
        if "{job_id}" in route.path:
            assert "job_id" in names
        if route.body is not None:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in spec["components"]["schemas"]
        if route.accepts_upload:
            assert set(op["requestBody"]["content"]) >= {"application/json", "multipart/form-data", "image/png"}
        if route.mutating:
            assert {"bearer": []} in op["security"]
    assert {"/health", "/metrics"} <= set(spec["paths"])
    download_body = spec["components"]["schemas"]["DownloadBody"]
    assert {s["$ref"].rsplit("/", 1)[1] for s in download_body["anyOf"]} == {"DownloadCreate", "DownloadFromResolution"}
    assert spec["info"]["version"]


def test_importing_the_module_reads_no_settings_and_builds_nothing():
    import subprocess
    import sys

    code = ("import sys, sidecar.main as m; assert 'app' not in m._lazy; assert 'gradio' not in sys.modules\n"
            "print('imported', flush=True)\nm.app")
    env = {"PATH": "/usr/bin:/bin", "CMR_API_PORT": "not-a-port", "HOME": "/nonexistent"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "imported", out.stderr  # the settings are read only when `app` is asked for
    # ... and then a bad setting stops uvicorn's start with the reason, not a traceback
    assert out.returncode == 2 and "configuration error" in out.stderr and "CMR_API_PORT" in out.stderr
    assert "Traceback" not in out.stderr
