"""FakeHub routes and shapes (contract section A), with a plain aiohttp client."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from fakes.blobs import FakeFile

TOKEN = "hf_reader"


@pytest.fixture
async def hub(fake_hub):
    fake_hub.add_repo("acme/sdxl-turbo-tiny", [
        FakeFile("README.md", b"# tiny\n", lfs=False),
        FakeFile("model.safetensors", size=2048, seed=1),
        FakeFile("vae/config.json", b"{}", lfs=False),
        FakeFile("vae/sub/diffusion_pytorch_model.safetensors", size=1024, seed=2),
    ], downloads=4200, likes=12, tags=["diffusers", "text-to-image"], pipeline_tag="text-to-image",
        library_name="diffusers")
    fake_hub.add_repo("acme/other-model", [FakeFile("w.bin", size=10)], downloads=10, likes=500, tags=["lora"])
    fake_hub.add_repo("bob/model-x", [FakeFile("w.bin", size=10)], downloads=99, likes=1)
    fake_hub.add_repo("bob/secret-model", [FakeFile("w.bin", size=10)], private=True)
    fake_hub.add_repo("org/gated", [FakeFile("m.safetensors", size=100)], gated=True)
    fake_hub.add_token(TOKEN)
    return fake_hub


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def get_json(http, url, **kw):
    async with http.get(url, **kw) as r:
        return r.status, r.headers, await r.json(content_type=None)


# -- /api/models ------------------------------------------------------------------------------


async def test_search_default_fields(hub, http):
    status, headers, items = await get_json(http, f"{hub.url}/api/models?search=TINY")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert [m["id"] for m in items] == ["acme/sdxl-turbo-tiny"]
    assert set(items[0]) == {"_id", "id", "likes", "trendingScore", "private", "downloads", "tags",
                             "pipeline_tag", "library_name", "createdAt", "modelId"}


@pytest.mark.parametrize("flag", ["true", "True", "1"])
async def test_search_full_adds_siblings(hub, http, flag):
    _, _, items = await get_json(http, f"{hub.url}/api/models?search=tiny&full={flag}")
    item = items[0]
    assert item["sha"] == hub.repo("acme/sdxl-turbo-tiny").sha and item["author"] == "acme"
    assert item["siblings"][0] == {"rfilename": "README.md"}
    assert item["gated"] is False and item["disabled"] is False and "lastModified" in item


async def test_search_filters_and_sort(hub, http):
    _, _, by_author = await get_json(http, f"{hub.url}/api/models?author=bob")
    assert [m["id"] for m in by_author] == ["bob/model-x"]  # private repo hidden from anonymous
    _, _, tagged = await get_json(http, f"{hub.url}/api/models?filter=diffusers&filter=text-to-image")
    assert [m["id"] for m in tagged] == ["acme/sdxl-turbo-tiny"]
    _, _, by_likes = await get_json(http, f"{hub.url}/api/models?sort=likes")
    assert [m["id"] for m in by_likes][:2] == ["acme/other-model", "acme/sdxl-turbo-tiny"]
    _, _, ascending = await get_json(http, f"{hub.url}/api/models?sort=downloads&direction=1")
    assert ascending[-1]["id"] == "acme/sdxl-turbo-tiny"
    _, _, expanded = await get_json(http, f"{hub.url}/api/models?search=model-x&expand=downloads")
    assert expanded == [{"_id": expanded[0]["_id"], "id": "bob/model-x", "downloads": 99}]
    status, _, _ = await get_json(http, f"{hub.url}/api/models?sort=bogus")
    assert status == 400


async def test_search_private_repo_visible_to_approved_token(hub, http):
    hub.approve_token("bob/secret-model", TOKEN)
    _, _, items = await get_json(http, f"{hub.url}/api/models?author=bob",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    assert {m["id"] for m in items} == {"bob/model-x", "bob/secret-model"}


async def test_search_pagination_link(hub, http):
    hub.page_size = 2
    url = f"{hub.url}/api/models?search=&full=true"
    ids = []
    while url:
        async with http.get(url) as r:
            ids += [m["id"] for m in await r.json()]
            nxt = r.links.get("next")
            url = str(nxt["url"]) if nxt else None
            if url:
                assert url.startswith(hub.url + "/api/models?") and "full=true" in url and "cursor=" in url
    assert len(ids) == len(set(ids)) == 4


async def test_search_limit_with_and_without_link(hub, http):
    async with http.get(f"{hub.url}/api/models?limit=1") as r:
        assert len(await r.json()) == 1 and "Link" in r.headers
    hub.link_with_limit = False
    async with http.get(f"{hub.url}/api/models?limit=1") as r:
        assert "Link" not in r.headers


# -- model info ------------------------------------------------------------------------------


async def test_model_info_with_blobs(hub, http):
    repo = hub.repo("acme/sdxl-turbo-tiny")
    status, _, info = await get_json(http, f"{hub.url}/api/models/acme/sdxl-turbo-tiny?blobs=true&securityStatus=true")
    assert status == 200 and info["sha"] == repo.sha and info["id"] == "acme/sdxl-turbo-tiny"
    sib = {s["rfilename"]: s for s in info["siblings"]}
    model = repo.files["model.safetensors"]
    assert sib["model.safetensors"] == {"rfilename": "model.safetensors", "size": 2048, "blobId": model.blob_id,
                                        "lfs": {"sha256": model.sha256, "size": 2048,
                                                "pointerSize": len(model.pointer)}}
    assert "lfs" not in sib["README.md"] and sib["README.md"]["blobId"] == repo.files["README.md"].blob_id
    _, _, plain = await get_json(http, f"{hub.url}/api/models/acme/sdxl-turbo-tiny")
    assert plain["siblings"][0] == {"rfilename": "README.md"}


async def test_model_info_revisions(hub, http):
    pr = hub.add_revision("acme/sdxl-turbo-tiny", "refs/pr/1", [FakeFile("only.bin", size=5)])
    url = URL(f"{hub.url}/api/models/acme/sdxl-turbo-tiny/revision/refs%2Fpr%2F1", encoded=True)
    status, _, info = await get_json(http, url)
    assert status == 200 and info["sha"] == pr and [s["rfilename"] for s in info["siblings"]] == ["only.bin"]
    status, _, by_commit = await get_json(http, f"{hub.url}/api/models/acme/sdxl-turbo-tiny/revision/{pr}")
    assert by_commit["sha"] == pr
    status, headers, body = await get_json(http, f"{hub.url}/api/models/acme/sdxl-turbo-tiny/revision/nope")
    assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound" and "error" in body


async def test_missing_private_and_token_errors(hub, http):
    for repo in ("acme/missing", "bob/secret-model"):
        status, headers, _ = await get_json(http, f"{hub.url}/api/models/{repo}")
        assert (status, headers["X-Error-Code"]) == (401, "RepoNotFound")
        status, headers, _ = await get_json(http, f"{hub.url}/api/models/{repo}",
                                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")
    status, headers, body = await get_json(http, f"{hub.url}/api/models/acme/other-model",
                                           headers={"Authorization": "Bearer hf_nobody"})
    assert status == 401 and "X-Error-Code" not in headers
    assert headers["X-Error-Message"] == "Invalid credentials in Authorization header"
    hub.reject_unknown_tokens = False
    status, _, _ = await get_json(http, f"{hub.url}/api/models/acme/other-model",
                                  headers={"Authorization": "Bearer hf_nobody"})
    assert status == 200


async def test_gated_metadata_knob(hub, http):
    status, _, info = await get_json(http, f"{hub.url}/api/models/org/gated")
    assert status == 200 and info["gated"] == "auto"
    hub.gated_metadata = "401"
    status, headers, _ = await get_json(http, f"{hub.url}/api/models/org/gated")
    assert (status, headers["X-Error-Code"]) == (401, "GatedRepo")
    status, headers, _ = await get_json(http, f"{hub.url}/api/models/org/gated/tree/main",
                                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, headers["X-Error-Code"]) == (403, "GatedRepo")


async def test_disabled_repo(hub, http):
    hub.add_repo("acme/disabled", [FakeFile("a", size=1)], disabled=True)
    status, headers, _ = await get_json(http, f"{hub.url}/api/models/acme/disabled")
    assert status == 403 and headers["X-Error-Message"] == "Access to this resource is disabled."


# -- tree ------------------------------------------------------------------------------------


async def test_tree_listing(hub, http):
    repo = hub.repo("acme/sdxl-turbo-tiny")
    _, _, top = await get_json(http, f"{hub.url}/api/models/acme/sdxl-turbo-tiny/tree/main?recursive=false&expand=false")
    assert [(e["type"], e["path"]) for e in top] == [("file", "README.md"), ("file", "model.safetensors"),
                                                     ("directory", "vae")]
    model = next(e for e in top if e["path"] == "model.safetensors")
    f = repo.files["model.safetensors"]
    assert model == {"type": "file", "oid": f.blob_id, "size": 2048, "path": "model.safetensors",
                     "lfs": {"oid": f.sha256, "size": 2048, "pointerSize": len(f.pointer)}}
    assert next(e for e in top if e["path"] == "vae")["size"] == 0
    _, _, rec = await get_json(http, f"{hub.url}/api/models/acme/sdxl-turbo-tiny/tree/main?recursive=1")
    assert [e["path"] for e in rec] == ["README.md", "model.safetensors", "vae", "vae/config.json", "vae/sub",
                                        "vae/sub/diffusion_pytorch_model.safetensors"]
    assert not any("xetHash" in e for e in rec)


async def test_tree_encoded_subpath_and_expand(hub, http):
    url = URL(f"{hub.url}/api/models/acme/sdxl-turbo-tiny/tree/main/vae%2Fsub?recursive=True&expand=True",
              encoded=True)
    _, _, entries = await get_json(http, url)
    assert [e["path"] for e in entries] == ["vae/sub/diffusion_pytorch_model.safetensors"]
    assert entries[0]["lastCommit"]["id"] == hub.repo("acme/sdxl-turbo-tiny").sha
    assert entries[0]["securityFileStatus"]["status"] == "safe"
    status, headers, _ = await get_json(http, f"{hub.url}/api/models/acme/sdxl-turbo-tiny/tree/main/nope")
    assert (status, headers["X-Error-Code"]) == (404, "EntryNotFound")


async def test_tree_pagination(hub, http):
    hub.tree_page_size = 2
    url = f"{hub.url}/api/models/acme/sdxl-turbo-tiny/tree/main?recursive=true&expand=false"
    paths = []
    while url:
        async with http.get(url) as r:
            paths += [e["path"] for e in await r.json()]
            url = str(r.links["next"]["url"]) if "next" in r.links else None
    assert len(paths) == 6


# -- resolve + CDN -----------------------------------------------------------------------------


async def test_resolve_lfs_redirect_headers(hub, http):
    repo = hub.repo("acme/sdxl-turbo-tiny")
    f = repo.files["model.safetensors"]
    async with http.head(f"{hub.url}/acme/sdxl-turbo-tiny/resolve/main/model.safetensors", allow_redirects=False) as r:
        assert r.status == 302
        assert r.headers["X-Repo-Commit"] == repo.sha
        assert r.headers["X-Linked-Etag"] == f'"{f.sha256}"' == r.headers["ETag"]
        assert r.headers["X-Linked-Size"] == "2048"
        location = URL(r.headers["Location"])
        assert location.is_absolute() and location.host == "localhost" and str(location.origin()) == hub.cdn_url
        assert not [h for h in r.headers if h.lower().startswith("x-xet")] and "Link" not in r.headers
    async with http.get(location) as cdn:
        assert cdn.status == 200 and await cdn.read() == f.data
        assert cdn.headers["Content-Disposition"].startswith("attachment;")


async def test_resolve_small_file(hub, http):
    repo = hub.repo("acme/sdxl-turbo-tiny")
    async with http.get(f"{hub.url}/acme/sdxl-turbo-tiny/resolve/main/vae/config.json") as r:
        assert r.status == 200 and await r.read() == b"{}"
        assert r.headers["ETag"] == f'"{repo.files["vae/config.json"].blob_id}"'
        assert r.headers["X-Repo-Commit"] == repo.sha


async def test_resolve_errors(hub, http):
    repo = hub.repo("acme/sdxl-turbo-tiny")
    async with http.head(f"{hub.url}/acme/sdxl-turbo-tiny/resolve/main/missing.bin") as r:
        assert (r.status, r.headers["X-Error-Code"], r.headers["X-Repo-Commit"]) == (404, "EntryNotFound", repo.sha)
    async with http.head(f"{hub.url}/acme/sdxl-turbo-tiny/resolve/v9/model.safetensors") as r:
        assert (r.status, r.headers["X-Error-Code"]) == (404, "RevisionNotFound")
    async with http.head(f"{hub.url}/org/gated/resolve/main/m.safetensors") as r:
        assert (r.status, r.headers["X-Error-Code"]) == (401, "GatedRepo")
        assert "Please log in" in r.headers["X-Error-Message"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with http.head(f"{hub.url}/org/gated/resolve/main/m.safetensors", headers=auth) as r:
        assert (r.status, r.headers["X-Error-Code"]) == (403, "GatedRepo")
    hub.approve_token("org/gated", TOKEN)
    async with http.head(f"{hub.url}/org/gated/resolve/main/m.safetensors", headers=auth,
                         allow_redirects=False) as r:
        assert r.status == 302


async def test_resolve_unencoded_pr_revision(hub, http):
    commit = hub.add_revision("acme/sdxl-turbo-tiny", "refs/pr/7")
    for raw in ("refs/pr/7", "refs%2Fpr%2F7"):
        url = URL(f"{hub.url}/acme/sdxl-turbo-tiny/resolve/{raw}/README.md", encoded=True)
        async with http.head(url) as r:
            assert r.status == 200 and r.headers["X-Repo-Commit"] == commit


async def test_metadata_knobs_on_the_redirect(hub, http):
    hub.switch("acme/sdxl-turbo-tiny/model.safetensors", no_commit=True, no_size=True, no_etag=True, times=1)
    async with http.head(f"{hub.url}/acme/sdxl-turbo-tiny/resolve/main/model.safetensors", allow_redirects=False) as r:
        assert r.status == 302
        assert not {"X-Repo-Commit", "X-Linked-Size", "ETag", "X-Linked-Etag"} & set(r.headers)


async def test_429_on_resolve(hub, http):
    hub.switch("acme/sdxl-turbo-tiny", on="hub", status=429, retry_after=1, rate_limit=True, times=1)
    async with http.head(f"{hub.url}/acme/sdxl-turbo-tiny/resolve/main/README.md") as r:
        assert r.status == 429 and r.headers["Retry-After"] == "1" and r.headers["RateLimit"].endswith("r=0;t=1")
    async with http.head(f"{hub.url}/acme/sdxl-turbo-tiny/resolve/main/README.md") as r:
        assert r.status == 200


async def test_renamed_repo_redirects_relative(hub, http):
    hub.rename_repo("bob/model-x", "bob/model-y")
    async with http.get(f"{hub.url}/api/models/bob/model-x?blobs=true", allow_redirects=False) as r:
        assert r.status == 307 and r.headers["Location"] == "/api/models/bob/model-y?blobs=true"
    async with http.head(f"{hub.url}/bob/model-x/resolve/main/w.bin", allow_redirects=False) as r:
        assert r.status == 307 and r.headers["Location"] == "/bob/model-y/resolve/main/w.bin"


async def test_cdn_signature_expiry_and_auth(hub, http):
    async with http.head(f"{hub.url}/acme/sdxl-turbo-tiny/resolve/main/model.safetensors", allow_redirects=False) as r:
        location = URL(r.headers["Location"])
    assert "sig" in location.query and "Expires" in location.query
    async with http.get(location.with_query(None)) as r:
        assert r.status == 403
    async with http.get(location.update_query(repo="acme/other-model")) as r:
        assert r.status == 403  # any altered parameter breaks the signature
    async with http.get(location, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 200  # tolerated by default; the log shows the leak
    assert hub.requests("/blobs/")[-1]["authorization"] == f"Bearer {TOKEN}"
    hub.cdn_rejects_authorization = True
    async with http.get(location, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        assert r.status == 400
    hub.cdn_url_ttl = -10
    async with http.head(f"{hub.url}/acme/sdxl-turbo-tiny/resolve/main/model.safetensors", allow_redirects=False) as r:
        expired = r.headers["Location"]
    async with http.get(expired) as r:
        assert r.status == 403


async def test_whoami(hub, http):
    status, _, me = await get_json(http, f"{hub.url}/api/whoami-v2", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and me["name"] == "user"
    status, _, _ = await get_json(http, f"{hub.url}/api/whoami-v2")
    assert status == 401


async def test_request_log_fields(hub, http):
    hub.reset_log()
    async with http.get(f"{hub.url}/api/models?filter=a&filter=b&search=x",
                        headers={"Authorization": f"Bearer {TOKEN}", "User-Agent": "ua/1"}):
        pass
    (rec,) = hub.requests("/api/models")
    assert rec["server"] == "hub" and rec["method"] == "GET" and rec["host"] == hub.url.split("//")[1]
    assert rec["query"] == {"filter": "a", "search": "x"}
    assert rec["query_items"] == [("filter", "a"), ("filter", "b"), ("search", "x")]
    assert rec["authorization"] == f"Bearer {TOKEN}" and rec["user_agent"] == "ua/1" and rec["status"] == 200
    assert hub.requests("/api/models", server="cdn") == [] and len(hub.log) == 1
