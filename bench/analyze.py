"""Benchmark the analysis core against baselines measured in the same run.

1. Analysis of every official template workflow vs `json.loads` of the same bytes (goal <= 2x).
2. Index scan of a generated 100,000-file tree, cold and warm, vs `os.walk` (goals <= 1.5x, <= 0.1x).
   Cold: a new index with an empty cache (lists every directory and persists the cache).
   Warm: a new index object (as in a new process) that loads the persisted cache and stat()s each
   directory. Directory mtimes are set 60 s in the past, as for any tree not being written to.

Usage: python bench/analyze.py [--files 100000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comfyui_model_resolver.errors import WorkflowError  # noqa: E402
from comfyui_model_resolver.index.layout import build_layout  # noqa: E402
from comfyui_model_resolver.index.scan import ModelIndex  # noqa: E402
from comfyui_model_resolver.workflow.knowledge import Knowledge  # noqa: E402
from comfyui_model_resolver.workflow.parse import parse_workflow_bytes  # noqa: E402


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_templates(repeat: int) -> dict:
    import comfyui_workflow_templates_json as pkg

    files = [p.read_bytes() for p in sorted((Path(pkg.__file__).parent / "templates").glob("*.json"))]
    knowledge = Knowledge()

    def baseline():
        for b in files:
            json.loads(b)

    def ours():
        for b in files:
            try:
                parse_workflow_bytes(b, knowledge, max_bytes=50 << 20)
            except WorkflowError:
                pass

    ours()  # warm the loader table
    base, mine = median_time(baseline, repeat), median_time(ours, repeat)
    return {"files": len(files), "megabytes": round(sum(map(len, files)) / 1e6, 1),
            "json_loads_s": round(base, 4), "analyze_s": round(mine, 4), "ratio": round(mine / base, 2), "goal": 2.0}


def make_tree(root: Path, n_files: int) -> None:
    folders = ["checkpoints", "loras", "vae", "text_encoders", "diffusion_models", "controlnet", "upscale_models",
               "embeddings", "clip_vision", "ipadapter"]
    per_dir = 100
    n_dirs = n_files // per_dir
    for d in range(n_dirs):
        p = root / folders[d % len(folders)] / f"set{d // len(folders):03d}"
        p.mkdir(parents=True, exist_ok=True)
        for i in range(per_dir):
            (p / f"model_{d}_{i}.safetensors").touch()
    past = time.time() - 60
    for dirpath, _dirs, _files in os.walk(root):
        os.utime(dirpath, (past, past))


def bench_index(n_files: int, repeat: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="cmr-bench-"))
    try:
        root = tmp / "models"
        make_tree(root, n_files)
        layout = build_layout(root, [], {})

        def walk():
            n = 0
            for _dp, _dn, fn in os.walk(root):
                n += len(fn)
            return n

        counter = iter(range(10_000))

        def cold():
            cache = tmp / f"cache-{next(counter)}"
            ModelIndex(layout, cache).refresh()

        warm_cache = tmp / "warm"
        ModelIndex(layout, warm_cache).refresh()

        def warm():
            ModelIndex(layout, warm_cache).refresh()

        same = ModelIndex(layout, warm_cache)
        same.refresh()
        walk(), cold(), warm()  # page cache
        t_walk = median_time(walk, repeat)
        t_cold = median_time(cold, repeat)
        t_warm = median_time(warm, repeat)
        t_same = median_time(same.refresh, repeat)
        stats = ModelIndex(layout, warm_cache).refresh()
        return {"files": stats.files, "directories": stats.directories, "os_walk_s": round(t_walk, 4),
                "cold_s": round(t_cold, 4), "cold_ratio": round(t_cold / t_walk, 2), "cold_goal": 1.5,
                "warm_s": round(t_warm, 4), "warm_ratio": round(t_warm / t_walk, 3), "warm_goal": 0.1,
                "warm_same_process_s": round(t_same, 4), "warm_same_process_ratio": round(t_same / t_walk, 3)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    result = {"templates": bench_templates(args.repeat), "index": bench_index(args.files, args.repeat)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
