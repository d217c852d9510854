"""An image made by A1111/Forge names its models with hashes: they are looked up on Civitai by hash
and the hash decides, whatever the files are called and whoever re-uploaded a same-named file."""
from __future__ import annotations

from comfyui_model_resolver.service import build_resolver
from fakes.blobs import FakeFile
from fakes.civitai import CivFile, CivVersion
from fakes.hashes import autov2, autov3
from support.images import make_png, make_webp_parameters
from support.sources import make_settings


def _world(hub, civ):
    ckpt = FakeFile.safetensors("dreamshaperV8.safetensors", 4096, seed=801)
    lora = FakeFile.safetensors("add_detail.safetensors", 2048, seed=802)
    emb = FakeFile("easynegative.safetensors", b"\x07" * 1500)
    m_ckpt = civ.add_model("DreamShaper", "Checkpoint", creator="Lykon", versions=[
        CivVersion(name="8", base_model="SD 1.5", files=[CivFile(ckpt)])])
    m_lora = civ.add_model("Detail Tweaker LoRA", "LORA", creator="OedoSoldier", versions=[
        CivVersion(name="v1.0", base_model="SD 1.5", files=[CivFile(lora)])])
    civ.add_model("EasyNegative", "TextualInversion", creator="rqdwdw", versions=[
        CivVersion(name="v1", base_model="SD 1.5", files=[CivFile(emb)])])
    # decoys: the names the image uses, other bytes, on both sites
    civ.add_model("dreamshaper 8 reupload", "Checkpoint", creator="someone", downloads=10**7,
                  files=[FakeFile.safetensors("dreamshaper_8.safetensors", 4100, seed=9)])
    civ.add_model("my detail lora", "LORA", creator="someone",
                  files=[FakeFile.safetensors("my_detail.safetensors", 2100, seed=10)])
    hub.add_repo("stranger/dreamshaper_8", [FakeFile.safetensors("dreamshaper_8.safetensors", 4200, seed=11)],
                 downloads=10**6)
    return {"ckpt": (ckpt, m_ckpt), "lora": (lora, m_lora), "emb": emb}


def _params(w) -> str:
    ckpt, lora, emb = w["ckpt"][0], w["lora"][0], w["emb"]
    return ("a castle <lora:my_detail:0.6>\nNegative prompt: easynegative\n"
            f"Steps: 20, Sampler: Euler a, CFG scale: 7, Model hash: {autov2(ckpt).lower()}, Model: dreamshaper_8, "
            f'Lora hashes: "my_detail: {autov3(lora).lower()}", TI hashes: "easynegative: {emb.sha256[:12]}", '
            "Version: v1.6.0")


async def _resolve(tmp_path, hub, civ, image: bytes):
    r = await build_resolver(make_settings(tmp_path, hub=hub, civ=civ))
    try:
        return await r.resolve(image, "image")
    finally:
        await r.close()


async def test_png_parameters_resolve_by_hash_over_same_named_decoys(fake_hub, fake_civitai, tmp_path):
    w = _world(fake_hub, fake_civitai)
    res = await _resolve(tmp_path, fake_hub, fake_civitai, make_png({"parameters": _params(w)}))
    by_folder = {m.folder: m for m in res.models}
    assert set(by_folder) == {"checkpoints", "loras", "embeddings"}
    for folder, blob in (("checkpoints", w["ckpt"][0]), ("loras", w["lora"][0]), ("embeddings", w["emb"])):
        m = by_folder[folder]
        assert m.status == "resolved", (folder, m.message, m.candidates[:2])
        assert m.chosen.source == "civitai" and m.chosen.hash_match and m.chosen.sha256 == blob.sha256, folder
        assert "hash matches the workflow's hash" in m.chosen.reasons
        assert m.queries["civitai"][0].startswith("hash:")
    assert by_folder["checkpoints"].chosen.repo.startswith(f"{w['ckpt'][1].id}@")
    assert by_folder["loras"].chosen.repo.startswith(f"{w['lora'][1].id}@")
    assert len(fake_civitai.log.filter("/api/v1/models", server="civitai")) == 0  # the hashes settle it: no search
    assert len(fake_hub.log) == 0


async def test_webp_parameters_resolve_the_same(fake_hub, fake_civitai, tmp_path):
    w = _world(fake_hub, fake_civitai)
    res = await _resolve(tmp_path, fake_hub, fake_civitai, make_webp_parameters(_params(w)))
    ckpt = next(m for m in res.models if m.folder == "checkpoints")
    assert ckpt.status == "resolved" and ckpt.chosen.sha256 == w["ckpt"][0].sha256


async def test_a_hash_civitai_does_not_know_leaves_the_name_unconfirmed(fake_hub, fake_civitai, tmp_path):
    w = _world(fake_hub, fake_civitai)
    text = _params(w).replace(autov2(w["ckpt"][0]).lower(), "0123456789")
    res = await _resolve(tmp_path, fake_hub, fake_civitai, make_png({"parameters": text}))
    ckpt = next(m for m in res.models if m.folder == "checkpoints")
    assert ckpt.status != "resolved"  # same-named uploads with other hashes are not the file
    assert all(c.sha256 is None or not c.sha256.startswith("0123456789") for c in ckpt.candidates)
    assert all("hash differs from the workflow's hash" in c.reasons for c in ckpt.candidates if c.sha256)
