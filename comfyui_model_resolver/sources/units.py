"""Multi-file models resolved as one unit: diffusers-style folders.

A diffusers folder (`models/diffusers/<name>/model_index.json`, `unet/`, `vae/`, `text_encoder/`,
`tokenizer/`, `scheduler/`…) is one model to a loader (ComfyUI's DiffusersLoader, the repo-id
widgets of many packs). It is resolved to one Hub repo and downloaded as one group of files,
never as loose files.

Which files: every config, tokenizer and scheduler file of the repo's component folders, and of
each component's weights one set, in the order diffusers itself loads them: the plain
`.safetensors` set, else the fp16 variant (`*.fp16.safetensors`), else `.bin`; sharded weights
whole (index and every shard). Top-level single-file checkpoints (`v1-5-pruned.safetensors`
beside the folders) are other downloads and are left out.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from ..errors import NotFound, SourceError
from ..types import Candidate, CandidateFile, ModelRef
from .base import BudgetExhausted, LookupContext
from .urls import hf_resolve_url

MODEL_INDEX = "model_index.json"
_WEIGHT = re.compile(r"\.(safetensors|bin|ckpt|pt|pth|msgpack|onnx|h5)$", re.I)
_VARIANT = re.compile(r"\.(fp16|bf16|fp32|non_ema|ema)\.", re.I)
_CONFIG = re.compile(r"\.(json|txt|model|yaml|yml|tiktoken)$", re.I)
MAX_UNIT_FILES = 200


def _weight_rank(path: str) -> int:
    """Lower is what diffusers loads first: plain safetensors, fp16 safetensors, plain bin, the rest."""
    low = path.lower()
    variant = bool(_VARIANT.search(low))
    if low.endswith(".safetensors") or low.endswith(".safetensors.index.json"):
        return 1 if variant else 0
    if low.endswith(".bin") or low.endswith(".bin.index.json"):
        return 3 if variant else 2
    return 9


def unit_files(paths: list[str]) -> list[str]:
    """The files that make a folder model from a repo's file list, sorted: a diffusers repo's
    `model_index.json` and component folders (see the module doc); any other repo (a transformers
    snapshot a pack loads by repo id) its configs and tokenizer files and one weight set per folder.
    Docs, images and `.gitattributes` are left out."""
    diffusers = MODEL_INDEX in paths
    keep = [MODEL_INDEX] if diffusers else []
    by_dir: dict[str, list[str]] = {}
    for p in paths:
        if diffusers and "/" not in p:
            continue  # single-file checkpoints beside the component folders
        by_dir.setdefault(p.rsplit("/", 1)[0] if "/" in p else "", []).append(p)
    for files in by_dir.values():
        weights = [p for p in files if _WEIGHT.search(p) or p.endswith((".safetensors.index.json", ".bin.index.json"))]
        keep += [p for p in files if p not in weights and _CONFIG.search(p) and p != MODEL_INDEX]
        if weights:
            best = min(_weight_rank(p) for p in weights)
            keep += [p for p in weights if _weight_rank(p) == best]
    return sorted(set(keep))


def repo_of_url(url: str | None, endpoint: str) -> str | None:
    """`https://huggingface.co/{owner}/{name}` (or the configured endpoint) -> "owner/name"."""
    if not url:
        return None
    parts = urlsplit(url)
    hosts = {"huggingface.co", "hf.co", urlsplit(endpoint).netloc}
    segs = [s for s in parts.path.split("/") if s]
    if parts.netloc not in hosts or len(segs) < 2:
        return None
    return f"{segs[0]}/{segs[1]}"


async def folder_candidates(hf: Any, ref: ModelRef, ctx: LookupContext) -> list[Candidate]:
    """A folder model named without a link (DiffusersLoader's `stable-diffusion-v1-5`): the Hub
    repos named like the folder that hold a `model_index.json`, each one candidate (files added
    by `with_folder_unit`)."""
    name = ref.filename.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    ctx.tried("huggingface", f"folder:{name}")
    try:
        found = await hf.search_repos(name, ctx)
    except (NotFound, BudgetExhausted):
        return []
    out = []
    for r in found:
        if r["id"].rsplit("/", 1)[-1].lower() == name.lower() and MODEL_INDEX in (r.get("siblings") or ()):
            c = hf._candidate(r["id"], MODEL_INDEX, r, {})
            out.append(c.model_copy(update={"filename": r["id"].rsplit("/", 1)[-1], "folder": ref.folder}))
    return out[:4]


async def with_folder_unit(hf: Any, ref: ModelRef, cand: Candidate, ctx: LookupContext) -> Candidate:
    """The candidate of a folder model with every file of the folder (`files`, paths relative to
    the repo root, saved under models/<folder>/<name>/ as they are)."""
    repo_id = cand.repo or repo_of_url(cand.url, hf.endpoint)
    if not repo_id or cand.files:
        return cand
    try:
        tree = await hf.tree(repo_id, ctx)
    except (SourceError, BudgetExhausted):
        return cand
    paths = unit_files(list(tree))
    if not paths or len(paths) > MAX_UNIT_FILES:
        return cand
    files = tuple(CandidateFile(path=p, url=hf_resolve_url(hf.endpoint, repo_id, p), size=tree[p].get("size"),
                                sha256=tree[p].get("sha256")) for p in paths)
    # the unit's address is its first file (what pre-flight checks for access); the repo page is no file
    return cand.model_copy(update={"repo": repo_id, "path": files[0].path, "url": files[0].url, "files": files,
                                   "size": sum(f.size or 0 for f in files) or None})
