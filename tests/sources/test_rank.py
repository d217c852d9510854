"""Ranking (pure): reasons, confidence, and when a candidate may be chosen."""
from __future__ import annotations

from comfyui_model_resolver.sources.rank import CONFIDENT, folder_of_path, hash_agrees, rank
from comfyui_model_resolver.types import Candidate, ModelRef

SHA_A, SHA_B = "a" * 64, "b" * 64


def ref(name="wan_2.1_vae.safetensors", folder="vae", **kw) -> ModelRef:
    return ModelRef(filename=name, folder=folder, node_id="1", node_type="VAELoader", input="vae_name", **kw)


def hf(repo, path, sha=None, downloads=1000, **kw) -> Candidate:
    return Candidate(url=f"https://huggingface.co/{repo}/resolve/main/{path}", source="huggingface", confidence=0,
                     filename=path.rsplit("/", 1)[-1], repo=repo, path=path, sha256=sha, publisher=repo.split("/")[0],
                     folder=folder_of_path(path), downloads=downloads, via="search", **kw)


def test_official_exact_file_is_chosen_with_reasons():
    d = rank(ref(), [hf("Comfy-Org/Wan_2.1_ComfyUI_repackaged", "split_files/vae/wan_2.1_vae.safetensors", SHA_A)])
    assert d.status == "resolved" and d.chosen.confidence >= CONFIDENT
    assert {"exact file name", "folder agrees (vae)", "official publisher (Comfy-Org)"} <= set(d.chosen.reasons)


def test_official_beats_a_reupload_with_other_bytes():
    d = rank(ref(), [hf("someone/wan-stuff", "wan_2.1_vae.safetensors", SHA_B, downloads=50_000),
                     hf("Comfy-Org/Wan_2.1_ComfyUI_repackaged", "split_files/vae/wan_2.1_vae.safetensors", SHA_A)])
    assert d.status == "resolved" and d.chosen.repo.startswith("Comfy-Org/")


def test_two_official_files_with_different_bytes_are_ambiguous():
    d = rank(ref(), [hf("Comfy-Org/A", "vae/wan_2.1_vae.safetensors", SHA_A),
                     hf("Comfy-Org/B", "vae/wan_2.1_vae.safetensors", SHA_B)])
    assert d.status == "ambiguous" and d.chosen is None and len(d.ranked) == 2


def test_the_same_bytes_in_two_places_are_one_answer_and_the_original_wins():
    d = rank(ref("illustration.safetensors", "loras"), [
        hf("mirror/illustration", "illustration.safetensors", SHA_A, downloads=9000, published="2025-06-01"),
        hf("author/illustration", "illustration.safetensors", SHA_A, downloads=800, published="2025-01-01")])
    assert d.status == "resolved" and d.chosen.repo == "author/illustration"
    assert "uploaded before the copies by other accounts" in d.chosen.reasons


def test_a_precision_variant_is_offered_but_never_chosen():
    d = rank(ref("umt5_xxl_bf16.safetensors", "text_encoders"),
             [hf("Comfy-Org/Wan", "split_files/text_encoders/umt5_xxl_fp16.safetensors", SHA_A)])
    assert d.status == "ambiguous"
    assert any(r.startswith("variant mismatch: fp16 instead of bf16") for r in d.ranked[0].reasons)
    assert d.ranked[0].confidence < 0.5


def test_the_hash_decides():
    r = ref(hash=SHA_B, hash_type="sha256")
    d = rank(r, [hf("Comfy-Org/A", "vae/wan_2.1_vae.safetensors", SHA_A, downloads=10**6),
                 hf("nobody/x", "wan_2.1_vae.safetensors", SHA_B, downloads=3)])
    assert d.status == "resolved" and d.chosen.repo == "nobody/x"
    assert "hash matches the workflow's hash" in d.chosen.reasons
    assert "hash differs from the workflow's hash" in d.ranked[1].reasons
    assert hash_agrees(ref(hash=SHA_A[:10], hash_type="AutoV2"), SHA_A) is True


def test_renamed_file_found_by_hash_is_chosen():
    c = Candidate(url="https://civitai.com/api/download/models/9", source="civitai", confidence=0,
                  filename="dreamShaper_8Pruned.safetensors", sha256=SHA_A, via="hash", hash_match=True,
                  folder="checkpoints")
    d = rank(ref("dreamshaper_8.safetensors", "checkpoints"), [c])
    assert d.status == "resolved" and "hash matches the workflow's hash" in d.chosen.reasons


def test_folder_disagreement_and_gating_cost_confidence():
    ok = rank(ref(), [hf("Comfy-Org/A", "vae/wan_2.1_vae.safetensors", SHA_A)]).ranked[0]
    wrong_folder = rank(ref(), [hf("Comfy-Org/A", "loras/wan_2.1_vae.safetensors", SHA_A)]).ranked[0]
    gated = rank(ref(), [hf("Comfy-Org/A", "vae/wan_2.1_vae.safetensors", SHA_A, requires_auth=True,
                            token_env="CMR_HF_TOKEN")]).ranked[0]
    assert wrong_folder.confidence < ok.confidence and gated.confidence < ok.confidence
    assert "filed under loras, the workflow loads it from vae" in wrong_folder.reasons
    assert "gated: needs CMR_HF_TOKEN" in gated.reasons


def test_workflow_link():
    link = Candidate(url="https://huggingface.co/x/y/resolve/main/other_name.safetensors", source="embedded",
                     confidence=0, filename="other_name.safetensors", repo="x/y", path="other_name.safetensors",
                     via="workflow")
    same_name = link.model_copy(update={"url": link.url.replace("other_name", "wan_2.1_vae"),
                                        "filename": "wan_2.1_vae.safetensors", "path": "wan_2.1_vae.safetensors"})
    assert rank(ref(), [same_name]).status == "resolved"  # the workflow's own link, no other evidence needed
    # ... but a link to a file of another name may be a slip (a template links the _base_ file for _sft_)
    d = rank(ref(), [link])
    assert d.status == "ambiguous" and "different name (other_name.safetensors)" in d.ranked[0].reasons
    a = hf("Comfy-Org/Wan_2.2", "vae/wan_2.1_vae.safetensors", SHA_A, downloads=100)
    b = hf("Comfy-Org/Wan_2.1", "vae/wan_2.1_vae.safetensors", SHA_A, downloads=100_000)
    assert rank(ref(), [a, b]).chosen.repo == "Comfy-Org/Wan_2.1"  # which copy fits a workflow: test_affinity


def test_nothing_is_not_found():
    assert rank(ref(), []).status == "not_found"
