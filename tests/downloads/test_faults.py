"""Every failure switch of the fakes against the real downloader.

Each test ends with the exact file under its final name, or with a clear typed error and no file
under the final name. Request logs prove *how* it got there (Range resumes, tokens, redirects).
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from comfyui_model_resolver.downloads.store import JobRecord, JobStore
from comfyui_model_resolver.types import DownloadRequest
from fakes.blobs import FakeFile
from fakes.civitai import FakeCivitai
from support.downloads import REPO, Env, hostport, sha256_of

MiB = 1 << 20


async def fetch(env: Env, manager=None, *, name="model.safetensors", folder="checkpoints", url=None, **req):
    m = manager or env.manager()
    job = await m.submit(DownloadRequest(url=url or env.url(name), folder=folder, **req))
    return await m.wait(job.id, timeout=60)


def assert_good(env: Env, job, f: FakeFile, folder="checkpoints"):
    assert job.state == "completed", job.error
    final = env.final(f.name, folder)
    assert job.path == str(final)
    assert job.sha256 == f.sha256 == sha256_of(final)
    assert final.stat().st_size == f.size == job.total == job.bytes_done
    assert env.leftovers(folder) == []


def assert_no_final(env: Env, name="model.safetensors", folder="checkpoints"):
    assert not env.final(name, folder).exists()


def cdn_gets(env: Env):
    return [r for r in env.hub.requests(server="cdn") if r["method"] == "GET"]


def range_start(record) -> int | None:
    rng = record["range"]
    return int(rng.split("=")[1].split("-")[0]) if rng else None


# ---- the happy paths the faults are measured against ---------------------------------------
async def test_302_to_cdn_token_only_to_the_hub(env):
    env.hub.add_repo("org/gated", [FakeFile.safetensors("model.safetensors", 2 * MiB, seed=4)], gated="manual")
    env.hub.approve_token("org/gated", "hf_sekrit")
    f = env.hub.repo("org/gated").files["model.safetensors"]
    m = env.manager(env.with_settings(hf_token="hf_sekrit"))
    sub = m.events.subscribe()
    job = await fetch(env, m, url=env.url(repo="org/gated"))
    assert_good(env, job, f)
    hub_gets = env.hub.requests(server="hub")
    assert hub_gets and all(r["authorization"] == "Bearer hf_sekrit" for r in hub_gets)
    assert cdn_gets(env) and all(r["authorization"] is None for r in cdn_gets(env))
    assert all("hf_sekrit" not in r["raw_path"] for r in env.hub.requests())
    events = []
    while sub._items:
        events.append(sub._items.popleft())
    assert "hf_sekrit" not in repr(events) + job.model_dump_json()
    assert job.expected_sha256 == f.sha256  # learnt from the Hub's X-Linked-Etag


async def test_gated_without_token_is_a_clear_auth_error(env):
    env.hub.add_repo("org/gated", [FakeFile.safetensors("model.safetensors", 4096)], gated="manual")
    job = await fetch(env, url=env.url(repo="org/gated"))
    assert job.state == "failed"
    assert job.error["type"] == "AuthRequired" and job.error["token_env"] == "CMR_HF_TOKEN"
    assert "CMR_HF_TOKEN" in job.error["hint"]
    assert_no_final(env)
    assert env.leftovers() == []


async def test_missing_file_is_not_found(env):
    env.add()
    job = await fetch(env, url=env.url("nope.safetensors"))
    assert job.state == "failed" and job.error["type"] == "NotFound"
    assert_no_final(env, "nope.safetensors")


async def test_segmented_download_is_exact_and_hashed(env):
    f = env.add(size=9 * MiB + 12345)
    m = env.manager()
    job = await fetch(env, m)
    assert_good(env, job, f)
    gets = cdn_gets(env)
    starts = sorted(range_start(r) for r in gets)
    assert len(gets) > 4 and starts[0] == 0 and len(set(starts)) == len(starts)
    assert all(r["status"] == 206 for r in gets)


async def test_small_file_is_one_stream(env):
    f = env.add(size=MiB // 2)
    job = await fetch(env)
    assert_good(env, job, f)
    assert len(cdn_gets(env)) == 1


# ---- dropped connections -------------------------------------------------------------------
async def test_dropped_connection_resumes_with_range(env):
    # aiohttp drops what it still buffers when the connection breaks: up to 2 x its read buffer
    # (1 MiB, body.RECV_SIZE) plus one receive. Dropped at 5 MiB, at least 2 MiB were written.
    f = env.add(size=8 * MiB)
    env.hub.switch(on="cdn", drop_after=5 * MiB + 777, times=1)
    job = await fetch(env, env.manager(env.with_settings(segment_threshold=64 * MiB)))
    assert_good(env, job, f)
    first, second = cdn_gets(env)
    assert first["faults"] == ["drop_after"] and range_start(first) == 0
    assert 2 * MiB <= range_start(second) <= 5 * MiB + 777  # resumed where the bytes stopped, not from zero
    assert second["status"] == 206


async def test_dropped_connections_in_segments_resume(env):
    f = env.add(size=8 * MiB)
    env.hub.switch(on="cdn", drop_after=100_000, times=3)
    job = await fetch(env)
    assert_good(env, job, f)
    gets = cdn_gets(env)
    dropped = [r for r in gets if r["faults"] == ["drop_after"]]
    assert len(dropped) == 3
    for d in dropped:  # each dropped piece was asked for again from where it stopped, never from 0
        later = gets[gets.index(d) + 1:]
        assert any(range_start(d) <= range_start(r) <= range_start(d) + 100_000 and range_start(r) > 0
                   or range_start(d) == range_start(r) == 0 for r in later)
    assert [range_start(r) for r in gets].count(0) <= 1 + sum(range_start(d) == 0 for d in dropped)


async def test_connection_that_keeps_dropping_fails_clearly(env):
    env.add(size=2 * MiB)
    env.hub.switch(on="cdn", drop_after=0)  # never a byte
    job = await fetch(env, env.manager(env.with_settings(download_retries=2)))
    assert job.state == "failed" and job.error["type"] == "SourceUnavailable"
    assert "connection dropped" in job.error["message"]
    assert_no_final(env)


# ---- Range ignored / 416 -------------------------------------------------------------------
async def test_range_ignored_restarts_cleanly(env):
    f = env.add(size=8 * MiB)
    env.hub.switch(on="cdn", ignore_range=True)
    env.hub.switch(on="cdn", drop_after=5 * MiB, times=1)  # past what aiohttp buffers (see above)
    job = await fetch(env)
    assert_good(env, job, f)
    gets = cdn_gets(env)
    assert [g["status"] for g in gets] == [200, 200]
    assert range_start(gets[1]) > 0  # we asked to resume; the 200 made us start over, cleanly


async def test_416_when_we_already_hold_every_byte(env, tmp_path):
    """A run that saw no Content-Length stopped after the last byte: the resume asks past the end."""
    f = env.add(size=MiB + 5)
    final = env.final(f.name)
    part = str(final) + ".part"
    with open(part, "wb") as out:
        out.write(f.read(0, f.size))
    store = JobStore(env.data / "downloads.sqlite")
    store.save(JobRecord(id="j416", url=env.url(), folder="checkpoints", filename=f.name, path=str(final),
                         state="running", done=[[0, f.size]]))
    store.close()
    m = env.manager()
    await m.start()
    job = await m.wait("j416", timeout=30)
    assert_good(env, job, f)
    gets = cdn_gets(env)
    assert [(g["status"], range_start(g)) for g in gets] == [(416, f.size)]  # not one byte downloaded again


async def test_spurious_416_is_retried(env):
    f = env.add(size=2 * MiB)
    env.hub.switch(on="cdn", force_416=True, times=1)
    job = await fetch(env)
    assert_good(env, job, f)
    assert cdn_gets(env)[0]["status"] == 416


async def test_persistent_416_fails_clearly(env):
    env.add(size=2 * MiB)
    env.hub.switch(on="cdn", force_416=True)
    job = await fetch(env)
    assert job.state == "failed" and "416" in job.error["message"]
    assert_no_final(env)


# ---- 429 and stalls ------------------------------------------------------------------------
@pytest.mark.parametrize("retry_after", [1, "date"])
async def test_429_with_retry_after(env, retry_after):
    f = env.add(size=MiB)
    if retry_after == "date":
        retry_after = datetime.now(timezone.utc) + timedelta(seconds=1)
    env.hub.switch("resolve", on="hub", status=429, retry_after=retry_after, times=1)
    job = await fetch(env)
    assert_good(env, job, f)
    assert [r["status"] for r in env.hub.requests(server="hub")] == [429, 302]


async def test_429_retry_after_longer_than_we_wait_fails_with_rate_limited(env):
    env.add(size=MiB)
    env.hub.switch("resolve", on="hub", status=429, retry_after=3600)
    job = await fetch(env)
    assert job.state == "failed" and job.error["type"] == "RateLimited"
    assert job.error["retry_after"] == 3600
    assert_no_final(env)


async def test_stall_is_detected_and_resumed(env):
    f = env.add(size=3 * MiB)
    env.hub.switch(on="cdn", stall_at=MiB + 1, stall_seconds=30, times=1)
    job = await fetch(env, env.manager(env.with_settings(stall_timeout=0.3, segment_threshold=64 * MiB)))
    assert_good(env, job, f)
    first, second = cdn_gets(env)
    assert first["faults"] == ["stall_at"] and range_start(second) == MiB + 1


# ---- redirects -----------------------------------------------------------------------------
@pytest.mark.parametrize("location, message", [
    ("https://evil.example/model.safetensors", "not on the download allowlist"),
    ("http://127.0.0.1:9/model.safetensors", "not on the download allowlist"),
    ("http://169.254.169.254/latest/meta-data/", "not on the download allowlist"),
    ("file:///etc/passwd", "Only http and https"),
    ("http://huggingface.co/model.safetensors", "https"),
])
async def test_redirect_off_the_allowlist_is_refused(env, location, message):
    env.add()
    env.hub.add_token("hf_sekrit")
    m = env.manager(env.with_settings(hf_token="hf_sekrit"))
    env.hub.switch("resolve", on="hub", status=302, location=location)
    job = await fetch(env, m)
    assert job.state == "failed" and job.error["type"] == "HostNotAllowed"
    assert message in job.error["message"]
    assert_no_final(env)
    assert cdn_gets(env) == []


async def test_redirect_chain_is_followed_and_rechecked(env):
    """Hub -> relative 307 (renamed repo) -> Hub 302 -> CDN: each hop checked, token dropped at the CDN."""
    f = env.add()
    env.hub.rename_repo(REPO, "org/renamed")
    env.hub.add_token("hf_sekrit")
    job = await fetch(env, env.manager(env.with_settings(hf_token="hf_sekrit")))
    assert_good(env, job, f)
    statuses = [(r["server"], r["status"]) for r in env.hub.requests()]
    assert statuses[:3] == [("hub", 307), ("hub", 302), ("cdn", 206)]
    assert all(r["authorization"] is None for r in cdn_gets(env))


async def test_expired_signed_url_is_resolved_again(env):
    """Segments reuse the CDN URL (no Hub round trip per piece); when it expires, ask the Hub again."""
    f = env.add(size=6 * MiB)
    env.hub.switch(on="cdn", throttle_bps=2 * MiB)  # slow enough for the URL to expire half-way
    m = env.manager()
    sub = m.events.subscribe()

    async def expire_once_bytes_arrive():
        while (await sub.get()).bytes_done == 0:
            pass
        env.hub.switch(on="cdn", status=403, times=1)

    expirer = asyncio.ensure_future(expire_once_bytes_arrive())
    job = await fetch(env, m)
    expirer.cancel()
    assert_good(env, job, f)
    assert [r["status"] for r in cdn_gets(env)].count(403) == 1
    assert len(env.hub.requests(server="hub")) == 2  # once at the start, once for a fresh URL


# ---- bytes that are wrong ------------------------------------------------------------------
@pytest.mark.parametrize("size", [MiB // 2, 6 * MiB])
async def test_wrong_bytes_are_quarantined(env, size):
    env.add(size=size)
    env.hub.switch(on="cdn", wrong_bytes=True)
    job = await fetch(env)
    assert job.state == "failed" and job.error["type"] == "IntegrityError"
    assert "SHA-256 mismatch" in job.error["message"]
    assert_no_final(env)
    assert env.leftovers() == []
    quarantined = list((env.data / "quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].stat().st_size == size
    assert str(quarantined[0]) in job.error["message"]


async def test_wrong_bytes_without_a_known_hash_fail_the_safetensors_check(env):
    # No hash from anyone (a plain-git file: its ETag is a git sha1), and a corrupted header.
    f = FakeFile.safetensors("x.safetensors", 4096)
    bad = FakeFile("broken.safetensors", data=b"\xff" * 8 + f.read(8, 4000), lfs=False)
    env.hub.add_repo("org/plain", [bad])
    job = await fetch(env, url=env.url("broken.safetensors", repo="org/plain"))
    assert job.state == "failed" and job.error["type"] == "IntegrityError"
    assert "not a valid safetensors file" in job.error["message"]
    assert_no_final(env, "broken.safetensors")


async def test_body_shorter_than_the_hub_says_fails(env):
    env.add(size=MiB)
    env.hub.switch(on="cdn", ignore_range=True, short_body=1000)
    job = await fetch(env)
    assert job.state == "failed" and job.error["type"] == "IntegrityError"
    assert "expected 1048576" in job.error["message"]
    assert_no_final(env)


async def test_requested_hash_disagreeing_with_the_hub_fails_before_downloading(env):
    env.add()
    job = await fetch(env, sha256="0" * 64)
    assert job.state == "failed" and job.error["type"] == "IntegrityError"
    assert "0" * 64 in job.error["message"] and "nothing was downloaded" in job.error["hint"]
    assert len(cdn_gets(env)) == 1  # only the response headers were read
    assert_no_final(env)
    assert env.leftovers() == []


async def test_cdn_etag_change_is_ignored_when_the_hub_sha256_is_known(env):
    """Contract A.5.1: the CDN's ETag is not the file's identity; the Hub's X-Linked-Etag is."""
    f = env.add(size=8 * MiB)
    env.hub.switch(on="cdn", drop_after=5 * MiB, times=1)  # past what aiohttp buffers (see above)
    env.hub.switch(on="cdn", etag_changes=True)
    job = await fetch(env, env.manager(env.with_settings(segment_threshold=64 * MiB)))
    assert_good(env, job, f)
    first, second = cdn_gets(env)
    assert second["if_range"] is None and range_start(second) > 0 and second["status"] == 206


# ---- Civitai: 307 to signed storage, name from Content-Disposition ---------------------------
async def test_civitai_download_names_the_file_and_keeps_the_key_home(env):
    async with FakeCivitai() as civ:
        blob = FakeFile.safetensors("uploaded.safetensors", 3 * MiB, seed=9)
        model = civ.add_model("Tiny Turbo", "LORA", files=[blob])
        version = model.versions[0]
        version.require_auth = True
        civ.add_api_key("civ_sekrit")
        s = env.with_settings(civitai_base_url=civ.url, civitai_api_key="civ_sekrit", segment_threshold=64 * MiB,
                              allowed_hosts=(hostport(env.hub.cdn_url), hostport(civ.storage_url)))
        # The first storage GET is the name probe (closed at once), the second drops after 1 MiB
        # (slowly, so that the file can "change" on the server meanwhile: a new ETag).
        civ.switch("storage", on="storage", drop_after=MiB, throttle_bps=4 * MiB, times=2)
        m = env.manager(s)
        sub = m.events.subscribe()

        async def change_file_once_bytes_arrive():
            while (await sub.get()).bytes_done == 0:
                pass
            civ.switch("storage", on="storage", etag_changes=True)

        changer = asyncio.ensure_future(change_file_once_bytes_arrive())
        job = await fetch(env, m, url=f"{civ.url}/api/download/models/{version.id}", folder="loras",
                          sha256=blob.sha256)
        changer.cancel()
        assert job.state == "completed", job.error
        assert job.filename == "uploaded.safetensors" and job.sha256 == blob.sha256
        assert sha256_of(env.final("uploaded.safetensors", "loras")) == blob.sha256
        api = civ.requests(server="civitai")
        storage = [r for r in civ.requests(server="storage") if r["method"] == "GET"]
        assert api and all(r["authorization"] == "Bearer civ_sekrit" for r in api)
        assert storage and all(r["authorization"] is None for r in storage)
        assert all("civ_sekrit" not in r["raw_path"] for r in civ.requests())
        # Without a Hub sha256 the ETag is the validator: the resume sent If-Range, got the whole
        # (changed) file back with 200, and started over from byte 0.
        resumed = [r for r in storage if r["if_range"]]
        assert resumed and resumed[0]["status"] == 200


# ---- connection ramp-up ------------------------------------------------------------------------
async def test_capped_connection_gets_more_connections(env):
    """One stream is measured first; a CDN that caps each connection gets the other connections."""
    f = env.add(size=6 * MiB, seed=11)
    env.hub.switch(on="cdn", throttle_bps=2 * MiB)
    job = await fetch(env, env.manager(env.with_settings(download_ramp_probe=0.3)))
    assert_good(env, job, f)
    assert len({r["range"] for r in cdn_gets(env)}) >= 3  # the first stream, then others for later pieces


async def test_download_finishing_during_the_probe_uses_one_connection(env):
    f = env.add(size=3 * MiB, seed=12)
    job = await fetch(env, env.manager(env.with_settings(download_ramp_probe=30)))
    assert_good(env, job, f)
    starts = [range_start(r) or 0 for r in cdn_gets(env)]
    # One stream took the pieces in turn, lowest first, each byte asked for once.
    assert starts[0] == 0 and starts == sorted(set(starts))
