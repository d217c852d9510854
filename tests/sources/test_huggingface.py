"""The Hub provider through the real huggingface_hub client, against the Hub fake."""
from __future__ import annotations

from comfyui_model_resolver.service import build_resolver
from fakes.blobs import FakeFile
from support.sources import make_settings, workflow

SPLIT = "split_files"


def _wan(hub):
    files = [FakeFile.safetensors(f"{SPLIT}/vae/wan_2.1_vae.safetensors", 2048, seed=1),
             FakeFile.safetensors(f"{SPLIT}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors", 2048, seed=2),
             FakeFile.safetensors(f"{SPLIT}/text_encoders/umt5_xxl_fp16.safetensors", 2048, seed=3),
             FakeFile.safetensors(f"{SPLIT}/diffusion_models/wan2.1_t2v_1.3B_bf16.safetensors", 4096, seed=4),
             FakeFile.safetensors(f"{SPLIT}/diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors", 4096, seed=5)]
    hub.add_repo("Comfy-Org/Wan_2.1_ComfyUI_repackaged", files, downloads=90_000)
    # re-uploads: same name, other bytes; and a mirror with the same bytes
    hub.add_repo("randomuser/Wan_2.1_ComfyUI_repackaged",
                 [FakeFile.safetensors("wan_2.1_vae.safetensors", 2050, seed=11)], downloads=400_000)
    hub.add_repo("mirror/wan", [FakeFile.safetensors("wan_2.1_vae.safetensors", 2048, seed=1)], downloads=10)


WAN_WF = workflow(("VAELoader", ["wan_2.1_vae.safetensors"]),
                  ("CLIPLoader", ["umt5_xxl_fp8_e4m3fn_scaled.safetensors", "wan", "default"]),
                  ("UNETLoader", ["wan2.1_t2v_1.3B_bf16.safetensors", "default"]),
                  ("UNETLoader", ["wan2.1_t2v_1.3B_fp8_e4m3fn.safetensors", "default"]))


async def test_resolves_exact_files_with_size_hash_and_reasons(fake_hub, tmp_path):
    _wan(fake_hub)
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub))
    try:
        res = await r.resolve(WAN_WF, "wan.json")
    finally:
        await r.close()
    by = {m.filename: m for m in res.models}
    vae = by["wan_2.1_vae.safetensors"]
    assert vae.status == "resolved" and vae.chosen.repo == "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
    assert vae.chosen.path == "split_files/vae/wan_2.1_vae.safetensors"
    f = fake_hub.repo("Comfy-Org/Wan_2.1_ComfyUI_repackaged").files["split_files/vae/wan_2.1_vae.safetensors"]
    assert (vae.chosen.size, vae.chosen.sha256) == (f.size, f.sha256)
    assert vae.preflight.state == "ok" and vae.preflight.size == f.size
    assert "official publisher (Comfy-Org)" in vae.chosen.reasons
    # the fp8 diffusion model does not exist: its precision variants are offered, none chosen
    fp8 = by["wan2.1_t2v_1.3B_fp8_e4m3fn.safetensors"]
    assert fp8.status == "ambiguous" and fp8.chosen is None
    assert {c.path.rsplit("/", 1)[-1] for c in fp8.candidates} >= {"wan2.1_t2v_1.3B_bf16.safetensors"}
    assert all(any(x.startswith("variant mismatch") for x in c.reasons) for c in fp8.candidates)
    hf = next(p for p in res.providers if p.name == "huggingface")
    assert hf.state == "ok" and "author:Comfy-Org" in hf.queries


async def test_requests_per_model_match_the_fake_log(fake_hub, tmp_path):
    _wan(fake_hub)
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub))
    try:
        res = await r.resolve(WAN_WF, "wan.json")
        assert res.requests == len(fake_hub.log.filter(server="hub")) > 0
        assert all(m.requests <= r.settings.max_requests_per_model + 4 for m in res.models)
        # a second run is served from the cache, passed pre-flights included (kept 10 minutes)
        fake_hub.reset_log()
        again = await r.resolve(WAN_WF, "wan.json")
        assert fake_hub.log.records == [] and again.requests == 0
        assert [m.preflight.state for m in again.models if m.preflight] == [m.preflight.state for m in res.models if m.preflight]
    finally:
        await r.close()


def _gated(hub):
    hub.add_repo("black-forest-labs/FLUX.1-dev", [FakeFile.safetensors("flux1-dev.safetensors", 4096, seed=7),
                                                   FakeFile.safetensors("ae.safetensors", 2048, seed=8)],
                 gated="manual", downloads=500_000)


FLUX_WF = workflow(("UNETLoader", ["flux1-dev.safetensors", "default"]))


async def test_gated_file_without_token_is_auth_required_with_the_hint(fake_hub, tmp_path):
    _gated(fake_hub)
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub))
    try:
        res = await r.resolve(FLUX_WF, "flux.json")
    finally:
        await r.close()
    m = res.models[0]
    assert m.status == "auth_required"
    assert m.candidates[0].repo == "black-forest-labs/FLUX.1-dev" and m.candidates[0].token_env == "CMR_HF_TOKEN"
    assert m.preflight.state == "gated" and "CMR_HF_TOKEN" in m.message
    hf = next(p for p in res.providers if p.name == "huggingface")
    assert hf.state == "auth_required" and hf.token_env == "CMR_HF_TOKEN"


async def test_gated_file_resolves_once_a_token_is_set(fake_hub, tmp_path):
    _gated(fake_hub)
    fake_hub.approve_token("black-forest-labs/FLUX.1-dev", "hf_granted")
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, hf_token="hf_granted"))
    try:
        res = await r.resolve(FLUX_WF, "flux.json")
    finally:
        await r.close()
    m = res.models[0]
    assert m.status == "resolved" and m.preflight.state == "ok" and m.preflight.size == 4096
    assert all(rec["authorization"] in (None, "Bearer hf_granted") for rec in fake_hub.log.records)
    assert not any(rec["authorization"] for rec in fake_hub.log.filter(server="cdn"))


async def test_token_without_access_says_so(fake_hub, tmp_path):
    _gated(fake_hub)
    fake_hub.add_token("hf_other")
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, hf_token="hf_other"))
    try:
        m = (await r.resolve(FLUX_WF, "flux.json")).models[0]
    finally:
        await r.close()
    assert m.status == "auth_required" and "accept the licence" in m.message


async def test_older_hub_gating_metadata_too(tmp_path):
    from fakes.hub import FakeHub

    async with FakeHub(gated_metadata="401") as hub:
        _gated(hub)
        r = await build_resolver(make_settings(tmp_path, hub=hub))
        try:
            m = (await r.resolve(FLUX_WF, "flux.json")).models[0]
        finally:
            await r.close()
    assert m.status == "auth_required" and m.candidates[0].sha256 is None  # listed, tree refused


async def test_file_beside_the_workflows_other_models(fake_hub, tmp_path):
    """A VAE whose name says nothing is found in the repo chosen for the workflow's model."""
    fake_hub.add_repo("VAST-AI/TripoSplat", [FakeFile.safetensors("diffusion_models/triposplat_fp16.safetensors", 4096, seed=1),
                                             FakeFile.safetensors("clip_vision/dino_v3_vit_h.safetensors", 2048, seed=2)],
                      downloads=3000)
    wf = workflow(("UNETLoader", ["triposplat_fp16.safetensors", "default"]),
                  ("CLIPVisionLoader", ["dino_v3_vit_h.safetensors"]))
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub))
    try:
        res = await r.resolve(wf, "tripo.json")
    finally:
        await r.close()
    dino = next(m for m in res.models if m.filename == "dino_v3_vit_h.safetensors")
    assert dino.status == "resolved" and dino.chosen.repo == "VAST-AI/TripoSplat"
    assert "beside:VAST-AI/TripoSplat" in dino.queries["huggingface"]
    assert any(r_.startswith("same repo as") for r_ in dino.chosen.reasons)


async def test_not_found_lists_the_queries_tried(fake_hub, fake_civitai, tmp_path):
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai))
    try:
        m = (await r.resolve(workflow(("VAELoader", ["nowhere_vae.safetensors"])), "x")).models[0]
    finally:
        await r.close()
    # every source answered: "looked and found nothing"
    assert m.status == "not_found" and m.candidates == ()
    assert "huggingface: author:Comfy-Org" in m.message and "nowhere_vae" in m.message


async def test_a_source_that_cannot_be_asked_makes_it_unavailable_not_not_found(fake_hub, tmp_path):
    """Civitai is unreachable (a closed port): nothing found is not "no source has it"."""
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub))
    try:
        res = await r.resolve(workflow(("VAELoader", ["nowhere_vae.safetensors"])), "x")
    finally:
        await r.close()
    m = res.models[0]
    assert m.status == "unavailable" and m.candidates == ()
    assert m.message == "no source could be asked: can't reach 127.0.0.1"
    assert m.queries["civitai"][-1] == "(could not be reached)"
    civ = next(p for p in res.providers if p.name == "civitai")
    assert civ.state == "unavailable" and civ.message == "can't reach 127.0.0.1: check the network or proxy"
    assert "Error" not in civ.message and "errno" not in civ.message.lower()


async def test_hub_down_is_reported_once_and_not_hammered(fake_hub, tmp_path):
    # The Hub is down and asks for two minutes (Retry-After): longer than we wait (the upstream
    # policy's max wait), so the first answer is final; concurrent models share that one request.
    fake_hub.switch(None, status=503, retry_after=120)
    wf = workflow(*[("VAELoader", [f"v{i}.safetensors"]) for i in range(5)])
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, max_upstream_concurrency=1, http_timeout=15.0))
    try:
        res = await r.resolve(wf, "x")
    finally:
        await r.close()
    hf = next(p for p in res.providers if p.name == "huggingface")
    assert hf.state == "unavailable" and "server error 503" in hf.detail
    # in plain words, with the host: no exception names
    assert hf.message == f"can't reach {hf.host}: check the network or proxy" and hf.host == "127.0.0.1"
    # nothing was found, but the Hub could not be asked: not "looked and found nothing"
    assert all(m.status == "unavailable" and "can't reach 127.0.0.1" in m.message for m in res.models)
    skipped = [m for m in res.models if "(skipped: unavailable in this run)" in m.queries.get("huggingface", ())]
    assert skipped  # models that start after the failure do not ask again
    assert len(fake_hub.log.filter(server="hub")) == 1  # one listing call, shared (single flight), not retried


async def test_search(fake_hub, tmp_path):
    _wan(fake_hub)
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub))
    try:
        found = await r.search("Wan_2.1", folder="vae")
    finally:
        await r.close()
    assert found.candidates and found.candidates[0].path.endswith("wan_2.1_vae.safetensors")
    assert all(c.folder in (None, "vae") for c in found.candidates)
