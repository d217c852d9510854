"""Acceptance: the official template workflows, every link stripped, resolved against a fake Hub
(and Civitai) holding their repos plus decoys.

Ground truth is the URL each template gave for each model. A top-1 answer is right when it is
that file: the same repo + path, or the same file name at another location the official templates
use for that name (Comfy-Org repackages one file into many repos, with the same bytes: ae.safetensors
is in four). Both figures are reported; "strict" counts only the template's own repo + path.

Each workflow is resolved cold (a fresh response cache), as a user would: the request figures are
per model, from the fakes' request logs, pre-flight HEAD included.
"""
from __future__ import annotations

import asyncio
import json
import os
from collections import Counter

import pytest

from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.sources import build_sources
from comfyui_model_resolver.sources.cache import MemoryCache
from fakes.civitai import FakeCivitai
from fakes.hub import FakeHub
from fakes.templates import populate_from_templates
from support.paths import templates_dir
from support.sources import make_settings

TEMPLATES = templates_dir()
pytestmark = pytest.mark.skipif(TEMPLATES is None, reason="comfyui-workflow-templates-json is not installed")
WORKFLOWS_AT_ONCE = 6


async def _run(world, hub, civ, tmp_path, *, catalog: bool) -> dict:
    settings = make_settings(tmp_path / ("on" if catalog else "off"), hub=hub, civ=civ, disable_catalog=not catalog)
    resolver = await build_resolver(settings)
    await resolver.sources.close()
    hub.reset_log()
    civ.reset_log()
    locations: dict[str, set] = {}
    for (_wf, _sg, _node, name), loc in world.expected.items():
        locations.setdefault(name, set()).add(loc)
    stats = Counter()
    misses: list = []
    sem = asyncio.Semaphore(WORKFLOWS_AT_ONCE)

    async def one(name: str) -> None:
        async with sem:
            sources = build_sources(settings, cache=MemoryCache())  # cold, like a user's first run
            resolver.sources = sources
            try:
                res = await _resolve_with(resolver, sources, world.stripped(name), name)
            finally:
                await sources.close()
        for m in res.models:
            exp = world.expected.get((name, m.subgraph_id, m.node_id, m.filename))
            if exp is None:
                continue
            stats["models"] += 1
            stats["requests"] += m.requests
            stats["max_requests"] = max(stats["max_requests"], m.requests)
            top = m.candidates[0] if m.candidates else None
            loc = (top.repo, top.path) if top else None
            right = loc in locations[m.filename]
            stats["top1"] += right
            stats["strict"] += loc == exp
            if m.status in ("resolved", "auth_required") and m.chosen is not None:
                stats["confident"] += 1
                stats["confident_wrong"] += not right
            if not right:
                misses.append((name, m.filename, exp, loc, m.status))

    await asyncio.gather(*(one(n) for n in sorted(world.workflows)))
    await resolver.close()
    stats["upstream_requests"] = len(hub.log) + len(civ.log)
    return {"stats": stats, "misses": misses}


async def _resolve_with(resolver, sources, wf, name):
    # Resolver.resolve reads resolver.sources; concurrent workflows each pass their own set.
    saved = resolver.sources
    resolver.sources = sources
    try:
        return await resolver.resolve(wf, name)
    finally:
        resolver.sources = saved


def _figures(stats: Counter) -> dict:
    n = stats["models"]
    return {"models": n, "top1": round(stats["top1"] / n, 4), "strict_top1": round(stats["strict"] / n, 4),
            "confident": stats["confident"], "confident_wrong": stats["confident_wrong"],
            "requests_per_model": round(stats["upstream_requests"] / n, 2), "max_requests_one_model": stats["max_requests"]}


async def test_templates_without_links_resolve_to_the_right_files(tmp_path):
    async with FakeHub() as hub, FakeCivitai() as civ:
        world = await asyncio.to_thread(populate_from_templates, hub, TEMPLATES, civitai=civ)
        assert len(world.workflows) > 200 and len(world.expected) > 1000 and world.decoy_repos
        off = await _run(world, hub, civ, tmp_path, catalog=False)
        on = await _run(world, hub, civ, tmp_path, catalog=True)
    report = {"catalog_off": _figures(off["stats"]), "catalog_on": _figures(on["stats"])}
    print("\nACCEPTANCE " + json.dumps(report))
    out = os.environ.get("CMR_ACCEPTANCE_REPORT")
    if out:  # a place for CI to keep the figures
        with open(out, "w", encoding="utf-8") as f:
            json.dump({**report, "misses_catalog_off": off["misses"][:50]}, f, indent=1)
    for key in ("catalog_off", "catalog_on"):
        fig = report[key]
        assert fig["top1"] >= 0.95, (key, fig, (off if key == "catalog_off" else on)["misses"][:10])
        assert fig["confident_wrong"] == 0, (key, [m for m in off["misses"] if m[4] in ("resolved", "auth_required")][:10])
        assert fig["confident"] >= 0.9 * fig["models"]
    # the resolver's own count agrees with the fakes' logs (models without a template link excluded)
    for run in (off, on):
        assert 0 < run["stats"]["requests"] <= run["stats"]["upstream_requests"]
    assert report["catalog_off"]["requests_per_model"] <= 6
    assert report["catalog_on"]["requests_per_model"] <= report["catalog_off"]["requests_per_model"]
