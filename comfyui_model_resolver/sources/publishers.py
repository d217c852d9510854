"""Who publishes what: model families and the Hugging Face namespaces that publish them. Pure data.

A namespace here is "official" for ranking: the model's authors, Comfy-Org's repackaged files, or
the few community packagers (Kijai, city96, lightx2v, …) whose files the ComfyUI templates link.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    pattern: re.Pattern[str]  # matched against the lower-case file stem
    queries: tuple[str, ...]  # Hub search terms for the family
    publishers: tuple[str, ...]  # namespaces to ask first, most likely first


def _f(name: str, pattern: str, queries: tuple[str, ...], publishers: tuple[str, ...]) -> Family:
    return Family(name, re.compile(pattern), queries, publishers)


#: Ordered: the first family whose pattern matches the stem wins.
FAMILIES: tuple[Family, ...] = (
    _f("ltx", r"ltx", ("LTX",), ("Lightricks", "Comfy-Org", "Kijai")),
    _f("wan", r"wan[-_ ]?2|wan21|wan22|wanvideo|wan_|lightx2v_[it]2v", ("Wan_2.1", "Wan2.1", "Wan2.2"),
       ("Comfy-Org", "Kijai", "Wan-AI", "lightx2v")),
    _f("hunyuan", r"hunyuan", ("Hunyuan",), ("Comfy-Org", "Kijai", "tencent")),
    _f("flux2", r"flux[-_.]?2|flux2", ("FLUX.2", "flux2"), ("black-forest-labs", "Comfy-Org")),
    _f("flux3", r"flux[-_.]?3|flux3", ("flux-3",), ("black-forest-labs", "Comfy-Org")),
    _f("flux", r"flux", ("FLUX.1", "flux1"), ("black-forest-labs", "Comfy-Org", "comfyanonymous", "city96")),
    _f("qwen-image", r"qwen[-_]?image", ("Qwen-Image",), ("Comfy-Org", "Qwen", "lightx2v")),
    _f("z-image", r"z[-_]?image", ("z_image", "Z-Image"), ("Comfy-Org", "Tongyi-MAI", "alibaba-pai")),
    _f("sdxl", r"sd_?xl|sdxl", ("stable-diffusion-xl", "sdxl"), ("stabilityai", "Comfy-Org")),
    _f("sd3", r"sd3|sd_3|stable[-_]diffusion[-_]3", ("stable-diffusion-3",), ("stabilityai", "Comfy-Org")),
    _f("svd", r"^svd", ("stable-video-diffusion",), ("stabilityai",)),
    _f("sd15", r"v1-5|sd15|sd_1\.5|sd1\.5|v1-5-pruned", ("stable-diffusion-v1-5",),
       ("Comfy-Org", "stable-diffusion-v1-5", "runwayml")),
    _f("text-encoders", r"^(t5xxl|t5-?base|clip_[lg]|umt5|llava_llama3|byt5)", ("text_encoders", "t5"),
       ("comfyanonymous", "Comfy-Org")),
    _f("hidream", r"hidream", ("HiDream",), ("Comfy-Org", "HiDream-ai")),
    _f("lumina", r"lumina", ("Lumina",), ("Comfy-Org", "Alpha-VLLM")),
    _f("cosmos", r"cosmos", ("Cosmos",), ("Comfy-Org", "nvidia")),
    _f("ace-step", r"ace[-_]?step", ("ace_step", "ACE-Step"), ("Comfy-Org", "ACE-Step")),
    _f("stable-audio", r"stable[-_]audio", ("stable-audio",), ("Comfy-Org", "stabilityai")),
    _f("mochi", r"mochi", ("mochi",), ("Comfy-Org", "genmo")),
    _f("chroma", r"chroma", ("Chroma",), ("lodestones", "Comfy-Org")),
    _f("omnigen", r"omnigen", ("OmniGen",), ("Comfy-Org",)),
    _f("kandinsky", r"kandinsky", ("Kandinsky",), ("kandinskylab", "Comfy-Org")),
    _f("anima", r"^anima", ("Anima",), ("circlestone-labs",)),
    _f("qwen", r"qwen", ("Qwen",), ("Comfy-Org", "Qwen")),
    _f("controlnet", r"control[-_]?net|controlnet", ("ControlNet",), ("lllyasviel", "Comfy-Org", "xinsir")),
)

#: Families that name a component many model families share (text encoders, controlnets, the Qwen
#: LLMs used as text encoder by Qwen-Image, HunyuanVideo 1.5, Z-Image, FLUX.2 klein…): a workflow that
#: loads one is not thereby of that family.
COMPONENT_FAMILIES: frozenset[str] = frozenset({"text-encoders", "controlnet", "qwen"})

#: Always asked, after the family's publishers.
GENERAL_PUBLISHERS: tuple[str, ...] = ("Comfy-Org", "comfyanonymous")

#: Extra publishers by ComfyUI folder.
FOLDER_PUBLISHERS: dict[str, tuple[str, ...]] = {
    "checkpoints": ("stabilityai", "Comfy-Org"),
    "diffusion_models": ("Comfy-Org", "black-forest-labs", "Kijai", "city96"),
    "text_encoders": ("comfyanonymous", "Comfy-Org"),
    "vae": ("Comfy-Org", "stabilityai"),
    "loras": ("Comfy-Org", "lightx2v", "Kijai"),
    "controlnet": ("lllyasviel", "Comfy-Org", "xinsir", "InstantX", "Shakker-Labs"),
    "clip_vision": ("Comfy-Org", "comfyanonymous"),
    "upscale_models": ("Comfy-Org", "Kim2091"),
    "style_models": ("black-forest-labs", "Comfy-Org"),
    "latent_upscale_models": ("Lightricks", "Comfy-Org"),
    "audio_encoders": ("Comfy-Org",),
    "model_patches": ("Comfy-Org",),
    # custom-node folders: the publishers their packs' docs name
    "ipadapter": ("h94",),
    "instantid": ("InstantX",),
    "pulid": ("guozinan", "huchenlei"),
    "photomaker": ("TencentARC",),
    "animatediff_models": ("guoyww", "ByteDance", "wangfuyun"),
    "animatediff_motion_lora": ("guoyww",),
    "ultralytics": ("Bingsu",),
    "xlabs": ("XLabs-AI",),
}

#: Who publishes GGUF quantisations that workflows load (ComfyUI-GGUF's docs).
GGUF_PUBLISHERS: tuple[str, ...] = ("city96", "QuantStack")

#: Folders that name what a file is for (a custom-node folder, controlnet, upscalers…): their own
#: publishers are asked before the model family's, which publish the base models.
SPECIFIC_FOLDERS: frozenset[str] = frozenset({
    "controlnet", "clip_vision", "upscale_models", "style_models", "ipadapter", "instantid", "pulid", "photomaker",
    "animatediff_models", "animatediff_motion_lora", "ultralytics", "xlabs"})

#: Namespaces whose files count as official for ranking (case-insensitive).
OFFICIAL_PUBLISHERS: frozenset[str] = frozenset(p.lower() for p in {
    "Comfy-Org", "comfyanonymous", "black-forest-labs", "stabilityai", "Lightricks", "Kijai", "city96",
    "Wan-AI", "Qwen", "tencent", "Tongyi-MAI", "alibaba-pai", "lightx2v", "lllyasviel", "xinsir", "InstantX",
    "Shakker-Labs", "XLabs-AI", "h94", "runwayml", "stable-diffusion-v1-5", "HiDream-ai", "Alpha-VLLM",
    "nvidia", "genmo", "lodestones", "ACE-Step", "kandinskylab", "circlestone-labs", "Kim2091",
    "openai", "google", "facebook", "microsoft", "laion", "deepseek-ai", "ByteDance", "bytedance-research",
    # publishers the custom-node packs' docs name as the source of their models
    "guoyww", "TencentARC", "Bingsu", "huchenlei", "guozinan", "thibaud", "diffusers", "latent-consistency",
    "madebyollin", "ai-forever", "PixArt-alpha", "wangfuyun", "alimama-creative", "QuantStack",
})


def is_official(namespace: str | None) -> bool:
    return bool(namespace) and namespace.lower() in OFFICIAL_PUBLISHERS
