"""Build or refresh the shipped catalog (data/catalog.json) from public facts.

    python -m comfyui_model_resolver.sources.catalog_build [--offline] [--output FILE]
        [--templates DIR] [--manager PATH | --no-manager] [--publisher NS ...] [--all-files]

1. The official template workflows (PyPI `comfyui-workflow-templates-json`): every
   `properties.models` entry (and root `models` entry) gives a file name, its URL and folder.
2. ComfyUI-Manager's `model-list.json`, from the pinned PyPI package `comfyui-manager` (installed
   by the dev extra; or `--manager` a model-list.json, the package directory, or the wheel that
   `pip download --no-deps comfyui-manager==<pin>` leaves). Its rows keep the Manager's file name
   (renames included), folder and sub-folder, with `"origin": "manager"` and the entry's index in
   the list as provenance. The templates take precedence: a Manager row naming the same file at
   another URL is left out and listed under `manager.shadowed`
   (catalog.apply_precedence, the rule the running provider applies too).
3. Online (default): the file listings of the repos those URLs point into and of the official
   publishers' repos (Comfy-Org, comfyanonymous, black-forest-labs, stabilityai, Lightricks, Kijai,
   city96, …), through the Hub REST API (the resolver's own client: every hop allowlist-checked),
   for each file's size and LFS sha256. With `--all-files`
   every model file of those repos that sits in a ComfyUI folder (`split_files/vae/…`) is added.
4. Offline (`--offline`, or when the Hub cannot be reached): the lists alone; sizes and hashes
   already in the previous catalog are kept. Without a Manager list the previous Manager rows are kept.

The Hub endpoint and token come from Settings (CMR_HF_ENDPOINT / HF_ENDPOINT, CMR_HF_TOKEN).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..settings import Settings
from ..workflow.folders import canonical_folder, has_model_extension
from .catalog import CATALOG_FILES, apply_precedence, load_catalog
from .manager_list import MANAGER_PIN, installed_manager, manager_rows, origin_of, read_model_list
from .rank import folder_of_path
from .urls import normalise_url, parse_hf_url

log = logging.getLogger("cmr.catalog_build")

DEFAULT_PUBLISHERS = ("Comfy-Org", "comfyanonymous", "black-forest-labs", "stabilityai", "Lightricks", "Kijai",
                      "city96")
FORMAT_VERSION = 1
TEMPLATES_PACKAGE = "comfyui-workflow-templates-json"


def templates_dir() -> Path | None:
    try:
        import comfyui_workflow_templates_json as pkg
    except ImportError:
        return None
    d = Path(pkg.__file__).resolve().parent / "templates"
    return d if d.is_dir() else None


def _entries_of(wf: Any) -> Iterator[dict]:
    if not isinstance(wf, dict):
        return
    graphs = [wf]
    defs = wf.get("definitions")
    if isinstance(defs, dict):
        graphs += [g for g in defs.get("subgraphs") or [] if isinstance(g, dict)]
    for g in graphs:
        for node in g.get("nodes") or []:
            if isinstance(node, dict) and isinstance(node.get("properties"), dict):
                for m in node["properties"].get("models") or []:
                    if isinstance(m, dict):
                        yield m
    for m in wf.get("models") or []:
        if isinstance(m, dict):
            yield m


def entries_from_templates(directory: Path) -> list[dict]:
    """name/url/folder of every model the template workflows link, deduplicated by (name, url)."""
    out: dict[tuple[str, str], dict] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            wf = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for m in _entries_of(wf):
            name, url, directory_ = m.get("name"), m.get("url"), m.get("directory")
            if not (isinstance(name, str) and isinstance(url, str) and isinstance(directory_, str)):
                continue
            url = normalise_url(url)
            key = (name, url)
            e = out.setdefault(key, {"name": name, "url": url, "folder": canonical_folder(directory_.strip("/")),
                                     "templates": 0, "workflow": path.name})
            e["templates"] += 1
    return sorted(out.values(), key=lambda e: (e["name"].lower(), e["url"]))


def _merge_previous(entries: list[dict], previous: Iterable[dict]) -> None:
    old = {(e.get("name"), e.get("url")): e for e in previous}
    for e in entries:
        p = old.get((e["name"], e["url"]))
        if p:
            for k in ("size", "sha256"):
                if e.get(k) is None and p.get(k) is not None:
                    e[k] = p[k]


async def _read_hub(settings: Settings, repos: dict[str, None], publishers: Iterable[str],
                    all_files: bool) -> tuple[dict[str, dict[str, dict]], list[str]]:
    from ..errors import NotFound, SourceError, SourceUnavailable
    from .http import Upstream
    from .huggingface import HuggingFaceSource

    upstream = Upstream(settings)
    hub = HuggingFaceSource(settings, upstream)
    problems: list[str] = []
    trees: dict[str, dict[str, dict]] = {}
    try:
        if all_files:
            for ns in publishers:
                try:
                    for m in await hub.listing([("author", ns)], 1000, None, f"repos of {ns}"):
                        repos.setdefault(m["id"], None)
                except SourceError as exc:  # network, 429 after retries
                    return trees, [f"listing {ns}: {exc.message}"]
        for repo in repos:
            try:
                trees[repo] = await hub.tree(repo, None)
            except NotFound as exc:
                problems.append(f"{repo}: {exc.message}")
            except SourceError as exc:
                problems.append(f"{repo}: {exc.message}")
                if isinstance(exc, SourceUnavailable) and not trees:
                    return trees, problems + ["the Hub cannot be reached: sizes and hashes kept from before"]
    finally:
        await upstream.close()
    return trees, problems


def enrich_from_hub(entries: list[dict], settings: Settings, publishers: Iterable[str], *,
                    all_files: bool = False) -> tuple[list[dict], list[str]]:
    """Sizes and sha256 from the Hub's trees; with all_files, more entries from official repos.
    Returns the entries and the problems met (a repo that could not be read is skipped)."""
    import asyncio

    repos: dict[str, None] = {}
    for e in entries:
        hf = parse_hf_url(e["url"], (settings.hf_endpoint,))
        if hf:
            repos.setdefault(hf.repo, None)
    trees, problems = asyncio.run(_read_hub(settings, repos, publishers, all_files))
    known = {e["url"] for e in entries}
    for e in entries:
        hf = parse_hf_url(e["url"], (settings.hf_endpoint,))
        meta = trees.get(hf.repo, {}).get(hf.path) if hf else None
        if meta:
            e["size"], e["sha256"] = meta["size"], meta["sha256"]
    if all_files:
        base = "https://huggingface.co"
        for repo, files in trees.items():
            for path, meta in files.items():
                folder = folder_of_path(path)
                url = f"{base}/{repo}/resolve/main/{path}"
                if folder and has_model_extension(path) and url not in known:
                    entries.append({"name": path.rsplit("/", 1)[-1], "url": url, "folder": folder,
                                    "size": meta["size"], "sha256": meta["sha256"]})
                    known.add(url)
    return entries, problems


def _package_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _row(e: dict, templates_origin: str) -> dict:
    row = {"name": e["name"], "url": e["url"], "folder": e["folder"]}
    if e.get("subdir"):
        row["subdir"] = e["subdir"]
    if e.get("size") is not None:
        row["size"] = int(e["size"])
    if e.get("sha256"):
        row["sha256"] = str(e["sha256"]).lower()
    if e.get("origin") == "manager":
        for k in ("size_text", "title", "base"):
            if e.get(k):
                row[k] = e[k]
        row["origin"] = "manager"
        row["provenance"] = e["provenance"]
    elif "templates" in e:  # read from the templates in this run
        row["provenance"] = {"source": templates_origin, "workflow": e["workflow"], "workflows": e["templates"]}
    elif e.get("provenance"):
        row["provenance"] = e["provenance"]
    return row


def build(*, templates: Path | None, previous: list[dict], settings: Settings | None, offline: bool,
          publishers: Iterable[str] = DEFAULT_PUBLISHERS, all_files: bool = False,
          manager: tuple[Any, str] | None = None, templates_version: str | None = None) -> dict:
    """The catalog document. `manager`: (parsed model-list.json, the package version it came from)."""
    entries = entries_from_templates(templates) if templates else []
    if not templates:  # nothing new to read: keep what we had
        entries += [dict(p) for p in previous if p.get("origin") != "manager"]
    if manager is not None:
        mgr = [dict(r, origin="manager") for r in manager_rows(manager[0], origin=origin_of(manager[1]))]
    else:  # no list to read: keep the previous Manager rows
        mgr = [dict(p) for p in previous if p.get("origin") == "manager"]
    entries, shadowed = apply_precedence([entries, mgr])
    problems: list[str] = []
    if not offline and settings is not None:
        entries, problems = enrich_from_hub(entries, settings, publishers, all_files=all_files)
    _merge_previous(entries, previous)
    t_origin = f"{TEMPLATES_PACKAGE}=={templates_version or _package_version(TEMPLATES_PACKAGE)}"
    models = [_row(e, t_origin) for e in sorted(entries, key=lambda e: (e["name"].lower(), e["url"]))]
    sources = ([t_origin] if templates else []) + ([origin_of(manager[1])] if manager else [])
    doc = {"version": FORMAT_VERSION, "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "sources": sources + ([] if offline else [f"hub:{p}" for p in publishers]),
           "problems": problems}
    if manager is not None or mgr:
        doc["manager"] = {"rows": sum(1 for m in models if m.get("origin") == "manager"),
                          "shadowed": [{"name": r["name"], "folder": r["folder"], "url": r["url"],
                                        "index": r["provenance"]["index"]} for r in shadowed]}
    doc["models"] = models
    return doc


def write(catalog: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    head = {k: v for k, v in catalog.items() if k != "models"}
    lines = [json.dumps(head, ensure_ascii=False)[:-1] + ', "models": [']
    rows = [json.dumps(m, ensure_ascii=False, separators=(",", ":")) for m in catalog["models"]]
    lines += [r + ("," if i < len(rows) - 1 else "") for i, r in enumerate(rows)]
    lines.append("]}")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")  # one model per line: reviewable diffs
    tmp.replace(path)


def _manager_list(path: Path | None) -> tuple[Any, str] | None:
    """(model-list.json, version) from `--manager` or the installed pinned package; None (with a
    warning saying how to get it) when there is neither."""
    if path is not None:
        m = re.search(r"comfyui_manager-([^-]+)-", path.name)
        return read_model_list(path), (m.group(1) if m else f"file:{path.name}")
    found = installed_manager()
    if found is None:
        log.warning("comfyui-manager is not installed: the previous Manager rows are kept (pip install "
                    "comfyui-manager==%s, or pass --manager with `pip download --no-deps comfyui-manager==%s`'s "
                    "wheel)", MANAGER_PIN, MANAGER_PIN)
        return None
    directory, version = found
    if version != MANAGER_PIN:
        log.warning("comfyui-manager %s is installed, the pin is %s", version, MANAGER_PIN)
    return read_model_list(directory), version


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m comfyui_model_resolver.sources.catalog_build",
                                description="Build or refresh the shipped model catalog.")
    p.add_argument("--output", type=Path, default=CATALOG_FILES[1], help="catalog file to write")
    p.add_argument("--templates", type=Path, help="folder of template workflows (default: the installed "
                   "comfyui-workflow-templates-json package)")
    p.add_argument("--manager", type=Path, help="ComfyUI-Manager's model-list.json, its package directory or "
                   f"its wheel (default: the installed comfyui-manager, pinned to {MANAGER_PIN} in the dev extra)")
    p.add_argument("--no-manager", action="store_true", help="leave the Manager rows as they are")
    p.add_argument("--offline", action="store_true", help="do not ask the Hub; keep known sizes and hashes")
    p.add_argument("--publisher", action="append", help="official Hub namespace (repeatable)")
    p.add_argument("--all-files", action="store_true", help="add every model file of the publishers' repos")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    templates = args.templates or templates_dir()
    if templates is None:
        log.warning("comfyui-workflow-templates-json is not installed: only the previous catalog is kept")
    previous = load_catalog(args.output) if args.output.is_file() else []
    manager = None if args.no_manager else _manager_list(args.manager)
    settings = None if args.offline else Settings.load()
    catalog = build(templates=templates, previous=previous, settings=settings, offline=args.offline,
                    publishers=tuple(args.publisher or DEFAULT_PUBLISHERS), all_files=args.all_files,
                    manager=manager)
    write(catalog, args.output)
    sized = sum(1 for m in catalog["models"] if "sha256" in m)
    mgr = catalog.get("manager", {})
    log.info("%s: %d models (%d with size and sha256; %d from ComfyUI-Manager, %d of its rows shadowed by the "
             "templates)", args.output, len(catalog["models"]), sized, mgr.get("rows", 0), len(mgr.get("shadowed", [])))
    for problem in catalog["problems"]:
        log.warning("  %s", problem)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
