"""Sharded models resolve and download as one unit; the ranking's humility about lone uploads."""
from __future__ import annotations

from comfyui_model_resolver.downloads.plan import plan_downloads
from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.sources.civitai import search_texts
from comfyui_model_resolver.sources.rank import folder_of_path, rank
from comfyui_model_resolver.sources.terms import analyse_name, workflow_family
from comfyui_model_resolver.types import Candidate, ModelRef
from fakes.blobs import FakeFile
from support.sources import make_settings

SHARDS = [f"text_encoder/model-0000{i}-of-00002.safetensors" for i in (1, 2)]


async def test_a_sharded_model_is_one_unit_with_its_index(fake_hub, tmp_path):
    files = [FakeFile.safetensors(p, 2048, seed=i) for i, p in enumerate(SHARDS)]
    files += [FakeFile("text_encoder/model.safetensors.index.json", b'{"weight_map": {}}', lfs=False),
              FakeFile("text_encoder/config.json", b"{}", lfs=False),
              FakeFile.safetensors("text_encoder/other-00001-of-00003.safetensors", 1024, seed=9)]
    fake_hub.add_repo("org/pixart", files, downloads=5000)
    url = f"https://huggingface.co/org/pixart/resolve/main/{SHARDS[0]}"
    node = {"id": 1, "type": "T5v11Loader", "mode": 0, "widgets_values": ["t5/model-00001-of-00002.safetensors", "xxl",
            "file", "cpu", "default"], "properties": {"models": [{"name": "model-00001-of-00002.safetensors", "url": url,
                                                                  "directory": "t5"}]}}
    wf = {"nodes": [node], "links": [], "version": 0.4}
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub))
    try:
        m = (await r.resolve(wf, "pixart.json")).models[0]
    finally:
        await r.close()
    assert m.status == "resolved"
    assert [f.path for f in m.chosen.files] == [SHARDS[0], "text_encoder/config.json",
                                                "text_encoder/model-00002-of-00002.safetensors",
                                                "text_encoder/model.safetensors.index.json"]
    assert all(f.size for f in m.chosen.files) and m.chosen.files[2].sha256 == files[1].sha256
    reqs, skipped = plan_downloads([m])
    assert not skipped and len(reqs) == 4 and len({q.group for q in reqs}) == 1 and reqs[0].group
    assert {q.filename for q in reqs} == {"t5/model-00001-of-00002.safetensors", "t5/model-00002-of-00002.safetensors",
                                          "t5/model.safetensors.index.json", "t5/config.json"}


def _hf(repo, path, sha=None, downloads=1000, **kw) -> Candidate:
    return Candidate(url=f"https://huggingface.co/{repo}/resolve/main/{path}", source="huggingface", confidence=0,
                     filename=path.rsplit("/", 1)[-1], repo=repo, path=path, sha256=sha, publisher=repo.split("/")[0],
                     folder=folder_of_path(path), downloads=downloads, via="search", **kw)


def _ref(name, folder):
    return ModelRef(filename=name, folder=folder, node_id="1", node_type="X", input="x")


def test_a_strangers_lone_upload_is_offered_but_not_chosen():
    d = rank(_ref("control_v11f1p_sd15_depth.pth", "controlnet"),
             [_hf("nm-testing/control_v11f1p_sd15_depth", "control_v11f1p_sd15_depth.pth", "a" * 64, downloads=90_000)])
    assert d.status == "ambiguous" and d.chosen is None and "nothing vouches for it" in d.message


def test_a_card_naming_another_candidate_as_base_marks_the_derivative():
    d = rank(_ref("style.safetensors", "loras"), [
        _hf("copier/style-comfyui", "style.safetensors", "b" * 64, downloads=50_000, published="2024-05-01",
            base_model="artist/style"),
        _hf("artist/style", "style.safetensors", "a" * 64, downloads=20_000, published="2024-01-01")])
    assert d.ranked[0].repo == "artist/style"
    assert "its model card names artist/style as its base" in d.ranked[1].reasons
    assert {"the earliest upload of this name", "other uploads name this repo as their base"} <= set(d.ranked[0].reasons)


def test_a_generic_name_is_never_confident_on_the_name_alone():
    d = rank(_ref("diffusion_pytorch_model.safetensors", "controlnet"),
             [_hf("InstantX/InstantID", "ControlNetModel/diffusion_pytorch_model.safetensors", "a" * 64)])
    assert d.status == "ambiguous" and "diffusion_pytorch_model.safetensors is a name many models use" in d.ranked[0].reasons


def test_civitai_queries_and_workflow_family():
    assert search_texts(analyse_name("juggernautXL_v8Rundiffusion.safetensors")) == ["juggernautxl v8rundiffusion",
                                                                                     "juggernaut XL"]
    assert workflow_family(["ip-adapter_sd15.safetensors", "dreamshaper_8.safetensors"]) == "sd15"
    assert workflow_family(["ip-adapter_sdxl_vit-h.safetensors", "control_v11p_sd15_canny.pth"]) is None


async def test_a_sharded_text_encoder_without_a_link_comes_whole_from_the_repo_its_pack_documents(
        fake_hub, fake_civitai, tmp_path):
    """T5v11Loader (ComfyUI_ExtraModels) names the first shard of a T5 in models/t5, with no link. The
    pack's README documents theunlikely/t5-v1_1-xxl-fp16 for that folder (data/pack_sources.json);
    a stranger's re-upload of the same shard names is not chosen. The unit (both shards, the index,
    the config) downloads into models/t5 and every file checks out."""
    from support.downloads import sha256_of

    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    files = [FakeFile.safetensors(p, 3000 + i, seed=40 + i) for i, p in enumerate(names)]
    files += [FakeFile("model.safetensors.index.json", b'{"weight_map": {"a": "model-00001-of-00002.safetensors"}}',
                       lfs=False), FakeFile("config.json", b'{"d_model": 4096}', lfs=False)]
    fake_hub.add_repo("theunlikely/t5-v1_1-xxl-fp16", files, downloads=3000)
    fake_hub.add_repo("someone/t5-reupload", [FakeFile.safetensors(p, 3100, seed=70 + i) for i, p in enumerate(names)],
                      downloads=90_000)
    models = tmp_path / "models"
    (models / "t5").mkdir(parents=True)
    node = {"id": 1, "type": "T5v11Loader", "mode": 0, "widgets_values": [names[0], "xxl", "file", "cpu", "default"]}
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai, models_root=str(models)))
    try:
        res = await r.resolve({"nodes": [node], "links": [], "version": 0.4}, "t5.json")
        (m,) = res.models
        assert m.status == "resolved" and m.chosen.repo == "theunlikely/t5-v1_1-xxl-fp16", m
        assert m.chosen.via == "pack", m.chosen.reasons
        assert sorted(f.path for f in m.chosen.files) == sorted(names + ["config.json", "model.safetensors.index.json"])
        jobs, skipped, errors = await r.download_resolution(res.models)
        assert not skipped and not errors and len(jobs) == 4
        for job in jobs:
            done = await r.downloads.wait(job.id, timeout=30)
            assert done.state == "completed", done
    finally:
        await r.close()
    for f in files:
        assert sha256_of(models / "t5" / f.path) == f.sha256, f.path
