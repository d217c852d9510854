"""What custom-node packs document about where their models come from (data/pack_sources.json). Pure.

Each pack's README, install docs and auto-download code name the Hugging Face repo, Civitai model
or URL of the files its loaders read. The table (built by `pack_sources_build` from the packs' own
repositories and reviewed by hand; see data/pack_sources_provenance.md) holds, per pack:

* `files`: one documented file each: the name the pack (and so a workflow) uses, which is the
  name to save it under, its ComfyUI folder (and sub-folder), and its source
  `{"type": "hf", "repo", "path", "revision"}` | `{"type": "civitai", "model_id", "version_id"}` |
  `{"type": "url", "url"}`. A *rename* is an entry whose `filename` differs from the source's
  basename (IPAdapter plus's `CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors` is h94/IP-Adapter's
  `models/image_encoder/model.safetensors`): the download is saved under `filename`.
* `repos`: "this pack's files of this folder come from this repo" where the docs name a repo, not
  the files (`{"type": "hf", "repo", "path_prefix"?}`).

Every entry carries its provenance: the file and line of the pack's repository, at the commit read.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable
from urllib.parse import quote

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "pack_sources.json"
HF_BASE = "https://huggingface.co"
CIVITAI_BASE = "https://civitai.com"


def _base(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class PackSource:
    """One documented file (`filename` set) or one documented repo for a folder (`filename` None)."""

    filename: str | None
    folder: str
    subdir: str | None
    source: dict
    family: str | None
    sha256: str | None
    pack: str
    provenance: dict = field(default_factory=dict)  # {"file", "line"} in the pack's repo; "commit", "repo" added

    @property
    def is_file(self) -> bool:
        return self.filename is not None

    @property
    def repo(self) -> str | None:
        """The HF repo id of an `hf` source."""
        return self.source.get("repo") if self.source.get("type") == "hf" else None

    @property
    def url(self) -> str | None:
        """Where the file downloads from (canonical huggingface.co / civitai.com form), or None for
        a repo entry or a Civitai model without a version."""
        kind = self.source.get("type")
        if kind == "hf" and self.filename is not None and self.source.get("path"):
            rev = quote(str(self.source.get("revision") or "main"), safe="")
            return f"{HF_BASE}/{self.source['repo']}/resolve/{rev}/{quote(self.source['path'])}"
        if kind == "civitai" and self.source.get("version_id"):
            return f"{CIVITAI_BASE}/api/download/models/{int(self.source['version_id'])}"
        if kind == "url":
            return self.source.get("url")
        return None

    @property
    def is_rename(self) -> bool:
        served = self.source.get("path") or self.source.get("url") or ""
        return bool(self.filename and served and _base(served.split("?", 1)[0]) != self.filename)

    @property
    def where(self) -> str:
        """`README.md:85`: the place in the pack's repo that documents it."""
        return f"{self.provenance.get('file', '?')}:{self.provenance.get('line', '?')}"

    @property
    def reason(self) -> str:
        return f"documented by {self.pack} ({self.where})"


def _entries(pack: str, body: dict) -> Iterable[PackSource]:
    head = {"commit": body.get("commit"), "repo": body.get("repo")}
    for e in body.get("files") or ():
        if isinstance(e, dict) and e.get("filename") and e.get("folder") and isinstance(e.get("source"), dict):
            yield PackSource(filename=e["filename"], folder=e["folder"], subdir=e.get("subdir") or None,
                             source=dict(e["source"]), family=e.get("family"), sha256=e.get("sha256"), pack=pack,
                             provenance={**(e.get("provenance") or {}), **head})
    for e in body.get("repos") or ():
        if isinstance(e, dict) and e.get("folder") and isinstance(e.get("source"), dict):
            yield PackSource(filename=None, folder=e["folder"], subdir=e.get("subdir") or None,
                             source=dict(e["source"]), family=e.get("family"), sha256=None, pack=pack,
                             provenance={**(e.get("provenance") or {}), **head})


class PackSources:
    """The table, indexed by file name, pack and folder. Read-only."""

    def __init__(self, data: dict | None = None) -> None:
        data = data if isinstance(data, dict) else {}
        self.version = data.get("version")
        self.generated = data.get("generated")
        self._packs: dict[str, dict] = {}
        self._names: dict[str, str] = {}  # lower-case pack name -> pack name
        self._by_pack: dict[str, list[PackSource]] = {}
        self._by_file: dict[str, list[PackSource]] = {}
        for pack, body in (data.get("packs") or {}).items():
            if not isinstance(body, dict):
                continue
            self._packs[pack] = {k: body.get(k) for k in ("repo", "commit", "popularity")}
            self._names[pack.lower()] = pack
            items = list(_entries(pack, body))
            self._by_pack[pack] = items
            for it in items:
                if it.filename:
                    self._by_file.setdefault(_base(it.filename).lower(), []).append(it)

    @classmethod
    def load(cls, path: Path | str | None = None) -> "PackSources":
        """The shipped table (read once per process), or the table at `path`."""
        if path is None:
            return _shipped()
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    @property
    def packs(self) -> list[str]:
        return list(self._packs)

    def pack_info(self, pack: str) -> dict | None:
        """{repo, commit, popularity} of a pack (name matched without case)."""
        name = self._names.get(pack.lower())
        return dict(self._packs[name]) if name else None

    def __len__(self) -> int:
        return len(self._packs)

    def files(self) -> list[PackSource]:
        """Every documented file of every pack."""
        return [e for items in self._by_file.values() for e in items]

    def files_named(self, filename: str) -> list[PackSource]:
        """Documented files with this base name (case-insensitive), whatever the pack."""
        return list(self._by_file.get(_base(filename).lower(), ()))

    def for_pack(self, pack: str, folder: str | None = None) -> list[PackSource]:
        """A pack's file and repo entries (of one folder, when given)."""
        name = self._names.get(pack.lower())
        items = self._by_pack.get(name, []) if name else []
        return [it for it in items if folder is None or it.folder == folder]

    def repos_for(self, *, pack: str | None, folder: str | None) -> list[dict]:
        """Hugging Face repos to ask first for a model of this pack and folder, best first:
        {repo, path_prefix, pack, folder, reason}. The pack's own entries for the folder come
        first (repo entries, then the repos of its documented files), then, for a known folder,
        the repos other packs document for it, most documented first."""
        out: list[dict] = []
        seen: set[tuple[str, str]] = set()

        def add(it: PackSource) -> None:
            repo = it.repo
            prefix = str(it.source.get("path_prefix") or "")
            if not repo or (repo, prefix) in seen:
                return
            seen.add((repo, prefix))
            out.append({"repo": repo, "path_prefix": prefix, "pack": it.pack, "folder": it.folder,
                        "reason": it.reason})

        if pack:
            own = self.for_pack(pack, folder)
            for it in sorted(own, key=lambda it: it.is_file):
                add(it)
        if folder:
            count: dict[str, int] = {}
            first: dict[str, PackSource] = {}
            for items in self._by_pack.values():
                for it in items:
                    if it.folder == folder and it.repo:
                        count[it.repo] = count.get(it.repo, 0) + 1
                        first.setdefault(it.repo, it)
            for repo in sorted(count, key=lambda r: (-count[r], r)):
                add(first[repo])
        return out


@lru_cache(maxsize=1)
def _shipped() -> PackSources:
    try:
        return PackSources(json.loads(DEFAULT_PATH.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return PackSources({})

