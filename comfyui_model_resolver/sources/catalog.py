"""Catalog provider: the curated list we ship (data/catalog.json, built by `catalog_build`) and,
when ComfyUI-Manager is installed beside us, its `model-list.json`.

Both are local files read once; a lookup costs no request. CMR_DISABLE_CATALOG=1 turns the
provider off (so that search can be measured on its own).

ComfyUI-Manager's schema (model-list.json): {"models": [{name, type, base, save_path,
description, reference, filename, url, size}]}; `save_path` "default" means the type's folder,
`size` is a display string ("1.23GB").
"""
from __future__ import annotations

import gzip
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable

from ..settings import Settings
from ..types import Candidate, ModelRef
from ..workflow.folders import canonical_folder
from .base import LookupContext, Source
from .terms import analyse_name
from .urls import normalise_url, parse_hf_url, to_endpoint

log = logging.getLogger(__name__)

NAME = "catalog"
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CATALOG_FILES = (DATA_DIR / "catalog.json.gz", DATA_DIR / "catalog.json")
MANAGER_DIRS = ("ComfyUI-Manager", "comfyui-manager")

#: ComfyUI-Manager `type` -> ComfyUI folder, for save_path "default".
MANAGER_TYPES: dict[str, str] = {
    "checkpoint": "checkpoints", "checkpoints": "checkpoints", "lora": "loras", "loras": "loras",
    "vae": "vae", "vae_approx": "vae_approx", "taesd": "vae_approx", "upscale": "upscale_models",
    "controlnet": "controlnet", "t2i-adapter": "controlnet", "t2i-style": "style_models",
    "clip": "text_encoders", "text_encoders": "text_encoders", "t5": "text_encoders", "unet": "diffusion_models",
    "diffusion_model": "diffusion_models", "clip_vision": "clip_vision", "embeddings": "embeddings",
    "embedding": "embeddings", "gligen": "gligen", "hypernetwork": "hypernetworks", "photomaker": "photomaker",
    "style_model": "style_models", "ipadapter": "ipadapter", "animatediff": "animatediff_models",
    "motion lora": "animatediff_motion_lora", "sam": "sams", "ultralytics": "ultralytics",
    "insightface": "insightface", "deepbump": "deepbump", "instantid": "instantid",
}
_SIZE = re.compile(r"^\s*([\d.]+)\s*([KMGT]?)i?B?\s*$", re.I)


def parse_size(text: Any) -> int | None:
    """'1.23GB' -> bytes (decimal units, as the Manager writes them); ints pass through."""
    if isinstance(text, int) and text > 0:
        return text
    if not isinstance(text, str):
        return None
    m = _SIZE.match(text)
    if not m:
        return None
    mult = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2).upper()]
    try:
        return int(float(m.group(1)) * mult)
    except ValueError:
        return None


def _read_json(path: Path) -> Any:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def load_catalog(path: Path | None = None) -> list[dict]:
    """The shipped catalog's entries: {name, url, folder, size?, sha256?}."""
    for p in ([path] if path else CATALOG_FILES):
        if p is not None and p.is_file():
            data = _read_json(p)
            return [m for m in data.get("models", []) if isinstance(m, dict) and m.get("name") and m.get("url")]
    return []


def manager_folder(entry: dict) -> str | None:
    save = str(entry.get("save_path") or "default").strip().strip("/")
    if save and save != "default" and not save.startswith("custom_nodes"):
        first = save.split("/", 1)[0]
        return canonical_folder(first)
    return MANAGER_TYPES.get(str(entry.get("type") or "").lower())


def load_manager_list(path: Path) -> list[dict]:
    """ComfyUI-Manager's model-list.json as catalog entries."""
    try:
        data = _read_json(path)
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return []
    out = []
    for m in data.get("models", []) if isinstance(data, dict) else []:
        if not isinstance(m, dict) or not m.get("filename") or not m.get("url"):
            continue
        save = str(m.get("save_path") or "default").strip().strip("/")
        sub = save.split("/", 1)[1] if "/" in save and not save.startswith("custom_nodes") else ""
        out.append({"name": m["filename"], "url": m["url"], "folder": manager_folder(m),
                    "size": parse_size(m.get("size")), "subdir": sub or None, "title": m.get("name")})
    return out


def manager_list_paths(settings: Settings, package_dir: Path | None = None) -> list[Path]:
    """model-list.json of a ComfyUI-Manager installed beside us (custom_nodes/…) or in the
    configured ComfyUI root."""
    roots: list[Path] = []
    if settings.comfyui_root is not None:
        roots.append(Path(settings.comfyui_root) / "custom_nodes")
    here = (package_dir or Path(__file__).resolve().parents[2])
    if here.parent.name == "custom_nodes":
        roots.append(here.parent)
    out = []
    for root in roots:
        for d in MANAGER_DIRS:
            p = root / d / "model-list.json"
            if p.is_file() and p not in out:
                out.append(p)
    return out


class CatalogSource(Source):
    name = NAME

    def __init__(self, settings: Settings, *, catalog: Iterable[dict] | None = None,
                 manager_paths: Iterable[Path] | None = None) -> None:
        self.settings = settings
        self._disabled = settings.disable_catalog
        self._by_name: dict[str, list[dict]] = {}
        self._by_key: dict[str, list[dict]] = {}
        self._by_sha: dict[str, list[dict]] = {}
        if self._disabled:
            return
        entries = [dict(e, via="catalog") for e in (catalog if catalog is not None else load_catalog())]
        paths = list(manager_paths) if manager_paths is not None else manager_list_paths(settings)
        for p in paths:
            entries.extend(dict(e, via="manager") for e in load_manager_list(p))
        for e in entries:
            base = str(e["name"]).replace("\\", "/").rsplit("/", 1)[-1]
            self._by_name.setdefault(base.lower(), []).append(e)
            self._by_key.setdefault(analyse_name(base).key, []).append(e)
            if e.get("sha256"):
                self._by_sha.setdefault(str(e["sha256"]).lower(), []).append(e)
        self.size = len(entries)

    @property
    def disabled_reason(self) -> str | None:
        return "turned off by CMR_DISABLE_CATALOG" if self._disabled else None

    def _candidate(self, e: dict) -> Candidate:
        url = to_endpoint(normalise_url(e["url"], (self.settings.hf_endpoint,)), self.settings.hf_endpoint)
        hf = parse_hf_url(url, (self.settings.hf_endpoint,))
        name = str(e["name"]).replace("\\", "/").rsplit("/", 1)[-1]
        return Candidate(url=url, source=NAME, confidence=0.0, filename=hf.basename if hf else name,
                         size=e.get("size"), sha256=(e.get("sha256") or None), repo=hf.repo if hf else None,
                         path=hf.path if hf else None, folder=e.get("folder"),
                         publisher=hf.repo.split("/")[0] if hf else None, via=e.get("via", NAME))

    def lookup(self, ref: ModelRef, sha256: str | None = None) -> list[Candidate]:
        if self._disabled:
            return []
        info = analyse_name(ref.filename)
        seen: set[int] = set()
        found: list[dict] = []
        by_sha = self._by_sha.get(sha256.lower(), []) if sha256 else []
        for e in by_sha + self._by_name.get(info.basename.lower(), []) + self._by_key.get(info.key, []):
            if id(e) not in seen:
                seen.add(id(e))
                found.append(e)
        return [self._candidate(e) for e in found[:10]]

    async def candidates(self, ref: ModelRef, ctx: LookupContext) -> list[Candidate]:
        if self._disabled:
            return []
        ctx.tried(NAME, analyse_name(ref.filename).basename)
        return self.lookup(ref, ctx.sha256 or (ref.hash if (ref.hash_type or "sha256") == "sha256" else None))

    async def search(self, query: str, folder: str | None, ctx: LookupContext) -> list[Candidate]:
        if self._disabled:
            return []
        words = [w for w in re.split(r"[\s_\-.]+", query.lower()) if w]
        out = []
        for name, entries in self._by_name.items():
            if all(w in name for w in words):
                out.extend(self._candidate(e) for e in entries if folder is None or e.get("folder") == folder)
        return out[:50]

