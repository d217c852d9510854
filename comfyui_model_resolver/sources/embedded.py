"""Embedded provider: the download links the workflow itself carries.

`properties.models` on loader nodes and the root `models` list are already on ModelRef.url (the
parser attaches them); Note/MarkdownNote links come from `workflow.notes.note_urls` through the
lookup context and are matched to the model by file name. Every link is normalised (Hub `/blob/`
-> `/resolve/`, `?download=true` and credential parameters dropped) and must be on the host
allowlist; links to other hosts are reported as queries, never offered.
"""
from __future__ import annotations

from typing import Iterable

from ..settings import Settings
from ..types import Candidate, ModelRef
from .base import LookupContext, Source
from .rank import folder_of_path
from .terms import analyse_name
from ..hosts import is_allowed
from .urls import (civitai_version_id, normalise_url, parse_hf_url, to_endpoint,
                   url_basename)

NAME = "embedded"


class EmbeddedSource(Source):
    name = NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub_origins = (settings.hf_endpoint,)

    def link_candidate(self, raw: str, *, via: str, ctx: LookupContext | None = None) -> Candidate | None:
        url = to_endpoint(normalise_url(raw, self.hub_origins), self.settings.hf_endpoint)
        if not is_allowed(url, self.settings):
            if ctx is not None:
                ctx.tried(NAME, f"rejected (host not allowed): {url.split('?', 1)[0]}")
            return None
        hf = parse_hf_url(url, self.hub_origins)
        if hf is not None:
            return Candidate(url=url, source=NAME, confidence=0.0, filename=hf.basename, repo=hf.repo,
                             path=hf.path, folder=folder_of_path(hf.path), publisher=hf.repo.split("/")[0],
                             via=via)
        vid = civitai_version_id(url)
        if vid is not None:
            return Candidate(url=url, source=NAME, confidence=0.0, filename=None, repo=f"civitai@{vid}", via=via)
        return Candidate(url=url, source=NAME, confidence=0.0, filename=url_basename(url) or None, via=via)

    def _notes_for(self, ref: ModelRef, links: Iterable[str]) -> list[str]:
        info = analyse_name(ref.filename)
        out = []
        for link in links:
            base = url_basename(normalise_url(link, self.hub_origins))
            if not base:
                continue
            if base.lower() == info.basename.lower() or analyse_name(base).key == info.key:
                out.append(link)
        return out

    async def candidates(self, ref: ModelRef, ctx: LookupContext) -> list[Candidate]:
        out: list[Candidate] = []
        if ref.url:
            ctx.tried(NAME, "workflow link")
            c = self.link_candidate(ref.url, via="workflow", ctx=ctx)
            if c is not None:
                if c.filename is None:  # a Civitai download link: served under its own name
                    c = c.model_copy(update={"filename": ref.filename.replace("\\", "/").rsplit("/", 1)[-1]})
                out.append(c)
        for link in self._notes_for(ref, ctx.note_links):
            ctx.tried(NAME, "note link")
            c = self.link_candidate(link, via="note", ctx=ctx)
            if c is not None and all(c.url != o.url for o in out):
                out.append(c)
        return out

