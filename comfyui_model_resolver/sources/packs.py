"""Pack-knowledge provider: what custom-node packs document about their models (pack_sources.py).

Two kinds of evidence, both free (a local table, no request):

* a *documented file*: the pack's README or download code names this file and where it comes from
  (IPAdapter plus: `CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors` is h94/IP-Adapter's
  `models/image_encoder/model.safetensors`). It becomes a candidate named as the workflow names it
  (a rename downloads under the workflow's name), found `via="pack"`, which ranking counts as strong.
  It counts only when the pack that documents it is one the workflow uses (a node of the pack is
  in the workflow) and the folder agrees: `ae.safetensors` in one pack's FLUX docs says nothing
  about another workflow's `ae.safetensors`;
* a *documented repo*: "this pack's <folder> files come from <repo>". The pipeline asks the Hub for
  those repos first (`repos_to_ask`), and a file found there is found `via="pack"` too.
"""
from __future__ import annotations

from ..settings import Settings
from ..types import Candidate, ModelRef
from ..workflow.folders import canonical_folder
from .base import LookupContext, Source
from .pack_sources import PackSource, PackSources
from .siblings import sibling_repos
from .urls import hf_resolve_url

NAME = "pack"
MAX_REPOS = 3  # documented repos asked per model


def _folder_fits(entry_folder: str, ref_folder: str | None) -> bool:
    if ref_folder is None:
        return True
    a, b = canonical_folder(entry_folder.split("/", 1)[0]), canonical_folder(ref_folder)
    return a == b or entry_folder == ref_folder


class PackSourcesSource(Source):
    name = NAME

    def __init__(self, settings: Settings, table: PackSources | None = None) -> None:
        self.settings = settings
        self.table = table if table is not None else PackSources.load()
        self._rows: list[tuple[str, str | None, str]] | None = None  # (file, Hub repo, folder), for siblings

    def _candidate(self, e: PackSource) -> Candidate | None:
        src = e.source
        if src.get("type") == "hf" and src.get("path"):
            repo, path = src["repo"], src["path"]
            url = hf_resolve_url(self.settings.hf_endpoint, repo, path, str(src.get("revision") or "main"))
            return Candidate(url=url, source=NAME, confidence=0.0, filename=e.filename, repo=repo, path=path,
                             folder=e.folder, publisher=repo.split("/")[0], via="pack", sha256=e.sha256,
                             reasons=(e.reason,))
        if src.get("type") == "civitai" and src.get("version_id"):
            vid = int(src["version_id"])
            return Candidate(url=f"{self.settings.civitai_base_url.rstrip('/')}/api/download/models/{vid}",
                             source=NAME, confidence=0.0, filename=e.filename, repo=f"{src.get('model_id')}@{vid}",
                             folder=e.folder, via="pack", sha256=e.sha256, reasons=(e.reason,))
        return None  # plain URLs: the embedded/catalog providers handle links; hosts may not be allowed

    def lookup(self, ref: ModelRef, packs: frozenset[str] = frozenset()) -> list[Candidate]:
        """Candidates from the files packs document under this name (folder agreeing)."""
        base = ref.filename.replace("\\", "/").rsplit("/", 1)[-1]
        mine = {p.lower() for p in packs | ({ref.pack} if ref.pack else set())}
        out: list[Candidate] = []
        for e in self.table.files_named(base):
            # Only the packs the workflow uses speak for its files: `ae.safetensors` of a pack's
            # FLUX docs says nothing about a Chroma or HiDream workflow's ae.safetensors.
            if e.pack.lower() not in mine or not _folder_fits(e.folder, ref.folder):
                continue
            c = self._candidate(e)
            if c is not None and c.url not in {o.url for o in out}:
                out.append(c.model_copy(update={"reasons": (f"{e.reason}, a pack this workflow uses",)}))
        return out

    def sibling_repos(self, ref: ModelRef) -> list[tuple[str, str]]:
        """(Hub repo, sibling's name) where any pack's docs keep files of this file's family (siblings.py)."""
        if ref.kind == "directory" or not ref.folder:
            return []
        if self._rows is None:
            self._rows = [(e.filename, e.repo, canonical_folder(e.folder)) for e in self.table.files() if e.repo]
        return sibling_repos(ref.filename, canonical_folder(ref.folder), self._rows)

    def repos_to_ask(self, ref: ModelRef, packs: frozenset[str] = frozenset()) -> list[str]:
        """Hub repos the node's pack (else the workflow's other packs) documents for this folder."""
        if not ref.folder:
            return []
        repos: list[str] = []
        for pack in ([ref.pack] if ref.pack else []) + sorted(p for p in packs if p != ref.pack):
            for r in self.table.repos_for(pack=pack, folder=ref.folder):
                if r["pack"].lower() == pack.lower() and r["repo"] not in repos:
                    repos.append(r["repo"])
        return repos[:MAX_REPOS]

    async def candidates(self, ref: ModelRef, ctx: LookupContext) -> list[Candidate]:
        if ref.kind == "directory":
            return []
        ctx.tried(NAME, ref.filename.replace("\\", "/").rsplit("/", 1)[-1])
        return self.lookup(ref, ctx.packs)
