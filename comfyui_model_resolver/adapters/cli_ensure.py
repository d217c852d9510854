"""`cmr ensure WORKFLOW... [--wait]`: make sure every model of these workflows is on this host's
models volume, queueing the missing ones that have a confident source (see ensure.py).

Exit codes: 0 every needed model is here; 1 some could not be ensured (no confident source, a
failed download: each is named with the reason); 2 a workflow could not be read; 75 downloads are
queued but not finished (without --wait, or --timeout ran out): run it again, or with --wait.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from .cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_install_options, command, settings_from_args

EXIT_QUEUED = 75  # EX_TEMPFAIL: not yet, try again later


def exit_code(report: Any) -> int:
    if report.errors:
        return EXIT_USAGE
    states = {i.state for i in report.items if i.blocking}
    if not states:
        return EXIT_OK
    return EXIT_QUEUED if states == {"queued"} else EXIT_FAILED


def _print(report: Any) -> None:
    for err in report.errors:
        e = err["error"]
        print(f"{err['workflow']}: cannot ensure its models: {e.get('message')}"
              + (f" ({e['hint']})" if e.get("hint") else ""), file=sys.stderr)
    for i in report.items:
        where = f"{i.folder}/{i.filename}" if i.folder else i.filename
        if i.state == "present":
            continue
        if i.state == "downloaded":
            print(f"{i.workflow}: {where}: downloaded" + (f" by {i.host}" if i.host else ""), file=sys.stderr)
        elif i.state == "queued":
            print(f"{i.workflow}: {where}: queued" + (f" ({i.reason})" if i.reason else ""), file=sys.stderr)
        elif i.state == "not_needed":
            print(f"{i.workflow}: {where}: not needed now: {i.reason}", file=sys.stderr)
        else:
            print(f"{i.workflow}: {where}: NOT ensured: {i.reason}", file=sys.stderr)
    c = report.counts()
    summary = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in sorted(c.items())) or "no models"
    print(("all needed models are here" if report.ok else "not every needed model is here") + f" ({summary})",
          file=sys.stderr)


async def _run_ensure(args: argparse.Namespace) -> int:
    from ..service import build_resolver
    from ..settings import process_environ

    settings = settings_from_args(args)
    resolver = await build_resolver(settings, environ=process_environ())
    try:
        report = await resolver.ensure_paths(args.paths, wait=args.wait, timeout=args.timeout)
    finally:
        await resolver.close()
    if args.json:
        print(json.dumps(report.to_dict()), flush=True)
    else:
        _print(report)
    return exit_code(report)


@command("ensure", "make sure every model of these workflows is on this host's models volume (for start-up)",
         downloads=True)
def _configure_ensure(p: argparse.ArgumentParser) -> Callable[..., Any]:
    p.add_argument("paths", nargs="+", metavar="WORKFLOW", help="workflow .json, or .png/.webp saved by ComfyUI")
    add_install_options(p)
    p.add_argument("--wait", action="store_true",
                   help="wait until the queued downloads are done (on this host or, with CMR_REDIS_URL, any host)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="with --wait: give up waiting after this")
    p.add_argument("--json", action="store_true", help="the report as one JSON object")
    return _run_ensure
