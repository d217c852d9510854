"""Workflow-level affinity (pure): which identical copy of each answer fits the workflow."""
from __future__ import annotations

from comfyui_model_resolver.sources.affinity import (
    WorkflowEvidence, anchor_repo, apply_workflow_affinity, family_keys, named_after_file, named_after_kind,
    prefer_workflow_copy, workflow_evidence)
from comfyui_model_resolver.sources.rank import folder_of_path, rank
from comfyui_model_resolver.types import Candidate, ModelRef

SHA_A, SHA_B, SHA_C = "a" * 64, "b" * 64, "c" * 64


def ref(name: str, folder: str = "vae") -> ModelRef:
    return ModelRef(filename=name, folder=folder, node_id="1", node_type="Loader", input="name")


def hf(repo: str, path: str, sha: str | None = SHA_A, downloads: int = 1000, **kw) -> Candidate:
    return Candidate(url=f"https://huggingface.co/{repo}/resolve/main/{path}", source="huggingface", confidence=0,
                     filename=path.rsplit("/", 1)[-1], repo=repo, path=path, sha256=sha, size=100,
                     publisher=repo.split("/")[0], folder=folder_of_path(path), downloads=downloads, via="search", **kw)


def test_family_keys_read_the_model_family_and_its_version():
    assert family_keys("wan2.1_vace_14B_fp16.safetensors") == ("wan", "wan21")
    assert family_keys("Wan2_1-I2V-14B-480p_fp8_e4m3fn_scaled_KJ.safetensors") == ("wan", "wan21")
    assert family_keys("wan_2.1_vae.safetensors") == ("wan", "wan21")
    assert family_keys("ltx-2-19b-dev-fp8.safetensors") == ("ltx", "ltx2")
    assert family_keys("hunyuanvideo1.5_720p_t2v_fp16.safetensors") == ("hunyuan", "hunyuanvideo15")
    assert family_keys("qwen_image_edit_2511_bf16.safetensors") == ("qwenimage",)
    assert family_keys("flux2-vae.safetensors") == ("flux2",)
    # components many families share say nothing about the workflow's family
    assert family_keys("umt5_xxl_fp8_e4m3fn_scaled.safetensors") == ()
    assert family_keys("qwen_2.5_vl_7b_fp8_scaled.safetensors") == ()


def test_named_after_the_file_or_its_kind():
    assert named_after_file("sigclip_vision_patch14_384.safetensors", "Comfy-Org/sigclip_vision_384")
    assert named_after_file("qwen3vl_8b_fp8_scaled.safetensors", "Comfy-Org/Qwen3-VL")
    assert not named_after_file("sigclip_vision_patch14_384.safetensors", "Comfy-Org/HunyuanVideo_1.5_repackaged")
    assert named_after_kind("text_encoders", "comfyanonymous/flux_text_encoders")
    assert not named_after_kind("text_encoders", "Comfy-Org/HiDream-I1_ComfyUI")


# A Wan workflow: the diffusion model only exists in one repo (an anchor), the text encoder is
# repackaged into two, the more popular one first.
WAN_MODEL = (ref("wan2.1_vace_14B_fp16.safetensors", "diffusion_models"),
             [hf("Comfy-Org/Wan_2.1_ComfyUI_repackaged", "split_files/diffusion_models/wan2.1_vace_14B_fp16.safetensors",
                 SHA_C)])
UMT5 = ref("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "text_encoders")
UMT5_COPIES = [hf("Comfy-Org/Wan-Animate-2", "text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors", downloads=90_000),
               hf("Comfy-Org/Wan_2.1_ComfyUI_repackaged",
                  "split_files/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors", downloads=50_000)]


def _resolve(*models):
    decided = [(r, rank(r, cands)) for r, cands in models]
    return apply_workflow_affinity(decided), decided


def test_the_copy_in_the_repo_of_the_other_models_is_offered_first():
    (model_d, umt5_d), before = _resolve(WAN_MODEL, (UMT5, UMT5_COPIES))
    assert before[1][1].chosen.repo == "Comfy-Org/Wan-Animate-2"  # on its own: the popular copy
    assert umt5_d.status == before[1][1].status == "resolved"
    assert umt5_d.chosen.repo == "Comfy-Org/Wan_2.1_ComfyUI_repackaged" == umt5_d.ranked[0].repo
    assert "same repo as 1 other model of this workflow" in umt5_d.chosen.reasons
    assert any(r.startswith("identical to Comfy-Org/Wan-Animate-2/") for r in umt5_d.chosen.reasons)
    assert umt5_d.chosen.confidence == before[1][1].chosen.confidence  # same file, same confidence
    assert model_d.chosen.repo == "Comfy-Org/Wan_2.1_ComfyUI_repackaged"


def test_contested_answers_are_not_evidence():
    """Two components each repackaged in two repos do not vote for each other's copy."""
    clip = ref("clip_vision_h.safetensors", "clip_vision")
    clip_copies = [hf("Comfy-Org/Wan-Animate-2", "clip_vision/clip_vision_h.safetensors", SHA_B, downloads=90_000),
                   hf("Comfy-Org/Wan_2.1_ComfyUI_repackaged", "split_files/clip_vision/clip_vision_h.safetensors",
                      SHA_B, downloads=50_000)]
    decided = [(UMT5, rank(UMT5, UMT5_COPIES)), (clip, rank(clip, clip_copies))]
    assert [anchor_repo(d) for _r, d in decided] == [None, None]
    assert all(not ev.repos for ev in workflow_evidence(decided))


def test_the_workflows_model_family_picks_the_copy():
    te = ref("qwen_2.5_vl_7b_fp8_scaled.safetensors", "text_encoders")
    copies = [hf("Comfy-Org/Qwen-Image_ComfyUI", "split_files/text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors",
                 downloads=80_000),
              hf("Comfy-Org/HunyuanVideo_1.5_repackaged",
                 "split_files/text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors", downloads=50_000)]
    # the family comes from the other file names, resolved or not
    decided = [(te, rank(te, copies)), (ref("hunyuanvideo1.5_720p_t2v_fp16.safetensors", "diffusion_models"), None)]
    d = apply_workflow_affinity(decided)[0]
    assert d.chosen.repo == "Comfy-Org/HunyuanVideo_1.5_repackaged"
    assert "repo named after this workflow's model family (hunyuanvideo15)" in d.chosen.reasons


def test_a_community_publisher_counts_the_general_packagers_do_not():
    vae = ref("Wan2_1_VAE_bf16.safetensors")
    copies = [hf("Comfy-Org/Wan-Animate-2", "vae/Wan2_1_VAE_bf16.safetensors", downloads=90_000),
              hf("Kijai/WanVideo_comfy", "Wan2_1_VAE_bf16.safetensors", downloads=50_000)]
    d = prefer_workflow_copy(vae, rank(vae, copies), WorkflowEvidence(publishers={"kijai": 2}))
    assert d.chosen.repo == "Kijai/WanVideo_comfy"
    assert "same publisher (kijai) as 2 other models of this workflow" in d.chosen.reasons
    decided = [(vae, rank(vae, copies)),
               (ref("x_only_here.safetensors", "loras"), rank(ref("x_only_here.safetensors", "loras"),
                                                            [hf("Comfy-Org/Other", "x_only_here.safetensors", SHA_C)]))]
    assert workflow_evidence(decided)[0].publishers == {}  # Comfy-Org hosts a bit of everything


def test_without_workflow_evidence_a_dedicated_repo_then_the_most_downloaded_copy():
    sig = ref("sigclip_vision_patch14_384.safetensors", "clip_vision")
    copies = [hf("Comfy-Org/HunyuanVideo_1.5_repackaged", "split_files/clip_vision/sigclip_vision_patch14_384.safetensors",
                 downloads=50_000),
              hf("Comfy-Org/sigclip_vision_384", "sigclip_vision_patch14_384.safetensors", downloads=6_000)]
    d = prefer_workflow_copy(sig, rank(sig, copies), WorkflowEvidence())
    assert d.chosen.repo == "Comfy-Org/sigclip_vision_384" and "repo named after this file" in d.chosen.reasons
    vae = ref("ae.safetensors")
    copies = [hf("Comfy-Org/B", "split_files/vae/ae.safetensors", downloads=100),
              hf("Comfy-Org/A", "ae.safetensors", downloads=9_000)]
    assert rank(vae, copies).chosen.repo == "Comfy-Org/B"  # the folder layout scores, but the bytes are the same
    assert prefer_workflow_copy(vae, rank(vae, copies), WorkflowEvidence()).chosen.repo == "Comfy-Org/A"


def test_a_confident_answer_only_moves_to_bytes_known_to_be_identical():
    vae = ref("ae.safetensors")
    ev = WorkflowEvidence(repos={"Comfy-Org/Flux": 3})
    for other in (hf("Comfy-Org/Flux", "vae/ae.safetensors", sha=None),  # bytes unknown
                  hf("Comfy-Org/Flux", "vae/ae.safetensors", sha=SHA_B),  # other bytes
                  hf("Comfy-Org/Flux", "vae/ae_fp16.safetensors")):  # another file
        # a second copy of the top's bytes makes it confident despite a same-name file of unknown bytes
        d = rank(vae, [hf("Comfy-Org/Z", "split_files/vae/ae.safetensors", downloads=90_000), other,
                       hf("Comfy-Org/Y", "split_files/vae/ae.safetensors", downloads=10)])
        assert d.status == "resolved" or other.sha256 == SHA_B
        after = prefer_workflow_copy(vae, d, ev)
        assert after.ranked[0].repo == "Comfy-Org/Z" and after.status == d.status


def test_never_a_strangers_mirror_never_a_gated_copy_never_away_from_the_workflows_link():
    vae = ref("ae.safetensors")
    top = hf("Comfy-Org/Z", "split_files/vae/ae.safetensors", downloads=1000)
    mirror = hf("randomuser123/Z", "ae.safetensors", downloads=10**6)
    gated = hf("black-forest-labs/FLUX.1-dev", "ae.safetensors", downloads=10**6, gated=True, requires_auth=True)
    d = prefer_workflow_copy(vae, rank(vae, [top, mirror, gated]),
                             WorkflowEvidence(families=(("flux", "flux1"),)))
    assert d.chosen.repo == "Comfy-Org/Z"
    # ... unless the stranger's repo is where the workflow's other models are anchored
    tripo = hf("VAST-AI/TripoSplat", "vae/ae.safetensors", downloads=10)
    d = prefer_workflow_copy(vae, rank(vae, [top, tripo]), WorkflowEvidence(repos={"VAST-AI/TripoSplat": 3}))
    assert d.chosen.repo == "VAST-AI/TripoSplat"
    # a gated top gives way to a free identical copy
    d = prefer_workflow_copy(vae, rank(vae, [gated.model_copy(update={"downloads": 10**9}), top]), WorkflowEvidence())
    assert d.ranked[0].repo == "Comfy-Org/Z"
    linked = top.model_copy(update={"via": "workflow"})
    d = rank(vae, [linked, hf("Comfy-Org/Flux", "vae/ae.safetensors")])
    assert prefer_workflow_copy(vae, d, WorkflowEvidence(repos={"Comfy-Org/Flux": 5})).chosen.repo == "Comfy-Org/Z"


def test_an_ambiguous_answer_stays_ambiguous():
    vae = ref("ae.safetensors")
    d = rank(vae, [hf("Comfy-Org/A", "vae/ae.safetensors", SHA_A), hf("Comfy-Org/B", "vae/ae.safetensors", SHA_B),
                   hf("Comfy-Org/C", "vae/ae.safetensors", SHA_A, downloads=10)])
    assert d.status == "ambiguous"
    after = prefer_workflow_copy(vae, d, WorkflowEvidence(repos={"Comfy-Org/C": 2}))
    assert after.status == "ambiguous" and after.chosen is None and after.ranked[0].sha256 == d.ranked[0].sha256
