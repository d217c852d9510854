"""Score the resolver on the community world (tests/fakes/community): top-1, same bytes,
wrong-and-confident, no candidate, requests per model, and the reliability table.

Each workflow is resolved cold (a fresh response cache, a Resolver of its own), as a user would;
requests are the resolver's own count per split, and the fakes' logs for all (pre-flight HEADs
and CDN hops included). Definitions:
  * top-1: the first candidate is the true source (HF repo + path; Civitai model@version);
  * same bytes: the first candidate's bytes are the true file's (an identical re-upload counts);
  * confident: status resolved (or auth_required with a chosen file): the resolver would download it;
  * wrong and confident: confident, and the chosen bytes differ from the true file's;
  * no candidate: nothing offered at all.
"""
from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

from comfyui_model_resolver.index.hashing import HashCache
from comfyui_model_resolver.index.layout import build_layout
from comfyui_model_resolver.index.scan import ModelIndex
from comfyui_model_resolver.service import Resolver
from comfyui_model_resolver.sources import build_sources
from comfyui_model_resolver.sources.cache import MemoryCache
from comfyui_model_resolver.workflow.knowledge import Knowledge
from fakes.community.workflows import split_of
from support.sources import make_settings

BUCKETS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 0.9), (0.9, 1.01))
WORKFLOWS_AT_ONCE = 6


def _resolver(settings) -> Resolver:
    layout = build_layout(settings.effective_models_root, (), {})
    r = Resolver(settings, knowledge=Knowledge(), layout=layout, index=ModelIndex(layout, None), hashes=HashCache(None))
    r.attach_sources(build_sources(settings, cache=MemoryCache()))
    return r


async def score_world(world, workflows: dict, expected: list, hub, civ, tmp_path, *, catalog: bool) -> dict:
    settings = make_settings(tmp_path / ("cat-on" if catalog else "cat-off"), hub=hub, civ=civ,
                             disable_catalog=not catalog)
    truth_of = {(e.workflow, e.node_id, e.truth.name): e.truth for e in expected}
    rows: list[dict] = []
    requests: Counter = Counter()
    sem = asyncio.Semaphore(WORKFLOWS_AT_ONCE)

    async def one(name: str) -> None:
        async with sem:
            resolver = _resolver(settings)
            try:
                res = await resolver.resolve(workflows[name], name)
            finally:
                await resolver.close()
        split = split_of(name)
        for m in res.models:
            truth = truth_of.get((name, m.node_id, m.filename))
            if truth is None:
                continue
            top = m.candidates[0] if m.candidates else None
            loc = (top.repo, top.path) if top else (None, None)
            chosen = m.chosen if m.status in ("resolved", "auth_required") else None
            chosen_sha = world.sha_of(chosen.repo, chosen.path) if chosen else None
            rows.append({"workflow": name, "split": split, "name": m.filename, "slot": truth.slot, "kind": truth.kind,
                         "status": m.status, "right": top is not None and truth.is_at(*loc),
                         "same_bytes": top is not None and world.sha_of(*loc) == truth.sha256,
                         "confident": chosen is not None, "wrong_confident": chosen is not None and chosen_sha != truth.sha256,
                         "confidence": top.confidence if top else 0.0, "no_candidate": top is None,
                         "top": f"{loc[0]}:{loc[1]}" if top else None, "truth": f"{truth.repo}:{truth.path}",
                         "unit": len(getattr(top, "files", ()) or ()) if top else 0, "want_unit": len(truth.files)})
            requests[split] += m.requests

    hub.reset_log()
    civ.reset_log()
    await asyncio.gather(*(one(n) for n in sorted(workflows)))
    return {"rows": rows, "requests": dict(requests), "logged": len(hub.log) + len(civ.log)}


def figures(rows: list[dict], requests: int) -> dict:
    n = len(rows) or 1
    return {"models": len(rows), "top1": round(sum(r["right"] for r in rows) / n, 4),
            "same_bytes": round(sum(r["same_bytes"] for r in rows) / n, 4),
            "wrong_confident": round(sum(r["wrong_confident"] for r in rows) / n, 4),
            "no_candidate": round(sum(r["no_candidate"] for r in rows) / n, 4),
            "confident": round(sum(r["confident"] for r in rows) / n, 4),
            "requests_per_model": round(requests / n, 2)}


def reliability(rows: list[dict]) -> list[dict]:
    """Confidence buckets of the first candidate -> how often it is the true source / the true bytes."""
    out = []
    for lo, hi in BUCKETS:
        rs = [r for r in rows if lo <= r["confidence"] < hi and not r["no_candidate"]]
        out.append({"bucket": f"{lo:.1f}-{min(hi, 1.0):.1f}", "n": len(rs),
                    "right": round(sum(r["right"] for r in rs) / len(rs), 3) if rs else None,
                    "same_bytes": round(sum(r["same_bytes"] for r in rs) / len(rs), 3) if rs else None})
    return out


def by_split(result: dict) -> dict:
    parts = defaultdict(list)
    for r in result["rows"]:
        parts[r["split"]].append(r)
    out = {s: figures(rs, result["requests"].get(s, 0)) for s, rs in parts.items()}
    out["all"] = figures(result["rows"], result["logged"])
    return out


def table(title: str, figs: dict) -> str:
    lines = [title, "| split | models | top-1 | same bytes | wrong & confident | no candidate | confident | requests/model |",
             "|---|---|---|---|---|---|---|---|"]
    for split, f in figs.items():
        lines.append(f"| {split} | {f['models']} | {f['top1']:.1%} | {f['same_bytes']:.1%} | {f['wrong_confident']:.1%} "
                     f"| {f['no_candidate']:.1%} | {f['confident']:.1%} | {f['requests_per_model']} |")
    return "\n".join(lines)
