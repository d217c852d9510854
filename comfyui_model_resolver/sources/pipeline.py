"""Run the providers for the models of one workflow, rank, pre-flight, and report.

Order per model: the free local providers first (the workflow's own links, the catalog); the
network providers (Hub, Civitai) only when those do not settle it. Models that name the same file
are looked up once. Then each model is also looked for beside the workflow's other models, and of
identical copies of each answer the one that fits the workflow is offered (a Wan workflow's text
encoder from the Wan repo, not from another bundle that repackages it: affinity.py). Then each
chosen candidate is pre-flighted (HEAD) and the planned downloads are checked against free disk space.
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlparse
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable, Sequence

from ..errors import AuthRequired, NotFound, SourceError
from ..settings import Settings
from ..types import Candidate, ModelReport, ModelRef, Preflight, ProviderStatus, ResolvedModel
from .affinity import anchor_repo, apply_workflow_affinity
from .base import LookupContext, RequestBudget, Source, StatusBoard, state_of
from .http import Upstream
from .preflight import preflight
from .publishers import is_official
from .rank import CONFIDENT, GENERIC_NAME, MIRROR_WORDS, UNDECIDED_CAP, Decision, rank
from .terms import analyse_name, workflow_family

log = logging.getLogger(__name__)

LOCAL_SOURCES = ("embedded", "catalog", "pack")
CIVITAI_FIRST_FOLDERS = frozenset({"loras", "embeddings", "hypernetworks", "checkpoints"})
MODEL_CONCURRENCY = 4
PREFLIGHT_BUDGET = 4  # HEADs per chosen candidate (redirect hops, the Civitai JSON reason)
PREFLIGHT_CACHE_TTL = 600.0  # seconds a passed pre-flight is reused (by every host of a fleet)
SHOW_CANDIDATES = 8
COLOCATE_REPOS = 4  # repos of the workflow's other models a model is looked for in


@dataclass
class _Work:
    ref: ModelRef
    ctx: LookupContext
    candidates: list[Candidate] = field(default_factory=list)
    decision: Decision | None = None
    preflight: Preflight | None = None
    preflight_requests: int = 0
    unreachable: set[str] = field(default_factory=set)  # providers that could not be asked for this model


def _ref_of(report: ModelReport, sha256: str | None) -> ModelRef:
    data = {k: v for k, v in report.model_dump().items() if k in ModelRef.model_fields}
    ref = ModelRef.model_validate(data)
    if sha256 and not ref.hash:
        ref = ref.model_copy(update={"hash": sha256, "hash_type": "sha256"})
    return ref


def _dedupe_key(ref: ModelRef) -> tuple:
    return (ref.filename.replace("\\", "/").rsplit("/", 1)[-1].lower(), ref.folder, (ref.hash or "").lower(),
            ref.kind, ref.url or "")


class SourceSet:
    """The providers of one Resolver, with the shared HTTP client and cache."""

    def __init__(self, settings: Settings, sources: Sequence[Source], upstream: Upstream,
                 closers: Iterable[Callable[[], Awaitable[None]]] = ()) -> None:
        self.settings = settings
        self.sources = list(sources)
        self.upstream = upstream
        self._closers = list(closers)
        self.hosts = {"huggingface": urlparse(settings.hf_endpoint).hostname,
                      "civitai": urlparse(settings.civitai_base_url).hostname}

    def _board(self) -> StatusBoard:
        return StatusBoard(self.sources, self.hosts)

    def by_name(self, name: str) -> Source | None:
        return next((s for s in self.sources if s.name == name), None)

    def _budget(self) -> RequestBudget:
        return RequestBudget(self.settings.max_requests_per_model)

    async def _ask(self, source: Source, w: _Work, board: StatusBoard) -> None:
        if source.disabled_reason:
            return
        if board.is_down(source.name):
            w.ctx.tried(source.name, "(skipped: unavailable in this run)")
            w.unreachable.add(source.name)
            return
        try:
            w.candidates.extend(await source.candidates(w.ref, w.ctx))
        except SourceError as exc:
            board.record(source.name, exc)
            state = state_of(exc)
            if state in ("unavailable", "rate_limited"):
                w.unreachable.add(source.name)
            w.ctx.tried(source.name, {"unavailable": "(could not be reached)", "rate_limited": "(rate limited)",
                                      "auth_required": "(needs sign-in)"}.get(
                state, "(not found)" if isinstance(exc, NotFound) else "(failed)"))
        except Exception:  # a provider bug must not sink the whole run
            log.exception("%s failed on %s", source.name, w.ref.filename)
            w.ctx.tried(source.name, "(failed: internal error)")

    @staticmethod
    def _settled(d: Decision) -> bool:
        """Confident, and the evidence cannot be beaten by asking further: the workflow's own link,
        a hash match, an official publisher's file whose bytes are known, or a community file on
        Civitai (a Hub re-upload would not beat it, and asking the Hub would cost searches for a name
        only Civitai has; a name of a known model family, sdxl_lightning…, is asked on the Hub too). A stranger's Hub upload of the same name is not enough: the others are asked too."""
        c = d.chosen
        if d.status != "resolved" or c is None:
            return False
        civitai_home = c.source == "civitai" and analyse_name(c.filename or "").family is None
        return (c.via in ("workflow", "hash", "catalog", "pack") or c.hash_match
                or (c.sha256 is not None and (is_official(c.publisher) or civitai_home)))

    def _remote_order(self, ref: ModelRef) -> list[Source]:
        """Network providers, cheapest useful first: Civitai first when a hash is known (by-hash is
        decisive) or for the folders Civitai is where people publish; else the Hub first."""
        remote = [s for s in self.sources if s.name not in LOCAL_SOURCES]
        if ref.hash or (ref.folder in CIVITAI_FIRST_FOLDERS):
            remote.sort(key=lambda s: s.name != "civitai")
        return remote

    async def _lookup(self, w: _Work, board: StatusBoard) -> None:
        for s in self.sources:
            if s.name in LOCAL_SOURCES:
                await self._ask(s, w, board)
        w.decision = rank(w.ref, w.candidates)
        await self._ask_pack_repos(w, board)
        for s in self._remote_order(w.ref):
            if self._settled(w.decision):
                break
            await self._ask(s, w, board)
            w.decision = rank(w.ref, w.candidates)

    async def _ask_pack_repos(self, w: _Work, board: StatusBoard) -> None:
        """Known repos are asked before any search: those the node's pack documents for this folder (a
        file found there under its exact name is the pack's, via "pack"), then those where the catalog or
        any pack's docs keep this file's siblings (`t2iadapter_canny_sd14v1.pth` for `t2iadapter_depth_sd15v2.pth`,
        via "sibling")."""
        packs, cat, hf = self.by_name("pack"), self.by_name("catalog"), self.by_name("huggingface")
        if hf is None or hf.disabled_reason or board.is_down(hf.name):
            return
        asks = []
        if packs is not None and hasattr(packs, "repos_to_ask"):
            asks.append((packs.repos_to_ask(w.ref, w.ctx.packs), "pack",  # type: ignore[attr-defined]
                         "in a repo the node's pack documents for this folder"))
        for src, who in ((cat, "the catalog keeps"), (packs, "a pack's docs keep")):
            if src is not None and hasattr(src, "sibling_repos") and not w.candidates:  # nothing local knows it
                asks += [([repo], "sibling", f"in {repo}, where {who} its sibling {sib}")
                         for repo, sib in src.sibling_repos(w.ref)  # type: ignore[attr-defined]
                         if all(repo not in r for r, _, _ in asks)]
        for repos, via, reason in asks:
            if not repos or self._settled(w.decision):
                continue
            try:
                found = await hf.in_repos(w.ref, repos, w.ctx, via=via, reason=reason)  # type: ignore[attr-defined]
            except SourceError as exc:
                board.record(hf.name, exc)
                return
            if found:
                w.candidates.extend(found)
                w.decision = rank(w.ref, w.candidates)

    async def resolve(self, reports: Sequence[ModelReport], *, note_links: tuple[str, ...] = (),
                      local_sha256: dict[int, str] | None = None, include_present: bool = False,
                      run_preflight: bool = True) -> tuple[list[ResolvedModel], tuple[ProviderStatus, ...]]:
        """Resolve every report that is missing (or every one, with include_present)."""
        board = self._board()
        local_sha256 = local_sha256 or {}
        works: dict[tuple, _Work] = {}
        of_report: list[_Work | None] = []
        family = workflow_family(r.filename for r in reports)
        packs = frozenset(r.pack for r in reports if r.pack)
        # a generic name the workflow uses for two files (instantid/… and xinsir/…): the workflow's
        # packs do not say which is which; only a node of the pack naming it does
        names: dict[str, set[str]] = {}
        for r in reports:
            names.setdefault(r.filename.replace("\\", "/").rsplit("/", 1)[-1].lower(), set()).add(r.filename)
        twins = {b for b, n in names.items() if len(n) > 1 and GENERIC_NAME.match(b)}
        for i, rep in enumerate(reports):
            if rep.status != "missing" and not include_present:
                of_report.append(None)
                continue
            ref = _ref_of(rep, local_sha256.get(i))
            key = _dedupe_key(ref)
            if key not in works:
                base = ref.filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
                ctx = LookupContext(ref=ref, budget=self._budget(), note_links=note_links, family=family,
                                    packs=packs if base not in twins else frozenset({ref.pack} - {None}),
                                    sha256=ref.hash if (ref.hash_type or "") == "sha256" else None)
                works[key] = _Work(ref, ctx)
            of_report.append(works[key])

        sem = asyncio.Semaphore(MODEL_CONCURRENCY)

        async def one(w: _Work) -> None:
            async with sem:
                await self._lookup(w, board)

        await asyncio.gather(*(one(w) for w in works.values()))
        self._cohost_pass(list(works.values()))
        await self._colocate(list(works.values()), board)
        self._cohost_pass(list(works.values()))
        self._affinity_pass(list(works.values()))
        await self._units(list(works.values()))
        if run_preflight:
            await asyncio.gather(*(self._preflight(w, board) for w in works.values()
                                   if w.decision and w.decision.chosen))
        for w in works.values():
            board.absorb(w.ctx)
            if w.decision and w.decision.chosen and w.decision.chosen.requires_auth:
                c = w.decision.chosen
                board.record(c.source if c.source != "embedded" else _source_of_url(c), AuthRequired(
                    f"{c.repo or c.url} needs sign-in", token_env=c.token_env, source=c.source,
                    hint=f"Set {c.token_env}." if c.token_env else None))
        out = []
        counted: set[int] = set()
        for rep, w in zip(reports, of_report):
            res = self._result(rep, w)
            if w is not None:
                if id(w) in counted:  # another node names the same file: looked up once, paid once
                    res = res.model_copy(update={"requests": 0})
                counted.add(id(w))
            out.append(res)
        statuses = board.statuses()
        for p in statuses:
            if p.detail:
                log.info("%s: %s", p.name, p.detail)
        return out, statuses

    @staticmethod
    def _chosen_repos(works: list[_Work]) -> dict[int, str]:
        out: dict[int, str] = {}
        for w in works:
            d = w.decision
            # the chosen file's repo, or the likeliest one of an open model whose name matched exactly
            c = d.chosen if d else None
            if c is None and d is not None and d.status == "ambiguous" and d.ranked \
                    and "exact file name" in d.ranked[0].reasons:
                c = d.ranked[0]
            if c is not None and c.repo and c.source != "civitai" and "/" in c.repo:
                out[id(w)] = c.repo
        return out

    async def _colocate(self, works: list[_Work], board: StatusBoard) -> None:
        """Look for each model beside the workflow's other models.

        A model left open is looked for in the repos chosen for the others (its VAE or text encoder
        usually sits beside the diffusion model, whatever its name). A resolved one is looked for in
        the repos the others are anchored in (affinity.anchor_repo): the workflow's own copy of a
        file Comfy-Org repackages everywhere may not have turned up in the listings, or turned up
        without its sha256, which the affinity pass needs to call copies identical. The trees read
        are mostly those of the other models' answers, already in the response cache."""
        hf = self.by_name("huggingface")
        if hf is None or hf.disabled_reason or not hasattr(hf, "in_repos"):
            return
        chosen = self._chosen_repos(works)
        anchors = {id(w): anchor_repo(w.decision) for w in works}

        def repos_for(w: _Work) -> list[str]:
            d = w.decision
            if d is None or w.ref.kind != "file":
                return []
            if d.status in ("not_found", "ambiguous"):
                return list(dict.fromkeys(r for k, r in chosen.items() if k != id(w)))[:COLOCATE_REPOS]
            c = d.chosen
            if d.status != "resolved" or c is None or c.via == "workflow" or c.hash_match:
                return []
            known = {o.repo for o in w.candidates if o.sha256 and o.filename == c.filename}
            return list(dict.fromkeys(r for k, r in anchors.items()
                                      if k != id(w) and r and r not in known))[:COLOCATE_REPOS]

        async def one(w: _Work, repos: list[str]) -> None:
            try:
                found = await hf.in_repos(w.ref, repos, w.ctx)  # type: ignore[attr-defined]
            except SourceError as exc:
                board.record(hf.name, exc)
                return
            if found:  # known URLs too: ranking merges their facts (a sha256 the listing lacked)
                w.candidates.extend(found)
                w.decision = rank(w.ref, w.candidates)

        plan = [(w, repos_for(w)) for w in works]
        await asyncio.gather(*(one(w, repos) for w, repos in plan if repos))

    async def _units(self, works: list[_Work]) -> None:
        """Sharded models and folder models (diffusers, repo snapshots) are one unit: the top
        candidate of each gets its sibling files (units.py)."""
        from .units import with_folder_unit

        hf = self.by_name("huggingface")
        if hf is None or hf.disabled_reason or not hasattr(hf, "with_unit"):
            return

        async def one(w: _Work) -> None:
            d = w.decision
            if d is None or not d.ranked or d.ranked[0].source not in ("huggingface", "catalog", "pack", "embedded"):
                return
            if w.ref.kind == "directory":
                top = await with_folder_unit(hf, w.ref, d.ranked[0], w.ctx)
            else:
                top = await hf.with_unit(d.ranked[0], w.ctx)  # type: ignore[attr-defined]
            if top is not d.ranked[0]:
                chosen = top if d.chosen is not None and d.chosen.url == d.ranked[0].url else d.chosen
                w.decision = Decision(d.status, (top,) + d.ranked[1:], chosen=chosen, message=d.message)

        await asyncio.gather(*(one(w) for w in works))

    @staticmethod
    def _cohost_pass(works: list[_Work]) -> None:
        """A Hub repo that holds two or more of this workflow's files, under their exact names, is
        where the workflow comes from (a stranger's single re-upload holds one): its candidates are
        vouched for as "beside the workflow's other models". Mirror-shaped repos do not count."""
        holders: dict[str, set[int]] = {}
        for w in works:
            for c in w.candidates:
                if (c.source == "huggingface" and c.repo and c.filename == w.ref.filename.replace("\\", "/").rsplit("/", 1)[-1]
                        and not GENERIC_NAME.match(c.filename) and not MIRROR_WORDS.search(c.repo.split("/", 1)[-1])):
                    holders.setdefault(c.repo, set()).add(id(w))
        for w in works:
            d = w.decision
            if d is None or d.status == "resolved":
                continue
            extra = [c.model_copy(update={"via": "beside"}) for c in w.candidates
                     if c.repo in holders and len(holders[c.repo]) >= 2 and id(w) in holders[c.repo]
                     and c.via not in ("beside", "workflow", "hash", "catalog", "pack")]
            if extra:
                w.candidates.extend(extra)
                w.decision = rank(w.ref, w.candidates)

    @staticmethod
    def _affinity_pass(works: list[_Work]) -> None:
        """Of identical copies of each answer, offer the one that fits the workflow (affinity.py)."""
        decided = apply_workflow_affinity([(w.ref, w.decision) for w in works])
        for w, d in zip(works, decided):
            w.decision = d

    async def _preflight(self, w: _Work, board: StatusBoard) -> None:
        cand = w.decision.chosen  # type: ignore[union-attr]
        # A passed pre-flight is shared for a few minutes (the response cache: Redis in a fleet), so
        # N hosts resolving one workflow at start-up check each file once; failures are asked again.
        cache = self.upstream.cache
        key = f"preflight:{int(self.upstream.has_token(cand.url))}:{cand.url}"
        hit = await cache.get(key) if cache is not None else None
        if isinstance(hit, dict):
            w.preflight = Preflight.model_validate(hit)
            return
        ctx = LookupContext(ref=w.ref, budget=RequestBudget(PREFLIGHT_BUDGET))
        w.preflight = await preflight(cand, self.upstream, ctx, self.settings)
        if cache is not None and w.preflight.state == "ok":
            await cache.set(key, w.preflight.model_dump(mode="json"), min(self.settings.cache_ttl, PREFLIGHT_CACHE_TTL))
        w.preflight_requests = sum(ctx.requests.values())
        for src, n in ctx.requests.items():
            w.ctx.requests[src] = w.ctx.requests.get(src, 0) + n

    def _result(self, rep: ModelReport, w: _Work | None) -> ResolvedModel:
        base = rep.model_dump()
        base["local_status"] = rep.status
        if w is None:
            return ResolvedModel.model_validate(base)
        d = w.decision
        status = rep.status if rep.status in ("present", "relocated") else "not_found"
        message = None
        candidates: tuple[Candidate, ...] = ()
        if d is not None:
            candidates = d.ranked[:SHOW_CANDIDATES]
            message = d.message
            if rep.status == "missing":
                status = d.status
        pf = w.preflight
        chosen = d.chosen if d else None
        if chosen is not None and pf is not None:
            upd = {}
            if chosen.size is None and pf.size is not None:
                upd["size"] = pf.size
            if chosen.sha256 is None and pf.sha256 is not None:
                upd["sha256"] = pf.sha256
            if pf.state in ("gated", "login_required", "early_access", "no_access"):
                upd["requires_auth"] = True
                upd["token_env"] = pf.token_env or chosen.token_env
            if upd:
                chosen = chosen.model_copy(update=upd)
                candidates = (chosen,) + tuple(c for c in candidates if c.url != chosen.url)
        if rep.status == "missing" and chosen is not None:
            if chosen.requires_auth or (pf is not None and pf.state in ("gated", "login_required", "early_access",
                                                                       "no_access")):
                status = "auth_required"
                message = (pf.message if pf is not None and pf.message else
                           f"{chosen.repo or chosen.url} needs sign-in: set {chosen.token_env}")
            elif pf is not None and pf.state in ("not_found", "not_allowed"):
                status = "ambiguous"
                message = f"the chosen file could not be fetched when checked ({pf.message}): pick another candidate"
        if status == "not_found" and w.unreachable:
            hosts = ", ".join(sorted({self.hosts.get(n) or n for n in w.unreachable}))
            status = "unavailable"
            message = f"no source could be asked: can't reach {hosts}"
        elif status == "not_found":
            tried = "; ".join(f"{src}: {', '.join(qs)}" for src, qs in w.ctx.queries.items() if qs)
            message = f"no source has this file (tried {tried})" if tried else "no source could be asked"
        if status not in ("resolved", "auth_required"):  # `resolved` is the only answer shown as confident
            candidates = tuple(c if c.confidence < CONFIDENT else c.model_copy(update={"confidence": UNDECIDED_CAP})
                               for c in candidates)
        base.update(status=status, candidates=candidates, preflight=pf, message=message,
                    chosen=chosen if (d is not None and d.status == "resolved") else None,
                    queries={k: tuple(v) for k, v in w.ctx.queries.items()},
                    requests=sum(w.ctx.requests.values()))
        return ResolvedModel.model_validate(base)

    async def search(self, query: str, folder: str | None) -> tuple[list[Candidate], tuple[ProviderStatus, ...]]:
        board = self._board()
        ref = ModelRef(filename=query, folder=folder, node_id="", node_type="", input="search")
        ctx = LookupContext(ref=ref, budget=RequestBudget(max(4, len(self.sources) * 2)))
        found: list[Candidate] = []

        async def ask(s: Source) -> None:
            if s.disabled_reason:
                return
            try:
                found.extend(await s.search(query, folder, ctx))
            except SourceError as exc:
                board.record(s.name, exc)

        await asyncio.gather(*(ask(s) for s in self.sources))
        board.absorb(ctx)
        ranked = rank(ref, found).ranked
        return list(ranked), board.statuses()

    async def close(self) -> None:
        for s in self.sources:
            try:
                await s.close()
            except Exception:  # pragma: no cover
                log.exception("closing %s", s.name)
        await self.upstream.close()
        for c in self._closers:
            await c()


def _source_of_url(c: Candidate) -> str:
    return "huggingface" if c.repo and "/" in (c.repo or "") and not c.repo.startswith("civitai") else "civitai"
