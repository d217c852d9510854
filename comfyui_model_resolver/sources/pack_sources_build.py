"""Build data/pack_sources.json from node packs' own repositories and a reviewed table.

    python -m comfyui_model_resolver.sources.pack_sources_build --mirror DIR [--pack NAME ...]
        [--review FILE] [--output FILE] [--provenance FILE] [--show]

1. The packs and what a person decided about them come from the review file
   (data/pack_sources_review.json): per pack its GitHub repo, the folder its files go to when the
   text does not say (`folder`; with `folder_only` always), regexes that set the folder of some
   files (`folders`: "<folder>[/<sub-folder>]", `{repo}` is the hit's repo id, "-" drops), regexes of hits to
   drop (`drop`: papers, demo inputs, other projects' weights), the files to read (`include`,
   default: docs and Python code), and `add`: sources the text gives in a form the extractor cannot
   read (each with the file and a literal piece of the line, whose line number is looked up).
2. Each pack's repository is read from a git mirror (`DIR/<owner>+<name>/repo`, a bare
   repository, as the `fetch` tool and `git clone --mirror` leave it) at its HEAD commit; nothing of
   it is copied into this project but the facts: file name, folder, source, file and line.
3. pack_sources_extract finds the sources; the review is applied; duplicates are merged (the
   first place, docs before code, is the provenance).
4. Popularity is the GitHub star count in ComfyUI-Manager's github-stats.json (the pinned
   comfyui-manager package). A pack whose mirror is missing keeps its previous entry.

`--show` prints every kept and dropped hit per pack, for the review.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..workflow.folders import canonical_folder
from ..workflow.mirrors import git, mirror_dir
from .manager_list import installed_manager
from .pack_sources import DEFAULT_PATH
from .pack_sources_extract import CODE_FOLDER, Hit, extract, family_of, layout_folder

log = logging.getLogger("cmr.pack_sources_build")

REVIEW_PATH = DEFAULT_PATH.parent / "pack_sources_review.json"
PROVENANCE_PATH = DEFAULT_PATH.parent / "pack_sources_provenance.md"
DEFAULT_INCLUDE = ("*.md", "*.MD", "*.txt", "*.rst", "*.py")
SKIP_PARTS = ("test", "tests", ".github", "node_modules", "__pycache__", "imports", "vendor", "third_party",
              "thirdparty", "3rdparty", "external")  # vendored copies of other projects are not the pack's word
MAX_FILE_BYTES = 1_500_000
STRICT_DISTANCE = 2  # lines between a link and the folder its text names, for `strict` packs
_FOLDER_OK = re.compile(r"^[A-Za-z0-9][\w.+-]{0,63}(?:/[A-Za-z0-9][\w.+-]{0,63}){0,5}$")
TABLE_START, TABLE_END = "<!-- packs table: generated -->", "<!-- end of packs table -->"


def _wanted(path: str, include: list[str], exclude: list[str]) -> bool:
    parts = path.split("/")
    if any(p.lower() in SKIP_PARTS for p in parts[:-1]) or any(fnmatch.fnmatch(path, g) for g in exclude):
        return False
    name = parts[-1]
    if name.lower().startswith("requirements"):
        return False
    return any(fnmatch.fnmatch(name, g) or fnmatch.fnmatch(path, g) for g in include)


def _doc_first(path: str) -> tuple:
    low = path.lower()
    return (not low.split("/")[-1].startswith("readme"), not low.endswith((".md", ".txt", ".rst")), path.count("/"), path)


def head_texts(git_dir: Path, wanted) -> dict[str, str]:
    """path -> text of the files at HEAD for which `wanted(path)` holds (at most MAX_FILE_BYTES each),
    read in one `git cat-file --batch`."""
    blobs: list[tuple[str, str]] = []
    for row in git(git_dir, "ls-tree", "-r", "-l", "HEAD").splitlines():
        meta, _, path = row.partition("\t")
        fields = meta.split()
        if len(fields) < 4 or fields[1] != "blob" or not fields[3].isdigit() or int(fields[3]) > MAX_FILE_BYTES:
            continue
        if wanted(path):
            blobs.append((fields[2], path))
    if not blobs:
        return {}
    raw = subprocess.run(["git", f"--git-dir={git_dir}", "cat-file", "--batch"], check=True, capture_output=True,
                         input="".join(f"{sha}\n" for sha, _ in blobs).encode()).stdout
    out, pos = {}, 0
    for _, path in blobs:
        end = raw.index(b"\n", pos)
        size = int(raw[pos:end].split()[2])
        out[path] = raw[end + 1:end + 1 + size].decode("utf-8", errors="replace")
        pos = end + 1 + size + 1
    return out


def read_pack(git_dir: Path, review: dict) -> tuple[str, list[tuple[str, list[Hit], list[str]]]]:
    """(commit, [(path, hits, lines)]) of one pack's repository at HEAD, docs first."""
    commit = git(git_dir, "rev-parse", "HEAD").strip()
    include = list(review.get("include") or DEFAULT_INCLUDE)
    exclude = list(review.get("exclude") or ())
    texts = head_texts(git_dir, lambda path: _wanted(path, include, exclude))
    files = []
    for path in sorted(texts, key=_doc_first):
        text = texts[path]
        hits = extract(path, text)
        if hits or any(a.get("file") == path for a in review.get("add") or ()):
            files.append((path, hits, text.splitlines()))
    return commit, files


def _text_of(h: Hit, path: str) -> str:
    s = h.source
    return " ".join(str(x) for x in (h.filename or "", s.get("repo") or "", s.get("path") or "",
                                     s.get("path_prefix") or "", s.get("url") or "", s.get("model_id") or "",
                                     s.get("version_id") or "", f"@{path}"))


def _added(review: dict, files: dict[str, list[str]]) -> list[tuple[str, Hit]]:
    out = []
    for a in review.get("add") or ():
        lines = files.get(a["file"])
        line = next((i + 1 for i, t in enumerate(lines or ()) if a["match"] in t), None)
        if line is None:
            raise ValueError(f"review 'add' for {a.get('filename') or a['source']}: {a['match']!r} is not in {a['file']}")
        h = Hit("hf" if a.get("filename") else "hf_repo", line, a.get("filename"), dict(a["source"]),
                folder=a["folder"], subdir=a.get("subdir"), context="(review) " + a["match"])
        if a.get("family"):
            h.notes.append("family:" + a["family"])
        out.append((a["file"], h))
    return out


def split_place(spec: str) -> tuple[str | None, str | None]:
    """'ipadapter/sd15' -> ('ipadapter', 'sd15'); 'custom_nodes/<pack>/<dir>/x' -> ('custom_nodes/<pack>/<dir>', 'x');
    '-' -> (None, None): the hit is not a model this pack loads."""
    parts = [p for p in spec.strip("/").split("/") if p]
    if not parts or parts == ["-"]:
        return None, None
    n = 3 if parts[0] == "custom_nodes" else 1
    return canonical_folder("/".join(parts[:n])), "/".join(parts[n:]) or None


def apply_review(review: dict, commit: str, files: list[tuple[str, list[Hit], list[str]]]
                 ) -> tuple[dict, list[tuple[str, Hit, str]]]:
    """The pack's table entry and the dropped hits (path, hit, why)."""
    folders = [(re.compile(rx, re.IGNORECASE), spec) for rx, spec in (review.get("folders") or {}).items()]
    drops = [re.compile(rx, re.IGNORECASE) for rx in review.get("drop") or ()]
    default = review.get("folder")
    entries: list[tuple[str, Hit]] = [(p, h) for p, hits, _ in files for h in hits]
    entries += _added(review, {p: lines for p, _, lines in files})
    kept_files: list[dict] = []
    kept_repos: list[dict] = []
    dropped: list[tuple[str, Hit, str]] = []
    seen: set[tuple] = set()
    for path, h in entries:
        text = _text_of(h, path)
        if not h.context.startswith("(review)"):
            if any(rx.search(text) for rx in drops):
                dropped.append((path, h, "review: drop"))
                continue
            spec = next((spec for rx, spec in folders if rx.search(text)), None)
            if spec is None and (h.folder is None or review.get("folder_only")):
                spec = default
            if spec is not None:
                h.folder, h.subdir = split_place(spec.replace("{repo}", str(h.source.get("repo") or "")))
            elif review.get("strict"):
                why = doubt(h, review.get("_reads"))
                if why:
                    dropped.append((path, h, "uncertain: " + why))
                    continue
        if not h.folder or not _FOLDER_OK.match(h.folder + ("/" + h.subdir if h.subdir else "")):
            dropped.append((path, h, f"no folder ({h.folder!r})"))
            continue
        fam = next((n[7:] for n in h.notes if n.startswith("family:")), None) or review.get("family") or \
            family_of(h.filename, h.source.get("path"), h.source.get("repo"))
        prov = {"file": path, "line": h.line}
        if h.filename:
            key = ("f", h.filename.lower(), h.folder, h.subdir)
            if key in seen:
                continue
            seen.add(key)
            row: dict[str, Any] = {"filename": h.filename, "folder": h.folder}
            if h.subdir:
                row["subdir"] = h.subdir
            row.update(source=h.source, family=fam, sha256=None, provenance=prov)
            kept_files.append(row)
        elif h.source.get("type") in ("hf", "civitai"):
            key = ("r", h.source.get("repo") or h.source.get("model_id"), h.folder, h.source.get("path_prefix"))
            if key in seen:
                continue
            seen.add(key)
            row = {"folder": h.folder}
            if h.subdir:
                row["subdir"] = h.subdir
            row.update(source=h.source, family=fam, provenance=prov)
            kept_repos.append(row)
    file_repos = {(f["source"].get("repo"), f["folder"]) for f in kept_files}
    repos = [r for r in kept_repos if (r["source"].get("repo"), r["folder"]) not in file_repos
             or r["source"].get("path_prefix")]
    body = {"repo": review["repo"], "commit": commit, "popularity": None, "files": kept_files, "repos": repos}
    return body, dropped


def doubt(h: Hit, reads: set[str] | None = None) -> str | None:
    """Why a hit's folder is not certain enough to ship (for packs reviewed `strict`), or None.

    Shipped: a folder written on the hit's line, up to STRICT_DISTANCE lines above it, in the same
    paragraph, list or table (code: the same function), or above it under the same heading with no other
    folder named in between ("Download to `models/sams`:" then a table of links), that the
    file's directory in its repo does not contradict and that the repo's layout or the pack's own
    loaders confirm (`reads`: the folders its loader entries in data/loaders.json read and the
    folder keys it registers); or, with no folder in the text, the folder the repo's layout names
    (`split_files/vae/…`). Held back: a folder written further away (a heading several rows up is
    often another section's), text and layout disagreeing, or a folder neither ComfyUI nor the pack's
    loaders or code read."""
    layout = layout_folder(h.source.get("path")) if h.filename else None
    if h.folder is None:
        if layout:
            h.folder, h.subdir = layout, None
        return None  # without a layout folder it is dropped later for having none
    if layout and layout != h.folder:
        return f"the text says {h.folder}, the repo's layout says {layout}"
    if h.distance is None or (h.distance > STRICT_DISTANCE and not h.same_block and not h.same_section):
        return f"folder {h.folder!r} is written {h.distance} lines away from the link, in another block"
    if layout != h.folder and reads is not None and h.folder.lower() not in reads:
        return f"neither ComfyUI nor the pack's code reads {h.folder!r}"
    return None


#: ComfyUI's own folders: a pack documenting a file for a core loader (a checkpoint, a LoRA, a VAE …).
CORE_FOLDERS = frozenset({"checkpoints", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
                          "style_models", "embeddings", "controlnet", "upscale_models", "model_patches",
                          "latent_upscale_models", "audio_encoders", "vae_approx", "gligen", "hypernetworks",
                          "photomaker"})


def code_folders(git_dir: Path) -> set[str]:
    """Lower-cased folders the pack's Python names: `folder_paths.get_folder_paths("x")` and the like,
    and `os.path.join(folder_paths.models_dir, "x")`."""
    out: set[str] = set()
    for path, text in head_texts(git_dir, lambda p: p.endswith(".py") and _wanted(p, ["*.py"], [])).items():
        for m in CODE_FOLDER.finditer(text):
            out.add(canonical_folder(m.group(1) or m.group(2)).lower())
    return out


def pack_reads(loaders: dict, pack: str) -> set[str]:
    """Lower-cased folders (and first parts of literal paths) the pack's loader entries read or it registers."""
    out: set[str] = set()

    def add(folder: str | None) -> None:
        if folder:
            out.add(canonical_folder(folder.strip("/").split("/")[0]).lower())

    def walk(spec) -> None:
        if isinstance(spec, str):
            add(spec)
        elif isinstance(spec, dict):
            for key in ("folder", "dir"):
                add(spec.get(key))
            for f in spec.get("alt_folders") or ():
                add(f)
            add((spec.get("repo") or {}).get("folder"))
            for items in (spec.get("presets") or {}).values():
                for item in items:
                    add(item.get("folder"))

    for entry in (loaders.get("nodes") or {}).values():
        if entry.get("pack") != pack:
            continue
        for group in ("models", "dict_widgets", "input_patterns"):
            for spec in (entry.get(group) or {}).values():
                walk(spec)
        for item in entry.get("implicit") or ():
            add(item.get("folder"))
    for reg in ((loaders.get("packs") or {}).get(pack) or {}).get("registers") or ():
        add(reg.get("key"))
        add(reg.get("path"))
    return out


def stars() -> dict[str, int]:
    """GitHub stars per `owner/name` (lower-case) from the pinned comfyui-manager's github-stats.json."""
    found = installed_manager()
    if found is None:
        return {}
    data = json.loads((found[0] / "github-stats.json").read_text(encoding="utf-8"))
    out = {}
    for url, v in data.items():
        m = re.match(r"https?://github\.com/([^/]+/[^/#?]+?)(?:\.git)?/?$", url)
        if m and isinstance(v, dict) and isinstance(v.get("stars"), int):
            out[m.group(1).lower()] = v["stars"]
    return out


def build(review_doc: dict, mirror: Path, previous: dict, *, only: set[str] | None = None,
          show: bool = False, loaders: dict | None = None) -> dict:
    """The table from the review and the mirrors. `loaders` (data/loaders.json) gives strict packs the
    folders their own loaders read, which a documented folder must be one of."""
    popularity = stars()
    packs: dict[str, dict] = {}
    for name, review in review_doc["packs"].items():
        old = (previous.get("packs") or {}).get(name)
        git_dir = mirror_dir(mirror, review["repo"])
        if (only and name not in only) or git_dir is None:
            if git_dir is None and (not only or name in only):
                log.warning("%s: no mirror of %s under %s; %s", name, review["repo"], mirror,
                            "previous entry kept" if old else "left out")
            if old:
                packs[name] = old
            continue
        commit, files = read_pack(git_dir, review)
        reads = None
        if loaders is not None:
            reads = pack_reads(loaders, review["repo"].split("/", 1)[1]) | code_folders(git_dir) | CORE_FOLDERS
        body, dropped = apply_review({**review, "_reads": reads}, commit, files)
        body["popularity"] = popularity.get(review["repo"].lower())
        held = [_uncertain_row(path, h, why) for path, h, why in dropped if why.startswith("uncertain: ")]
        if held:
            review["uncertain"] = held
        else:
            review.pop("uncertain", None)
        if show:
            _show(name, body, dropped)
        if body["files"] or body["repos"]:
            packs[name] = body
        else:
            log.warning("%s: no documented source kept", name)
    ordered = dict(sorted(packs.items(), key=lambda kv: (-(kv[1].get("popularity") or 0), kv[0].lower())))
    mgr = installed_manager()
    return {"version": 1, "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "popularity": f"GitHub stars, comfyui-manager=={mgr[1] if mgr else '?'} github-stats.json",
            "packs": ordered}


def _uncertain_row(path: str, h: Hit, why: str) -> dict:
    """A hit held back from the table, as the review file lists it (generated; not shipped)."""
    row: dict[str, Any] = {"filename": h.filename} if h.filename else {}
    row.update(source=h.source, folder_guess=h.folder + (f"/{h.subdir}" if h.subdir else ""),
               why=why.removeprefix("uncertain: "), provenance={"file": path, "line": h.line})
    return row


def _show(name: str, body: dict, dropped: list[tuple[str, Hit, str]]) -> None:
    print(f"== {name} ({body['repo']} {body['commit'][:8]}): {len(body['files'])} files, {len(body['repos'])} repos")
    for f in body["files"]:
        s = f["source"]
        src = s.get("repo", "") + ":" + s.get("path", "") if s["type"] == "hf" else json.dumps(s)
        print(f"  + {f['folder']}{'/' + f['subdir'] if f.get('subdir') else ''} {f['filename']} <- {src} "
              f"[{f['provenance']['file']}:{f['provenance']['line']}] {f['family'] or ''}")
    for r in body["repos"]:
        print(f"  R {r['folder']}{'/' + r['subdir'] if r.get('subdir') else ''} <- {json.dumps(r['source'])} [{r['provenance']['file']}:{r['provenance']['line']}]")
    for path, h, why in dropped:
        print(f"  - {why}: {h.filename or ''} {json.dumps(h.source)} [{path}:{h.line}]")


def write(doc: dict, path: Path) -> None:
    """One pack header and one entry per line: reviewable diffs."""
    def one(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    head = {k: v for k, v in doc.items() if k != "packs"}
    out = [json.dumps(head, ensure_ascii=False)[:-1] + ', "packs": {']
    for n, (name, p) in enumerate(doc["packs"].items()):
        meta = {k: p[k] for k in ("repo", "commit", "popularity")}
        out.append(f" {one(name)}: {one(meta)[:-1]},")
        for key in ("files", "repos"):
            rows = [f"  {one(e)}" for e in p[key]]
            out.append(f'  "{key}": [' + ("\n" + ",\n".join(rows) + "\n  ]" if rows else "]") + ("," if key == "files" else ""))
        out.append(" }" + ("," if n < len(doc["packs"]) - 1 else ""))
    out.append("}}")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    tmp.replace(path)


def provenance_table(doc: dict) -> str:
    rows = ["| pack | repository | commit read | stars | files | repos | read from |", "|---|---|---|---|---|---|---|"]
    for name, p in doc["packs"].items():
        read = sorted({e["provenance"]["file"] for e in p["files"] + p["repos"]})
        rows.append(f"| {name} | {p['repo']} | {p['commit'][:8]} | {p.get('popularity') or '?'} | {len(p['files'])} | "
                    f"{len(p['repos'])} | {', '.join(read[:6])}{' …' if len(read) > 6 else ''} |")
    return "\n".join(rows)


def write_provenance(doc: dict, path: Path) -> None:
    text = path.read_text(encoding="utf-8") if path.is_file() else f"{TABLE_START}\n{TABLE_END}\n"
    if TABLE_START not in text:
        text += f"\n{TABLE_START}\n{TABLE_END}\n"
    head, _, rest = text.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    path.write_text(f"{head}{TABLE_START}\n{provenance_table(doc)}\n{TABLE_END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m comfyui_model_resolver.sources.pack_sources_build",
                                description="Build the pack-sources table from node packs' repositories.")
    p.add_argument("--mirror", type=Path, required=True, help="folder of bare git mirrors (<owner>+<name>/repo)")
    p.add_argument("--review", type=Path, default=REVIEW_PATH)
    p.add_argument("--output", type=Path, default=DEFAULT_PATH)
    p.add_argument("--provenance", type=Path, default=PROVENANCE_PATH, help="markdown file whose packs table is rewritten")
    p.add_argument("--loaders", type=Path, default=DEFAULT_PATH.parent / "loaders.json",
                   help="loader table whose folders confirm a strict pack's documented folders")
    p.add_argument("--pack", action="append", help="rebuild only this pack (repeatable); the others are kept")
    p.add_argument("--show", action="store_true", help="print kept and dropped hits for the review")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    review = json.loads(args.review.read_text(encoding="utf-8"))
    previous = json.loads(args.output.read_text(encoding="utf-8")) if args.output.is_file() else {}
    loaders = json.loads(args.loaders.read_text(encoding="utf-8")) if args.loaders.is_file() else None
    doc = build(review, args.mirror, previous, only=set(args.pack) if args.pack else None, show=args.show,
                loaders=loaders)
    write(doc, args.output)
    args.review.write_text(json.dumps(review, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    write_provenance(doc, args.provenance)
    n_files = sum(len(x["files"]) for x in doc["packs"].values())
    n_repos = sum(len(x["repos"]) for x in doc["packs"].values())
    log.info("%s: %d packs, %d files, %d repos", args.output, len(doc["packs"]), n_files, n_repos)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
