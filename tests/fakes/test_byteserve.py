"""Byte serving (Range, 416, If-Range, no compression) and every failure switch, over real HTTP.

The bytes come from the Hub fake's CDN (LFS file) and from the Hub itself (plain-git file); both
go through :func:`fakes.byteserve.serve_bytes`, as does Civitai storage (see test_civitai).
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timezone

import aiohttp
import pytest

from fakes.blobs import FakeFile
from fakes.byteserve import Throttle, _corrupt, effective_etag, parse_range, retry_headers
from fakes.switches import Knobs, SwitchBoard

SIZE = 300_000
REPO = "org/bytes"


@pytest.fixture
async def hub(fake_hub):
    fake_hub.add_repo(REPO, [FakeFile("model.bin", size=SIZE, seed=5), FakeFile("notes.txt", b"0123456789", lfs=False)])
    return fake_hub


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def cdn_url(http, hub) -> str:
    async with http.head(f"{hub.url}/{REPO}/resolve/main/model.bin", allow_redirects=False) as r:
        assert r.status == 302
        return r.headers["Location"]


def blob(hub) -> FakeFile:
    return hub.repo(REPO).files["model.bin"]


# -- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, None),
        ("bytes=0-", (0, 99)),
        ("bytes=10-19", (10, 19)),
        ("bytes=90-500", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=100-", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),
        ("bytes=5-2", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=x-", None),
    ],
)
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


def test_effective_etag():
    assert effective_etag('"abc"', Knobs()) == '"abc"'
    assert effective_etag('"abc"', Knobs(no_etag=True)) is None
    changed = effective_etag('"' + "a" * 64 + '"', Knobs(etag_changes=True))
    assert changed != '"' + "a" * 64 + '"' and len(changed) == 66
    assert effective_etag('W/"abc12345"', Knobs(etag_changes=True)).startswith('W/"')


def test_retry_headers():
    assert retry_headers(Knobs(status=429, retry_after=3)) == {"Retry-After": "3"}
    date = retry_headers(Knobs(retry_after=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)))
    assert date == {"Retry-After": "Wed, 02 Jan 2030 03:04:05 GMT"}
    rl = retry_headers(Knobs(retry_after=7, rate_limit=True))
    assert rl["RateLimit"] == '"resolvers";r=0;t=7' and "q=3000;w=300" in rl["RateLimit-Policy"]


def test_throttle_paces_by_rate():
    now = [100.0]
    t = Throttle(1000, clock=lambda: now[0])
    assert t.delay_after(500) == pytest.approx(0.5)
    now[0] += 0.5
    assert t.delay_after(250) == pytest.approx(0.25)
    now[0] += 5  # fell behind: no sleeping to "catch up" beyond zero
    assert t.delay_after(100) == 0.0
    with pytest.raises(ValueError):
        Throttle(0)


def test_corrupt_flips_at_fixed_offsets_and_keeps_length():
    data = bytes(100)
    out = _corrupt(data, 0, 100)
    assert len(out) == 100 and [i for i, b in enumerate(out) if b] == [50]
    assert _corrupt(data, 60, 100) == data  # a range that does not cover a target is untouched


def test_switchboard_counts_and_filters():
    board = SwitchBoard()
    once = board.add("a", times=1, status=503)
    body = board.add("a", drop_after=10)
    cdn_only = board.add(None, on="cdn", wrong_bytes=True)
    api = frozenset({"status", "retry_after", "rate_limit"})
    assert board.take({"b"}, "hub", api).applied == []
    assert board.take({"a"}, "hub", api).status == 503
    assert (once.fired, once.remaining, body.fired) == (1, 0, 0)  # the API answer can't drop a body
    assert board.take({"a"}, "hub", api).status is None
    k = board.take({"a"}, "cdn", frozenset({"drop_after", "wrong_bytes"}))
    assert k.drop_after == 10 and k.wrong_bytes and (body.fired, cdn_only.fired) == (1, 1)
    with pytest.raises(TypeError):
        board.add("a", no_such_knob=1)
    with pytest.raises(TypeError):
        board.add("a", retry_after=1)  # modifiers alone do nothing


# -- over HTTP --------------------------------------------------------------------------------


async def test_full_body_headers(hub, http):
    url = await cdn_url(http, hub)
    async with http.get(url, headers={"Accept-Encoding": "gzip, deflate"}) as r:
        body = await r.read()
        assert r.status == 200
        assert r.headers["Content-Length"] == str(SIZE)
        assert r.headers["Accept-Ranges"] == "bytes"
        assert "Content-Encoding" not in r.headers
        assert r.headers["ETag"] != f'"{blob(hub).sha256}"'  # the CDN's own ETag (contract A.5.1)
        assert 'filename="model.bin"' in r.headers["Content-Disposition"]
    assert hashlib.sha256(body).hexdigest() == blob(hub).sha256


@pytest.mark.parametrize(
    "header, start, end",
    [("bytes=1000-", 1000, SIZE - 1), ("bytes=10-20", 10, 20), ("bytes=-100", SIZE - 100, SIZE - 1)],
)
async def test_single_ranges(hub, http, header, start, end):
    url = await cdn_url(http, hub)
    async with http.get(url, headers={"Range": header}) as r:
        assert r.status == 206
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
        assert await r.read() == blob(hub).read(start, end - start + 1)


async def test_range_past_eof_is_416(hub, http):
    url = await cdn_url(http, hub)
    async with http.get(url, headers={"Range": f"bytes={SIZE}-"}) as r:
        assert r.status == 416
        assert r.headers["Content-Range"] == f"bytes */{SIZE}"


async def test_if_range(hub, http):
    url = await cdn_url(http, hub)
    async with http.head(url) as r:
        etag = r.headers["ETag"]
        assert r.headers["Content-Length"] == str(SIZE)
    async with http.get(url, headers={"Range": "bytes=5-", "If-Range": etag}) as r:
        assert r.status == 206
    async with http.get(url, headers={"Range": "bytes=5-", "If-Range": '"stale"'}) as r:
        assert r.status == 200 and len(await r.read()) == SIZE


async def test_small_file_from_the_hub_supports_ranges(hub, http):
    async with http.get(f"{hub.url}/{REPO}/resolve/main/notes.txt", headers={"Range": "bytes=2-4"}) as r:
        assert r.status == 206 and await r.read() == b"234"
        assert r.headers["X-Repo-Commit"] == hub.repo(REPO).sha


async def test_ignore_range_and_force_416(hub, http):
    url = await cdn_url(http, hub)
    hub.switch(f"{REPO}/model.bin", ignore_range=True, times=1)
    async with http.get(url, headers={"Range": "bytes=5-"}) as r:
        assert r.status == 200 and len(await r.read()) == SIZE
    hub.switch(f"{REPO}/model.bin", force_416=True, times=1)
    async with http.get(url, headers={"Range": "bytes=5-"}) as r:
        assert r.status == 416
    async with http.get(url, headers={"Range": "bytes=5-"}) as r:
        assert r.status == 206
    assert [rec["faults"] for rec in hub.requests("/blobs/")] == [["ignore_range"], ["force_416"], []]


async def test_drop_after_closes_mid_body_once(hub, http):
    url = await cdn_url(http, hub)
    sw = hub.switch(f"{REPO}/model.bin", drop_after=100_000, times=1)
    got = bytearray()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(url) as r:
            assert r.headers["Content-Length"] == str(SIZE)
            async for chunk in r.content.iter_any():
                got += chunk
    assert len(got) == 100_000 and bytes(got) == blob(hub).read(0, 100_000)
    assert sw.fired == 1
    async with http.get(url) as r:
        assert len(await r.read()) == SIZE


async def test_head_does_not_consume_body_switches(hub, http):
    sw = hub.switch(f"{REPO}/model.bin", drop_after=10, times=1)
    url = await cdn_url(http, hub)
    async with http.head(url) as r:
        assert r.status == 200
    assert sw.fired == 0


async def test_stall_triggers_a_client_read_timeout(hub, http):
    url = await cdn_url(http, hub)
    hub.switch(f"{REPO}/model.bin", stall_at=50_000, stall_seconds=5, times=1)
    got = bytearray()
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(url, timeout=aiohttp.ClientTimeout(sock_read=0.3)) as r:
            async for chunk in r.content.iter_any():
                got += chunk
    assert len(got) == 50_000


async def test_throttled_body_is_complete(hub, http):
    url = await cdn_url(http, hub)
    hub.switch(None, on="cdn", throttle_bps=3_000_000)
    async with http.get(url) as r:
        assert hashlib.sha256(await r.read()).hexdigest() == blob(hub).sha256
    assert hub.requests("/blobs/")[-1]["faults"] == ["throttle_bps"]


async def test_wrong_bytes_keeps_the_size(hub, http):
    url = await cdn_url(http, hub)
    hub.switch(f"{REPO}/model.bin", wrong_bytes=True, times=1)
    async with http.get(url) as r:
        body = await r.read()
    assert len(body) == SIZE and hashlib.sha256(body).hexdigest() != blob(hub).sha256


@pytest.mark.parametrize("knob, delta", [("short_body", -1000), ("long_body", 1000)])
async def test_short_and_long_bodies_have_honest_lengths(hub, http, knob, delta):
    url = await cdn_url(http, hub)
    hub.switch(f"{REPO}/model.bin", **{knob: abs(delta)}, times=1)
    async with http.get(url) as r:
        body = await r.read()
        assert int(r.headers["Content-Length"]) == SIZE + delta == len(body)
    assert body[: min(SIZE, len(body))] == blob(hub).read(0, min(SIZE, len(body)))


async def test_status_switches(hub, http):
    url = await cdn_url(http, hub)
    hub.switch(f"{REPO}/model.bin", on="cdn", status=429, retry_after=2, rate_limit=True, times=1)
    hub.switch(f"{REPO}/model.bin", on="cdn", status=503, retry_after=datetime(2030, 1, 1, tzinfo=timezone.utc),
               times=1)
    async with http.get(url) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "2"
        assert r.headers["RateLimit"] == '"resolvers";r=0;t=2'
    async with http.get(url) as r:
        assert r.status == 503 and r.headers["Retry-After"] == "Tue, 01 Jan 2030 00:00:00 GMT"
    async with http.get(url) as r:
        assert r.status == 200


async def test_no_etag_and_etag_changes(hub, http):
    url = await cdn_url(http, hub)
    async with http.head(url) as r:
        etag = r.headers["ETag"]
    hub.switch(f"{REPO}/model.bin", on="cdn", no_etag=True, times=1)
    async with http.head(url) as r:
        assert "ETag" not in r.headers
    hub.switch(f"{REPO}/model.bin", on="cdn", etag_changes=True, times=1)
    async with http.get(url, headers={"Range": "bytes=5-", "If-Range": etag}) as r:
        assert r.status == 200 and r.headers["ETag"] != etag  # "the file changed": full body


async def test_bytes_are_never_compressed(hub, http):
    async with http.get(f"{hub.url}/{REPO}/resolve/main/notes.txt", headers={"Accept-Encoding": "gzip"}) as r:
        assert "Content-Encoding" not in r.headers and await r.read() == b"0123456789"


async def test_chunked_switch_omits_content_length(hub, http):
    url = await cdn_url(http, hub)
    hub.switch(on="cdn", chunked=True, times=1)
    async with http.get(url) as r:
        body = await r.read()
        assert r.status == 200
        assert "Content-Length" not in r.headers
        assert r.headers.get("Transfer-Encoding") == "chunked"
    assert hashlib.sha256(body).hexdigest() == blob(hub).sha256
    assert hub.requests(server="cdn")[-1]["faults"] == ["chunked"]


@pytest.mark.parametrize("location", ["http://127.0.0.1:9/x", "file:///etc/passwd", "https://evil.example/x"])
async def test_location_switch_redirects_anywhere(hub, http, location):
    hub.switch(f"{REPO}/model.bin", on="hub", status=302, location=location, times=1)
    async with http.get(f"{hub.url}/{REPO}/resolve/main/model.bin", allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["Location"] == location
