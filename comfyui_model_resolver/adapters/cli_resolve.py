"""`cmr resolve`: where to download each model a workflow needs. An adapter over Resolver.resolve.

    cmr resolve PATH... [--json] [--write-back OUT] [--download] [--no-preflight] [install options]

--json prints the `cmr analyze --json` object per file plus, on each model, `status`
(present|relocated|resolved|ambiguous|not_found|unavailable|auth_required), `candidates` (best first,
each with url, source, confidence, size, sha256, reasons), the provider states and the disk check.
`not_found`: every source was asked and none has the file; `unavailable`: nothing was found and a
source could not be asked (offline, a proxy, the service down).

Exit codes: 0 every model used by an active node is here or has a source, 3 some could not be looked
up (`unavailable`: check the network), 4 some no source has (`not_found`), 1 a download failed,
2 unusable input.
--write-back OUT saves the workflow with standard `properties.models` entries (name, url,
directory, hash/hash_type) on every loader node whose source is certain; with several PATHs,
OUT is a directory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import WorkflowError

if TYPE_CHECKING:  # pragma: no cover
    from ..types import Resolution, ResolvedModel
from .row_words import origin_notes, unknown_folders
from .cli import (EXIT_FAILED, EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, add_install_options,
                  analysis_json, command, report_workflow_error, settings_from_args, worst_exit)

_CANDIDATE_FIELDS = ("url", "source", "confidence", "size", "sha256", "reasons")


def resolution_json(res: "Resolution") -> dict:
    """The `cmr resolve --json` object: analyze's contract keys first, candidates' keys first too."""
    data = analysis_json(res)
    for m in data["models"]:
        for key in ("candidates",):
            m[key] = [{**{k: c[k] for k in _CANDIDATE_FIELDS}, **{k: v for k, v in c.items()
                                                                  if k not in _CANDIDATE_FIELDS}}
                      for c in m.get(key) or []]
    return data


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return "?"


def _where(m: "ResolvedModel") -> str:
    c = m.chosen or (m.candidates[0] if m.candidates else None)
    return "" if c is None else _where_of(c)


def _where_of(c: Any) -> str:
    place = f"{c.repo}/{c.path}" if c.repo and c.path and c.source != "civitai" else c.url
    return f"{c.source}: {place} ({int(c.confidence * 100)}%, {_size(c.size)})"


def _table(res: "Resolution", out=sys.stdout) -> None:
    print(f"{res.workflow}  [{res.format}]", file=out)
    for m in res.models:
        print(f"  {m.status:<13} {m.folder or '?':<18} {m.filename}"
              + ("  (pickle format: loading it can run code)" if m.pickle else ""), file=out)
        notes = origin_notes(m)  # implied by a preset, the node pack, folder unknown with its candidates
        if notes:
            print(f"      {'; '.join(notes)}", file=out)
        if unknown_folders(m) is not None and m.candidates and m.status not in ("present", "relocated"):
            print("      not downloaded without a folder: cmr download URL --folder "
                  + ("<one of them>" if unknown_folders(m) else "<the folder its node reads>"), file=out)
        if m.status == "ambiguous" and m.candidates:
            # a choice, nothing pre-chosen: every candidate (up to 5) with why it might be the file
            print(f"      pick one of {len(m.candidates)} candidates (none is certain):" if len(m.candidates) > 1
                  else "      one candidate, not certain: check it before downloading:", file=out)
            for i, c in enumerate(m.candidates[:5], 1):
                print(f"      {i}. {_where_of(c)}" + (f" — {'; '.join(c.reasons)}" if c.reasons else ""), file=out)
        elif (where := _where(m)) and m.status not in ("present", "relocated"):
            print(f"      {'->' if m.chosen else '? '} {where}", file=out)
        if m.message and m.status not in ("present", "relocated", "resolved"):
            print(f"      {m.message}", file=out)
    offline = list(dict.fromkeys(p.host or p.name for p in res.providers if p.state == "unavailable"))
    if offline:
        print(f"  OFFLINE? can't reach {', '.join(offline)}: check the network or proxy "
              "(models marked unavailable were not looked up there)", file=out)
    for p in res.providers:
        if p.state not in ("ok", "unavailable"):
            extra = f" retry after {p.retry_after:.0f} s" if p.retry_after else ""
            extra += f"; set {p.token_env}" if p.token_env else ""
            print(f"  source {p.name}: {p.state}{extra}" + (f" ({p.message})" if p.message else ""), file=out)
    for d in res.disk:
        if d.enough is False:
            print(f"  NOT ENOUGH SPACE for {d.folder} in {d.directory}: need {_size(d.needed)}, "
                  f"{_size(d.free)} free", file=out)
    counts: dict[str, int] = {}
    for m in res.models:
        counts[m.status] = counts.get(m.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    print(f"  {len(res.models)} models: {summary or 'none'}; {res.requests} upstream requests", file=out)


def lookup_exit(res: "Resolution") -> int:
    """3 when a model of an active node could not be looked up, 4 when no source has one, else 0."""
    statuses = {m.status for m in res.models if m.active}
    if "unavailable" in statuses:
        return EXIT_UNAVAILABLE
    return EXIT_NOT_FOUND if "not_found" in statuses else EXIT_OK


def _write_back(res: "Resolution", source: str, out_path: Path, max_bytes: int, hf_endpoint: str) -> int:
    """Links on a mirror endpoint are written in their huggingface.co form: the file is for sharing."""
    from ..sources.urls import to_public
    from ..workflow.decode import decode_workflow
    from ..workflow.writeback import ModelEntry, write_back

    decoded = decode_workflow(Path(source).read_bytes(), max_bytes=max_bytes)
    if decoded.kind != "ui":
        raise WorkflowError(f"{source}: write-back needs a UI workflow, not an API prompt.")
    entries = []
    for m in res.models:
        c = m.chosen
        if c is None or not m.folder or m.kind != "file":
            continue
        sha = c.sha256 or (m.preflight.sha256 if m.preflight else None)
        entries.append(ModelEntry(node_id=m.node_id, subgraph_id=m.subgraph_id, name=m.filename,
                                  url=to_public(c.url, hf_endpoint),
                                  directory=m.folder, hash=sha, hash_type="sha256" if sha else None))
    wf, n = write_back(decoded.graph, entries)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    tmp.write_text(json.dumps(wf, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, out_path)
    return n


def _out_for(target: str, source: str, many: bool) -> Path:
    if many or target.endswith(("/", os.sep)) or os.path.isdir(target):
        return Path(target) / (Path(source).stem + ".json")
    return Path(target)


async def _run_resolve(args: argparse.Namespace) -> int:
    from ..service import build_resolver
    from ..settings import process_environ

    settings = settings_from_args(args)
    resolver = await build_resolver(settings, environ=process_environ())
    status = EXIT_OK
    many = len(args.paths) > 1
    try:
        for path in args.paths:
            try:
                res = await resolver.resolve_path(path, include_present=bool(args.write_back),
                                                  preflight=not args.no_preflight)
            except WorkflowError as exc:
                status = EXIT_USAGE
                report_workflow_error(path, exc, as_json=args.json)
                continue
            if args.json:
                print(json.dumps(resolution_json(res)), flush=True)
            else:
                _table(res)
            status = worst_exit(status, lookup_exit(res))
            if args.write_back:
                out = _out_for(args.write_back, path, many)
                try:
                    n = _write_back(res, path, out, settings.max_workflow_bytes, settings.hf_endpoint)
                except (WorkflowError, OSError) as exc:
                    status = EXIT_USAGE
                    print(f"{path}: write-back failed: {getattr(exc, 'message', exc)}", file=sys.stderr)
                    continue
                print(f"{path}: wrote {n} download link(s) to {out}", file=sys.stderr)
            if args.download:
                status = worst_exit(status, await _download(resolver, res, args))
    finally:
        await resolver.close()
    return status


async def _download(resolver, res, args: argparse.Namespace) -> int:
    """Download the confident answers of one resolve result with progress bars."""
    import time

    from ..downloads.job import Job
    from ..downloads.plan import plan_downloads
    from .download_bars import run_downloads

    requests, skipped = plan_downloads(res.models, include_inactive=args.include_inactive)
    for s in skipped:
        print(f"{res.workflow}: not downloading {s.filename}: {s.reason}", file=sys.stderr)
    if not requests:
        return EXIT_OK
    start = time.monotonic()
    outcomes = await run_downloads(resolver.downloads, requests, bars=False if args.no_progress else None)
    failed = 0
    for req, outcome in zip(requests, outcomes):
        if isinstance(outcome, Job) and outcome.state.value == "completed":
            if args.json:
                print(json.dumps({"path": outcome.path, "size": outcome.total, "sha256": outcome.sha256,
                                  "seconds": round(time.monotonic() - start, 3)}), flush=True)
        else:
            failed += 1
            err = outcome.error if isinstance(outcome, Job) else outcome.to_dict()
            msg = (err or {}).get("message") or (getattr(outcome, "state", None) and outcome.state.value)
            print(f"{res.workflow}: download of {req.filename} failed: {msg}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


@command("resolve", "find where to download each model a workflow needs, ranked and explained", downloads=True)
def _configure_resolve(p: argparse.ArgumentParser) -> Callable[..., Any]:
    p.add_argument("paths", nargs="+", metavar="PATH", help="workflow .json, or .png/.webp saved by ComfyUI")
    add_install_options(p)
    p.add_argument("--json", action="store_true", help="one JSON object per input file, one per line")
    p.add_argument("--write-back", metavar="OUT",
                   help="save the workflow with properties.models download links (a directory with several PATHs)")
    p.add_argument("--download", action="store_true",
                   help="download every confidently resolved missing model, verified, with progress bars")
    p.add_argument("--include-inactive", action="store_true", help="with --download: also models of bypassed/muted nodes")
    p.add_argument("--no-progress", action="store_true", help="with --download: no progress bars")
    p.add_argument("--no-preflight", action="store_true", help="skip the HEAD check of the chosen files")
    return _run_resolve


__all__ = ["resolution_json"]
