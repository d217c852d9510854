"""Extend data/loaders.json with the loaders of popular node packs, read from their own code.

    python -m comfyui_model_resolver.workflow.loaders_build --mirror DIR [--repo OWNER/NAME ...]
        [--table FILE] [--provenance FILE] [--show]

1. Which packs: every git mirror under DIR (`DIR/<owner>+<name>/repo`, as `fetch` leaves them),
   or the `--repo`s given; ComfyUI itself (Comfy-Org+ComfyUI) is read only for its core folder
   registry. Popularity is the GitHub star count in the pinned comfyui-manager's github-stats.json.
2. Each pack's Python files at HEAD are read by `loaders_extract` (never imported or run).
3. A node type the table already has (hand-checked entries, `non_model`) is never changed. A new
   one is added with its widgets, model inputs and `provenance` (file and line of its class at
   the commit read); `widgets_uncertain` and a note when the extractor could not read all of it.
   When two packs define the same node type, the more popular pack's wins (the other is reported).
4. A folder key becomes the folder the files are in: a core key as it is (canonical: `clip` is
   `text_encoders`), a key some pack registers with a literal `models_dir` path as that path, any
   other key as itself (ComfyUI's own convention) with a note. `os.listdir(models_dir/<dir>)`
   loaders name the literal directory (`hardcoded`).
5. The table's `packs` section records, per pack read: repo, commit, stars, Registry id
   (pyproject `name`), the folders it registers (with file and line) and its loader count.
   Detection reads it to name candidate folders for a node of a known pack it has no entry for.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..sources.pack_sources_build import head_texts, stars
from .folders import canonical_folder
from .implied_extract import Implied
from .loaders_extract import Loader, Registration, extract_pack
from .mirrors import git, mirror_dir

log = logging.getLogger("cmr.loaders_build")

DATA = Path(__file__).resolve().parent.parent / "data"
TABLE_PATH = DATA / "loaders.json"
PROVENANCE_PATH = DATA / "loaders_provenance.md"
CORE_MIRROR = "Comfy-Org+ComfyUI"
SKIP_PARTS = {"test", "tests", ".github", "node_modules", "__pycache__", "docs", "examples", "example"}
#: Folder keys that list things other than model files (video formats, fonts, MIDI, styles …).
NOT_MODEL_KEYS = {"video_formats", "VHS_video_formats", "midi_files", "fonts", "font", "wildcards", "styles",
                  "prompts", "custom_nodes", "workflows", "input", "output", "temp", "user"}
#: Inputs whose combo lists sub-folders or adds a picked name to a text, not a file to load.
NOT_MODEL_INPUTS = re.compile(r"(?i)select to add|category|filter|^folder$|subfolder|^(image|images|video|audio|mask)$")
TABLE_START, TABLE_END = "<!-- extracted packs: generated -->", "<!-- end of extracted packs -->"


def python_files(git_dir: Path) -> dict[str, str]:
    """path -> text of the pack's Python files at HEAD (tests, docs and examples left out)."""
    def wanted(path: str) -> bool:
        parts = path.lower().split("/")
        return path.endswith(".py") and not any(p in SKIP_PARTS for p in parts[:-1])

    return head_texts(git_dir, wanted)


def registry_id(git_dir: Path) -> str | None:
    """The Comfy Registry id: `[project] name` in the pack's pyproject.toml."""
    try:
        text = git(git_dir, "show", "HEAD:pyproject.toml")
    except subprocess.CalledProcessError:
        return None
    m = re.search(r'(?ms)^\[project\].*?^name\s*=\s*"([^"]+)"', text)
    return m.group(1) if m else None


def core_keys(mirror: Path) -> dict[str, str]:
    """ComfyUI's own folder keys -> their first models/ sub-path, from a ComfyUI mirror's folder_paths.py."""
    git_dir = mirror_dir(mirror, CORE_MIRROR)
    if git_dir is None:
        log.warning("no ComfyUI mirror (%s) under %s: core folder keys taken as themselves", CORE_MIRROR, mirror)
        return {}
    _, regs, _ = extract_pack({"folder_paths.py": git(git_dir, "show", "HEAD:folder_paths.py")})
    return {r.folder: r.path or r.folder for r in regs}


def folder_spec(keys: list[str], *, core: dict[str, str], registered: dict[str, str]) -> tuple[dict | None, list[str]]:
    """The table spec of a combo reading these folder keys, and notes."""
    folders, notes = [], []
    for key in keys:
        if key in NOT_MODEL_KEYS:
            continue
        if key in core or canonical_folder(key) in core:
            folders.append(canonical_folder(key))
        elif key in registered:
            folders.append(canonical_folder(registered[key]) if "/" not in registered[key] else registered[key])
        else:
            folders.append(key)
            notes.append(f"folder key {key!r} is not registered with a literal path in code we read; "
                         f"ComfyUI's convention models/{key} assumed")
    folders = list(dict.fromkeys(folders))
    if not folders:
        return None, notes
    spec: dict[str, Any] = {"folder": folders[0]}
    if folders[1:]:
        spec["alt_folders"] = folders[1:]
    return spec, notes


def entry_of(loader: Loader, pack: str, *, core: dict[str, str], registered: dict[str, str]) -> dict | None:
    models: dict[str, Any] = {}
    notes: list[str] = []
    for name, found in loader.models.items():
        if NOT_MODEL_INPUTS.search(name):
            continue
        if "dir" in found:  # the widget names an insightface model folder the node loads
            spec = {"dir": found["dir"], "note": f"{found['call']} at {found['file']}:{found['line']} loads "
                                                 f"models/{found['dir']}/<value>"}
            if not found["dir"].startswith("insightface/"):
                spec["hardcoded"] = True
        elif "listdir" in found:
            spec: dict[str, Any] | None = {"folder": found["listdir"], "hardcoded": True,
                                           "note": f"the node lists models/{found['listdir']} itself"}
        else:
            spec, more = folder_spec(found["folder"], core=core, registered=registered)
            notes += more
        if spec is None:
            continue
        if found.get("auto_download"):
            spec["auto_download"] = True
        models[name] = spec
    implicit = [implied_entry(i) for i in loader.implied if i.filename]
    if not models and not implicit:
        return None
    entry: dict[str, Any] = {"pack": pack, "widgets": loader.widgets, "models": models}
    if implicit:
        entry["implicit"] = implicit
    if loader.uncertain:
        entry["widgets_uncertain"] = True
        notes.append("extractor: " + "; ".join(dict.fromkeys(loader.uncertain)))
    if notes:
        entry["note"] = " | ".join(dict.fromkeys(notes))[:600]
    entry["provenance"] = {"file": loader.file, "line": loader.line}
    return entry


def implied_entry(imp: Implied) -> dict[str, Any]:
    """A table `implicit` entry for a model the node's code loads by itself, with the call's file and line."""
    out: dict[str, Any] = {"filename": imp.filename, "folder": imp.folder, "kind": "dir",
                           "note": f"insightface face-analysis model: {imp.call} loads models/{imp.folder}/{imp.filename}",
                           "provenance": {"file": imp.file, "line": imp.line}}
    if not imp.folder.startswith("insightface/"):
        out["hardcoded"] = True
    return out


def read_pack(git_dir: Path) -> tuple[str, str | None, list[Loader], list[Registration], list[str]]:
    commit = git(git_dir, "rev-parse", "HEAD").strip()
    loaders, regs, problems = extract_pack(python_files(git_dir))
    return commit, registry_id(git_dir), loaders, regs, problems


def build(table: dict, mirror: Path, repos: list[str], stars: dict[str, int], *, show: bool = False) -> dict:
    """The table with every readable pack's new loaders added and its `packs` section rewritten."""
    core = core_keys(mirror)
    read: dict[str, tuple] = {}
    for repo in repos:
        git_dir = mirror_dir(mirror, repo)
        if git_dir is None:
            log.warning("%s: no mirror under %s; left as it was", repo, mirror)
            continue
        read[repo] = read_pack(git_dir)
    registered: dict[str, str] = {}
    for repo, (_, _, _, regs, _) in read.items():
        for r in regs:
            if r.path and r.folder not in core:
                registered.setdefault(r.folder, r.path)
    rereading = {repo.split("/", 1)[1] for repo in read}
    nodes = {k: v for k, v in table["nodes"].items() if not ("provenance" in v and v.get("pack") in rereading)}
    known = set(nodes) | set(table.get("non_model") or {})
    packs = dict(table.get("packs") or {})
    owner: dict[str, str] = {}
    for repo in sorted(read, key=lambda r: (-stars.get(r.lower(), 0), r.lower())):
        commit, cnr, loaders, regs, problems = read[repo]
        pack = repo.split("/", 1)[1]
        added, skipped = [], []
        for loader in loaders:
            if loader.node_type in known:
                continue
            if loader.node_type in owner:
                skipped.append(f"{loader.node_type} (also in {owner[loader.node_type]})")
                continue
            entry = entry_of(loader, pack, core=core, registered=registered)
            if entry is None:
                continue
            nodes[loader.node_type] = entry
            owner[loader.node_type] = pack
            added.append(loader.node_type)
        hand = sum(1 for e in table["nodes"].values() if e.get("pack") == pack and "provenance" not in e)
        packs[pack] = {
            "repo": repo, "commit": commit, "stars": stars.get(repo.lower()), "registry_id": cnr,
            "registers": [{"key": r.folder, "path": r.path, "file": r.file, "line": r.line} for r in regs],
            "loaders": hand + len(added), "extracted": len(added),
        }
        if show:
            print(f"== {pack} ({repo} {commit[:8]}, {stars.get(repo.lower())} stars): {len(added)} added, {hand} by hand")
            for t in added:
                e = nodes[t]
                print(f"  + {t}: {json.dumps(e['models'])} {e['provenance']['file']}:{e['provenance']['line']}"
                      f"{'  UNCERTAIN' if e.get('widgets_uncertain') else ''}")
            for s in skipped + problems:
                print(f"  - {s}")
    out = dict(table)
    out["nodes"] = nodes
    out["packs"] = dict(sorted(packs.items(), key=lambda kv: (-(kv[1].get("stars") or 0), kv[0].lower())))
    return out


def provenance_table(table: dict) -> str:
    rows = ["| pack | repository | commit read | stars | loaders (extracted) | folders it registers |",
            "|---|---|---|---|---|---|"]
    for name, p in table.get("packs", {}).items():
        regs = ", ".join(sorted({f"{r['key']}" + (f"→models/{r['path']}" if r.get("path") and r["path"] != r["key"] else "")
                                 for r in p["registers"]}))
        rows.append(f"| {name} | {p['repo']} | {p['commit'][:8]} | {p.get('stars') or '?'} | {p['loaders']} "
                    f"({p['extracted']}) | {regs} |")
    return "\n".join(rows)


def write_provenance(table: dict, path: Path) -> None:
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if TABLE_START not in text:
        text += f"\n## Packs read by loaders_build\n\n{TABLE_START}\n{TABLE_END}\n"
    head, _, rest = text.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    path.write_text(f"{head}{TABLE_START}\n{provenance_table(table)}\n{TABLE_END}{tail}", encoding="utf-8")


def mirrored_repos(mirror: Path) -> list[str]:
    out = []
    for d in sorted(mirror.iterdir()):
        if d.is_dir() and "+" in d.name and d.name != CORE_MIRROR and mirror_dir(mirror, d.name):
            out.append(d.name.replace("+", "/", 1))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m comfyui_model_resolver.workflow.loaders_build",
                                description="Add popular node packs' loaders to the loader table, from their code.")
    p.add_argument("--mirror", type=Path, required=True, help="folder of git mirrors (<owner>+<name>/repo)")
    p.add_argument("--repo", action="append", help="read only this pack (owner/name, repeatable)")
    p.add_argument("--table", type=Path, default=TABLE_PATH)
    p.add_argument("--provenance", type=Path, default=PROVENANCE_PATH)
    p.add_argument("--show", action="store_true", help="print what was added and skipped per pack")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = json.loads(args.table.read_text(encoding="utf-8"))
    repos = args.repo or mirrored_repos(args.mirror)
    out = build(table, args.mirror, repos, stars(), show=args.show)
    tmp = args.table.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(args.table)
    write_provenance(out, args.provenance)
    with_loaders = sum(1 for v in out["packs"].values() if v["loaders"])
    log.info("%s: %d node types, %d packs read (%d with loaders)", args.table, len(out["nodes"]),
             len(out["packs"]), with_loaders)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
