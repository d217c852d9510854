"""A file no table names is looked for where the catalog keeps its siblings (same folder, same leading
words): the family's publisher, before a Hub search finds only a stranger's repo named like the file."""
from __future__ import annotations

from datetime import datetime, timezone

from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.sources.siblings import family_prefixes, sibling_repos
from fakes.blobs import FakeFile
from support.sources import make_settings, workflow

ROWS = [("t2iadapter_canny_sd14v1.pth", "TencentARC/T2I-Adapter", "controlnet"),
        ("t2iadapter_color_sd14v1.pth", "TencentARC/T2I-Adapter", "controlnet"),
        ("t2iadapter_style_sd14v1.pth", "someone/mirror", "controlnet"),
        ("control_v11p_sd15_canny.pth", "lllyasviel/ControlNet-v1-1", "controlnet"),
        ("control_v11p_sd15_canny_fp16.safetensors", "comfyanonymous/ControlNet-v1-1_fp16_safetensors", "controlnet"),
        ("controlnet_other.safetensors", "x/y", "controlnet"),
        ("t2iadapter_canny_sd14v1.pth", "elsewhere/loras", "loras")]


def test_siblings_share_the_longest_leading_words_in_the_same_folder():
    assert family_prefixes("control_v11p_sd15_lineart_fp16.safetensors") == [
        "control_v11p_sd15_lineart_", "control_v11p_sd15_", "control_v11p_"]  # "control_" names no family
    assert sibling_repos("t2iadapter_depth_sd15v2.pth", "controlnet", ROWS) == [
        ("TencentARC/T2I-Adapter", "t2iadapter_canny_sd14v1.pth"), ("someone/mirror", "t2iadapter_style_sd14v1.pth")]
    assert sibling_repos("control_v11p_sd15_lineart_fp16.safetensors", "controlnet", ROWS)[0][0] in (
        "lllyasviel/ControlNet-v1-1", "comfyanonymous/ControlNet-v1-1_fp16_safetensors")
    assert sibling_repos("controlnet_mine.safetensors", "controlnet", ROWS) == []  # a kind of model is no family
    assert sibling_repos("t2iadapter_canny_sd14v1.pth", "controlnet", ROWS[:1]) == []  # itself is no sibling


async def test_the_familys_repo_beats_a_strangers_repo_named_like_the_file(fake_hub, fake_civitai, tmp_path):
    name = "t2iadapter_depth_sd15v2.pth"
    early, late = datetime(2023, 3, 1, tzinfo=timezone.utc), datetime(2024, 2, 1, tzinfo=timezone.utc)
    fake_hub.add_repo("TencentARC/T2I-Adapter", [FakeFile.safetensors(f"models/{name}", 4000, seed=1),
                                                 FakeFile.safetensors("models/t2iadapter_canny_sd14v1.pth", 4000, seed=2)],
                      downloads=800, created_at=early)
    fake_hub.add_repo(f"someone/{name.rsplit('.', 1)[0]}", [FakeFile.safetensors(name, 4001, seed=3)],
                      downloads=5000, created_at=late)
    # the shipped catalog names TencentARC/T2I-Adapter's t2iadapter_*_sd14v1.pth, not this file
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai, disable_catalog=False))
    try:
        (m,) = (await r.resolve(workflow(("ControlNetLoader", [name])), "t2i.json")).models
    finally:
        await r.close()
    top = m.candidates[0]
    assert (top.repo, top.path, top.via) == ("TencentARC/T2I-Adapter", f"models/{name}", "sibling"), m.candidates
    assert any("where the catalog keeps its sibling t2iadapter_" in why for why in top.reasons), top.reasons
    assert "sibling:TencentARC/T2I-Adapter" in m.queries["huggingface"]


def test_pack_docs_name_siblings_too():
    """With the catalog off, the packs' documented files are a family's address book as well."""
    from comfyui_model_resolver.settings import Settings
    from comfyui_model_resolver.sources.pack_sources import PackSources
    from comfyui_model_resolver.sources.packs import PackSourcesSource
    from comfyui_model_resolver.types import ModelRef

    table = PackSources({"packs": {"P": {"repo": "o/P", "files": [
        {"filename": "t2iadapter_canny_sd14v1.pth", "folder": "controlnet",
         "source": {"type": "hf", "repo": "TencentARC/T2I-Adapter", "path": "models/t2iadapter_canny_sd14v1.pth"},
         "provenance": {"file": "README.md", "line": 3}}], "repos": []}}})
    src = PackSourcesSource(Settings.load({}), table)
    ref = ModelRef(filename="t2iadapter_depth_sd15v2.pth", folder="t2i_adapter", node_id="1", node_type="X", input="x")
    assert src.sibling_repos(ref) == [("TencentARC/T2I-Adapter", "t2iadapter_canny_sd14v1.pth")]  # t2i_adapter = controlnet
    assert src.sibling_repos(ref.model_copy(update={"folder": "checkpoints"})) == []
