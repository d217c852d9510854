"""A1111-style `parameters` text: parsed into models with hashes, from real PNG and WebP files."""
from __future__ import annotations

import pytest

from comfyui_model_resolver.errors import WorkflowError
from comfyui_model_resolver.workflow.a1111 import looks_like_parameters, parse_parameters
from comfyui_model_resolver.workflow.knowledge import Knowledge
from comfyui_model_resolver.workflow.parse import parse_workflow_bytes
from support.images import make_png, make_webp_parameters

PARAMS = (
    "a castle on a hill, <lora:add_detail:0.5>, masterpiece, <lyco:ghibli_style_offset:0.8>\n"
    "Negative prompt: easynegative, blurry\n"
    'Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: 879db523c3, '
    'Model: dreamshaper_8, VAE hash: 235745af8d, VAE: vae-ft-mse-840000-ema-pruned.safetensors, '
    'Denoising strength: 0.4, Hires upscaler: 4x-UltraSharp, ADetailer model: face_yolov8n.pt, '
    'Lora hashes: "add_detail: 7c6bad76eb54, ghibli_style_offset: 1a2b3c4d5e6f", '
    'TI hashes: "easynegative: c74b4e810b03", Version: v1.6.0'
)


def _by_folder(text: str) -> dict:
    return {(m.folder, m.name): (m.hash, m.hash_type) for m in parse_parameters(text).models}


def test_parameters_name_every_model_with_its_hash_kind():
    p = parse_parameters(PARAMS)
    assert p.prompt.startswith("a castle") and p.negative == "easynegative, blurry"
    assert p.settings["Sampler"] == "DPM++ 2M Karras" and p.settings["Version"] == "v1.6.0"
    got = _by_folder(PARAMS)
    assert got == {
        ("checkpoints", "dreamshaper_8.safetensors"): ("879db523c3", "autov2"),
        ("vae", "vae-ft-mse-840000-ema-pruned.safetensors"): ("235745af8d", "autov2"),
        ("loras", "add_detail.safetensors"): ("7c6bad76eb54", "autov3"),
        ("loras", "ghibli_style_offset.safetensors"): ("1a2b3c4d5e6f", "autov3"),
        ("embeddings", "easynegative"): ("c74b4e810b", "autov2"),  # a sha256 prefix: its AutoV2
        ("upscale_models", "4x-UltraSharp.pth"): (None, None),
        ("ultralytics", "bbox/face_yolov8n.pt"): (None, None),
    }


def test_hashes_json_with_commas_and_old_autov1_and_full_sha256():
    sha = "ab" * 32
    text = ('portrait\nSteps: 30, Sampler: Euler a, Model hash: e3b0c442, Model: v1-5-pruned-emaonly, '
            f'Hashes: {{"model": "e3b0c442", "lora:film_grain": "{sha}", "embed:badhandv4": "5e40d722fc"}}, '
            'Hires upscaler: Latent (nearest-exact), Version: f2.0.1')
    got = _by_folder(text)
    assert got[("checkpoints", "v1-5-pruned-emaonly.safetensors")] == ("e3b0c442", "autov1")
    assert got[("loras", "film_grain.safetensors")] == (sha, "sha256")
    assert got[("embeddings", "badhandv4")] == ("5e40d722fc", "autov2")
    assert not any(f == "upscale_models" for f, _ in got)  # a latent upscaler is no file


def test_text_that_is_not_parameters_is_not_read_as_such():
    assert not looks_like_parameters("just a caption, Model: x")
    assert looks_like_parameters(PARAMS)
    assert parse_parameters("no settings line here").models == []


def _names(refs) -> dict:
    return {(r.folder, r.filename): (r.hash, r.hash_type) for r in refs}


@pytest.mark.parametrize("image", [
    make_png({"parameters": PARAMS}),
    make_png({"parameters": PARAMS}, itxt=True, compress=True),
    make_webp_parameters(PARAMS),
    make_webp_parameters(PARAMS, little=True),
    make_webp_parameters(PARAMS, xmp=True),
], ids=["png-tEXt", "png-iTXt-z", "webp-exif-be", "webp-exif-le", "webp-xmp"])
def test_images_with_parameters_give_the_models_and_hashes(image):
    parsed = parse_workflow_bytes(image, Knowledge(), max_bytes=1 << 20)
    got = _names(parsed.refs)
    assert got[("checkpoints", "dreamshaper_8.safetensors")] == ("879db523c3", "autov2")
    assert got[("loras", "add_detail.safetensors")] == ("7c6bad76eb54", "autov3")
    assert got[("embeddings", "easynegative")] == ("c74b4e810b", "autov2")
    assert got[("vae", "vae-ft-mse-840000-ema-pruned.safetensors")] == ("235745af8d", "autov2")
    assert parsed.format in ("png", "webp")


def test_a_comfyui_workflow_wins_over_parameters_in_the_same_image():
    wf = '{"nodes": [{"id": 1, "type": "CheckpointLoaderSimple", "widgets_values": ["other.safetensors"]}]}'
    parsed = parse_workflow_bytes(make_png({"parameters": PARAMS, "workflow": wf}), Knowledge(), max_bytes=1 << 20)
    assert [r.filename for r in parsed.refs] == ["other.safetensors"]


def test_an_image_with_a_caption_only_is_refused_in_plain_words():
    with pytest.raises(WorkflowError, match="no embedded ComfyUI workflow"):
        parse_workflow_bytes(make_png({"parameters": "a cat"}), Knowledge(), max_bytes=1 << 20)
