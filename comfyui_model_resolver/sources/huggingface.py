"""Hugging Face Hub provider, through `huggingface_hub` (HfApi: list_models, list_repo_tree).

How it looks for a file, stopping as soon as the exact file name turns up:
  1. the repo listings (with file names) of the publishers most likely to host it: the model
     family's authors, Comfy-Org and comfyanonymous, the folder's usual packagers;
  2. Hub searches with terms derived from the file name (stem without precision/quantisation
     suffixes, shorter prefixes of it, the family name);
  3. the tree of each repo holding the name (exact basename, any sub-path such as
     `split_files/vae/x.safetensors`) for the file's size and LFS sha256.
Listings, searches and trees are cached (sources/cache.py) and shared by every model of a run,
so a workflow's models mostly cost one or two requests each.

HfApi is synchronous: its calls run in a bounded thread pool, under the shared upstream limiter.
Its exceptions are turned into ours by `http.error_for_status` (the one status table).
"""
from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit
import time
import urllib.request
import concurrent.futures
import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import AuthRequired, NotFound, SourceError, SourceUnavailable, cannot_resolve, is_name_resolution_failure
from ..hosts import redact_error
from ..settings import Settings
from ..types import Candidate, CandidateFile, ModelRef
from ..workflow.folders import has_model_extension
from .base import BudgetExhausted, LookupContext, Source
from .cache import NOT_FOUND, ResponseCache, is_not_found
from .http import HF_TOKEN_ENV, Upstream, error_for_status
from .publishers import is_official
from .rank import folder_of_path
from .terms import NameInfo, analyse_name, name_similarity, preferred_publishers, search_queries

log = logging.getLogger(__name__)

NAME = "huggingface"
LISTING_LIMIT = 100  # repos per publisher listing: one request on the Hub and on the fake
SEARCH_LIMIT = 50
MAX_LISTINGS = 3  # publisher listings per model (cached: shared by the models of a run)
MAX_SEARCHES = 3
MAX_TREES = 4  # repos whose tree is read per model (the same file is often in several official repos)
MIN_LISTINGS = 2  # listings read even after a hit: the same name may sit in a better repo
SHARD = re.compile(r"^(?P<prefix>.+)-(?P<index>\d{5})-of-(?P<total>\d{5})\.(?P<ext>safetensors|bin)$")


@dataclass
class _Hit:
    repo: dict
    exact: list[str] = field(default_factory=list)  # paths with the exact basename
    near: list[str] = field(default_factory=list)  # same name in another variant / similar name


@functools.lru_cache(maxsize=65536)
def _name_info(basename: str) -> NameInfo:
    return analyse_name(basename)


def _card_base(m: Any) -> str | None:
    """The model card's `base_model` (one repo id, or the first of a list): what it says it derives from."""
    base = getattr(getattr(m, "card_data", None), "base_model", None)
    if isinstance(base, list):
        base = next((b for b in base if isinstance(b, str)), None)
    return base if isinstance(base, str) and base else None


def _repo_dict(m: Any) -> dict:
    sibs = getattr(m, "siblings", None)
    created = getattr(m, "created_at", None)
    return {
        "card_base": _card_base(m),
        "created": created.isoformat() if hasattr(created, "isoformat") else None,
        "id": m.id,
        "downloads": getattr(m, "downloads", None) or 0,
        "likes": getattr(m, "likes", None) or 0,
        "gated": getattr(m, "gated", None) or False,
        "siblings": None if sibs is None else [s.rfilename for s in sibs],
    }


class HuggingFaceSource(Source):
    name = NAME

    def __init__(self, settings: Settings, upstream: Upstream, cache: ResponseCache | None = None, *,
                 executor: concurrent.futures.Executor | None = None) -> None:
        from huggingface_hub import HfApi

        self.settings = settings
        self.upstream = upstream
        self.cache = cache
        self.endpoint = settings.hf_endpoint
        token = settings.hf_token.get_secret_value() if settings.hf_token else None
        self.has_token = bool(token)
        # token=False: never fall back to HF_TOKEN or a stored login; CMR_HF_TOKEN is the only source.
        self._api = HfApi(endpoint=self.endpoint, token=token or False, library_name="comfyui-model-resolver")
        self._own_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.max_upstream_concurrency, thread_name_prefix="cmr-hf")
        self._inflight: dict[str, asyncio.Future] = {}
        self._repo_meta: dict[str, dict] = {}  # repo id -> downloads/gated, from listings and searches
        self._reach_checked = 0.0  # monotonic time of the last successful reachability check
        self._reach_lock = asyncio.Lock()

    async def _check_reachable(self, what: str) -> None:
        """Fail fast when the Hub cannot be reached at all (offline, wrong endpoint).

        huggingface_hub retries connection errors with back-off for ~23 s before giving up; a TCP
        connect (no HTTP request, nothing counted upstream) tells the same in milliseconds.
        A success is trusted for a minute."""
        if time.monotonic() - self._reach_checked < 60:
            return
        async with self._reach_lock:
            if time.monotonic() - self._reach_checked < 60:
                return
            parts = urlsplit(self.endpoint)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(parts.hostname or ""):
                self._reach_checked = time.monotonic()  # behind a proxy a direct connect proves nothing
                return
            try:
                _reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port),
                                                         timeout=min(5.0, self.settings.http_timeout))
            except (OSError, asyncio.TimeoutError) as exc:
                if is_name_resolution_failure(exc):
                    raise cannot_resolve(parts.hostname or self.endpoint, source=NAME) from None
                why = "no answer" if isinstance(exc, asyncio.TimeoutError) else (exc.strerror or "no connection")
                raise SourceUnavailable(f"huggingface: {what}: cannot reach the Hub at {parts.hostname}:{port} "
                                        f"({why.lower()})", source=NAME,
                                        hint="Check the network or CMR_HF_ENDPOINT.") from None
            writer.close()
            self._reach_checked = time.monotonic()

    # ---- calls into huggingface_hub ------------------------------------------------------
    def _key(self, *parts: str) -> str:
        return "|".join(("hf", self.endpoint, *parts, f"auth={int(self.has_token)}"))

    async def _call(self, ctx: LookupContext | None, what: str, fn: Callable[[], Any]) -> Any:
        """Run a blocking HfApi call in the pool, counted, limited and with our error types."""
        await self._check_reachable(what)
        if ctx is not None:
            ctx.budget.spend()
            ctx.count(NAME)
        self.upstream.stats.requests[NAME] = self.upstream.stats.requests.get(NAME, 0) + 1
        loop = asyncio.get_running_loop()
        async with self.upstream.limiter:
            try:
                # huggingface_hub retries 429/5xx itself (up to ~23 s); CMR_HTTP_TIMEOUT bounds the whole call
                return await asyncio.wait_for(loop.run_in_executor(self._executor, fn),
                                              timeout=self.settings.http_timeout)
            except asyncio.TimeoutError:
                raise SourceUnavailable(f"huggingface: {what}: no answer within {self.settings.http_timeout:g} s",
                                        source=NAME, hint="The Hub is slow or failing; try again later.") from None
            except Exception as exc:  # huggingface_hub / httpx errors
                raise redact_error(_translate(exc, what), self.settings) from None

    async def _cached(self, key: str, ctx: LookupContext | None, what: str, fn: Callable[[], Any]) -> Any:
        """Cache + single-flight: concurrent models asking the same listing share one request."""
        if self.cache is not None:
            hit = await self.cache.get(key)
            if hit is not None:
                if ctx is not None:
                    ctx.count(NAME, cached=True)
                if is_not_found(hit):
                    raise NotFound(f"huggingface: {what}: not found", source=NAME)
                return hit
        pending = self._inflight.get(key)
        if pending is not None:
            if ctx is not None:
                ctx.count(NAME, cached=True)
            return await asyncio.shield(pending)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            value = await self._call(ctx, what, fn)
        except NotFound as exc:
            if self.cache is not None:
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
            if self.cache is not None:
                await self.cache.set(key, value, self.settings.cache_ttl)
            return value
        finally:
            self._inflight.pop(key, None)

    async def list_author(self, author: str, ctx: LookupContext | None) -> list[dict]:
        def run() -> list[dict]:
            return [_repo_dict(m) for m in self._api.list_models(author=author, full=True, cardData=True,
                                                                 sort="downloads", limit=LISTING_LIMIT)]
        return await self._cached(self._key("author", author), ctx, f"repos of {author}", run)

    async def search_repos(self, query: str, ctx: LookupContext | None, limit: int = SEARCH_LIMIT) -> list[dict]:
        def run() -> list[dict]:
            return [_repo_dict(m) for m in self._api.list_models(search=query, full=True, cardData=True,
                                                                 sort="downloads", limit=limit)]
        return await self._cached(self._key("search", query, str(limit)), ctx, f"search {query!r}", run)

    async def tree(self, repo: str, ctx: LookupContext | None) -> dict[str, dict]:
        """path -> {size, sha256} of every file of the repo's main revision."""
        def run() -> dict[str, dict]:
            out: dict[str, dict] = {}
            for entry in self._api.list_repo_tree(repo, recursive=True):
                if getattr(entry, "size", None) is None or not hasattr(entry, "blob_id"):
                    continue  # a folder
                lfs = getattr(entry, "lfs", None)
                sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
                out[entry.path] = {"size": entry.size, "sha256": sha}
            return out
        return await self._cached(self._key("tree", repo), ctx, f"files of {repo}", run)

    # ---- the lookup ----------------------------------------------------------------------
    def _scan(self, info: NameInfo, repos: list[dict], hits: dict[str, _Hit]) -> None:
        for repo in repos:
            if "gated" in repo:
                self._repo_meta.setdefault(repo["id"], {k: repo.get(k) for k in ("downloads", "gated", "likes",
                                                                                  "created", "card_base")})
            sibs = repo.get("siblings")
            if not sibs:
                continue
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
            return []
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
                for q in search_queries(info, limit=MAX_SEARCHES):
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
            return (not h.exact, not is_official(ns), -(h.repo.get("downloads") or 0), h.repo["id"])

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
            for path in h.exact + h.near[:3]:
                meta = (files or {}).get(path, {})
                if files is not None and path not in files:
                    continue  # listed but gone from the tree
                out.append(self._candidate(repo_id, path, h.repo, meta))
        return out

    async def in_repos(self, ref: ModelRef, repos: list[str], ctx: LookupContext) -> list[Candidate]:
        """Look for the file in given repos (those chosen for the workflow's other models): a model's
        VAE or text encoder usually sits beside it, whatever its name."""
        info = analyse_name(ref.filename)
        hits: dict[str, _Hit] = {}
        for repo_id in repos:
            ctx.tried(NAME, f"beside:{repo_id}")
            try:
                files = await self.tree(repo_id, ctx)
            except (NotFound, AuthRequired, BudgetExhausted):
                continue
            meta = self._repo_meta.get(repo_id, {})
            self._scan(info, [{**meta, "id": repo_id, "siblings": list(files)}], hits)
        out: list[Candidate] = []
        for h in hits.values():
            files = await self.tree(h.repo["id"], ctx)
            for path in h.exact + h.near[:3]:
                out.append(self._candidate(h.repo["id"], path, h.repo, files.get(path, {}), via="beside"))
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
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _translate(exc: Exception, what: str) -> SourceError:
    """huggingface_hub / httpx exceptions -> our error types (status mapping stays in http.py)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        headers = {k: v for k, v in response.headers.items()} if response is not None else {}
        try:
            body = response.text if response is not None else None
        except Exception:  # streamed / closed body
            body = None
        return error_for_status(status, headers, body, source=NAME, token_env=HF_TOKEN_ENV,
                                authed=_authed(response), what=what)
    if isinstance(exc, ValueError):  # e.g. HFValidationError for a malformed repo id
        return NotFound(f"huggingface: {what}: {exc}", source=NAME)
    return SourceUnavailable(f"huggingface: {what}: cannot reach the Hub ({type(exc).__name__})", source=NAME,
                             hint="Check the network or CMR_HF_ENDPOINT.")


def _authed(response: Any) -> bool:
    try:
        return "authorization" in {k.lower() for k in response.request.headers.keys()}
    except Exception:
        return False
