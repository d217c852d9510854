"""FakeCivitai routes, shapes and the download status matrix (contract section B)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from yarl import URL

from fakes import hashes
from fakes.blobs import FakeFile, make_safetensors
from fakes.civitai import CivFile, CivVersion, download_filename, filenamize, primary_file

KEY = "civ_key_1"
BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120"}
TINY = make_safetensors(4096, seed=1)


@pytest.fixture
async def civ(fake_civitai):
    civ = fake_civitai
    civ.add_api_key(KEY, "alice")
    civ.tiny = civ.add_model("Tiny Turbo", "Checkpoint", creator="acme", tags=["base model"], downloads=420,
                             thumbs_up=7, versions=[CivVersion(name="v1.0", base_model="SDXL 1.0", files=[
                                 CivFile(FakeFile("tinyTurbo.safetensors", TINY), size="pruned", fp="fp16"),
                                 CivFile(FakeFile("tinyTurbo_full.ckpt", size=3000, seed=2), size="full", fp="fp32"),
                                 CivFile(FakeFile("tiny_vae.safetensors", size=500, seed=3), type="VAE"),
                             ])])
    civ.lora = civ.add_model("Detail Slider", "LORA", downloads=50, thumbs_up=30,
                             files=[FakeFile("detail_slider_v2.safetensors", size=700, seed=4)])
    civ.pony = civ.add_model("Pony Diffusion", "Checkpoint", downloads=10_000, thumbs_up=1,
                             versions=[CivVersion(name="V6 XL", base_model="Pony",
                                                  files=[FakeFile("ponyDiffusionV6XL.safetensors", size=900, seed=5)])])
    return civ


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http, url, **kw):
    async with http.get(url, allow_redirects=False, **kw) as r:
        body = await r.read()
        try:
            data = await r.json(content_type=None)
        except ValueError:
            data = body.decode()
        return r.status, r.headers, data


# -- naming and file choice -----------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("Tiny Turbo", "tinyTurbo"), ("v1.0", "v10"), ("Juggernaut XL", "juggernautXL"), ("!!!", ""),
    ("It's a model", "itsAModel"), ("A very long model name that is truncated", "aVeryLongModelNameThat"),
])
def test_filenamize(value, expected):
    assert filenamize(value) == expected


def test_download_filename_rules():
    dl = download_filename
    assert dl("Tiny Turbo", "Checkpoint", "v1.0", [], "x.safetensors", "Model") == "tinyTurbo_v10.safetensors"
    assert dl("Tiny Turbo", "Checkpoint", "TinyTurbo v2", [], "x.safetensors", "Model") == "tinyTurbo_V2.safetensors"
    # the model name is removed from the version name only in its filenamized form (a real quirk):
    assert dl("Tiny Turbo", "Checkpoint", "Tiny Turbo v2", [], "x.safetensors", "Model") == \
        "tinyTurbo_tinyTurboV2.safetensors"
    assert dl("Slider", "LORA", "v1", [], "orig.safetensors", "Model") == "orig.safetensors"
    assert dl("!!!", "Checkpoint", "v1", [], "orig.ckpt", "Model") == "orig.ckpt"
    assert dl("Bad Hands", "TextualInversion", "v1", ["badhands"], "e.pt", "Model") == "badhands.pt"
    assert dl("Bad Hands", "TextualInversion", "v1", ["badhands"], "e.pt", "Negative") == "badhands-neg.pt"
    assert dl("Tiny", "Checkpoint", "v1", [], "data.zip", "Training Data") == "tiny_v1_trainingData.zip"
    assert dl("Tiny", "Checkpoint", "v1", [], "my.vae.pt", "VAE") == "my.vae.pt"
    assert dl("Tiny", "Checkpoint", "v1", [], "te.safetensors", "Text Encoder") == "tiny_v1_txt.safetensors"
    assert dl("Tiny", "Checkpoint", "v1 inpainting", [], "m-inpainting.ckpt", "Model") == "tiny_v1-inpainting.ckpt"
    assert dl("Tiny", "Checkpoint", "v1", [], "m.ckpt", "Model", override_name="custom.ckpt") == "custom.ckpt"


def test_primary_file_scoring():
    def cf(name, **kw):
        return CivFile(FakeFile(name, size=1), **kw)

    pickle_fp32 = cf("a.ckpt", size="full", fp="fp32")
    st_fp16 = cf("b.safetensors", size="pruned", fp="fp16")
    vae = cf("c.safetensors", type="VAE", size="pruned", fp="fp16")
    assert primary_file([pickle_fp32, vae, st_fp16]) is st_fp16
    assert primary_file([vae, pickle_fp32]) is pickle_fp32  # model types get +1000
    assert primary_file([st_fp16, pickle_fp32], {"format": "PickleTensor"}) is pickle_fp32
    assert primary_file([]) is None


# -- /api/v1/models ------------------------------------------------------------------------


async def test_search_item_shape(civ, http):
    status, headers, data = await get(http, f"{civ.url}/api/v1/models?query=tiny")
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Cache-Control"] == "public, s-maxage=300, stale-while-revalidate=150"
    (item,) = data["items"]
    assert item["id"] == civ.tiny.id and item["type"] == "Checkpoint" and item["creator"]["username"] == "acme"
    version = item["modelVersions"][0]
    assert version["downloadUrl"] == f"{civ.url}/api/download/models/{version['id']}"
    files = {f["name"]: f for f in version["files"]}
    primary = files["tinyTurbo_v10.safetensors"]  # renamed download filename (B.6.3)
    assert primary["primary"] is True and primary["downloadUrl"] == version["downloadUrl"]
    assert primary["metadata"] == {"format": "SafeTensor", "size": "pruned", "fp": "fp16"}
    assert primary["sizeKB"] == 4.0
    assert primary["hashes"]["SHA256"] == hashes.sha256_hex(TINY).upper()
    assert set(primary["hashes"]) >= {"AutoV2", "SHA256", "CRC32", "AutoV3"}
    full = files["tinyTurbo_v10.ckpt"]
    assert "primary" not in full
    assert URL(full["downloadUrl"]).query == {"type": "Model", "format": "PickleTensor", "size": "full", "fp": "fp32"}
    assert data["metadata"] == {}


async def test_search_validation(civ, http):
    assert (await get(http, f"{civ.url}/api/v1/models?limit=101"))[0] == 400
    assert (await get(http, f"{civ.url}/api/v1/models?types=Bogus"))[0] == 400
    assert (await get(http, f"{civ.url}/api/v1/models?sort=Best"))[0] == 400
    status, _, body = await get(http, f"{civ.url}/api/v1/models?query=x&page=2")
    assert status == 400 and "cursor" in body["error"]
    status, _, body = await get(http, f"{civ.url}/api/v1/models?limit=100&page=11")
    assert status == 429 and body["error"].startswith("You've requested too many pages")
    assert (await get(http, f"{civ.url}/api/v1/models?favorites=true"))[0] == 401
    assert (await get(http, f"{civ.url}/api/v1/models?favorites=true", headers={"Authorization": f"Bearer {KEY}"}))[0] == 200
    async with http.post(f"{civ.url}/api/v1/models") as r:
        assert r.status == 405


async def test_search_filters(civ, http):
    _, _, data = await get(http, f"{civ.url}/api/v1/models?types=LORA&types=LoCon")
    assert [m["id"] for m in data["items"]] == [civ.lora.id]
    _, _, data = await get(http, f"{civ.url}/api/v1/models?baseModels=Pony")
    assert [m["id"] for m in data["items"]] == [civ.pony.id]
    _, _, data = await get(http, f"{civ.url}/api/v1/models?sort=Most%20Downloaded")
    assert [m["id"] for m in data["items"]] == [civ.pony.id, civ.tiny.id, civ.lora.id]
    _, _, data = await get(http, f"{civ.url}/api/v1/models?username=ACME&tag=Base%20Model")
    assert [m["id"] for m in data["items"]] == [civ.tiny.id]
    _, _, data = await get(http, f"{civ.url}/api/v1/models?ids={civ.lora.id},{civ.pony.id}&sort=Newest")
    assert [m["id"] for m in data["items"]] == [civ.pony.id, civ.lora.id]
    _, _, data = await get(http, f"{civ.url}/api/v1/models?query=tiny&primaryFileOnly=true")
    assert [f["name"] for f in data["items"][0]["modelVersions"][0]["files"]] == ["tinyTurbo_v10.safetensors"]
    civ.add_model("Spicy", nsfw=True, files=[FakeFile("s.safetensors", size=5)])
    _, _, sfw = await get(http, f"{civ.url}/api/v1/models?query=spicy")
    _, _, nsfw = await get(http, f"{civ.url}/api/v1/models?query=spicy&nsfw=true")
    assert sfw["items"] == [] and len(nsfw["items"]) == 1


async def test_search_by_filename_and_imperfect_relevance(civ, http):
    _, _, data = await get(http, f"{civ.url}/api/v1/models?query=detail_slider_v2")
    assert [m["id"] for m in data["items"]] == [civ.lora.id]
    civ.search_filenames = False
    _, _, data = await get(http, f"{civ.url}/api/v1/models?query=detail_slider_v2")
    assert data["items"] == []
    civ.imperfect_relevance = 1
    _, _, data = await get(http, f"{civ.url}/api/v1/models?query=Detail%20Slider&limit=1")
    assert [m["id"] for m in data["items"]] == [civ.pony.id]  # "?query=Rolia&limit=1 returned Pony"


async def test_cursor_pagination(civ, http):
    for i in range(5):
        civ.add_model(f"Filler {i}", files=[FakeFile(f"f{i}.safetensors", size=10, seed=i)])
    url, seen = f"{civ.url}/api/v1/models?limit=3&types=Checkpoint", []
    while url:
        _, _, data = await get(http, url)
        seen += [m["id"] for m in data["items"]]
        url = data["metadata"].get("nextPage")
        if url:
            assert url.startswith(f"{civ.url}/api/v1/models?") and "types=Checkpoint" in url
            assert URL(url).query["cursor"] == data["metadata"]["nextCursor"]
    assert len(seen) == len(set(seen)) == 7
    _, _, data = await get(http, f"{civ.url}/api/v1/models?query=filler&limit=2")
    assert data["metadata"]["nextCursor"] == "2"
    _, _, paged = await get(http, f"{civ.url}/api/v1/models?limit=2&page=2")
    assert paged["metadata"]["currentPage"] == 2 and paged["metadata"]["pageSize"] == 2
    assert paged["metadata"]["nextCursor"].endswith("|4")
    assert "page" not in URL(paged["metadata"]["nextPage"]).query


async def test_search_overload_503(civ, http):
    sw = civ.overload_search(times=1)
    status, headers, body = await get(http, f"{civ.url}/api/v1/models?query=tiny")
    assert status == 503 and headers["Retry-After"] == "2" and headers["Cache-Control"] == "no-store"
    assert body == {"error": "Model search is temporarily overloaded — please retry."}
    assert sw.fired == 1 and (await get(http, f"{civ.url}/api/v1/models?query=tiny"))[0] == 200


# -- models / versions / by-hash ------------------------------------------------------------------


async def test_model_by_id(civ, http):
    status, _, data = await get(http, f"{civ.url}/api/v1/models/{civ.tiny.id}")
    assert status == 200 and data["name"] == "Tiny Turbo" and len(data["modelVersions"]) == 1
    status, _, data = await get(http, f"{civ.url}/api/v1/models/5")
    assert (status, data) == (404, {"error": "No model with id 5"})
    for bad in ("0", "abc", "2147483648"):
        assert (await get(http, f"{civ.url}/api/v1/models/{bad}"))[0] == 400


async def test_model_version_shape(civ, http):
    vid = civ.tiny.versions[0].id
    status, _, v = await get(http, f"{civ.url}/api/v1/model-versions/{vid}")
    assert status == 200 and v["id"] == vid and v["modelId"] == civ.tiny.id
    assert v["model"] == {"name": "Tiny Turbo", "type": "Checkpoint", "nsfw": False, "poi": False}
    assert v["air"] == f"urn:air:sdxl:checkpoint:civitai:{civ.tiny.id}@{vid}"
    assert [f["primary"] for f in v["files"]] == [True, False, False]
    assert v["status"] == "Published" and v["downloadUrl"].endswith(f"/api/download/models/{vid}")
    assert (await get(http, f"{civ.url}/api/v1/model-versions/999999"))[2] == {"error": "Model not found"}
    empty = civ.add_model("Empty", files=[])
    assert (await get(http, f"{civ.url}/api/v1/model-versions/{empty.versions[0].id}"))[2] == {
        "error": "Missing model file"}
    async with http.post(f"{civ.url}/api/v1/model-versions/{vid}") as r:
        assert r.status == 405


async def test_by_hash_every_kind(civ, http):
    vid = civ.tiny.versions[0].id
    kinds = dict(civ.tiny.versions[0].files[0].hashes)
    kinds["AutoV3 (full)"] = hashes.autov3(TINY, full=True)
    big = civ.add_model("Big", files=[FakeFile.safetensors("big.safetensors", 3 << 20, seed=8)])
    big_hashes = big.versions[0].files[0].hashes
    assert "AutoV1" in big_hashes  # only files >= 2 MiB have one
    cases = [(k, v, vid) for k, v in kinds.items()] + [("AutoV1", big_hashes["AutoV1"], big.versions[0].id)]
    for kind, value, expected in cases:
        for variant in (value, value.lower()):
            status, _, data = await get(http, f"{civ.url}/api/v1/model-versions/by-hash/{variant}")
            assert (kind, status, data["id"]) == (kind, 200, expected)
    status, _, data = await get(http, f"{civ.url}/api/v1/model-versions/by-hash/{'0' * 64}")
    assert (status, data) == (404, {"error": "Model not found"})


async def test_by_hash_duplicates_and_empty_hashes(civ, http):
    first = civ.add_model("Reupload A", versions=[CivVersion(published_at="2024-06-01T00:00:00.000Z",
                                                             files=[FakeFile("dup.safetensors", TINY)])])
    civ.add_model("Reupload B", versions=[CivVersion(published_at="2023-01-01T00:00:00.000Z", status="Draft",
                                                     files=[FakeFile("dup.safetensors", TINY)])])
    _, _, data = await get(http, f"{civ.url}/api/v1/model-versions/by-hash/{hashes.autov2(TINY)}")
    assert data["id"] == first.versions[0].id  # earliest *published* version wins
    nohash = civ.add_model("No Hash", files=[CivFile(FakeFile("n.safetensors", size=64, seed=77), hashes={})])
    sha = hashes.sha256_hex(nohash.versions[0].files[0].blob)
    assert (await get(http, f"{civ.url}/api/v1/model-versions/by-hash/{sha}"))[0] == 404
    _, _, v = await get(http, f"{civ.url}/api/v1/model-versions/{nohash.versions[0].id}")
    assert v["files"][0]["hashes"] == {}
    wrong = civ.add_model("Wrong Hash", files=[CivFile(FakeFile("w.bin", size=10), hashes={"SHA256": "ab" * 32})])
    _, _, found = await get(http, f"{civ.url}/api/v1/model-versions/by-hash/{'AB' * 32}")
    assert found["id"] == wrong.versions[0].id


# -- download ------------------------------------------------------------------------------------


async def test_download_redirects_to_signed_storage(civ, http):
    vid = civ.tiny.versions[0].id
    status, headers, _ = await get(http, f"{civ.url}/api/download/models/{vid}")
    assert status == 307 and headers["Cache-Control"] == "no-store, max-age=0"
    location = URL(headers["Location"])
    assert str(location.origin()) == civ.storage_url and location.host == "localhost"
    assert location.query["response-content-disposition"] == 'attachment; filename="tinyTurbo_v10.safetensors"'
    async with http.get(location) as r:
        assert r.status == 200 and await r.read() == TINY
        assert r.headers["Content-Disposition"] == 'attachment; filename="tinyTurbo_v10.safetensors"'
        assert r.headers["Accept-Ranges"] == "bytes"
    async with http.get(location, headers={"Range": "bytes=0-7"}) as r:
        assert r.status == 206 and r.headers["Content-Range"] == f"bytes 0-7/{len(TINY)}"
    async with http.get(location, headers={"Range": f"bytes={len(TINY)}-"}) as r:
        assert r.status == 416


async def test_storage_rejects_bad_or_expired_signatures(civ, http):
    vid = civ.tiny.versions[0].id
    location = URL((await get(http, f"{civ.url}/api/download/models/{vid}"))[1]["Location"])
    tampered = location.update_query({"response-content-disposition": 'attachment; filename="x.bin"'})
    assert (await get(http, tampered))[0] == 403
    assert (await get(http, location.with_query(None)))[0] == 403
    civ.storage_url_ttl = -60
    expired = (await get(http, f"{civ.url}/api/download/models/{vid}"))[1]["Location"]
    status, _, body = await get(http, URL(expired, encoded=True))
    assert status == 403 and "AccessDenied" in body


async def test_download_file_selection(civ, http):
    vid = civ.tiny.versions[0].id
    v = civ.tiny.versions[0]

    async def file_id(query: str):
        status, headers, _ = await get(http, f"{civ.url}/api/download/models/{vid}{query}")
        return status, (URL(headers["Location"]).parts[2] if status == 307 else None)

    assert await file_id("?type=Model&format=PickleTensor") == (307, str(v.files[1].id))
    assert await file_id("?type=VAE") == (307, str(v.files[2].id))
    assert await file_id("?format=PickleTensor&fp=fp32") == (307, str(v.files[1].id))
    # the default SafeTensor preference (weight 100) outweighs size+fp, then the mismatch check fails:
    assert await file_id("?fp=fp32&size=full") == (404, None)
    assert await file_id("?type=Model&format=SafeTensor&fp=int8") == (404, None)  # mismatch → 404
    assert await file_id(f"?fileId={v.files[2].id}") == (307, str(v.files[2].id))
    assert await file_id("?fileId=1") == (404, None)
    assert (await file_id("?format=Bogus"))[0] == 400
    assert (await file_id("?type=Bogus"))[0] == 400
    civ.add_api_key("pickle_fan", file_preferences={"format": "PickleTensor"})
    status, headers, _ = await get(http, f"{civ.url}/api/download/models/{vid}?token=pickle_fan")
    assert URL(headers["Location"]).parts[2] == str(v.files[1].id)  # primary differs per user


async def test_download_auth_matrix(civ, http):
    v = civ.add_model("Members Only", versions=[CivVersion(require_auth=True,
                                                           files=[FakeFile("m.safetensors", size=100)])]).versions[0]
    url = f"{civ.url}/api/download/models/{v.id}"
    status, _, body = await get(http, url)
    assert (status, body["message"]) == (401, "The creator of this asset requires you to be logged in to download it")
    assert (await get(http, url, headers={"Authorization": "Bearer not-a-key"}))[0] == 401  # invalid = anonymous
    assert (await get(http, url, headers={"Authorization": f"Bearer {KEY}"}))[0] == 307
    assert (await get(http, url, headers={"Authorization": f"Token {KEY}"}))[0] == 307  # any scheme word
    assert (await get(http, f"{url}?token={KEY}"))[0] == 307
    status, headers, _ = await get(http, url, headers=BROWSER)
    assert status == 307 and headers["Location"] == f"/login?returnUrl=%2Fmodel-versions%2F{v.id}&reason=download-auth"
    public = f"{civ.url}/api/download/models/{civ.lora.versions[0].id}"
    assert (await get(http, public))[0] == 307
    civ.require_auth = True
    assert (await get(http, public))[0] == 401


async def test_download_access_states(civ, http):
    deadline = datetime.now(timezone.utc) + timedelta(days=3)
    early = civ.add_model("Early", versions=[CivVersion(early_access_deadline=deadline,
                                                        files=[FakeFile("e.safetensors", size=10)])]).versions[0]
    status, _, body = await get(http, f"{civ.url}/api/download/models/{early.id}")
    assert status == 403 and body["error"] == "Early Access" and body["deadline"].startswith(deadline.strftime("%Y-%m-%dT"))
    status, headers, _ = await get(http, f"{civ.url}/api/download/models/{early.id}", headers=BROWSER)
    assert (status, headers["Location"]) == (307, f"/model-versions/{early.id}")
    _, _, listing = await get(http, f"{civ.url}/api/v1/models/{early.model_id}")
    assert listing["modelVersions"][0]["availability"] == "EarlyAccess"
    civ.grant(KEY, early.id)
    assert (await get(http, f"{civ.url}/api/download/models/{early.id}?token={KEY}"))[0] == 307

    restricted = civ.add_model("Club", versions=[CivVersion(restricted=True, files=[FakeFile("c.bin", size=1)])])
    rid = restricted.versions[0].id
    assert (await get(http, f"{civ.url}/api/download/models/{rid}"))[0] == 401
    status, _, body = await get(http, f"{civ.url}/api/download/models/{rid}?token={KEY}")
    assert (status, body) == (403, {"error": "You do not have access to download this file"})

    archived = civ.add_model("Old", mode="Archived", files=[FakeFile("o.bin", size=1)])
    status, _, body = await get(http, f"{civ.url}/api/download/models/{archived.versions[0].id}")
    assert (status, body) == (410, {"error": "Model archived, not available for download"})
    _, _, listing = await get(http, f"{civ.url}/api/v1/models/{archived.id}")
    assert listing["modelVersions"][0]["files"] == [] and "downloadUrl" not in listing["modelVersions"][0]

    disabled = civ.add_model("Gen Only", versions=[CivVersion(usage_control="Generation", files=[FakeFile("g", size=1)])])
    status, _, body = await get(http, f"{civ.url}/api/download/models/{disabled.versions[0].id}", headers=BROWSER)
    assert status == 401 and body["message"] == "The creator of this asset has disabled downloads on this file"

    draft = civ.add_model("Draft", versions=[CivVersion(status="Draft", files=[FakeFile("d", size=1)])])
    assert (await get(http, f"{civ.url}/api/download/models/{draft.versions[0].id}"))[2] == {"error": "File not found"}
    status, _, text = await get(http, f"{civ.url}/api/download/models/999999", headers=BROWSER)
    assert (status, text) == (404, "File not found")
    assert (await get(http, f"{civ.url}/api/download/models/abc"))[0] == 400


async def test_download_limits_and_blocks(civ, http):
    url = f"{civ.url}/api/download/models/{civ.lora.versions[0].id}"
    civ.download_limit = 1
    assert (await get(http, url))[0] == 307
    status, headers, body = await get(http, url)
    assert status == 429 and "Retry-After" not in headers and body["error"].startswith("We've noticed")
    assert (await get(http, f"{url}?token={KEY}"))[0] == 307  # counted per identity
    civ.blocked.add(KEY)
    assert (await get(http, f"{url}?token={KEY}"))[2] == {"error": "Forbidden"}


async def test_download_switches(civ, http):
    vid = civ.tiny.versions[0].id
    civ.switch(vid, on="civitai", status=429, times=1)
    status, headers, body = await get(http, f"{civ.url}/api/download/models/{vid}")
    assert status == 429 and "Retry-After" not in headers and body["error"].startswith("We've noticed")
    civ.switch(f"download:{vid}", status=404, times=1)
    status, headers, body = await get(http, f"{civ.url}/api/download/models/{vid}")
    assert (status, headers["Cache-Control"], body) == (404, "private, no-store", {"error": "File not found"})
    civ.switch(f"file:{civ.tiny.versions[0].files[0].id}", on="storage", drop_after=100, times=1)
    location = (await get(http, f"{civ.url}/api/download/models/{vid}"))[1]["Location"]
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(location) as r:
            await r.read()
    async with http.get(location) as r:
        assert await r.read() == TINY
    assert [rec["faults"] for rec in civ.requests(server="storage")] == [["drop_after"], []]


async def test_token_never_reaches_storage(civ, http):
    url = f"{civ.url}/api/download/models/{civ.tiny.versions[0].id}"
    async with http.get(url, headers={"Authorization": f"Bearer {KEY}"}) as r:  # aiohttp follows the 307
        assert r.status == 200 and await r.read() == TINY
    api, storage = civ.log.records
    assert api["authorization"] == f"Bearer {KEY}" and storage["server"] == "storage"
    assert storage["authorization"] is None and "token" not in storage["query"]
