"""Hugging Face Hub provider, through the Hub's REST API with our own client (`sources.http.Upstream`).

How it looks for a file, stopping as soon as the exact file name turns up:
  1. the repo listings (with file names) of the publishers most likely to host it: the model
     family's authors, Comfy-Org and comfyanonymous, the folder's usual packagers;
  2. Hub searches with terms derived from the file name (stem without precision/quantisation
     suffixes, shorter prefixes of it, the family name);
  3. the tree of each repo holding the name (exact basename, any sub-path such as
     `split_files/vae/x.safetensors`) for the file's size and LFS sha256.
Listings, searches and trees are cached (sources/cache.py) and shared by every model of a run,
so a workflow's models mostly cost one or two requests each.

The endpoints are the ones `huggingface_hub` calls (`GET /api/models?author|search=…&full=true&
cardData=true&sort=downloads&limit=…`, `GET /api/models/{repo}/tree/main?recursive=true`, pages
followed through `Link: <…>; rel="next"`), but sent by `upstream.send`: every hop of every request
(a mirror's redirect, a next-page link) is checked against the allowlist, and the token goes only to
its own host. huggingface_hub's client follows redirects anywhere, so it is not used here.
"""
from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import asyncio

from ..errors import AuthRequired, NotFound, SourceError, SourceUnavailable
from ..settings import Settings
from ..types import Candidate, CandidateFile, ModelRef
from ..upstream import HF_TOKEN_ENV
from ..workflow.folders import has_model_extension
from .base import BudgetExhausted, LookupContext, Source
from .cache import NOT_FOUND, ResponseCache, is_not_found
from .http import Upstream
from .publishers import is_official
from .rank import GENERIC_NAME, folder_of_path
from .terms import (GENERIC_FOLDER_QUERIES, NameInfo, analyse_name, name_similarity, preferred_publishers,
                    search_queries)

log = logging.getLogger(__name__)

NAME = "huggingface"
LISTING_LIMIT = 100  # repos per publisher listing: one request on the Hub and on the fake
SEARCH_LIMIT = 50
MAX_LISTINGS = 3  # publisher listings per model (cached: shared by the models of a run)
MAX_SEARCHES = 3
MAX_TREES = 4  # repos whose tree is read per model (the same file is often in several official repos)
MIN_LISTINGS = 2  # listings read even after a hit: the same name may sit in a better repo
MAX_TREE_PAGES = 20  # the Hub pages trees by 1,000 entries: 20,000 files is more than any model repo
MAX_TREE_FILES = 20_000
MAX_LISTING_PAGES = 10  # a listing of 100 repos is one page on the Hub
SHARD = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.(?P<ext>safetensors|bin)$")
#: A Hub repo id, as the Hub validates them: `namespace/name`, no `..`, nothing a URL would read as a path.
REPO_ID = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")


@dataclass
class _Hit:
    repo: dict
    exact: list[str] = field(default_factory=list)  # paths with the exact basename
    near: list[str] = field(default_factory=list)  # same name in another variant / similar name
    renamed: list[str] = field(default_factory=list)  # the weights of a repo named like the file


MAX_RENAMED = 3  # a repo named like the file is read as "the file, renamed" only if it holds this few weights


def repo_key(repo_id: str) -> str:
    """A repo's name with only letters and digits, lower-case: compares with NameInfo.key."""
    return re.sub(r"[^a-z0-9]", "", repo_id.rsplit("/", 1)[-1].lower())


def weight_files(paths: list[str]) -> list[str]:
    """The model weights of a repo listing (no shards, no configs)."""
    return [p for p in paths if has_model_extension(p) and not SHARD.match(p.rsplit("/", 1)[-1])]


@functools.lru_cache(maxsize=65536)
def _name_info(basename: str) -> NameInfo:
    return analyse_name(basename)


def _card_base(m: dict) -> str | None:
    """The model card's `base_model` (one repo id, or the first of a list): what it says it derives from."""
    card = m.get("cardData")
    base = card.get("base_model") if isinstance(card, dict) else None
    if isinstance(base, list):
        base = next((b for b in base if isinstance(b, str)), None)
    return base if isinstance(base, str) and base else None


def _iso(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
    except ValueError:
        return None


def _number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _repo_dict(m: dict) -> dict:
    """One repo of a listing, as the lookup keeps it (only what it reads: the answer is dropped)."""
    sibs = m.get("siblings")
    names = None if not isinstance(sibs, list) else [
        s["rfilename"] for s in sibs if isinstance(s, dict) and isinstance(s.get("rfilename"), str)]
    gated = m.get("gated")
    return {
        "card_base": _card_base(m),
        "created": _iso(m.get("createdAt")),
        "id": m["id"],
        "downloads": _number(m.get("downloads")),
        "likes": _number(m.get("likes")),
        "gated": gated if isinstance(gated, str) and gated else bool(gated is True),
        "siblings": names,
    }


def _repo_path(repo: str) -> str:
    if not isinstance(repo, str) or not REPO_ID.match(repo):
        raise NotFound(f"huggingface: {str(repo)[:100]!r} is not a Hub repository id", source=NAME)
    return quote(repo, safe="/")


class HuggingFaceSource(Source):
    name = NAME

    def __init__(self, settings: Settings, upstream: Upstream, cache: ResponseCache | None = None) -> None:
        self.settings = settings
        self.upstream = upstream
        self.cache = cache
        self.endpoint = settings.hf_endpoint.rstrip("/")
        self.has_token = bool(settings.hf_token and settings.hf_token.get_secret_value())
        self._inflight: dict[str, asyncio.Future] = {}
        self._repo_meta: dict[str, dict] = {}  # repo id -> downloads/gated, from listings and searches

    # ---- calls to the Hub API ------------------------------------------------------------
    def _key(self, *parts: str) -> str:
        return "|".join(("hf", self.endpoint, *parts, f"auth={int(self.has_token)}"))

    async def _cached(self, key: str, ctx: LookupContext | None, what: str,
                      fetch: Callable[[], Awaitable[Any]]) -> Any:
        """Cache + single-flight: concurrent models asking the same listing share one request.

        The flight is claimed before the cache is read (an await): a model that reads the cache while
        the first request fails would otherwise send its own request after the Hub was found down."""
        pending = self._inflight.get(key)
        if pending is not None:
            if ctx is not None:
                ctx.count(NAME, cached=True)
            return await asyncio.shield(pending)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        hit = None
        try:
            hit = await self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                if ctx is not None:
                    ctx.count(NAME, cached=True)
                if is_not_found(hit):
                    raise NotFound(f"huggingface: {what}: not found", source=NAME)
                value = hit
            else:
                value = await fetch()
        except NotFound as exc:
            if self.cache is not None and hit is None:
                await self.cache.set(key, NOT_FOUND, min(self.settings.cache_ttl, 3600))
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        except BaseException as exc:
            fut.set_exception(exc if isinstance(exc, Exception) else SourceUnavailable("cancelled", source=NAME))
            fut.exception()
            raise
        else:
            fut.set_result(value)
            if self.cache is not None and hit is None:
                await self.cache.set(key, value, self.settings.cache_ttl)
            return value
        finally:
            self._inflight.pop(key, None)

    async def _pages(self, url: str, params: list[tuple[str, str]] | None, ctx: LookupContext | None, what: str,
                     *, max_items: int, max_pages: int):
        """The items of a paginated Hub listing (a JSON list per page, the next page in `Link`)."""
        count = 0
        for _ in range(max_pages):
            page, nxt = await self.upstream.get_page(url, source=NAME, ctx=ctx, params=params, what=what)
            if not isinstance(page, list):
                raise SourceUnavailable(f"huggingface: {what}: the answer is not a list", source=NAME,
                                        hint="Check CMR_HF_ENDPOINT: it may not point at a Hub.")
            for item in page:
                if count >= max_items:
                    return
                if isinstance(item, dict):
                    count += 1
                    yield item
            if not nxt or count >= max_items:
                return
            url, params = nxt, None  # the next link is the whole URL (checked again by the transport)

    async def listing(self, params: list[tuple[str, str]], limit: int, ctx: LookupContext | None,
                       what: str) -> list[dict]:
        params = [*params, ("full", "true"), ("cardData", "true"), ("sort", "downloads"), ("limit", str(limit))]
        return [_repo_dict(m) async for m in self._pages(f"{self.endpoint}/api/models", params, ctx, what,
                                                         max_items=limit, max_pages=MAX_LISTING_PAGES)
                if isinstance(m.get("id"), str) and REPO_ID.match(m["id"])]

    async def list_author(self, author: str, ctx: LookupContext | None) -> list[dict]:
        what = f"repos of {author}"
        return await self._cached(self._key("author", author), ctx, what,
                                  lambda: self.listing([("author", author)], LISTING_LIMIT, ctx, what))

    async def search_repos(self, query: str, ctx: LookupContext | None, limit: int = SEARCH_LIMIT) -> list[dict]:
        what = f"search {query!r}"
        return await self._cached(self._key("search", query, str(limit)), ctx, what,
                                  lambda: self.listing([("search", query)], limit, ctx, what))

    async def tree(self, repo: str, ctx: LookupContext | None) -> dict[str, dict]:
        """path -> {size, sha256} of every file of the repo's main revision."""
        what = f"files of {repo}"

        async def fetch() -> dict[str, dict]:
            url = f"{self.endpoint}/api/models/{_repo_path(repo)}/tree/main"
            out: dict[str, dict] = {}
            async for e in self._pages(url, [("recursive", "true")], ctx, what, max_items=MAX_TREE_FILES,
                                       max_pages=MAX_TREE_PAGES):
                size, path = e.get("size"), e.get("path")
                if e.get("type") != "file" or not isinstance(path, str) or not isinstance(size, int):
                    continue  # a folder
                lfs = e.get("lfs")
                sha = lfs.get("oid") if isinstance(lfs, dict) else None
                out[path] = {"size": size, "sha256": sha.lower() if isinstance(sha, str) and len(sha) == 64 else None}
            return out
        return await self._cached(self._key("tree", repo), ctx, what, fetch)

    # ---- the lookup ----------------------------------------------------------------------
    def _scan(self, info: NameInfo, repos: list[dict], hits: dict[str, _Hit]) -> None:
        for repo in repos:
            if "gated" in repo:
                self._repo_meta.setdefault(repo["id"], {k: repo.get(k) for k in ("downloads", "gated", "likes",
                                                                                  "created", "card_base")})
            sibs = repo.get("siblings")
            if not sibs:
                continue
            if len(info.key) >= 6 and repo_key(repo["id"]) == info.key:
                # people save a repo's one file under the repo's name (lcm-lora-sdv1-5.safetensors is
                # latent-consistency/lcm-lora-sdv1-5's pytorch_lora_weights.safetensors)
                weights = weight_files(list(sibs))
                if 0 < len(weights) <= MAX_RENAMED and all(w.rsplit("/", 1)[-1] != info.basename for w in weights):
                    hits.setdefault(repo["id"], _Hit(repo)).renamed = weights
            for path in sibs:
                base = path.rsplit("/", 1)[-1]
                if base == info.basename or base.lower() == info.basename.lower():
                    hit = hits.setdefault(repo["id"], _Hit(repo))
                    if path not in hit.exact:
                        hit.exact.append(path)
                elif has_model_extension(base):
                    other = _name_info(base)
                    if other.key == info.key or (other.ext == info.ext and name_similarity(info, other) >= 0.75):
                        hit = hits.setdefault(repo["id"], _Hit(repo))
                        if path not in hit.near:
                            hit.near.append(path)

    @staticmethod
    def _has_exact(hits: dict[str, _Hit], *, official_only: bool = False) -> bool:
        return any(h.exact and (not official_only or is_official(h.repo["id"].split("/")[0]))
                   for h in hits.values())

    async def candidates(self, ref: ModelRef, ctx: LookupContext) -> list[Candidate]:
        if ref.kind == "directory":
            from .units import folder_candidates

            return [] if ref.url else await folder_candidates(self, ref, ctx)
        info = analyse_name(ref.filename)
        hits: dict[str, _Hit] = {}
        no_siblings: list[dict] = []
        try:
            for i, pub in enumerate(preferred_publishers(info, ref.folder)[:MAX_LISTINGS]):
                if i >= MIN_LISTINGS and self._has_exact(hits, official_only=True):
                    break
                ctx.tried(NAME, f"author:{pub}")
                try:
                    repos = await self.list_author(pub, ctx)
                except NotFound:
                    continue
                self._scan(info, repos, hits)
            if not self._has_exact(hits):
                queries = search_queries(info, limit=MAX_SEARCHES)
                if GENERIC_NAME.match(info.basename) and ref.folder in GENERIC_FOLDER_QUERIES:
                    queries = [GENERIC_FOLDER_QUERIES[ref.folder]] + queries[:MAX_SEARCHES - 1]
                for q in queries:
                    ctx.tried(NAME, q)
                    repos = await self.search_repos(q, ctx)
                    self._scan(info, repos, hits)
                    no_siblings.extend(r for r in repos if r.get("siblings") is None)
                    if self._has_exact(hits):
                        break
        except BudgetExhausted:
            ctx.tried(NAME, "(request budget spent)")
        except SourceError:
            if not hits:
                raise
        return await self._build(ref, info, hits, no_siblings, ctx)

    async def _build(self, ref: ModelRef, info: NameInfo, hits: dict[str, _Hit], no_siblings: list[dict],
                     ctx: LookupContext) -> list[Candidate]:
        def prelim(h: _Hit) -> tuple:
            ns = h.repo["id"].split("/")[0]
            return (not h.exact, not (h.near or h.renamed), not is_official(ns), -(h.repo.get("downloads") or 0),
                    h.repo["id"])

        ordered = sorted(hits.values(), key=prelim)
        if not ordered and no_siblings:  # listings without file names: read the likeliest trees
            for repo in sorted(no_siblings, key=lambda r: -(r.get("downloads") or 0))[:2]:
                try:
                    files = await self.tree(repo["id"], ctx)
                except (NotFound, AuthRequired, BudgetExhausted):
                    continue
                repo = {**repo, "siblings": list(files)}
                self._scan(info, [repo], hits)
            ordered = sorted(hits.values(), key=prelim)
        out: list[Candidate] = []
        trees_read = 0
        for h in ordered:
            repo_id = h.repo["id"]
            files: dict[str, dict] | None = None
            if (h.exact or not out) and trees_read < MAX_TREES:
                try:
                    files = await self.tree(repo_id, ctx)
                    trees_read += 1
                except AuthRequired as exc:
                    ctx.report(NAME, exc)
                except (NotFound, BudgetExhausted):
                    pass
                except SourceError as exc:
                    ctx.report(NAME, exc)
            for path in h.exact + h.near[:3] + h.renamed:
                meta = (files or {}).get(path, {})
                if files is not None and path not in files:
                    continue  # listed but gone from the tree
                out.append(self._candidate(repo_id, path, h.repo, meta))
        return out

    async def in_repos(self, ref: ModelRef, repos: list[str], ctx: LookupContext, *, via: str = "beside",
                       reason: str | None = None) -> list[Candidate]:
        """Look for the file in given repos: those chosen for the workflow's other models (a model's
        VAE or text encoder usually sits beside it, whatever its name), or those its pack documents."""
        info = analyse_name(ref.filename)
        hits: dict[str, _Hit] = {}
        for repo_id in repos:
            ctx.tried(NAME, f"{via}:{repo_id}")
            try:
                files = await self.tree(repo_id, ctx)
            except (NotFound, AuthRequired, BudgetExhausted):
                continue
            meta = self._repo_meta.get(repo_id, {})
            self._scan(info, [{**meta, "id": repo_id, "siblings": list(files)}], hits)
            if via == "pack" and repo_id not in hits:  # the pack's repo for this folder, the file renamed
                weights = weight_files(list(files))
                if 0 < len(weights) <= MAX_RENAMED:
                    hits[repo_id] = _Hit({**meta, "id": repo_id}, renamed=weights)
        out: list[Candidate] = []
        for h in hits.values():
            files = await self.tree(h.repo["id"], ctx)
            for path in h.exact + h.near[:3] + h.renamed:
                c = self._candidate(h.repo["id"], path, h.repo, files.get(path, {}), via=via)
                out.append(c.model_copy(update={"reasons": (reason,)}) if reason else c)
        return out

    async def with_unit(self, cand: Candidate, ctx: LookupContext) -> Candidate:
        """A shard (`model-00001-of-00005.safetensors`) is downloaded with its siblings: every shard
        of the set and the index and config beside it, read from the repo's tree (usually cached)."""
        from .urls import hf_resolve_url

        m = SHARD.match((cand.path or "").rsplit("/", 1)[-1])
        if m is None or not cand.repo or cand.files:
            return cand
        try:
            files = await self.tree(cand.repo, ctx)
        except (SourceError, BudgetExhausted):
            return cand
        folder = cand.path.rsplit("/", 1)[0] + "/" if "/" in cand.path else ""
        prefix, total, ext = m.group("prefix"), m.group("total"), m.group("ext")
        names = {f"{prefix}.{ext}.index.json", "config.json"}
        unit = sorted(p for p in files if p.startswith(folder) and "/" not in p[len(folder):]
                      and (re.fullmatch(rf"{re.escape(prefix)}-\d{{5}}-of-{total}\.{ext}", p[len(folder):])
                           or p[len(folder):] in names))
        if len(unit) < 2:
            return cand
        unit.sort(key=lambda p: p != cand.path)
        return cand.model_copy(update={"files": tuple(
            CandidateFile(path=p, url=hf_resolve_url(self.endpoint, cand.repo, p), size=files[p].get("size"),
                          sha256=files[p].get("sha256")) for p in unit)})

    def _candidate(self, repo_id: str, path: str, repo: dict, meta: dict, via: str = "search") -> Candidate:
        from .urls import hf_resolve_url

        ns = repo_id.split("/")[0]
        gated = bool(repo.get("gated"))
        return Candidate(
            url=hf_resolve_url(self.endpoint, repo_id, path), source=NAME, confidence=0.0,
            filename=path.rsplit("/", 1)[-1], size=meta.get("size"), sha256=meta.get("sha256"),
            repo=repo_id, path=path, gated=gated, requires_auth=gated and not self.has_token,
            token_env=HF_TOKEN_ENV if gated else None, folder=folder_of_path(path), publisher=ns,
            downloads=repo.get("downloads") or None, via=via, published=repo.get("created"),
            likes=repo.get("likes") or None, base_model=repo.get("card_base"))

    async def search(self, query: str, folder: str | None, ctx: LookupContext) -> list[Candidate]:
        ctx.tried(NAME, query)
        repos = await self.search_repos(query, ctx, limit=20)
        out = []
        for repo in repos:
            for path in (repo.get("siblings") or []):
                if has_model_extension(path) and (folder is None or folder_of_path(path) in (None, folder)):
                    out.append(self._candidate(repo["id"], path, repo, {}))
        return out[:100]

    async def close(self) -> None:
        return None  # the Upstream client (shared with the other sources) is closed by its owner
