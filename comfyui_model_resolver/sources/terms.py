"""What a model file name says: its stem, its variant (precision, quantisation, pruning), its model
family, the search queries worth trying and the publishers worth asking first. Pure.

    >>> n = analyse_name("split_files/umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    >>> n.core, n.variant
    ('umt5_xxl', ('fp8', 'e4m3fn', 'scaled'))
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .publishers import FAMILIES, FOLDER_PUBLISHERS, GENERAL_PUBLISHERS, GGUF_PUBLISHERS, SPECIFIC_FOLDERS, Family

#: Tokens that name a numeric format, a quantisation or a packaging of the same weights.
PRECISION_TOKENS = frozenset({
    "fp16", "bf16", "fp32", "fp8", "fp4", "nf4", "int8", "int4", "e4m3fn", "e5m2", "e4m3", "e4m3fnuz",
    "scaled", "mixed", "nvfp4", "mxfp4", "w4a8", "w8a8", "w4a16", "w8a16", "gptq", "awq", "convrot",
    "f16", "f32", "bnb", "half", "fp8e4m3fn", "fp8e5m2", "fp8scaled", "svdq", "int4quant", "marlin",
})
TRAINING_TOKENS = frozenset({"pruned", "ema", "emaonly", "noema", "nonema", "full", "fp16pruned"})
_QUANT = re.compile(r"(?i)(?<![a-z0-9])(i?q[1-8](?:_k)?(?:_(?:xxs|xs|s|m|l|nl|0|1))*)(?![a-z0-9])")
_SPLIT = re.compile(r"[-_\s.]+")
_VERSIONISH = re.compile(r"^v?\d+(\.\d+)*[a-z]?$")


@dataclass(frozen=True, slots=True)
class NameInfo:
    filename: str  # as given (may contain a sub-path)
    basename: str
    stem: str  # basename without extension
    ext: str  # ".safetensors"
    core: str  # lower-case stem without variant tokens, separators as "_"
    key: str  # core with only letters and digits: compares names that differ in separators
    tokens: tuple[str, ...]  # core tokens
    variant: tuple[str, ...]  # variant tokens in order, lower-case (fp8, e4m3fn, scaled, q4_k_m, …)
    family: Family | None

    @property
    def variant_label(self) -> str:
        return "_".join(self.variant) or "default"


def _basename(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def split_ext(name: str) -> tuple[str, str]:
    base = _basename(name)
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem or len(ext) > 12 or " " in ext:
        return base, ""
    return stem, "." + ext.lower()


def _tokens(text: str) -> list[str]:
    """Split on separators, keeping decimal versions like 2.1 or 1.3b whole."""
    out: list[str] = []
    for piece in re.split(r"[-_\s]+", text):
        if not piece:
            continue
        # "wan2.1" stays, "a.b" of words splits
        sub = re.split(r"\.(?!\d)|(?<!\d)\.", piece)
        out.extend(s for s in sub if s)
    return out


def analyse_name(filename: str) -> NameInfo:
    base = _basename(filename)
    stem, ext = split_ext(base)
    low = stem.lower()
    quants = [m.group(1).lower() for m in _QUANT.finditer(low)]
    for q in quants:
        low = re.sub(rf"(?<![a-z0-9]){re.escape(q)}(?![a-z0-9])", " ", low)
    toks = _tokens(low)
    variant: list[str] = []
    core: list[str] = []
    for t in toks:
        if t in PRECISION_TOKENS or t in TRAINING_TOKENS:
            variant.append(t)
        else:
            core.append(t)
    variant.extend(quants)
    if not core:  # a name made only of variant words: keep it as the core
        core, variant = toks or [low], []
    core_s = "_".join(core)
    key = re.sub(r"[^a-z0-9]", "", core_s)
    fam = family_of(stem)
    return NameInfo(filename=filename, basename=base, stem=stem, ext=ext, core=core_s, key=key,
                    tokens=tuple(core), variant=tuple(variant), family=fam)


def family_of(stem: str) -> Family | None:
    low = stem.lower()
    for fam in FAMILIES:
        if fam.pattern.search(low):
            return fam
    return None


def variant_set(info: NameInfo) -> frozenset[str]:
    """Variant tokens that matter for identity (normalised: fp8e4m3fn == fp8 + e4m3fn)."""
    out = set()
    for v in info.variant:
        if v == "fp8e4m3fn":
            out.update({"fp8", "e4m3fn"})
        elif v == "fp8scaled":
            out.update({"fp8", "scaled"})
        elif v in {"f16", "half"}:
            out.add("fp16")
        elif v == "f32":
            out.add("fp32")
        elif v in {"emaonly", "pruned", "ema", "noema", "nonema"}:
            out.add("pruned" if v in {"pruned", "emaonly", "noema", "nonema"} else "ema")
        else:
            out.add(v)
    return frozenset(out)


#: For a name many models use (`diffusion_pytorch_model.fp16.safetensors`), the Hub search worth a
#: request is the folder's word: repos holding such files are named after what they are.
GENERIC_FOLDER_QUERIES: dict[str, str] = {
    "controlnet": "controlnet", "ipadapter": "ip-adapter", "clip_vision": "clip-vit", "vae": "vae",
    "loras": "lora", "instantid": "instantid", "photomaker": "photomaker", "animatediff_models": "animatediff",
}


def search_queries(info: NameInfo, *, limit: int = 3) -> list[str]:
    """Hub search terms, most specific first: the core stem as written, shorter prefixes of it,
    then the family name. Search matches substrings of repo ids, so the writer's separators stay."""
    stem = info.stem
    out: list[str] = []

    def add(q: str) -> None:
        q = q.strip(" -_.")
        if len(q) >= 3 and q.lower() not in {x.lower() for x in out}:
            out.append(q)

    # The stem up to the first variant token, in the writer's spelling.
    pieces = re.split(r"([-_\s]+)", stem)
    kept = []
    for p in pieces:
        low = p.lower()
        if low in PRECISION_TOKENS or low in TRAINING_TOKENS or _QUANT.fullmatch(low):
            break
        kept.append(p)
    core_written = "".join(kept).strip(" -_")
    add(core_written or stem)
    # Repo ids spell with dashes what file names spell with underscores or camelCase
    # (sdxl_lightning_4step_lora.safetensors is in ByteDance/SDXL-Lightning, RealESRGAN_x4.pth in
    # ai-forever/Real-ESRGAN): the first two words, dash-joined.
    head = [p for p in re.split(r"[-_\s]+", core_written) if p]
    if head and re.search(r"[a-z][A-Z]", head[0]):
        head = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", head[0]).split() + head[1:]
    if len(head) >= 2 and len(head[0]) >= 3 and not _VERSIONISH.match(head[1].lower()):
        dashed = f"{head[0]}-{head[1]}"
        if dashed.lower() not in core_written.lower():
            add(dashed)
    rare = distinctive_token(info)
    if rare:
        add(rare)
    if info.family:
        add(info.family.queries[0])
    words = [p for p in re.split(r"[-_\s]+", core_written) if p]
    for n in (3, 2):
        if len(words) > n:
            # prefix of n words in the original spelling
            m = re.match(r"^(?:[^-_\s]+[-_\s]+){%d}" % (n - 1) + r"[^-_\s]+", core_written)
            if m:
                add(m.group(0))
    if info.family:
        for q in info.family.queries[1:]:
            add(q)
    if words and len(words[0]) >= 5 and not _VERSIONISH.match(words[0].lower()):
        add(words[0])
    return out[:limit] if limit else out


#: Words too common in model file names to find a repo by.
COMMON_WORDS = frozenset({
    "model", "models", "lora", "loras", "base", "turbo", "edit", "image", "video", "text", "encoder", "vae",
    "diffusion", "unet", "clip", "vision", "dev", "schnell", "lite", "large", "small", "medium", "tiny",
    "comfy", "comfyui", "repackaged", "merged", "mix", "final", "steps", "step", "distill", "distilled", "i2v",
    "t2v", "t2i", "control", "controlnet", "union", "upscaler", "upscale", "refiner", "inpaint", "inpainting",
    "lightning", "instruct", "preview", "fast", "safetensors", "split", "files",
})


def distinctive_token(info: NameInfo) -> str | None:
    """The word of the name most likely to appear in its repo's id only: not a family word, not a
    common word, not a number or version (`Qwen_Image_Edit_2511-SYSTMS_INFL8` -> `SYSTMS`)."""
    family_words = set()
    if info.family:
        for q in info.family.queries:
            family_words.update(w.lower() for w in re.split(r"[-_.\s]+", q) if w)
        family_words.add(info.family.name.lower())
    best = None
    for word in re.split(r"[-_\s]+", info.stem):
        low = word.lower()
        if (len(low) < 5 or low in COMMON_WORDS or low in family_words or low in PRECISION_TOKENS
                or low in TRAINING_TOKENS or not re.search(r"[a-z]", low) or _VERSIONISH.match(low)
                or any(low.startswith(f) for f in family_words if len(f) >= 3)):
            continue
        if best is None:
            # "NetaYumev35" -> "NetaYume": a trailing version is rarely in the repo id
            trimmed = re.sub(r"(?i)v?\d+(\.\d+)*$", "", word)
            best = trimmed if len(trimmed) >= 5 else word
    return best


def preferred_publishers(info: NameInfo, folder: str | None) -> list[str]:
    """Hub namespaces to ask first for this file, most likely first."""
    out: list[str] = []
    folder_first = FOLDER_PUBLISHERS.get(folder or "", ()) if folder in SPECIFIC_FOLDERS else ()
    if info.ext == ".gguf":
        folder_first = GGUF_PUBLISHERS + folder_first
    for p in (*folder_first, *(info.family.publishers if info.family else ())):
        if p not in out:
            out.append(p)
    for p in GENERAL_PUBLISHERS:
        if p not in out:
            out.append(p)
    for p in FOLDER_PUBLISHERS.get(folder or "", ()):
        if p not in out:
            out.append(p)
    return out


def name_similarity(a: NameInfo, b: NameInfo) -> float:
    """0..1: how alike two names are once variants and separators are ignored."""
    if a.key and a.key == b.key:
        return 1.0
    ta, tb = set(a.tokens), set(b.tokens)
    if not ta or not tb:
        return 0.0
    jac = len(ta & tb) / len(ta | tb)
    return round(jac, 3)


#: Words of file names that say which base model family a workflow is built on.
_FAMILY_HINTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("flux", re.compile(r"flux")),
    ("sdxl", re.compile(r"sd_?xl|(?<![a-z])xl(?![a-z])|(?<=[a-z])xl(?![a-z])|pony|illustrious|noobai")),
    ("sd15", re.compile(r"sd_?v?1[-_.]?5|v1-5|sd15")),
)


def workflow_family(filenames) -> str | None:
    """sd15 / sdxl / flux when the workflow's file names agree on one (and name no other)."""
    seen = set()
    for name in filenames:
        low = str(name).lower()
        for fam, pat in _FAMILY_HINTS:
            if pat.search(low):
                seen.add(fam)
                break
    return next(iter(seen)) if len(seen) == 1 else None


_MODEL_WORDS_IGNORED = frozenset({"lora", "lycoris", "locon", "model", "style", "the", "a", "of", "by", "for",
                                  "checkpoint", "xl", "sdxl", "sd15", "sd", "v1", "v2", "v3"})


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", text.lower()) if w}


def model_named(info: NameInfo, model_name: str) -> bool:
    """A locally renamed Civitai download often keeps the model's name in its words
    (detail_tweaker_sd15.safetensors is "Detail Tweaker LoRA"): every telling word of the model's
    name is in the file name, and there are at least two."""
    want = _words(model_name) - _MODEL_WORDS_IGNORED
    return len(want) >= 2 and want <= _words(info.stem)
