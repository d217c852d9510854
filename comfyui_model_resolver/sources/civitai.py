"""Civitai provider, through the public REST API v1 (aiohttp, via the shared Upstream client).

* By hash first, whenever one is known (the workflow's, or a local file's): Civitai serves files
  under names of its own (`getDownloadFilename`), so the hash is the dependable path.
  `GET /api/v1/model-versions/by-hash/{hash}` accepts every hash kind (SHA256, AutoV2, …).
* Else a text search, `GET /api/v1/models?query=…&types=…` with the type mapped from the
  folder, limit 20 (relevance is unreliable with fewer), matched locally by name.
* The API key travels only in `Authorization: Bearer` (Upstream adds it for this origin only).
"""
from __future__ import annotations

import re

from ..errors import NotFound, SourceError
from ..settings import Settings
from ..types import Candidate, ModelRef
from .base import BudgetExhausted, LookupContext, Source
from ..upstream import CIVITAI_TOKEN_ENV
from .http import Upstream
from .terms import NameInfo, analyse_name, name_similarity, variant_set

NAME = "civitai"
SEARCH_LIMIT = 20
MAX_SEARCHES = 2

#: ComfyUI folder -> Civitai model types.
FOLDER_TYPES: dict[str, tuple[str, ...]] = {
    "checkpoints": ("Checkpoint",),
    "loras": ("LORA", "LoCon", "DoRA"),
    "embeddings": ("TextualInversion",),
    "vae": ("VAE",),
    "controlnet": ("Controlnet",),
    "upscale_models": ("Upscaler",),
    "hypernetworks": ("Hypernetwork",),
    "animatediff_models": ("MotionModule",),
    "motion_lora": ("LORA",),
    "ultralytics": ("Detection",),
    "diffusion_models": ("Checkpoint", "UNet"),
    "text_encoders": ("TextEncoder",),
    "clip_vision": ("CLIPVision",),
}
#: Civitai type -> the ComfyUI folder its files go to.
TYPE_FOLDERS: dict[str, str] = {
    "Checkpoint": "checkpoints", "LORA": "loras", "LoCon": "loras", "DoRA": "loras",
    "TextualInversion": "embeddings", "VAE": "vae", "Controlnet": "controlnet", "Upscaler": "upscale_models",
    "Hypernetwork": "hypernetworks", "MotionModule": "animatediff_models", "Detection": "ultralytics",
    "UNet": "diffusion_models", "TextEncoder": "text_encoders", "CLIPVision": "clip_vision",
}
#: Folders whose Civitai search is narrowed to the workflow's model family (the checkpoint's).
FAMILY_FILTERED = frozenset({"checkpoints", "loras", "embeddings", "hypernetworks", "controlnet"})
#: Folders whose files people publish on Civitai (name search is worth a request).
SEARCHABLE_FOLDERS = frozenset({"checkpoints", "loras", "embeddings", "vae", "controlnet", "upscale_models",
                                "hypernetworks", "animatediff_models", "motion_lora", "ultralytics"})


def _size(f: dict) -> int | None:
    kb = f.get("sizeKB")
    return int(round(float(kb) * 1024)) if isinstance(kb, (int, float)) and kb > 0 else None


def _sha256(f: dict) -> str | None:
    h = (f.get("hashes") or {}).get("SHA256")
    return h.lower() if isinstance(h, str) and len(h) == 64 else None


def search_text(info: NameInfo) -> str:
    """Civitai's search is full text over model names: words, not file-name punctuation."""
    words = [t for t in re.split(r"[_\-.\s]+", info.core) if t]
    return " ".join(words) or info.stem


def search_texts(info: NameInfo, limit: int = MAX_SEARCHES) -> list[str]:
    """The file name's words, then the model name Civitai built the download name from
    (`{model}_{version}`: `juggernautXL_v8Rundiffusion` -> "juggernaut XL"), camelCase split and
    version words dropped."""
    out = [search_text(info)]
    head = re.split(r"[_\s]+", info.stem.strip("_ "), maxsplit=1)[0]
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", head).split()
    words = [w for w in words if not re.fullmatch(r"(?i)v?\d[\w.]*", w)]
    text = " ".join(words)
    if len(text) >= 4 and text.lower() != out[0].lower():
        out.append(text)
    return out[:limit]


#: Workflow family -> Civitai `baseModels` values.
BASE_MODELS: dict[str, tuple[str, ...]] = {
    "sd15": ("SD 1.5", "SD 1.5 LCM", "SD 1.5 Hyper"),
    "sdxl": ("SDXL 1.0", "SDXL Lightning", "SDXL Hyper", "Pony", "Illustrious", "NoobAI"),
    "flux": ("Flux.1 D", "Flux.1 S"),
}


class CivitaiSource(Source):
    name = NAME

    def __init__(self, settings: Settings, upstream: Upstream) -> None:
        self.base = settings.civitai_base_url
        self.upstream = upstream
        self.has_key = settings.civitai_api_key is not None and bool(settings.civitai_api_key.get_secret_value())

    # ---- API -----------------------------------------------------------------------------
    async def by_hash(self, digest: str, ctx: LookupContext) -> dict | None:
        ctx.tried(NAME, f"hash:{digest[:12].upper()}")
        try:
            return await self.upstream.get_json(f"{self.base}/api/v1/model-versions/by-hash/{digest.upper()}",
                                                source=NAME, ctx=ctx, what="by-hash")
        except NotFound:
            return None

    async def search_models(self, query: str, types: tuple[str, ...], ctx: LookupContext,
                            base_models: tuple[str, ...] = ()) -> list[dict]:
        ctx.tried(NAME, query + (f" [{','.join(types)}]" if types else "")
                  + (f" [{base_models[0]}…]" if base_models else ""))
        params: list[tuple[str, str]] = [("query", query), ("limit", str(SEARCH_LIMIT)), ("nsfw", "true")]
        params += [("types", t) for t in types]
        params += [("baseModels", b) for b in base_models]
        data = await self.upstream.get_json(f"{self.base}/api/v1/models", source=NAME, ctx=ctx, params=params,
                                            what="search")
        items = data.get("items") if isinstance(data, dict) else None
        return [i for i in items or [] if isinstance(i, dict)]

    # ---- candidates ----------------------------------------------------------------------
    def _candidate(self, version: dict, f: dict, *, model: dict | None, via: str, hash_match: bool) -> Candidate:
        vid = version.get("id")
        model_id = version.get("modelId") or (model or {}).get("id")
        mtype = (model or version.get("model") or {}).get("type")
        url = f.get("downloadUrl") or f"{self.base}/api/download/models/{vid}"
        if not f.get("primary") and f.get("id") is not None:
            url = f"{self.base}/api/download/models/{vid}?fileId={f['id']}"
        early = version.get("availability") == "EarlyAccess"
        stats = (model or {}).get("stats") or version.get("stats") or {}
        return Candidate(
            url=url, source=NAME, confidence=0.0, filename=f.get("name"), size=_size(f), sha256=_sha256(f),
            repo=f"{model_id}@{vid}", path=f.get("name"), folder=TYPE_FOLDERS.get(mtype or ""),
            publisher=((model or {}).get("creator") or {}).get("username"),
            downloads=stats.get("downloadCount"), via=via, hash_match=hash_match, early_access=early,
            requires_auth=early and not self.has_key, token_env=CIVITAI_TOKEN_ENV if early else None,
            published=version.get("publishedAt"))

    def _from_hash(self, version: dict, digest: str) -> list[Candidate]:
        files = [f for f in version.get("files") or [] if isinstance(f, dict)]
        want = digest.upper()
        matching = [f for f in files if any(isinstance(v, str) and (v.upper() == want or
                                                                     (len(want) == 64 and v.upper() == want[:10]))
                                            for v in (f.get("hashes") or {}).values())]
        if matching:
            return [self._candidate(version, f, model=None, via="hash", hash_match=True) for f in matching]
        primary = [f for f in files if f.get("primary")] or files[:1]
        return [self._candidate(version, f, model=None, via="hash", hash_match=False) for f in primary]

    def _from_search(self, info: NameInfo, items: list[dict]) -> list[Candidate]:
        out: list[tuple[float, Candidate]] = []
        for model in items:
            mkey = re.sub(r"[^a-z0-9]", "", str(model.get("name", "")).lower())
            for version in model.get("modelVersions") or []:
                vkey = mkey + re.sub(r"[^a-z0-9]", "", str(version.get("name", "")).lower())
                for f in version.get("files") or []:
                    name = f.get("name")
                    if not isinstance(name, str):
                        continue
                    other = analyse_name(name)
                    if name == info.basename:
                        sim = 1.0
                    else:
                        sim = name_similarity(info, other)
                        if info.key and (info.key == vkey or info.key == mkey):
                            sim = max(sim, 0.8)  # renamed on download: {model}_{version}
                    if sim < 0.5 or (other.key == info.key and variant_set(other) != variant_set(info)
                                      and sim < 1.0 and not f.get("primary")):
                        continue
                    version = {**version, "modelId": model.get("id")}
                    out.append((sim, self._candidate(version, f, model=model, via="search", hash_match=False)))
        out.sort(key=lambda t: -t[0])
        return [c for _, c in out[:8]]

    async def candidates(self, ref: ModelRef, ctx: LookupContext) -> list[Candidate]:
        if ref.kind == "directory":
            return []
        info = analyse_name(ref.filename)
        out: list[Candidate] = []
        digests = [h for h in (ctx.sha256, ref.hash) if h]
        try:
            for digest in dict.fromkeys(d.strip() for d in digests):
                version = await self.by_hash(digest, ctx)
                if version:
                    out.extend(self._from_hash(version, digest))
                    break
            if not out and (ref.folder in SEARCHABLE_FOLDERS or ref.folder is None):
                types = FOLDER_TYPES.get(ref.folder or "", ())
                bases = BASE_MODELS.get(ctx.family or "", ()) if ref.folder in FAMILY_FILTERED else ()
                for text in search_texts(info):
                    found = self._from_search(info, await self.search_models(text, types, ctx, bases))
                    out.extend(c for c in found if c.url not in {o.url for o in out})
                    if any(c.filename == info.basename for c in found):
                        break
        except BudgetExhausted:
            ctx.tried(NAME, "(request budget spent)")
        except SourceError:
            if not out:
                raise
        return out

    async def search(self, query: str, folder: str | None, ctx: LookupContext) -> list[Candidate]:
        types = FOLDER_TYPES.get(folder or "", ())
        items = await self.search_models(query, types, ctx)
        out = []
        for model in items:
            for version in (model.get("modelVersions") or [])[:1]:
                version = {**version, "modelId": model.get("id")}
                for f in version.get("files") or []:
                    if f.get("primary") or len(version.get("files") or []) == 1:
                        out.append(self._candidate(version, f, model=model, via="search", hash_match=False))
        return out

