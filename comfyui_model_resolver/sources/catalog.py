"""Catalog provider: the curated list we ship (data/catalog.json, built by `catalog_build` from the
official templates and ComfyUI-Manager's model list) and, when ComfyUI-Manager is installed beside
us, its live `model-list.json`.

All are local files read once; a lookup costs no request. CMR_DISABLE_CATALOG=1 turns the
provider off (so that search can be measured on its own).

Precedence (`apply_precedence`): the official templates' rows first, then the Manager list
installed beside us (newer than the shipped copy), then the shipped Manager rows. A later row is
dropped when an earlier group already names the same file (case-insensitive) at another URL,
whatever the folder: the templates' repo for `clip_l.safetensors` wins over the Manager's, and so
does their `flux1-dev-fp8.safetensors` (a template loads that checkpoint with UNETLoader, where the
Manager's row of the same name, a diffusion-model-only file, would have fitted the folder better).
Within one list, rows of one name in different folders or sub-folders are different models
(`diffusion_pytorch_model.safetensors`) and all stay.

A row's `name` is the name workflows use and downloads are saved under; it may differ from the
file in the repo (a rename), so candidates carry the catalog's name, not the URL's.
"""
from __future__ import annotations

import gzip
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..settings import Settings
from ..types import Candidate, ModelRef
from .base import LookupContext, Source
from .manager_list import manager_rows, origin_of, read_model_list
from .siblings import sibling_repos
from .terms import analyse_name
from .urls import normalise_url, parse_hf_url, to_endpoint

log = logging.getLogger(__name__)

NAME = "catalog"
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
CATALOG_FILES = (DATA_DIR / "catalog.json.gz", DATA_DIR / "catalog.json")
MANAGER_DIRS = ("ComfyUI-Manager", "comfyui-manager")


def _read_json(path: Path) -> Any:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def _basename(name: str) -> str:
    return str(name).replace("\\", "/").rsplit("/", 1)[-1]


def apply_precedence(groups: Sequence[Iterable[dict]]) -> tuple[list[dict], list[dict]]:
    """Rows of several lists, first group first: (kept, shadowed). A row is shadowed when an
    earlier group has a row of the same file name (case-insensitive) with another URL; a row whose
    URL an earlier group already gives for that name is a duplicate and dropped silently. Rows of
    one group never shadow each other."""
    kept: list[dict] = []
    shadowed: list[dict] = []
    seen: dict[str, set[str]] = {}
    for group in groups:
        mine: dict[str, set[str]] = {}
        for row in group:
            key = _basename(row["name"]).lower()
            if key in seen:
                if row["url"] not in seen[key]:
                    shadowed.append(row)
                continue
            kept.append(row)
            mine.setdefault(key, set()).add(row["url"])
        for key, urls in mine.items():
            seen.setdefault(key, set()).update(urls)
    return kept, shadowed


def load_catalog(path: Path | None = None) -> list[dict]:
    """The shipped catalog's entries: {name, url, folder, size?, sha256?}."""
    for p in ([path] if path else CATALOG_FILES):
        if p is not None and p.is_file():
            data = _read_json(p)
            return [m for m in data.get("models", []) if isinstance(m, dict) and m.get("name") and m.get("url")]
    return []


def load_manager_list(path: Path) -> list[dict]:
    """ComfyUI-Manager's model-list.json (a file, a package directory or its wheel) as catalog rows."""
    try:
        data = read_model_list(path)
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s: %s", path, exc)
        return []
    return manager_rows(data, origin=str(path))


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
        self._rows: list[tuple[str, str | None, str | None]] | None = None
        if self._disabled:
            return
        shipped = list(catalog if catalog is not None else load_catalog())
        paths = list(manager_paths) if manager_paths is not None else manager_list_paths(settings)
        installed = [dict(e, via="manager") for p in paths for e in load_manager_list(p)]
        entries, _ = apply_precedence([
            [dict(e, via="catalog") for e in shipped if e.get("origin") != "manager"],
            installed,
            [dict(e, via="manager") for e in shipped if e.get("origin") == "manager"]])
        for e in entries:
            base = _basename(e["name"])
            self._by_name.setdefault(base.lower(), []).append(e)
            self._by_key.setdefault(analyse_name(base).key, []).append(e)
            if e.get("sha256"):
                self._by_sha.setdefault(str(e["sha256"]).lower(), []).append(e)
        self.size = len(entries)

    @property
    def disabled_reason(self) -> str | None:
        return "turned off by CMR_DISABLE_CATALOG" if self._disabled else None

    def _candidate(self, e: dict) -> Candidate:
        """The row as a candidate named as the catalog names it: for a rename (the Manager's
        `CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors` is h94/IP-Adapter's `model.safetensors`)
        `filename` is the workflow's name and `path` the file in the repo."""
        url = to_endpoint(normalise_url(e["url"], (self.settings.hf_endpoint,)), self.settings.hf_endpoint)
        hf = parse_hf_url(url, (self.settings.hf_endpoint,))
        return Candidate(url=url, source=NAME, confidence=0.0, filename=_basename(e["name"]),
                         size=e.get("size"), sha256=(e.get("sha256") or None), repo=hf.repo if hf else None,
                         path=hf.path if hf else None, folder=e.get("folder"),
                         publisher=hf.repo.split("/")[0] if hf else None, via=e.get("via", NAME))

    def lookup(self, ref: ModelRef, sha256: str | None = None) -> list[Candidate]:
        """Rows for this file: by hash, by name, by the name's key (other spellings). Where the
        workflow names a sub-folder (`SDXL/x/diffusion_pytorch_model.safetensors`) and rows of
        that exact place exist, only those. Hash matches first, then the exact name, then the model's own folder."""
        if self._disabled:
            return []
        info = analyse_name(ref.filename)
        seen: set[int] = set()
        found: list[dict] = []
        by_sha = self._by_sha.get(sha256.lower(), []) if sha256 else []
        hashed = {id(e) for e in by_sha}
        for e in by_sha + self._by_name.get(info.basename.lower(), []) + self._by_key.get(info.key, []):
            if id(e) not in seen:
                seen.add(id(e))
                found.append(e)
        rel = ref.filename.replace("\\", "/").strip("/").lower()
        if "/" in rel:
            placed = [e for e in found if f"{e.get('subdir') or ''}/{_basename(e['name'])}".lower() == rel]
            if placed:
                found = [e for e in found if id(e) in hashed] + [e for e in placed if id(e) not in hashed]
        exact = info.basename.lower()
        found.sort(key=lambda e: (id(e) not in hashed, _basename(e["name"]).lower() != exact, e.get("folder") != ref.folder))
        return [self._candidate(e) for e in found[:10]]

    def sibling_repos(self, ref: ModelRef) -> list[tuple[str, str]]:
        """(Hub repo, sibling's name) where the catalog keeps files of this file's family (siblings.py)."""
        if self._disabled or ref.kind == "directory" or not ref.folder:
            return []
        if self._rows is None:  # (name, Hub repo, folder) of every row, read once
            hf = (self.settings.hf_endpoint,)
            self._rows = [(_basename(e["name"]), getattr(parse_hf_url(normalise_url(e["url"], hf), hf), "repo", None),
                           e.get("folder")) for es in self._by_name.values() for e in es if "huggingface" in e["url"]]
        return sibling_repos(ref.filename, ref.folder, self._rows)

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

