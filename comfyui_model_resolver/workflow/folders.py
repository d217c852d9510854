"""Canonical ComfyUI model folders, legacy aliases, model extensions and the generic folder guess.

Pure data and pure functions.
"""
from __future__ import annotations

import re

#: File extensions that name model weights (ComfyUI's supported_pt_extensions plus gguf/onnx).
MODEL_EXTENSIONS: tuple[str, ...] = (
    ".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".gguf", ".onnx", ".pkl",
)
#: Extensions that may carry pickled code: loading them runs arbitrary Python.
PICKLE_EXTENSIONS: tuple[str, ...] = (".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl")

#: Legacy folder names ComfyUI still reads, mapped to the canonical name.
FOLDER_ALIASES: dict[str, str] = {
    "clip": "text_encoders",
    "unet": "diffusion_models",
    "t2i_adapter": "controlnet",
}

#: Canonical folder -> the sub-directories of models/ that ComfyUI reads for it, canonical first.
DEFAULT_FOLDER_DIRS: dict[str, tuple[str, ...]] = {
    "checkpoints": ("checkpoints",),
    "loras": ("loras",),
    "vae": ("vae",),
    "text_encoders": ("text_encoders", "clip"),
    "diffusion_models": ("diffusion_models", "unet"),
    "clip_vision": ("clip_vision",),
    "style_models": ("style_models",),
    "embeddings": ("embeddings",),
    "diffusers": ("diffusers",),
    "vae_approx": ("vae_approx",),
    "controlnet": ("controlnet", "t2i_adapter"),
    "gligen": ("gligen",),
    "upscale_models": ("upscale_models",),
    "latent_upscale_models": ("latent_upscale_models",),
    "hypernetworks": ("hypernetworks",),
    "photomaker": ("photomaker",),
    "classifiers": ("classifiers",),
    "model_patches": ("model_patches",),
    "audio_encoders": ("audio_encoders",),
}

#: Folders that never hold model weights even though ComfyUI registers them.
NON_MODEL_FOLDERS = frozenset({"configs", "custom_nodes"})


def canonical_folder(name: str) -> str:
    """`clip` -> `text_encoders`, `unet` -> `diffusion_models`; other names unchanged."""
    return FOLDER_ALIASES.get(name, name)


def has_model_extension(value: str) -> bool:
    return value.lower().endswith(MODEL_EXTENSIONS)


def is_pickle_file(name: str) -> bool:
    return name.lower().endswith(PICKLE_EXTENSIONS)


#: Files that run as code where ComfyUI, Python or a browser finds them (a node pack's `__init__.py`,
#: a web extension's `.js`, a native library). No model is stored under these names; the
#: downloader refuses them whatever the folder.
CODE_EXTENSIONS: tuple[str, ...] = (
    ".py", ".pyc", ".pyo", ".pyw", ".pyd", ".pyz", ".so", ".dll", ".dylib", ".exe", ".msi", ".bat", ".cmd",
    ".ps1", ".sh", ".bash", ".js", ".mjs", ".cjs", ".html", ".htm", ".whl", ".egg",
)


def is_code_file(name: str) -> bool:
    return name.lower().endswith(CODE_EXTENSIONS)


_PLAIN_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


def embedded_folder(directory: object) -> str | None:
    """The folder named by a workflow's own `models[].directory`, or None when it is not one.

    A workflow is untrusted input, so it may only name a plain model folder (`checkpoints`,
    `text_encoders`, a pack's `ipadapter`): never a path (`custom_nodes/x`, `models/../..`, `C:`),
    nor a folder that holds no models (`custom_nodes`, `configs`). Trusted sources (node schemas,
    the loader table) can name the longer forms."""
    if not isinstance(directory, str):
        return None
    name = directory.strip().strip("/")
    if not _PLAIN_FOLDER.match(name) or ".." in name:
        return None
    folder = canonical_folder(name)
    return None if folder in NON_MODEL_FOLDERS else folder


def looks_like_model_value(value: object) -> bool:
    """A widget value that could be a model file name (used by the generic rule). Not a sentence
    that happens to end in ".pt" (a prompt: commas between words, or many words)."""
    return (
        isinstance(value, str)
        and 4 < len(value) <= 512
        and "\n" not in value
        and has_model_extension(value)
        and "://" not in value
        and ", " not in value
        and len(value.rsplit("/", 1)[-1].split()) <= 6
    )


#: Files that come with a model but are not one: configs, code, docs, tokenizers' text.
_CONFIG_NAMES = re.compile(r"(?i)(\.(json|ya?ml|txt|md|cfg|ini|toml|py|pyc|js|sh|bat|ps1)|\.cfg\.py)$")


def is_config_or_code(name: str) -> bool:
    """config.json, model.safetensors.index.json, *.cfg.py, *.py, *.yaml…: never listed as a model."""
    return bool(_CONFIG_NAMES.search(name.strip())) or is_code_file(name)


def is_empty_choice(value: object) -> bool:
    """Placeholder values loaders use for "no model"."""
    return value is None or (isinstance(value, str) and value.strip().lower() in {"", "none", "null", "undefined", "[none]"})


# Ordered: the first rule whose pattern matches the hint wins. Patterns are matched against
# lower-cased input names, node types and file names, in that order.
_GUESS_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), folder)
    for p, folder in (
        (r"clip_?vision|image_?encoder|clipvision", "clip_vision"),
        (r"ip_?adapter", "ipadapter"),
        (r"animatediff|motion_?model|mm_sd|motion_module", "animatediff_models"),
        (r"controlnet|control_net|control_|t2i|cn_", "controlnet"),
        (r"lora|locon|lycoris", "loras"),
        (r"latent_?upscale|spatial-upscaler|spatial_upscaler", "latent_upscale_models"),
        (r"upscale|esrgan|swinir|4x|2x_", "upscale_models"),
        (r"embedding|textual_inversion", "embeddings"),
        (r"hypernet", "hypernetworks"),
        (r"photomaker", "photomaker"),
        (r"gligen", "gligen"),
        (r"style_?model|redux", "style_models"),
        (r"insightface|antelope|inswapper|buffalo", "insightface"),
        (r"facerestore|codeformer|gfpgan|restoreformer", "facerestore_models"),
        (r"yolo|ultralytics|bbox|segm", "ultralytics"),
        (r"\bsam\b|sam_|segment_anything|sam_vit", "sams"),
        (r"audio_?encoder", "audio_encoders"),
        (r"model_?patch", "model_patches"),
        (r"vae", "vae"),
        (r"text_?encoder|clip|t5|umt5|llama|qwen|gemma|byt5|mistral", "text_encoders"),
        (r"unet|diffusion_model|transformer|gguf|dit", "diffusion_models"),
        (r"ckpt|checkpoint", "checkpoints"),
    )
)


def folder_candidates(filename: str) -> tuple[str, ...]:
    """Folders a file of unknown purpose might belong to, from the words of its name: offered to
    the user, never taken as the answer."""
    out: list[str] = []
    low = filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
    for pattern, folder in _GUESS_RULES:
        if pattern.search(low) and folder not in out:
            out.append(folder)
    for folder in ("checkpoints", "diffusion_models", "loras"):
        if len(out) < 3 and folder not in out and low.endswith((".safetensors", ".ckpt", ".gguf")):
            out.append(folder)
    return tuple(out[:4])


def guess_folder(*hints: str | None) -> str | None:
    """Best-effort folder for a file named by a node nobody described. Low confidence."""
    for hint in hints:
        if not hint:
            continue
        low = hint.lower()
        for pattern, folder in _GUESS_RULES:
            if pattern.search(low):
                return folder
    return None
