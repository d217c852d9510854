"""The Civitai provider against the Civitai fake: by hash (renamed files), search by type, auth, 429."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from comfyui_model_resolver.service import build_resolver
from fakes.blobs import FakeFile
from fakes.civitai import CivFile, CivVersion
from support.sources import make_settings, workflow


def _wf_with_hash(name: str, folder: str, node: str, sha: str | None) -> dict:
    wf = workflow((node, [name]))
    entry = {"name": name, "directory": folder}
    if sha:
        entry.update(hash=sha, hash_type="sha256")
    wf["nodes"][0]["properties"]["models"] = [entry]
    return wf


def _dreamshaper(civ, **version):
    blob = FakeFile.safetensors("dreamshaper_8_pruned.safetensors", 4096, seed=42)
    m = civ.add_model("DreamShaper", "Checkpoint",
                      versions=[CivVersion(name="8", files=[CivFile(blob, size="pruned", fp="fp16")], downloads=9000,
                                           **version)], creator="Lykon")
    decoy = FakeFile.safetensors("dreamshaper_8_pruned.safetensors", 4100, seed=43)  # same name, other bytes
    civ.add_model("DreamShaper reupload", "Checkpoint", files=[decoy], creator="someone")
    return m, blob


async def test_renamed_file_is_found_by_its_hash(fake_hub, fake_civitai, tmp_path):
    m, blob = _dreamshaper(fake_civitai)
    served = fake_civitai.version(m.versions[0].id)
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai))
    try:
        res = await r.resolve(_wf_with_hash("dreamshaper_8_pruned.safetensors", "checkpoints",
                                            "CheckpointLoaderSimple", blob.sha256), "wf")
    finally:
        await r.close()
    model = res.models[0]
    assert model.status == "resolved", model.message
    c = model.chosen
    assert c.source == "civitai" and c.hash_match and c.sha256 == blob.sha256
    assert c.filename != "dreamshaper_8_pruned.safetensors"  # Civitai serves it under its own name
    assert c.url.endswith(f"/api/download/models/{served.id}") and c.size == blob.size
    assert model.queries["civitai"][0] == f"hash:{blob.sha256[:12].upper()}"
    assert model.preflight.state == "ok" and model.preflight.size == blob.size
    assert model.preflight.filename is None  # storage serves it under the name the API announced
    assert len(fake_civitai.log.filter("/api/v1/models", server="civitai")) == 0  # no search needed


async def test_without_a_hash_a_renamed_file_is_only_a_suggestion(fake_hub, fake_civitai, tmp_path):
    _dreamshaper(fake_civitai)
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai))
    try:
        res = await r.resolve(_wf_with_hash("dreamshaper_8_pruned.safetensors", "checkpoints",
                                            "CheckpointLoaderSimple", None), "wf")
    finally:
        await r.close()
    model = res.models[0]
    assert model.status == "ambiguous" and model.candidates
    search = fake_civitai.log.filter("/api/v1/models", server="civitai")[0]
    assert search["query"]["query"] == "dreamshaper 8" and ("types", "Checkpoint") in search["query_items"]


async def test_lora_search_maps_the_folder_to_types(fake_hub, fake_civitai, tmp_path):
    blob = FakeFile.safetensors("pixel_art_xl.safetensors", 2048, seed=5)
    fake_civitai.add_model("Pixel Art XL", "LORA", files=[blob], creator="nerijs")
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai))
    try:
        res = await r.resolve(workflow(("LoraLoader", ["pixel_art_xl.safetensors", 1.0, 1.0])), "wf")
    finally:
        await r.close()
    m = res.models[0]
    assert m.status == "resolved" and m.chosen.filename == "pixel_art_xl.safetensors"  # LoRAs keep their name
    q = fake_civitai.log.filter("/api/v1/models", server="civitai")[0]["query_items"]
    assert {v for k, v in q if k == "types"} == {"LORA", "LoCon", "DoRA"}


async def test_api_key_only_in_the_authorization_header(fake_hub, fake_civitai, tmp_path):
    _m, blob = _dreamshaper(fake_civitai, require_auth=True)
    fake_civitai.add_api_key("civ_KEY_123")
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai, civitai_api_key="civ_KEY_123"))
    try:
        res = await r.resolve(_wf_with_hash("dreamshaper_8_pruned.safetensors", "checkpoints",
                                            "CheckpointLoaderSimple", blob.sha256), "wf")
    finally:
        await r.close()
    assert res.models[0].status == "resolved" and res.models[0].preflight.state == "ok"
    for rec in fake_civitai.log.records:
        assert "civ_KEY_123" not in rec["raw_path"]
        expect = "Bearer civ_KEY_123" if rec["server"] == "civitai" else None
        assert rec["authorization"] == expect, rec  # never to the storage host
    assert "civ_KEY_123" not in res.model_dump_json()


async def test_login_required_without_a_key_is_auth_required(fake_hub, fake_civitai, tmp_path):
    _m, blob = _dreamshaper(fake_civitai, require_auth=True)
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai))
    try:
        m = (await r.resolve(_wf_with_hash("dreamshaper_8_pruned.safetensors", "checkpoints",
                                           "CheckpointLoaderSimple", blob.sha256), "wf")).models[0]
    finally:
        await r.close()
    assert m.status == "auth_required" and m.preflight.state == "login_required"
    assert m.preflight.token_env == "CMR_CIVITAI_API_KEY" and "CMR_CIVITAI_API_KEY" in m.message


async def test_early_access(fake_hub, fake_civitai, tmp_path):
    soon = datetime.now(timezone.utc) + timedelta(days=3)
    _m, blob = _dreamshaper(fake_civitai, early_access_deadline=soon)
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai))
    try:
        m = (await r.resolve(_wf_with_hash("dreamshaper_8_pruned.safetensors", "checkpoints",
                                           "CheckpointLoaderSimple", blob.sha256), "wf")).models[0]
    finally:
        await r.close()
    assert m.status == "auth_required" and m.candidates[0].early_access
    assert m.preflight.state == "early_access" and "Early access until" in m.preflight.message


async def test_a_429_is_retried_within_bounds_and_reported_when_it_persists(fake_hub, fake_civitai, tmp_path):
    from comfyui_model_resolver.sources import build_sources
    from comfyui_model_resolver.sources.cache import MemoryCache
    from comfyui_model_resolver.sources.http import Upstream

    _m, blob = _dreamshaper(fake_civitai)
    settings = make_settings(tmp_path, hub=fake_hub, civ=fake_civitai)
    wf = _wf_with_hash("dreamshaper_8_pruned.safetensors", "checkpoints", "CheckpointLoaderSimple", blob.sha256)
    r = await build_resolver(settings)
    try:
        cache = MemoryCache()
        await r.sources.close()
        r.sources = build_sources(settings, cache=cache, upstream=Upstream(settings, cache, retry_base=0.05))
        fake_civitai.switch("by-hash", status=429, times=1)
        ok = await r.resolve(wf, "wf", preflight=False)
        assert ok.models[0].status == "resolved"
        assert r.sources.upstream.stats.waits == [0.05]
        assert [rec["status"] for rec in fake_civitai.log.filter("/api/v1/model-versions/by-hash")] == [429, 200]

        cache2 = MemoryCache()
        await r.sources.close()
        r.sources = build_sources(settings, cache=cache2, upstream=Upstream(settings, cache2, retry_base=0.01))
        fake_civitai.switch("by-hash", status=429)
        fake_civitai.switch("search", status=429)
        bad = await r.resolve(wf, "wf", preflight=False)
        civ = next(p for p in bad.providers if p.name == "civitai")
        assert civ.state == "rate_limited"
        # rate limited, so not "looked and found nothing": ambiguous, or unavailable
        assert bad.models[0].status in ("ambiguous", "unavailable")
        assert len(r.sources.upstream.stats.waits) == 3  # max_retries, then give up
    finally:
        await r.close()
