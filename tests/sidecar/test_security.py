"""Protection: the API key for mutating routes beyond loopback, cross-origin refusal, CORS, body limits."""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.adapters.routes import ROUTES, SIDECAR_PREFIX
from comfyui_model_resolver.errors import ConfigError
from sidecar.main import check_bind, create_app
from sidecar.security import is_loopback

from .conftest import make_settings, running
from .test_api import WF, assert_error

#: A request that arrives on a non-loopback local address (ASGI scope["server"]); nothing is sent anywhere.
PUBLIC = "http://sidecar.example"
MUTATING = [r for r in ROUTES if r.mutating]


def _url(route) -> str:
    return SIDECAR_PREFIX + route.path.replace("{job_id}", "job-1")


@pytest.mark.parametrize("host,expected", [
    ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True), ("localhost", True), (None, True),
    ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("::", False), ("10.0.0.2", False), ("sidecar.example", False),
])
def test_loopback(host, expected):
    assert is_loopback(host) is expected


def test_refuses_to_start_beyond_loopback_without_a_key(tmp_path):
    with pytest.raises(ConfigError) as exc:
        check_bind(make_settings(tmp_path, api_host="0.0.0.0"))
    assert "CMR_API_KEY" in exc.value.hint
    check_bind(make_settings(tmp_path, api_host="0.0.0.0", api_key="k"))
    check_bind(make_settings(tmp_path))


async def test_lifespan_refuses_a_public_bind_without_a_key(tmp_path):
    app = create_app(make_settings(tmp_path, api_host="0.0.0.0"), enable_ui=False)
    with pytest.raises(ConfigError):
        async with running(app):
            pass


@pytest.mark.parametrize("route", MUTATING, ids=lambda r: r.name)
async def test_public_requests_need_the_key_for_mutating_routes(tmp_path, route):
    app = create_app(make_settings(tmp_path, api_host="0.0.0.0", api_key="s3cret-key"), enable_ui=False)
    async with running(app, PUBLIC) as c:
        r = await c.request(route.method, _url(route), json={})
        err = assert_error(r, 401, "Unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "s3cret-key" not in r.text and err["hint"]
        r = await c.request(route.method, _url(route), json={}, headers={"Authorization": "Bearer wrong"})
        assert_error(r, 401, "Unauthorized")
        r = await c.request(route.method, _url(route), json={}, headers={"Authorization": "Bearer s3cret-key"})
        assert r.status_code not in (401, 403)  # past the guard: the handler answered


async def test_reading_needs_no_key(tmp_path):
    app = create_app(make_settings(tmp_path, api_host="0.0.0.0", api_key="k"), enable_ui=False)
    async with running(app, PUBLIC) as c:
        assert (await c.post(f"{SIDECAR_PREFIX}/analyze", json=WF)).status_code == 200
        assert (await c.get(f"{SIDECAR_PREFIX}/config")).status_code == 200
        assert (await c.get("/health")).status_code == 200


async def test_fails_closed_when_bound_publicly_behind_a_loopback_setting(settings):
    """`uvicorn --host 0.0.0.0` with the default CMR_API_HOST: requests arriving on a public address."""
    async with running(create_app(settings, enable_ui=False), PUBLIC) as c:
        r = await c.patch(f"{SIDECAR_PREFIX}/config", json={"safetensors_only": True})
        assert assert_error(r, 403)["code"] == "api_key_not_configured"
        assert (await c.post(f"{SIDECAR_PREFIX}/analyze", json=WF)).status_code == 200
    async with running(create_app(settings, enable_ui=False)) as c:  # the same app over loopback: no key needed
        assert (await c.patch(f"{SIDECAR_PREFIX}/config", json={"safetensors_only": True})).status_code == 200


async def test_a_wrong_key_is_refused_even_over_loopback(tmp_path):
    async with running(create_app(make_settings(tmp_path, api_key="k"), enable_ui=False)) as c:
        r = await c.patch(f"{SIDECAR_PREFIX}/config", json={"safetensors_only": True},
                          headers={"Authorization": "Bearer nope"})
        assert_error(r, 401)
        r = await c.patch(f"{SIDECAR_PREFIX}/config", json={"safetensors_only": True})
        assert r.status_code == 200


async def test_cors_is_off_by_default_and_cross_origin_changes_are_refused(client):
    # reads too: a foreign page learns nothing and cannot make the server work (a multipart analyze)
    r = await client.get(f"{SIDECAR_PREFIX}/config", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    pre = await client.options(f"{SIDECAR_PREFIX}/downloads", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    # a "simple" cross-site POST (no preflight) from a web page must not start anything
    r = await client.post(f"{SIDECAR_PREFIX}/downloads", content=json.dumps({"url": "https://huggingface.co/x",
                          "folder": "loras"}), headers={"Origin": "https://evil.example", "content-type": "text/plain"})
    assert assert_error(r, 403, "CrossOriginRejected")["code"] == "cross_origin"
    # same-origin requests (e.g. the mounted UI) pass the origin check
    r = await client.patch(f"{SIDECAR_PREFIX}/config", json={"safetensors_only": True},
                           headers={"Origin": "http://127.0.0.1"})
    assert r.status_code == 200


async def test_cors_allows_configured_origins(tmp_path):
    app = create_app(make_settings(tmp_path, cors_origins=("https://ui.example",)), enable_ui=False)
    async with running(app) as c:
        pre = await c.options(f"{SIDECAR_PREFIX}/config", headers={
            "Origin": "https://ui.example", "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://ui.example"
        assert "PATCH" in pre.headers["access-control-allow-methods"]
        r = await c.patch(f"{SIDECAR_PREFIX}/config", json={"safetensors_only": True},
                          headers={"Origin": "https://ui.example"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://ui.example"
        r = await c.patch(f"{SIDECAR_PREFIX}/config", json={"safetensors_only": True},
                          headers={"Origin": "https://other.example"})
        assert_error(r, 403)


async def test_request_body_limit(tmp_path):
    app = create_app(make_settings(tmp_path, max_request_bytes=4096), enable_ui=False)
    async with running(app) as c:
        big = {"workflow": {"nodes": []}, "changes": [{"x": "y" * 5000}]}
        err = assert_error(await c.post(f"{SIDECAR_PREFIX}/relink", json=big), 413, "RequestTooLarge")
        assert "4,096" in err["message"] and "CMR_MAX_REQUEST_BYTES" in err["hint"]

        async def chunks():  # no Content-Length: counted while it streams
            for _ in range(10):
                yield b" " * 1000

        r = await c.post(f"{SIDECAR_PREFIX}/relink", content=chunks(), headers={"content-type": "application/json"})
        assert_error(r, 413, "RequestTooLarge")
        assert (await c.post(f"{SIDECAR_PREFIX}/analyze", json=WF)).status_code == 200


async def test_workflow_size_limit(tmp_path):
    app = create_app(make_settings(tmp_path, max_workflow_bytes=2048), enable_ui=False)
    async with running(app) as c:
        padded = dict(WF, extra={"pad": "x" * 3000})
        err = assert_error(await c.post(f"{SIDECAR_PREFIX}/analyze", json=padded), 413, "WorkflowTooLarge")
        assert "CMR_MAX_WORKFLOW_BYTES" in err["hint"]
        r = await c.post(f"{SIDECAR_PREFIX}/resolve", files={"file": ("big.json", json.dumps(padded).encode())})
        assert_error(r, 413, "WorkflowTooLarge")
        huge = b"{" + b" " * 200_000 + b"}"
        assert_error(await c.post(f"{SIDECAR_PREFIX}/analyze", content=huge,
                                  headers={"content-type": "application/json"}), 413, "WorkflowTooLarge")


async def test_bodies_must_be_json_or_a_workflow_upload(client):
    """A web page can send text/plain or a form without a CORS preflight: such bodies are refused."""
    r = await client.patch(f"{SIDECAR_PREFIX}/config", content=b'{"safetensors_only": true}',
                           headers={"content-type": "text/plain"})
    assert "application/json" in assert_error(r, 415, "UnsupportedMediaType")["message"]
    r = await client.post(f"{SIDECAR_PREFIX}/analyze", data={"a": "b"})
    assert_error(r, 415, "UnsupportedMediaType")
    r = await client.post(f"{SIDECAR_PREFIX}/downloads/job-1/pause")  # bodiless actions need no type
    assert r.status_code == 404
    r = await client.post(f"{SIDECAR_PREFIX}/downloads", json={"url": "https://huggingface.co/a/b/resolve/main/x.safetensors",
                                                                 "folder": "loras"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert assert_error(r, 403, "CrossOriginRejected")["message"] == "Cross-site request refused."
