"""Server-side request forgery: the resolver fetches only from allowlisted hosts, over every hop.

A `canary` server listens on loopback without being on any allowlist; a case passes only if it
received not one request. URLs come from a request, from a workflow (embedded links, notes), and
from redirects of an allowlisted server.
"""
from __future__ import annotations

import pytest

from comfyui_model_resolver.errors import HostNotAllowed
from comfyui_model_resolver.hosts import check_url
from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.settings import Settings
from comfyui_model_resolver.types import DownloadRequest
from fakes.blobs import FakeFile

from .conftest import core_settings
from .harness import assert_error_shape

CANARY = "{canary}"

BAD_URLS = [
    "https://evil.example/x.safetensors",
    "https://huggingface.co.evil.com/x.safetensors",
    "https://evilhuggingface.co/x.safetensors",
    "https://huggingface.co\uff0eevil.com/x.safetensors",
    "https://huggingface.co@evil.com/x.safetensors",
    "https://evil.com\\@huggingface.co/x.safetensors",
    "https://evil.com#@huggingface.co/x.safetensors",
    "https://user:pw@huggingface.co/x.safetensors",
    "https://huggingface.co:8443/x.safetensors",
    "http://huggingface.co/x.safetensors",
    "http://127.0.0.1/x.safetensors",
    "http://127.1/x.safetensors",
    "http://0x7f000001/x.safetensors",
    "http://2130706433/x.safetensors",
    "http://[::1]/x.safetensors",
    "http://[::ffff:127.0.0.1]/x.safetensors",
    "http://0.0.0.0/x.safetensors",
    "http://10.0.0.1/x.safetensors",
    "http://192.168.1.1/x.safetensors",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fd00::1]/x.safetensors",
    "http://localhost/x.safetensors",
    "http://metadata.google.internal/computeMetadata/v1/",
    CANARY + "/f/x.safetensors",
    "ftp://huggingface.co/x.safetensors",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "data:application/octet-stream;base64,AAAA",
    "javascript:alert(1)",
    "//evil.com/x.safetensors",
    "huggingface.co/x.safetensors",
    "https:///x.safetensors",
    "https://huggingface.co/x\r\nHost: evil.com",
    "",
]


def _url(raw: str, canary) -> str:
    return raw.replace(CANARY, canary.url)


@pytest.mark.parametrize("raw", BAD_URLS, ids=range(len(BAD_URLS)))
async def test_downloads_from_hosts_off_the_allowlist_are_refused(sandbox, managers, canary, raw):
    m = managers(core_settings(sandbox))
    with pytest.raises(HostNotAllowed) as exc:
        await m.submit(DownloadRequest(url=_url(raw, canary), folder="loras", filename="x.safetensors"))
    assert exc.value.message and "\r" not in exc.value.message
    assert canary.log == []


@pytest.mark.parametrize("configured", ["127.0.0.1", "10.0.0.1", "localhost", "*.internal"])
def test_an_internal_address_needs_its_exact_ip_and_port_on_the_allowlist(configured):
    """Allowing a name (or an IP without a port) never opens loopback/private/metadata addresses."""
    s = Settings(allowed_hosts=(configured,))
    for url in ("http://127.0.0.1/x", "http://10.0.0.1/x", "http://169.254.169.254/x", "http://[::1]/x"):
        with pytest.raises(HostNotAllowed):
            check_url(url, s)


# ---- redirects -----------------------------------------------------------------------------------
REDIRECTS = [CANARY + "/f/x.safetensors", "http://localhost:{port}/f/x.safetensors",
             "http://[::1]:{port}/f/x.safetensors", "http://10.1.2.3/x.safetensors",
             "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "ftp://huggingface.co/x",
             "http://huggingface.co/x.safetensors", "https://evil.example/x.safetensors",
             "https://user:pw@cdn-lfs.huggingface.co/x"]


@pytest.mark.parametrize("location", REDIRECTS, ids=range(len(REDIRECTS)))
async def test_redirects_off_the_allowlist_are_refused_at_the_hop(sandbox, fake_hub, managers, canary, location):
    fake_hub.add_repo("org/m", [FakeFile.safetensors("model.safetensors", 4096, seed=41)])
    location = _url(location, canary).replace("{port}", canary.url.rsplit(":", 1)[1])
    fake_hub.switch("resolve", on="hub", status=302, location=location)
    m = managers(core_settings(sandbox, fake_hub))
    job = await m.submit(DownloadRequest(url=f"{fake_hub.url}/org/m/resolve/main/model.safetensors", folder="loras"))
    job = await m.wait(job.id, timeout=30)
    assert job.state == "failed" and job.error["type"] == "HostNotAllowed", job
    assert canary.log == [] and fake_hub.requests(server="cdn") == []


async def test_a_redirect_chain_is_checked_at_every_hop(sandbox, managers, scripted, canary):
    """An allowlisted server (configured) redirects twice: to itself, then to the canary."""
    second = scripted.set("second", 307, {"Location": canary.url + "/f/x.safetensors"})
    first = scripted.set("first", 302, {"Location": second})
    m = managers(core_settings(sandbox, allowed_hosts=(scripted.hostport(),)))
    job = await m.wait((await m.submit(DownloadRequest(url=first, folder="loras", filename="x.safetensors"))).id,
                       timeout=30)
    assert job.state == "failed" and job.error["type"] == "HostNotAllowed"
    assert [r["path"] for r in scripted.log] == ["/f/first", "/f/second"] and canary.log == []


async def test_a_redirect_loop_ends_with_a_clear_error(sandbox, managers, scripted):
    loop_url = scripted.set("loop", 302, {"Location": "/f/loop"})
    m = managers(core_settings(sandbox, allowed_hosts=(scripted.hostport(),)))
    job = await m.wait((await m.submit(DownloadRequest(url=loop_url, folder="loras", filename="x.safetensors"))).id,
                       timeout=30)
    assert job.state == "failed" and "redirects" in job.error["message"]
    assert len(scripted.log) <= 12  # MAX_REDIRECTS + 1, then it stops


# ---- URLs that come from a workflow --------------------------------------------------------------
def _wf_with_links(urls: list[str]) -> dict:
    nodes = [{"id": i + 1, "type": "LoraLoader", "mode": 0, "widgets_values": [f"l{i}.safetensors", 1, 1],
              "properties": {"models": [{"name": f"l{i}.safetensors", "url": u, "directory": "loras"}]}}
             for i, u in enumerate(urls)]
    note = {"id": 99, "type": "Note", "mode": 0, "widgets_values": ["Get the files at " + " and ".join(urls)]}
    return {"nodes": nodes + [note], "links": [], "version": 0.4}


async def test_workflow_links_to_internal_hosts_are_never_fetched(sandbox, canary, scripted):
    """Embedded model URLs and note links are candidates only if allowlisted; pre-flight HEADs follow
    redirects only onto allowlisted hosts."""
    hop = scripted.on("hop", lambda req: _redirect(canary.url + "/f/x.safetensors"))
    urls = [canary.url + "/f/l0.safetensors", "http://169.254.169.254/latest/meta-data/l1.safetensors",
            "http://10.0.0.7/l2.safetensors", "file:///etc/l3.safetensors", hop.replace("hop", "hop?l4.safetensors")]
    resolver = await build_resolver(core_settings(sandbox, allowed_hosts=(scripted.hostport(),)))
    try:
        res = (await resolver.resolve(_wf_with_links(urls), "links.json")).model_dump(mode="json")
        jobs, _skipped, errors = await resolver.download_resolution(res["models"])
        for j in jobs:
            await resolver.downloads.wait(j.id, timeout=20)
        states = [resolver.downloads.job(j.id) for j in jobs]
    finally:
        await resolver.close()
    assert canary.log == []
    assert all(j.state == "failed" and j.error["type"] == "HostNotAllowed" for j in states), states
    for m in res["models"]:
        for c in m["candidates"]:
            assert not c["url"].startswith((canary.url, "http://169.254", "http://10.", "file:"))


def _redirect(location: str):
    from aiohttp import web

    return web.Response(status=302, headers={"Location": location})


@pytest.mark.parametrize("raw", ["http://169.254.169.254/latest/meta-data/", CANARY + "/f/x.safetensors",
                                 "file:///etc/passwd", "https://evil.example/x.safetensors", "http://[::1]/x"])
async def test_the_routes_refuse_off_list_urls_with_the_error_shape(door, canary, raw):
    status, body, _ = await door.request("POST", "/downloads", json_body={
        "url": _url(raw, canary), "folder": "loras", "filename": "x.safetensors"})
    err = assert_error_shape(status, body, statuses=(400,))
    assert err["type"] == "HostNotAllowed" and err["hint"]
    assert canary.log == []
