"""Starting and stopping the fakes: async, as context managers, and in a background thread."""

from __future__ import annotations

import threading

import httpx
import pytest

from fakes import FakeCivitai, FakeFile, FakeHub


async def test_async_context_manager_and_distinct_hosts():
    async with FakeHub() as hub:
        assert hub.url.startswith("http://127.0.0.1:") and hub.cdn_url.startswith("http://localhost:")
        with pytest.raises(RuntimeError):
            await hub.start()
    assert not hub.started
    async with FakeCivitai() as civ:
        assert civ.url.startswith("http://127.0.0.1:") and civ.storage_url.startswith("http://localhost:")


async def test_start_returns_the_base_urls():
    civ = FakeCivitai()
    urls = await civ.start()
    try:
        assert urls == (civ.url, civ.storage_url)
    finally:
        await civ.stop()


def test_thread_mode_serves_sync_clients_and_accepts_mutation():
    with FakeHub.running_in_thread(page_size=1) as hub:
        assert threading.current_thread() is threading.main_thread()
        with httpx.Client() as client:
            assert client.get(f"{hub.url}/api/models").json() == []
            hub.add_repo("org/a", [FakeFile("x.bin", size=3)])  # mutate while the loop thread serves
            hub.add_repo("org/b", [FakeFile("x.bin", size=3)])
            r = client.get(f"{hub.url}/api/models")
            assert [m["id"] for m in r.json()] == ["org/a"] and "next" in r.links
            r = client.get(f"{hub.url}/org/a/resolve/main/x.bin", follow_redirects=True)
            assert r.content == hub.repo("org/a").files["x.bin"].data
        assert [rec["server"] for rec in hub.log][-2:] == ["hub", "cdn"]
    assert not hub.started


def test_stop_does_not_wait_for_stalled_connections():
    with FakeHub.running_in_thread() as hub:
        hub.add_repo("org/a", [FakeFile("x.bin", b"abcdef", lfs=False)])
        hub.switch(None, stall_at=1, stall_seconds=3600)
        with httpx.Client(timeout=httpx.Timeout(5, read=0.2)) as client:
            with pytest.raises(httpx.ReadTimeout):
                client.get(f"{hub.url}/org/a/resolve/main/x.bin")
    # reaching this line means stop() cancelled the hour-long stall


def test_thread_fixtures(fake_hub_thread, fake_civitai_thread):
    m = fake_civitai_thread.add_model("Thing", files=[FakeFile("t.safetensors", size=10)])
    r = httpx.get(f"{fake_civitai_thread.url}/api/v1/models/{m.id}")
    assert r.status_code == 200 and r.json()["name"] == "Thing"
    assert httpx.get(f"{fake_hub_thread.url}/api/models").status_code == 200


async def test_async_fixtures(fake_hub, fake_civitai):
    assert fake_hub.started and fake_civitai.started


def test_switch_validation():
    hub = FakeHub()
    with pytest.raises(TypeError):
        hub.switch("org/a", explode=True)
    with pytest.raises(ValueError):
        hub.switch("org/a", status=500, times=-1)
    with pytest.raises(ValueError):
        hub.add_repo("no-namespace")
    with pytest.raises(ValueError):
        FakeHub(gated_metadata="maybe")
    sw = hub.switch("org/a", status=500, times=2)
    assert (sw.fired, sw.remaining, sw.active) == (0, 2, True)
    hub.clear_switches()
    assert hub.switches.switches == []
