"""Every goal of issue 14, each as a ratio against its baseline measured in the same run.

    python bench/run.py [--tiny] [--runs 5] [--only startup,download,capped,sidecar,index] [--no-install]

Figures (runs of ours and the baseline interleaved, so load changes hit both alike; except in the
capped and sidecar sections, a first round warms up and is not counted):

* startup.help / startup.analyze / startup.download_1k: whole processes — `cmr --help`, `cmr analyze`
  of one official template, `cmr download` of a 1 KiB file from nginx (SHA-256 verified) — against
  `python -c pass` (goals <= 4x, <= 8x, <= 10x); 3 rounds per --runs, as a round takes ~0.6 s and
  the baseline only ~40 ms. `install` says whether the package is an editable install: its finder,
  loaded by site in every process, is half of that baseline (a regular install: ~20 ms).
* download.in_process / download.cmr: 1 GiB from nginx on loopback, SHA-256 verified — in-process
  (`DownloadManager`) and `cmr download` end to end — as MB/s against `curl` (goals >= 0.9x, >= 0.8x).
* capped: a 512 MiB file from an nginx that caps every connection (`limit_rate`, 32 MiB/s), `cmr
  download` whole process (verified) against `aria2c -x4 -s4` without verification (the goal
  figure, >= 0.95x) and with `--checksum=sha-256` (Debian `aria2`; installed here with apt-get
  when root and missing — the product never runs it).
* sidecar: API-only start-up (process start to /health answering; goal < 1 s) and POST
  /api/v1/analyze throughput at 50 clients against 1 client (goal >= 0.9x).
* index: warm index in a fresh process at 300k files (refresh + one name lookup), whole process
  minus `cmr --help`, against `os.walk` of the same tree (goal <= 0.1x).

Python byte code is compiled first (as `pip install` does) and measured processes may write it,
whatever PYTHONDONTWRITEBYTECODE says. Prints ONE JSON object: per figure the best and median of
ours and of the baseline, the ratios (best/best and median/median) and whether the goal holds for
the median; `median_of_rounds`, the median of the per-round ratios, is shown beside them; plus
`uptime` load at start and end. `--tiny` runs every section on small inputs in
seconds (the test suite checks that it emits valid JSON; no timing is asserted anywhere).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

SECTIONS = ("startup", "download", "capped", "sidecar", "index")
STARTUP_ROUNDS = 3  # start-up rounds per --runs (they are short; see bench_startup)


def install_mode() -> dict:
    """How this interpreter finds the package. It matters to every ratio against `python -c pass`:
    an editable install (`pip install -e`, the README's) adds a finder that site imports in every
    process, the baseline included (~20 ms here, pathlib and re with it); a regular install does not,
    and the same commands then measure about twice the ratio."""
    import glob
    import site

    pth = sorted(os.path.basename(p) for d in site.getsitepackages() for p in glob.glob(os.path.join(d, "*.pth")))
    editable = any(n.startswith("__editable__") and "comfyui_model_resolver" in n for n in pth)
    return {"package": "editable" if editable else "regular", "pth_files": pth}


def load_avg() -> dict:
    one, five, fifteen = os.getloadavg()
    up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip() if shutil.which("uptime") else ""
    return {"1min": one, "5min": five, "15min": fifteen, "uptime": up, "cpus": os.cpu_count()}


def proc_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env


def timed(cmd: list[str], env: dict | None = None, cwd: str | Path | None = None) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} … failed ({res.returncode}): {res.stderr.decode()[-800:]}")
    return dt


def stats(values: list[float]) -> dict:
    return {"best": round(min(values), 4), "median": round(statistics.median(values), 4),
            "runs": [round(v, 4) for v in values]}


def figure(ours: list[float], base: list[float], *, goal: float, higher_is_better: bool, unit: str,
           baseline: str, **extra) -> dict:
    """Ours vs baseline. For times (lower is better) best = min; for speeds best = max."""
    pick = max if higher_is_better else min
    o = {"best": round(pick(ours), 4), "median": round(statistics.median(ours), 4), "runs": [round(v, 4) for v in ours]}
    b = {"best": round(pick(base), 4), "median": round(statistics.median(base), 4), "runs": [round(v, 4) for v in base]}
    r_best = o["best"] / b["best"] if b["best"] else None
    r_med = o["median"] / b["median"] if b["median"] else None
    # Rounds interleave ours and the baseline, so the ratio within each round cancels a drift of the
    # machine between rounds; its median is shown next to the goal figure (median over median).
    paired = [x / y for x, y in zip(ours, base) if y] if len(ours) == len(base) else []

    def met(r: float | None) -> bool:
        return r is not None and ((r >= goal) if higher_is_better else (r <= goal))

    return {"unit": unit, "baseline": baseline, "ours": o, "base": b,
            "ratio": {"best": None if r_best is None else round(r_best, 3),
                      "median": None if r_med is None else round(r_med, 3),
                      "median_of_rounds": round(statistics.median(paired), 3) if paired else None},
            "goal": (">= " if higher_is_better else "<= ") + f"{goal}x", "met_by_median": met(r_med),
            "met_by_best": met(r_best), **extra}


def bench_module(name: str):
    """A module of this folder by path (bench/sidecar.py would be shadowed by the sidecar package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"cmr_bench_{name}", REPO / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def template_path() -> Path:
    import comfyui_workflow_templates_json as pkg

    folder = Path(pkg.__file__).parent / "templates"
    # a small one: the typical "open a template" case
    return min(sorted(folder.glob("*.json")), key=lambda p: abs(p.stat().st_size - 20_000))


def cmr_exe() -> str:
    exe = Path(sys.executable).with_name("cmr")
    return str(exe) if exe.exists() else shutil.which("cmr") or "cmr"


def compile_bytecode() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "comfyui_model_resolver"),
                    str(REPO / "sidecar")], stdout=subprocess.DEVNULL, env=proc_env())


# ---- start-up -----------------------------------------------------------------------------------
def bench_startup(args, work: Path, cdn) -> dict:
    from transfer_goals import cmr_download_cmd, one_kib

    root = work / "startup-comfy"
    (root / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
    tpl = template_path()
    url, sha = one_kib(work, cdn)
    env = proc_env(CMR_DATA_DIR=str(work / "startup-data"), CMR_ALLOWED_HOSTS=cdn.hosts)
    runs: dict[str, list[float]] = {"pass": [], "help": [], "analyze": [], "download_1k": []}
    cmds = {"pass": [sys.executable, "-c", "pass"], "help": [cmr_exe(), "--help"],
            "analyze": [cmr_exe(), "analyze", "--comfyui-root", str(root), str(tpl)]}
    # A round is ~0.6 s, and the baseline, `python -c pass`, takes only ~40 ms: one scheduler hiccup
    # moves it by a quarter. So this section runs STARTUP_ROUNDS rounds per --runs.
    rounds = args.runs * STARTUP_ROUNDS
    for _ in range(rounds + 1):  # the first round warms the page cache and is dropped
        for name, cmd in cmds.items():
            runs[name].append(timed(cmd, env))
        (root / "models" / "checkpoints" / "one-kib.safetensors").unlink(missing_ok=True)
        runs["download_1k"].append(timed(cmr_download_cmd(url, sha, root, "one-kib.safetensors"), env))
    runs = {k: v[1:] for k, v in runs.items()}
    out: dict = {"template": tpl.name, "rounds": rounds}
    for name, goal in (("help", 4), ("analyze", 8), ("download_1k", 10)):
        out[name] = figure(runs[name], runs["pass"], goal=goal, higher_is_better=False, unit="s",
                           baseline="python -c pass")
    return out


# ---- sidecar ------------------------------------------------------------------------------------
def bench_sidecar(args, work: Path) -> dict:
    import asyncio
    import urllib.request

    sc = bench_module("sidecar")  # bench/sidecar.py (not the sidecar package)

    wf = json.dumps(sc.workflow(40 if args.tiny else 200)).encode()
    starts, pass_times, one, many = [], [], [], []
    requests = 60 if args.tiny else 400
    rounds = 1 if args.tiny else 3
    for i in range(max(1, args.runs if not args.tiny else 1)):
        pass_times.append(timed([sys.executable, "-c", "pass"], proc_env()))
        tmp = work / f"sidecar-{i}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        server = sc.Server(tmp, ui=False)
        try:
            starts.append(server.wait())
            req = urllib.request.Request(server.url + "/api/v1/analyze", data=wf,
                                         headers={"content-type": "application/json"})
            urllib.request.urlopen(req).read()
            url = server.url + "/api/v1/analyze"
            for _ in range(rounds):  # 1 client and 50 clients alternate, so load drift hits both
                one.append(asyncio.run(sc.load(url, "POST", wf, max(20, requests // 4), 1))["rps"])
                many.append(asyncio.run(sc.load(url, "POST", wf, requests, 50))["rps"])
        finally:
            server.stop()
    start = {"best": round(min(starts), 3), "median": round(statistics.median(starts), 3),
             "runs": [round(v, 3) for v in starts]}
    return {"startup_api_only": {"unit": "s", "ours": start, "goal": "< 1 s (absolute)",
                                 "met_by_median": start["median"] < 1.0, "met_by_best": start["best"] < 1.0,
                                 "python_pass_s": stats(pass_times),
                                 "ratio_to_python_pass": {"best": round(min(starts) / min(pass_times), 2),
                                                          "median": round(statistics.median(starts)
                                                                          / statistics.median(pass_times), 2)}},
            "analyze_50_vs_1_client": figure(many, one, goal=0.9, higher_is_better=True, unit="requests/s",
                                             baseline="1 client", workflow_bytes=len(wf))}


# ---- index --------------------------------------------------------------------------------------
WARM_SCRIPT = """
import sys
from comfyui_model_resolver.index.layout import build_layout
from comfyui_model_resolver.index.scan import ModelIndex
idx = ModelIndex(build_layout(sys.argv[1], [], {}), sys.argv[2])
stats = idx.refresh()
assert stats.rescanned == 0 or sys.argv[3] == "cold", stats
if sys.argv[3] == "lookup":
    assert idx.find_by_basename("not-there.safetensors") == []
    assert len(idx.find_by_basename("MODEL_7_7.safetensors")) == 1
"""
WALK_SCRIPT = """
import os, sys, time
t = time.perf_counter()
n = 0
for _dp, _dn, fn in os.walk(sys.argv[1]):
    n += len(fn)
print(time.perf_counter() - t, n)
"""


def bench_index(args, work: Path) -> dict:
    make_tree = bench_module("analyze").make_tree

    n = 3000 if args.tiny else 300_000
    root = work / f"tree-{n}"
    marker = root / ".complete"
    if not marker.exists():
        shutil.rmtree(root, ignore_errors=True)
        make_tree(root, n)
        marker.touch()
        past = time.time() - 60
        os.utime(root, (past, past))
    cache = work / f"index-cache-{n}"
    shutil.rmtree(cache, ignore_errors=True)
    env = proc_env(PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", WARM_SCRIPT, str(root), str(cache), "cold"], check=True,
                   env=env)  # the cold scan that writes the cache
    names = ("warm", "lookup", "help", "walk", "walk_proc", "pass")
    t: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(args.runs + 1):
        t["help"].append(timed([cmr_exe(), "--help"], env))
        t["warm"].append(timed([sys.executable, "-c", WARM_SCRIPT, str(root), str(cache), "warm"], env))
        t["lookup"].append(timed([sys.executable, "-c", WARM_SCRIPT, str(root), str(cache), "lookup"], env))
        start = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", WALK_SCRIPT, str(root)], env=env, capture_output=True,
                             text=True, check=True)
        t["walk_proc"].append(time.perf_counter() - start)
        t["walk"].append(float(res.stdout.split()[0]))
        t["pass"].append(timed([sys.executable, "-c", "pass"], env))
    t = {k: v[1:] for k, v in t.items()}  # the first round warms the page cache
    # Start-up subtracted as measured by `cmr --help` in the same round (clamped at 0).
    net = {k: [max(0.0, w - h) for w, h in zip(t[k], t["help"])] for k in ("warm", "lookup")}
    common = dict(higher_is_better=False, unit="s", baseline="os.walk (timed inside its process)",
                  cmr_help_s=stats(t["help"]), os_walk_whole_process_s=stats(t["walk_proc"]),
                  python_pass_s=stats(t["pass"]))
    return {"files": n,
            "warm_fresh_process": figure(net["warm"], t["walk"], goal=0.1, whole_process_s=stats(t["warm"]),
                                         what="new process: load the cache, refresh (one stat per directory)",
                                         **common),
            "warm_fresh_process_with_lookup": figure(
                net["lookup"], t["walk"], goal=0.1, whole_process_s=stats(t["lookup"]),
                what="the same plus two name lookups (find_by_basename; no map over every file)", **common)}


# ---- entry --------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="small inputs, one section run each: a smoke test")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--size-mib", type=int, default=1024, help="file size for download/capped")
    ap.add_argument("--capped-mib-per-s", type=int, default=32, help="nginx limit_rate per connection")
    ap.add_argument("--capped-size-mib", type=int, default=512)
    ap.add_argument("--no-install", action="store_true", help="do not apt-get install aria2 when it is missing")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cmr-bench-run")
    args = ap.parse_args()
    if args.tiny:
        args.runs, args.size_mib, args.capped_size_mib, args.capped_mib_per_s = 1, 8, 4, 8
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections: {', '.join(sorted(unknown))}")
    args.work.mkdir(parents=True, exist_ok=True)
    compile_bytecode()
    result: dict = {"python": sys.version.split()[0], "install": install_mode(), "runs": args.runs, "tiny": args.tiny,
                    "load_start": load_avg()}
    import transfer_goals as tg

    need_nginx = {"startup", "download", "capped"} & set(only)
    ctx = tg.nginx_servers(args.work, args.capped_mib_per_s << 20) if need_nginx else None
    cdn = ctx.__enter__() if ctx else None
    try:
        for section in only:
            print(f"bench: {section} …", file=sys.stderr, flush=True)
            try:
                if section == "startup":
                    result[section] = bench_startup(args, args.work, cdn)
                elif section == "download":
                    result[section] = tg.bench_download(args, args.work, cdn)
                elif section == "capped":
                    result[section] = tg.bench_capped(args, args.work, cdn)
                elif section == "sidecar":
                    result[section] = bench_sidecar(args, args.work)
                elif section == "index":
                    result[section] = bench_index(args, args.work)
            except tg.Unavailable as exc:
                result[section] = {"skipped": str(exc)}
    finally:
        if ctx:
            ctx.__exit__(None, None, None)
    result["load_end"] = load_avg()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
