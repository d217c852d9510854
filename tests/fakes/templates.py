"""Populate a FakeHub (and FakeCivitai) from the official ComfyUI template workflows, plus decoys.

Every model a template links (`properties.models` / root `models`, Hugging Face URLs) becomes a
file at that repo + path, with generated content. Files that share a name share their content
(Comfy-Org repackages the same VAE or text encoder into many repos), so "the same file in another
official repo" is genuinely the same bytes. Repos are as popular as the templates make them.

Decoys that a resolver must see through:
  * precision / quantisation variants next to each file (x_fp16 next to x_bf16, x_fp8_e4m3fn_scaled…);
  * re-uploads of official repos by other users, same repo name, files at the root, some with the
    same bytes (mirrors), some with different bytes (modified re-uploads), a few more popular than
    the small official repos;
  * a catch-all mirror repo ("everything in one place", different bytes);
  * gated repos (black-forest-labs) holding well-known names;
  * on Civitai: re-uploads of template LoRAs under Civitai's download names, one with other bytes.

`TemplateWorld.expected` maps (template file, subgraph id, node id, name) -> (repo, path): the
ground truth the acceptance test scores against.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .blobs import FakeFile

__all__ = ["TemplateWorld", "populate_from_templates", "strip_urls", "template_entries"]

_MODEL_EXT = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx")
_URL = re.compile(r"https?://\S+")
_PRECISIONS = ("fp16", "bf16", "fp8_e4m3fn", "fp8_e4m3fn_scaled", "fp8_scaled", "fp32")
_MIRROR_USERS = ("ai-archive", "modelhoarder", "comfy-mirror", "randomuser123")


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _size(name: str) -> int:
    return 1024 + _seed("size:" + name) % 3072  # small: hashing 2k files stays cheap


def _hf(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    if parts.hostname not in ("huggingface.co", "hf.co"):
        return None
    segs = [unquote(s) for s in parts.path.split("/")]
    if len(segs) < 6 or segs[3] not in ("resolve", "blob"):
        return None
    return f"{segs[1]}/{segs[2]}", "/".join(segs[5:])


def _graphs(wf: dict):
    yield None, wf
    defs = wf.get("definitions")
    for sg in (defs.get("subgraphs") if isinstance(defs, dict) else None) or []:
        if isinstance(sg, dict):
            yield sg.get("id"), sg


def template_entries(wf: dict):
    """(subgraph id, node id, name, url, directory) of every model entry with a Hub URL."""
    for sg_id, g in _graphs(wf):
        for n in g.get("nodes") or []:
            if not isinstance(n, dict):
                continue
            for m in (n.get("properties") or {}).get("models") or []:
                if isinstance(m, dict) and m.get("name") and m.get("url") and _hf(m["url"]):
                    yield sg_id, str(n.get("id")), m["name"], m["url"], m.get("directory")
    for m in wf.get("models") or []:
        if isinstance(m, dict) and m.get("name") and m.get("url") and _hf(m["url"]):
            yield None, "", m["name"], m["url"], m.get("directory")


def strip_urls(wf: dict, sha256_of=None) -> dict:
    """A copy with every download link removed: properties.models / root models urls, note links.

    ``sha256_of(url) -> str | None``: entries that carry a hash get the sha256 of the fake file their
    URL named (the real hash describes real bytes the fake cannot reproduce)."""
    wf = json.loads(json.dumps(wf))

    def fix(m: dict) -> None:
        url = m.pop("url", None)
        if m.get("hash") and sha256_of is not None and url:
            sha = sha256_of(url)
            if sha:
                m["hash"], m["hash_type"] = sha, "sha256"

    for _sg, g in _graphs(wf):
        for n in g.get("nodes") or []:
            if not isinstance(n, dict):
                continue
            for m in (n.get("properties") or {}).get("models") or []:
                if isinstance(m, dict):
                    fix(m)
            if n.get("type") in ("Note", "MarkdownNote") and isinstance(n.get("widgets_values"), list):
                n["widgets_values"] = [_URL.sub("", v) if isinstance(v, str) else v for v in n["widgets_values"]]
    for m in wf.get("models") or []:
        if isinstance(m, dict):
            fix(m)
    return wf


@dataclass
class TemplateWorld:
    workflows: dict[str, dict] = field(default_factory=dict)  # file name -> workflow JSON
    expected: dict[tuple, tuple[str, str]] = field(default_factory=dict)  # see module docstring
    files: dict[tuple[str, str], FakeFile] = field(default_factory=dict)  # (repo, path) -> file
    official_repos: set[str] = field(default_factory=set)
    decoy_repos: set[str] = field(default_factory=set)
    gated_repos: set[str] = field(default_factory=set)

    def sha256_of(self, url: str) -> str | None:
        loc = _hf(url)
        f = self.files.get(loc) if loc else None
        return f.sha256 if f is not None else None

    def stripped(self, name: str) -> dict:
        """Template `name` with its links removed and its hashes made true of the fake's files."""
        return strip_urls(self.workflows[name], self.sha256_of)


def _variants(name: str) -> list[str]:
    stem, dot, ext = name.rpartition(".")
    low = stem.lower()
    for p in sorted(_PRECISIONS, key=len, reverse=True):
        if low.endswith("_" + p) or low.endswith("-" + p):
            base = stem[: -len(p) - 1]
            sep = stem[-len(p) - 1]
            return [f"{base}{sep}{q}.{ext}" for q in _PRECISIONS if q != p][:3]
    return [f"{stem}_fp8_e4m3fn.{ext}", f"{stem}_fp16.{ext}"]


def populate_from_templates(hub, templates_dir: Path, *, civitai=None) -> TemplateWorld:
    world = TemplateWorld()
    refs = Counter()
    by_repo: dict[str, dict[str, FakeFile]] = defaultdict(dict)
    for path in sorted(templates_dir.glob("*.json")):
        try:
            wf = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if not (isinstance(wf, dict) and isinstance(wf.get("nodes"), list)):
            continue
        entries = list(template_entries(wf))
        if not entries:
            continue
        world.workflows[path.name] = wf
        for sg_id, node_id, name, url, _directory in entries:
            repo, rpath = _hf(url)  # type: ignore[misc]
            world.expected[(path.name, sg_id, node_id, name)] = (repo, rpath)
            refs[repo] += 1
            if rpath not in by_repo[repo]:
                by_repo[repo][rpath] = FakeFile.safetensors(rpath, _size(rpath.rsplit("/", 1)[-1]),
                                                            seed=_seed(rpath.rsplit("/", 1)[-1]))
    # precision variants beside every official file (never a name the templates use: those are real)
    real_names = {p.rsplit("/", 1)[-1] for files in by_repo.values() for p in files}
    for repo, files in by_repo.items():
        for rpath in list(files):
            d, _, base = rpath.rpartition("/")
            if not base.lower().endswith(_MODEL_EXT):
                continue
            for v in _variants(base):
                if v in real_names:
                    continue
                vpath = f"{d}/{v}" if d else v
                files.setdefault(vpath, FakeFile.safetensors(vpath, _size(v), seed=_seed(repo + v)))
    for repo, files in sorted(by_repo.items()):
        hub.add_repo(repo, list(files.values()), downloads=500 + 1000 * refs[repo], likes=refs[repo])
        world.official_repos.add(repo)
        for p, f in files.items():
            world.files[(repo, p)] = f
    _add_decoys(hub, world, by_repo, refs)
    if civitai is not None:
        _add_civitai_decoys(civitai, world)
    return world


def _add_decoys(hub, world: TemplateWorld, by_repo: dict[str, dict[str, FakeFile]], refs: Counter) -> None:
    repos = sorted(by_repo)
    for i, repo in enumerate(repos):
        if i % 3:
            continue
        user = _MIRROR_USERS[i % len(_MIRROR_USERS)]
        name = repo.split("/", 1)[1]
        same_bytes = i % 2 == 0
        files = []
        for rpath, f in by_repo[repo].items():
            base = rpath.rsplit("/", 1)[-1]
            seed = f.seed if same_bytes else f.seed + 1
            files.append(FakeFile.safetensors(base, f.size if same_bytes else f.size + 8, seed=seed))
        uniq = {f.path: f for f in files}
        # a few mirrors are more popular than the small official repos
        downloads = 5000 if i % 9 == 0 else 20 + i
        decoy = f"{user}/{name}"
        if decoy in by_repo:
            continue
        hub.add_repo(decoy, list(uniq.values()), downloads=downloads)
        world.decoy_repos.add(decoy)
    # one catch-all mirror with every popular file, other bytes
    allfiles: dict[str, FakeFile] = {}
    for repo in repos:
        for rpath, f in by_repo[repo].items():
            base = rpath.rsplit("/", 1)[-1]
            if refs[repo] >= 3 and base not in allfiles:
                allfiles[base] = FakeFile.safetensors(f"models/{base}", f.size, seed=f.seed + 7)
    hub.add_repo("everything-ai/ComfyUI-All-Models", list(allfiles.values()), downloads=900)
    world.decoy_repos.add("everything-ai/ComfyUI-All-Models")
    # gated repos with well-known names
    gated = {
        "black-forest-labs/FLUX.1-dev": ["flux1-dev.safetensors", "ae.safetensors"],
        "black-forest-labs/FLUX.1-schnell": ["flux1-schnell.safetensors", "ae.safetensors"],
        "stabilityai/stable-diffusion-3.5-large": ["sd3.5_large.safetensors", "text_encoders/t5xxl_fp16.safetensors"],
    }
    for repo, paths in gated.items():
        if repo in by_repo:
            continue
        files = [FakeFile.safetensors(p, _size(p.rsplit("/", 1)[-1]), seed=_seed(p.rsplit("/", 1)[-1]))
                 for p in paths]
        hub.add_repo(repo, files, gated="manual", downloads=250_000)
        world.gated_repos.add(repo)
        world.decoy_repos.add(repo)


def _add_civitai_decoys(civitai, world: TemplateWorld) -> None:
    from .civitai import CivFile

    loras = sorted({(repo, p) for (repo, p) in world.files if "lora" in p.lower()})[:12]
    for i, (repo, p) in enumerate(loras):
        f = world.files[(repo, p)]
        base = p.rsplit("/", 1)[-1]
        blob = FakeFile.safetensors(base, f.size if i % 4 else f.size + 16, seed=f.seed if i % 4 else f.seed + 3)
        stem = base.rsplit(".", 1)[0]
        civitai.add_model(stem.replace("_", " ").replace("-", " ").title(), "LORA",
                          versions=[{"name": "v1.0", "files": [CivFile(blob)], "downloads": 300 + i}],
                          creator=f"civuser{i}")
