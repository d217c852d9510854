"""Browser-originated attacks on the routes: any page the user visits can send requests to
localhost. Cross-site requests (Origin, Sec-Fetch-Site), CORS-"simple" POSTs (text/plain, forms),
and DNS rebinding (a hostile name resolving to 127.0.0.1, which makes the page *same-origin* with
itself) must not reach a handler: no download starts, no setting changes, nothing is readable.

DNS rebinding was open on both doors (fixed: adapters/hostcheck.py). The ComfyUI routes are behind
the stand-in of ComfyUI's own origin middleware, as in ComfyUI; when it answers first (an empty 403)
that is fine too — what matters is that the handler never ran.
"""
from __future__ import annotations

import asyncio

import pytest

from comfyui_model_resolver.adapters.guard import API_READ, GuardPolicy, GuardRequest, check_request

from .conftest import DOORS, door_environ
from .harness import assert_error_shape

WF = {"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["x.safetensors"]}],
      "links": []}
DOWNLOAD = {"url": "https://huggingface.co/org/m/resolve/main/x.safetensors", "folder": "loras"}
CONFIG = {"allowed_hosts": ["evil.example"], "safetensors_only": False, "hf_token": "hf_PlantedByAnAttacker01"}

#: (method, path, body) of routes a hostile page would want
TARGETS = [("POST", "/downloads", DOWNLOAD), ("PATCH", "/config", CONFIG), ("POST", "/analyze", WF),
           ("GET", "/config", None), ("GET", "/models", None), ("GET", "/downloads", None),
           ("DELETE", "/downloads/some-job", None), ("POST", "/relink", {"workflow": WF, "changes": []}),
           ("POST", "/move", {"path": "/etc/passwd", "folder": "loras", "filename": "x.safetensors"})]
TARGET_IDS = [f"{m} {p}" for m, p, _ in TARGETS]


async def _untouched(door) -> None:
    """No job was created and the settings are what they were (asked by a same-origin client)."""
    status, jobs, _ = await door.request("GET", "/downloads")
    assert status == 200 and jobs["jobs"] == []
    status, cfg, _ = await door.request("GET", "/config")
    assert status == 200 and "evil.example" not in cfg["allowed_hosts"] and cfg["hf_token"] == {"set": False}


def _refused(door, status: int, body, text: str, *, code: str | None = None) -> None:
    if door.name == "comfyui" and status == 403 and not text:
        return  # ComfyUI's own origin middleware answered before our routes
    err = assert_error_shape(status, body, statuses=(403, 415))
    if code:
        assert err["code"] == code, err


# ---- cross-site --------------------------------------------------------------------------------
CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Origin": "https://evil.example:8188"},
    {"Origin": "null"},  # sandboxed iframes, data: URLs, some redirects
    {"Origin": "http://127.0.0.1:1"},  # another port is another origin
    {"Origin": "https://127.0.0.1"},  # another scheme too
    {"Origin": "http://localhost.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
]


@pytest.mark.parametrize("headers", CROSS_SITE, ids=[str(i) for i in range(len(CROSS_SITE))])
@pytest.mark.parametrize("method,path,body", [t for t in TARGETS if t[0] != "GET" or t[1] == "/config"],
                         ids=[i for t, i in zip(TARGETS, TARGET_IDS) if t[0] != "GET" or t[1] == "/config"])
async def test_cross_site_requests_to_the_comfyui_routes_are_refused(sandbox, fake_hub, headers, method, path, body):
    async with DOORS["comfyui"](sandbox, door_environ(sandbox, fake_hub)) as door:
        status, resp, text = await door.request(method, path, json_body=body, headers=headers)
        _refused(door, status, resp, text)
        assert "access-control-allow-origin" not in door.last_headers
        await _untouched(door)


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Origin": "http://127.0.0.1:1"}])
@pytest.mark.parametrize("method,path,body", [t for t in TARGETS if t[0] in ("POST", "PATCH", "DELETE")
                                              and t[1] in ("/downloads", "/config", "/downloads/some-job")])
async def test_cross_origin_changes_to_the_sidecar_are_refused(sandbox, fake_hub, headers, method, path, body):
    async with DOORS["sidecar"](sandbox, door_environ(sandbox, fake_hub)) as door:
        status, resp, text = await door.request(method, path, json_body=body, headers=headers)
        assert assert_error_shape(status, resp, statuses=(403,))["code"] == "cross_origin"
        await _untouched(door)


async def test_sidecar_reads_across_origins_are_not_readable(sandbox, fake_hub):
    """Without CMR_CORS_ORIGINS the sidecar grants no CORS: a page's fetch cannot read any answer."""
    async with DOORS["sidecar"](sandbox, door_environ(sandbox, fake_hub)) as door:
        for method, path, body in TARGETS:
            await door.request(method, path, json_body=body, headers={"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in door.last_headers, path
        status, _, _ = await door.request("OPTIONS", "/downloads", headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in door.last_headers
        await _untouched(door)


# ---- CORS-"simple" requests (no preflight): forms, text/plain, no content type ------------------
SIMPLE = [("text/plain", b'{"url": "https://huggingface.co/o/m/resolve/main/x.safetensors", "folder": "loras"}'),
          ("text/plain;charset=UTF-8", b'{"url": "x", "folder": "loras"}'),
          ("application/x-www-form-urlencoded", b"url=https%3A%2F%2Fhuggingface.co%2Fx&folder=loras"),
          ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="url"\r\n\r\nx\r\n--b--\r\n'),
          (None, b'{"url": "https://huggingface.co/o/m/resolve/main/x.safetensors", "folder": "loras"}')]


@pytest.mark.parametrize("ctype,data", SIMPLE, ids=["text-plain", "text-plain-charset", "form", "multipart", "none"])
@pytest.mark.parametrize("path,method", [("/downloads", "POST"), ("/config", "PATCH"), ("/relink", "POST"), ("/move", "POST")])
async def test_simple_requests_never_reach_a_comfyui_handler(sandbox, fake_hub, ctype, data, path, method):
    """Even without an Origin header (old browsers, some redirects), a body a <form> can send is refused."""
    async with DOORS["comfyui"](sandbox, door_environ(sandbox, fake_hub)) as door:
        headers = {"Content-Type": ctype} if ctype else {}
        status, resp, text = await door.request(method, path, content=data, headers=headers)
        _refused(door, status, resp, text, code="unsupported_media_type")
        await _untouched(door)


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"])
async def test_simple_cross_origin_posts_to_the_sidecar_are_refused(sandbox, fake_hub, ctype):
    async with DOORS["sidecar"](sandbox, door_environ(sandbox, fake_hub)) as door:
        status, resp, _ = await door.request("POST", "/downloads", content=b'{"url": "x", "folder": "loras"}',
                                             headers={"Content-Type": ctype, "Origin": "http://evil.example"})
        assert_error_shape(status, resp, statuses=(403,))
        await _untouched(door)


# ---- DNS rebinding --------------------------------------------------------------------------------
REBOUND_HOSTS = ["evil.example", "evil.example:8188", "localhost.evil.example", "127.0.0.1.nip.io",
                 "comfy.attacker.test:80", "xn--e1afmkfd.example", "EVIL.example.", "lvh.me"]


@pytest.mark.parametrize("host", REBOUND_HOSTS)
@pytest.mark.parametrize("method,path,body", [TARGETS[0], TARGETS[1], TARGETS[3], TARGETS[4]],
                         ids=[TARGET_IDS[0], TARGET_IDS[1], TARGET_IDS[3], TARGET_IDS[4]])
async def test_dns_rebinding_is_refused_on_both_doors(door, host, method, path, body):
    """The page's own name now points at 127.0.0.1: Origin and Host agree, only Host gives it away."""
    origin = "http://" + host.rstrip(".")
    status, resp, text = await door.request(method, path, json_body=body,
                                            headers={"Host": host, "Origin": origin, "Sec-Fetch-Site": "same-origin"})
    err = assert_error_shape(status, resp, statuses=(403,))
    assert err["code"] == "host_not_trusted" and "CMR_CORS_ORIGINS" in err["hint"]
    await _untouched(door)


async def test_rebinding_the_event_stream_is_refused(door):
    # a stream that was let through never ends: bounded, so a regression fails instead of hanging
    status, resp, _ = await asyncio.wait_for(
        door.request("GET", "/downloads/events", headers={"Host": "evil.example:8188"}), 20)
    assert assert_error_shape(status, resp, statuses=(403,))["code"] == "host_not_trusted"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8188", "[::1]:8188", "localhost:8188", "LOCALHOST",
                                  "[::1]:8188"])
async def test_this_machines_names_are_served(door, host):
    status, body, _ = await door.request("GET", "/config", headers={"Host": host})
    assert status == 200, body


async def test_a_configured_origin_is_a_trusted_host(sandbox, fake_hub):
    """A reverse proxy in front: its public name goes in CMR_CORS_ORIGINS."""
    env = door_environ(sandbox, fake_hub, CMR_CORS_ORIGINS="https://comfy.example.com")
    for make in DOORS.values():
        async with make(sandbox, env) as door:
            status, body, _ = await door.request("GET", "/config", headers={"Host": "comfy.example.com"})
            assert status == 200, (door, body)
            status, body, _ = await door.request("GET", "/config", headers={"Host": "other.example.com"})
            assert status == 403, (door, body)


@pytest.mark.parametrize("host,local,refused", [
    ("evil.example", "127.0.0.1", True), ("evil.example", "::1", True), ("evil.example", "::ffff:127.0.0.1", True),
    ("evil.example", "192.168.1.5", False),  # reached over the LAN by name: the API key guards that
    ("evil.example", None, True),  # a unix socket (a proxy on this machine may forward a rebound name)
    ("127.0.0.1:1", "127.0.0.1", False), ("[::1]", "::1", False), ("localhost:5002", "127.0.0.1", False),
    # other names for loopback are other origins, and Gradio grants them any origin: not "local"
    ("a.localhost", "127.0.0.1", True), ("localhost.", "127.0.0.1", True), ("LOCALHOST.:1", "::1", True),
    ("", "127.0.0.1", False), ("[bad", "127.0.0.1", True),
])
def test_rebinding_rule(host, local, refused):
    policy = GuardPolicy.build(max_request_bytes=1 << 20, max_workflow_bytes=1 << 20)
    answer = check_request(API_READ, GuardRequest("GET", {"host": host} if host else {}, local), policy)
    assert (answer is not None) is refused


@pytest.mark.parametrize("path", ["/health", "/metrics", "/openapi.json", "/docs", "/", "/gradio/"])
async def test_rebinding_is_refused_on_every_sidecar_path(sandbox, fake_hub, path):
    """Not only the API: the Gradio UI can start downloads too, and the docs and metrics tell about
    the install. One middleware covers the whole app."""
    async with DOORS["sidecar"](sandbox, door_environ(sandbox, fake_hub)) as door:
        status, resp, _ = await door.request("GET", path, raw_path=True, headers={"Host": "evil.example:5002"})
        assert assert_error_shape(status, resp, statuses=(403,))["code"] == "host_not_trusted"
        status, _, _ = await door.request("GET", "/health", raw_path=True)
        assert status in (200, 503)  # this machine's own name still works
