"""The real ``huggingface_hub`` client against :class:`FakeHub` (contract A.6, appendix).

Each test runs the client in a subprocess (``hf_driver.run_hf``) with ``HF_ENDPOINT`` set to the
fake, ``HF_HUB_DISABLE_XET=1`` and a private ``HF_HOME``; the fake runs in a thread here.

Verified with huggingface_hub 2.4.0 (the project venv), 2.1.1, 1.29.0 and 0.36.2 (throw-away venvs, run
with ``FAKES_HF_PYTHON=<venv>/bin/python``). Where the contract documents that a version behaves
differently (0.36: no 429 retry on the metadata HEAD, no resume after a mid-body reset) the test
asserts that documented behaviour instead.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fakes.blobs import FakeFile
from fakes.hf_driver import run_hf

TOKEN = "hf_fake_token_approved"
MiB = 1 << 20


def _major(result: dict) -> int:
    return int(result["version"].split(".")[0])


@pytest.fixture
def hub(fake_hub_thread):
    hub = fake_hub_thread
    hub.add_repo("org/plain", [
        FakeFile("README.md", b"# plain\nhello\n", lfs=False),
        FakeFile("config.json", b'{"a": 1}', lfs=False),
        FakeFile("model.safetensors", size=3 * MiB, seed=1),
        FakeFile("vae/sub/diffusion_pytorch_model.safetensors", size=4096, seed=2),
    ], downloads=10)
    hub.add_token(TOKEN)
    return hub


def test_small_file_is_served_by_the_hub(hub, tmp_path):
    res = run_hf(hub.url, tmp_path / "home", "download", repo_id="org/plain", filename="README.md",
                 local_dir=str(tmp_path / "out"), token=TOKEN)
    assert "error" not in res, res
    assert Path(res["result"]["path"]).read_bytes() == b"# plain\nhello\n"
    assert [(r["server"], r["method"]) for r in hub.log] == [("hub", "HEAD"), ("hub", "GET")]
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in hub.log)


def test_lfs_file_comes_from_the_cdn_without_the_token(hub, tmp_path):
    f = hub.repo("org/plain").files["model.safetensors"]
    res = run_hf(hub.url, tmp_path / "home", "download", repo_id="org/plain", filename="model.safetensors",
                 local_dir=str(tmp_path / "out"), token=TOKEN)
    assert "error" not in res, res
    assert res["result"]["sha256"] == f.sha256 and res["result"]["size"] == f.size
    head, get = hub.log.records
    assert (head["server"], head["method"], head["status"]) == ("hub", "HEAD", 302)
    assert head["authorization"] == f"Bearer {TOKEN}"
    assert head["accept_encoding"] == "identity"
    assert (get["server"], get["method"], get["status"]) == ("cdn", "GET", 200)
    assert get["authorization"] is None
    assert get["host"].startswith("localhost:")


def test_list_models_follows_link_pages(hub, tmp_path):
    hub.page_size = 2
    for i in range(5):
        hub.add_repo(f"acme/model-{i}", [FakeFile("m.safetensors", size=10, seed=i)], downloads=100 - i * 7)
    res = run_hf(hub.url, tmp_path / "home", "list_models", search="model-", limit=5, full=True, sort="downloads")
    assert "error" not in res, res
    ids = [m["id"] for m in res["result"]]
    assert ids == [f"acme/model-{i}" for i in range(5)]
    assert all(m["siblings"] == ["m.safetensors"] for m in res["result"])
    pages = hub.requests("/api/models", server="hub")
    assert len(pages) == 3
    assert "cursor" not in pages[0]["query"] and all("cursor" in p["query"] for p in pages[1:])
    assert pages[0]["query"]["full"] in ("true", "True")


def test_model_info_reports_lfs_sha256(hub, tmp_path):
    repo = hub.repo("org/plain")
    res = run_hf(hub.url, tmp_path / "home", "model_info", repo_id="org/plain", files_metadata=True)
    assert "error" not in res, res
    info = res["result"]
    assert info["sha"] == repo.sha
    by_name = {s["rfilename"]: s for s in info["siblings"]}
    assert by_name["model.safetensors"]["lfs_sha256"] == repo.files["model.safetensors"].sha256
    assert by_name["README.md"]["lfs_sha256"] is None
    assert by_name["README.md"]["size"] == len(b"# plain\nhello\n")
    assert hub.log.records[0]["query"].get("blobs") in ("true", "True")


def test_list_repo_tree_recursive_and_encoded_subpath(hub, tmp_path):
    res = run_hf(hub.url, tmp_path / "home", "list_repo_tree", repo_id="org/plain", recursive=True)
    assert "error" not in res, res
    entries = {e["path"]: e for e in res["result"]}
    assert entries["vae"]["kind"] == "RepoFolder"
    assert entries["model.safetensors"]["lfs_sha256"] == hub.repo("org/plain").files["model.safetensors"].sha256
    sub = run_hf(hub.url, tmp_path / "home", "list_repo_tree", repo_id="org/plain", path_in_repo="vae/sub")
    assert [e["path"] for e in sub["result"]] == ["vae/sub/diffusion_pytorch_model.safetensors"]
    assert hub.log.records[-1]["raw_path"].startswith("/api/models/org/plain/tree/main/vae%2Fsub")


def test_snapshot_download_uses_the_commit(hub, tmp_path):
    res = run_hf(hub.url, tmp_path / "home", "snapshot", repo_id="org/plain", local_dir=str(tmp_path / "snap"))
    assert "error" not in res, res
    assert res["result"]["files"] == sorted(hub.repo("org/plain").files)
    sha = hub.repo("org/plain").sha
    resolves = hub.requests("/org/plain/resolve/")
    assert resolves and all(r["path"].startswith(f"/org/plain/resolve/{sha}/") for r in resolves)
    if _major(res) >= 1:  # 0.36 lists files from model_info's siblings instead of the tree
        assert any(r["path"].startswith(f"/api/models/org/plain/tree/{sha}") for r in hub.log)
    assert not [r for r in hub.log if r["status"] == 404]


def test_gated_repo(hub, tmp_path):
    hub.add_repo("org/gated", [FakeFile("model.safetensors", size=1000, seed=3)], gated="manual")
    hub.add_token("hf_not_approved")
    args = dict(repo_id="org/gated", filename="model.safetensors", local_dir=str(tmp_path / "out"))
    anon = run_hf(hub.url, tmp_path / "h1", "download", **args)
    assert anon.get("error") == "GatedRepoError", anon
    denied = run_hf(hub.url, tmp_path / "h2", "download", token="hf_not_approved", **args)
    assert denied.get("error") == "GatedRepoError", denied
    assert [r["status"] for r in hub.requests("/org/gated/resolve")][:2] == [401, 403]
    hub.approve_token("org/gated", TOKEN)
    ok = run_hf(hub.url, tmp_path / "h3", "download", token=TOKEN, **args)
    assert "error" not in ok, ok


def test_missing_file_and_unknown_token(hub, tmp_path):
    missing = run_hf(hub.url, tmp_path / "h1", "download", repo_id="org/plain", filename="nope.bin",
                     local_dir=str(tmp_path / "out"))
    assert "EntryNotFoundError" in missing["mro"], missing
    bad = run_hf(hub.url, tmp_path / "h2", "model_info", repo_id="org/plain", token="hf_unknown")
    assert "HfHubHTTPError" in bad["mro"] and "RepositoryNotFoundError" not in bad["mro"], bad
    private = run_hf(hub.url, tmp_path / "h3", "model_info", repo_id="org/does-not-exist")
    assert "RepositoryNotFoundError" in private["mro"], private


def test_429_twice_then_success(hub, tmp_path):
    hub.switch("org/plain/model.safetensors", on="hub", status=429, retry_after=1, times=2)
    res = run_hf(hub.url, tmp_path / "home", "download", repo_id="org/plain", filename="model.safetensors",
                 local_dir=str(tmp_path / "out"))
    heads = hub.requests("/org/plain/resolve", method="HEAD")
    if _major(res) == 0:  # 0.36: the metadata HEAD is not retried (contract A.5.5)
        assert res["error"] == "LocalEntryNotFoundError", res
        return
    assert "error" not in res, res
    assert [h["status"] for h in heads] == [429, 429, 302]
    assert len(hub.requests("/blobs/", server="cdn")) == 1


def test_mid_body_drop_resumes_with_range(hub, tmp_path):
    big = FakeFile("big.safetensors", size=24 * MiB, seed=9)
    hub.add_repo("org/big", [big])
    hub.switch("org/big/big.safetensors", drop_after=12 * MiB, times=1)
    res = run_hf(hub.url, tmp_path / "home", "download", repo_id="org/big", filename="big.safetensors",
                 local_dir=str(tmp_path / "out"))
    gets = hub.requests("/blobs/", server="cdn")
    if _major(res) == 0:  # 0.36 (requests): no resume after a reset mid-body (contract A.5.3)
        assert "error" in res, res
        return
    assert "error" not in res, res
    assert res["result"]["sha256"] == big.sha256
    assert [g["range"] for g in gets] == [None, "bytes=10485760-"]
    assert gets[0]["faults"] == ["drop_after"] and gets[1]["status"] == 206


def test_small_drop_restarts_from_zero(hub, tmp_path):
    hub.switch("org/plain/model.safetensors", drop_after=512 * 1024, times=1)
    res = run_hf(hub.url, tmp_path / "home", "download", repo_id="org/plain", filename="model.safetensors",
                 local_dir=str(tmp_path / "out"))
    if _major(res) == 0:
        assert "error" in res, res
        return
    assert "error" not in res, res
    assert [g["range"] for g in hub.requests("/blobs/", server="cdn")] == [None, None]


def test_short_body_fails_the_consistency_check(hub, tmp_path):
    hub.switch("org/plain/model.safetensors", short_body=1000)
    res = run_hf(hub.url, tmp_path / "home", "download", repo_id="org/plain", filename="model.safetensors",
                 local_dir=str(tmp_path / "out"))
    assert "error" in res and "Consistency check failed" in res["message"], res


def test_renamed_repo_and_resolve_cache_redirects(hub, tmp_path):
    hub.small_file_redirect = True
    hub.rename_repo("org/plain", "org/renamed")
    res = run_hf(hub.url, tmp_path / "home", "download", repo_id="org/plain", filename="README.md",
                 local_dir=str(tmp_path / "out"))
    assert "error" not in res, res
    assert Path(res["result"]["path"]).read_bytes() == b"# plain\nhello\n"
    statuses = [(r["method"], r["path"].split("/")[1], r["status"]) for r in hub.log]
    assert statuses[:3] == [("HEAD", "org", 307), ("HEAD", "org", 307), ("HEAD", "api", 200)]


def test_no_unrouted_requests(hub, tmp_path):
    """Catch-all check (contract A.6.2): the client contacts nothing the fake does not implement."""
    run_hf(hub.url, tmp_path / "home", "download", repo_id="org/plain", filename="model.safetensors",
           local_dir=str(tmp_path / "out"))
    run_hf(hub.url, tmp_path / "home", "snapshot", repo_id="org/plain", local_dir=str(tmp_path / "snap"))
    assert [r for r in hub.log if r["status"] == 404] == []
    expected = hashlib.sha256(hub.repo("org/plain").files["model.safetensors"].data).hexdigest()
    assert hub.repo("org/plain").files["model.safetensors"].sha256 == expected
