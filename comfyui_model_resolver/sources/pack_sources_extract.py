"""Find documented model sources in one file of a node pack's repository. Pure: text in, candidates out.

Used by `pack_sources_build` to make data/pack_sources.json. What counts as a documented source:

* a Hugging Face file link (`huggingface.co/<repo>/resolve|blob/<rev>/<path>`), where a Markdown
  link text that is a file name (`[CLIP-ViT-H-14….safetensors](…/model.safetensors)`) is the
  name to save it under (a rename);
* `hf_hub_download(repo_id=…, filename=…, subfolder=…)` calls and `{"repo_id": …, "filename": …}`
  literals in code (only string literals: names built at run time are left to the review);
* `snapshot_download(repo_id=…)` and links to a repo or its tree: the repo a folder's files come from;
* Civitai model pages and download links (`civitai.com/models/<id>?modelVersionId=<v>`,
  `civitai.com/api/download/models/<v>`);
* any other https link that ends in a model file (GitHub release assets and the like).

The folder is read from the text around the hit: the nearest `models/<folder>` written before it in
prose (URLs removed first, so a repo path never counts), or, in code, `folder_paths` calls and
`models_dir, "<folder>"` joins near it. The builder's review overrides what is wrong.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from ..workflow.folders import canonical_folder, has_model_extension

PROSE_LOOKBACK = 25  # lines above a link in which a `models/<folder>` heading is looked for
CONTINUATION = 2  # lines below a link, in its own list item or sentence, that may say where it goes
_NEW_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s")
CODE_WINDOW = 15  # lines around a code hit in which folder_paths calls are looked for
STATEMENT_LINES = 12  # a call's arguments are read this many lines on

_URL = re.compile(r"""https?://[^\s)"'`<>\]\[]+""")
_HF_FILE = re.compile(r"""(?:https?://)?(?:huggingface\.co|hf\.co)/(?!spaces/|datasets/|docs/|papers/)(?:models/)?"""
                      r"""([\w.-]+/[\w.-]+)/(?:resolve|blob|raw)/([^/\s]+)/([^\s)"'`<>\]\[?#]+)""")
_HF_REPO = re.compile(r"""(?:https?://)?(?:huggingface\.co|hf\.co)/(?!spaces/|datasets/|docs/|papers/|blog/|join|"""
                      r"""login|settings|models\b|collections/|api/)([\w.-]+/[\w.-]+?)(?:\.git)?"""
                      r"""(?:/tree/([^/\s)"'`]+)(?:/([^\s)"'`<>\]\[?#]+))?)?(?=[\s)"'`<>\]\[?#]|$)""")
_CIVITAI = re.compile(r"""civitai\.com/(?:models/(\d+)(?:/[\w%.-]*)?(?:\?[^\s)"'`]*?modelVersionId=(\d+))?"""
                      r"""|api/download/models/(\d+))""")
_MD_LINK = re.compile(r"""\[([^\]\n]{1,200})\]\(\s*<?([^)\s>]+)>?\s*\)""")
_REPO_ID = re.compile(r"""\brepo_id["']?\s*[:=]\s*["']([\w.-]+/[\w.-]+)["']""")
_FILENAME = re.compile(r"""\bfilename["']?\s*[:=]\s*["']([^"'\n]+)["']""")
_SUBFOLDER = re.compile(r"""\bsubfolder["']?\s*[:=]\s*["']([^"'\n]+)["']""")
_HF_CALL = re.compile(r"""\bhf_hub_download\s*\(\s*(?:["']([\w.-]+/[\w.-]+)["']\s*,\s*["']([^"'\n]+)["'])?""")
_SNAPSHOT = re.compile(r"""\bsnapshot_download\s*\(\s*(?:repo_id\s*=\s*)?["']([\w.-]+/[\w.-]+)["']""")
_PROSE_FOLDER = re.compile(r"""(?:^|[\s`"'(\[/\\])models[/\\]+([A-Za-z0-9][\w.+-]*(?:[/\\]+[A-Za-z0-9][\w.+-]*)*)""")
_TEMPLATED = re.compile(r"""[{}<>%$*|]""")  # `{}.safetensors`, `<name>.pth`, `%s.bin`: a name built at run time
CODE_FOLDER = re.compile(r"""(?:get_folder_paths|get_full_path(?:_or_raise)?|get_filename_list|"""
                          r"""add_model_folder_path)\s*\(\s*["']([\w.+-]+)["']|models_dir\s*,\s*["']([\w.+-]+)["']""")
_CODE_EXT = (".py", ".js", ".ts")

_FAMILIES = (  # first match wins; read from the file name, then its repo path and repo id
    ("video", r"wan2|wan_2|\bwan\b|hunyuan.?video|ltx|cogvideo|animatediff|mm_sd|svd|mochi|skyreels|framepack|"
              r"\bi2v\b|\bt2v\b|video"),
    ("flux", r"flux|kontext"),
    ("sd3", r"sd3|sd_3|stable-diffusion-3"),
    ("sdxl", r"sdxl|(?<![a-z0-9])xl(?![a-z])|pony|illustrious|kolors"),
    ("sd15", r"sd15|sd_15|sd-?1[._-]?5|v1-5|\bsd1\b|sdv1"),
)
_FAMILY_RE = tuple((fam, re.compile(p)) for fam, p in _FAMILIES)


@dataclass
class Hit:
    """One documented source found in a file. `filename` None: a repo (or Civitai model) only."""

    kind: str  # hf | hf_repo | civitai | url
    line: int  # 1-based
    filename: str | None
    source: dict
    folder: str | None = None
    subdir: str | None = None
    context: str = ""  # the line, shortened, for the review
    column: int = 0  # where on the line the hit starts
    end: int = 0  # and ends
    notes: list[str] = field(default_factory=list)
    distance: int | None = None  # lines between the hit and the text that gave its folder (0: same line)
    same_block: bool = False  # that text is in the hit's paragraph or list (prose) or function (code)
    same_section: bool = False  # prose: that text is above the hit under the same heading, the nearest folder named


def family_of(*texts: str | None) -> str | None:
    for text in texts:
        low = (text or "").lower()
        for fam, rx in _FAMILY_RE:
            if rx.search(low):
                return fam
    return None


def tidy_name(name: str | None) -> str | None:
    """A file name as a workflow would use it: sentence punctuation after it dropped; None when it
    is templated (`{}.safetensors`) or not a model file."""
    if not name:
        return None
    t = name.strip().rstrip(".,;:!?)'\"`")
    if not t or _TEMPLATED.search(t) or not has_model_extension(t):
        return None
    return t


def _clean_name(text: str) -> str | None:
    t = text.strip().strip("`*_ ").strip()
    if not t or " " in t or "/" in t or "\\" in t or len(t) > 160:
        return None
    return tidy_name(t)


def _place(raw: str) -> tuple[str, str | None] | None:
    parts = [p.rstrip(".,;:") for p in re.split(r"[/\\]+", raw) if p.rstrip(".,;:")]
    while parts and has_model_extension(parts[-1]):
        parts.pop()  # a file at the end of the path is not a folder
    if not parts or parts[0].lower() in ("models", "custom_nodes"):
        return None
    folder = canonical_folder(parts[0])
    sub = "/".join(p for p in parts[1:] if not has_model_extension(p)) or None  # 'Florence-2.0-large' is a folder
    return folder, sub


def prose_folder(lines: list[str], index: int, start: int = 0, end: int = 0) -> tuple[str, str | None] | None:
    """Where the prose says the file at line `index`, columns start..end, goes: a `models/<folder>[/<sub>]`
    before it on its line, else after it up to the line's next link ("[x](url) goes to models/x"), else
    on the item's next lines ("[x](url)\\nand copy it into models/x"), else the nearest above it. URLs are removed first: a repo path never counts."""
    return prose_place(lines, index, start, end)[0]


def prose_place(lines: list[str], index: int, start: int = 0, end: int = 0
                ) -> tuple[tuple[str, str | None] | None, int | None]:
    """`prose_folder` and how many lines above the hit the folder was written (0: on its line; negative:
    below it, in the link's own list item or sentence, before any other link)."""
    line = lines[index]
    before = list(_PROSE_FOLDER.finditer(_URL.sub(" ", line[:start])))
    if before:
        return _place(before[-1].group(1)), 0
    nxt = _URL.search(line, end)
    after = _PROSE_FOLDER.search(line[end:nxt.start() if nxt else len(line)])
    if after:
        return _place(after.group(1)), 0
    if not nxt:  # "download [x](url)\nand copy it into `models/checkpoints`": the item's own next lines
        for i in range(index + 1, min(len(lines), index + 1 + CONTINUATION)):
            t = lines[i]
            if not t.strip() or _HEADING.match(t) or _TITLE.match(t) or _NEW_ITEM.match(t) or _URL.search(t):
                break
            found = _PROSE_FOLDER.search(t)
            if found:
                return _place(found.group(1)), index - i
    for i in range(index - 1, max(-1, index - PROSE_LOOKBACK - 1), -1):
        found = list(_PROSE_FOLDER.finditer(_URL.sub(" ", lines[i])))
        if found:
            return _place(found[-1].group(1)), index - i
    return None, None


def code_folder(lines: list[str], index: int) -> tuple[str, str | None] | None:
    """The nearest folder_paths folder name within CODE_WINDOW lines of `index`."""
    return code_place(lines, index)[0]


def code_place(lines: list[str], index: int) -> tuple[tuple[str, str | None] | None, int | None]:
    """`code_folder` and where it is, in lines from the hit (negative: above it)."""
    best: tuple[int, str] | None = None
    for i in range(max(0, index - CODE_WINDOW), min(len(lines), index + CODE_WINDOW + 1)):
        for m in CODE_FOLDER.finditer(lines[i]):
            name = m.group(1) or m.group(2)
            if best is None or abs(i - index) < abs(best[0]):
                best = (i - index, name)
    return ((canonical_folder(best[1]), None), best[0]) if best else (None, None)


_HEADING = re.compile(r"^\s*(#|=+\s*$|-{3,}\s*$|\.\. )")
_DEF = re.compile(r"^\s*(async\s+def|def|class)\s")
_OTHER_SOURCE = re.compile(r"repo_id|huggingface\.co|https?://|hf_hub_download|snapshot_download")
_IMPORT = re.compile(r"^\s*(from\s+\S+\s+)?import\s")  # `from huggingface_hub import snapshot_download` is no source
CODE_BLOCK = 10  # lines from a folder set up in code to the download that uses it


def same_block(lines: list[str], hit: int, where: int, is_code: bool) -> bool:
    """Whether line `where` (that names the folder) and line `hit` are in one block: for prose, no
    blank line or heading between them (one paragraph, list or table); for code, the folder is set up
    at most CODE_BLOCK lines above the hit, in its function, with no other source between them."""
    lo, hi = sorted((hit, where))
    if is_code:  # the folder set up above the download, in its function, with no other source between
        between = lines[where + 1:hit]
        return where < hit <= where + CODE_BLOCK and not any(
            _DEF.match(t) or (_OTHER_SOURCE.search(t) and not _IMPORT.match(t)) for t in between)
    return not any(not t.strip() or _HEADING.match(t) for t in lines[lo + 1:hi + 1])


_TITLE = re.compile(r"^\s*(\*\*[^*]+\*\*|__[^_]+__)\s*:?\s*$|^\s*(```|~~~)")  # a bold title line, a code fence


def same_section(lines: list[str], hit: int, where: int) -> bool:
    """Prose: line `where` names the folder as the instruction for the block that holds line `hit`
    ("Download to `models/sams`:", blank lines, then the table of links): the instruction is a prose
    paragraph (not a list item: that is one step's), followed by nothing but blank lines before the hit's block, with no heading, bold title or code
    fence between them and no other link from the instruction to the block (a link there took the folder)."""
    start = hit
    while start > where + 1 and lines[start - 1].strip():
        start -= 1
    end = where
    while end + 1 < start and lines[end + 1].strip():
        end += 1
    return (all(not t.strip() for t in lines[end + 1:start])
            and not any(_NEW_ITEM.match(t) for t in lines[where:end + 1])  # prose, not another step's item
            and not any(_HEADING.match(t) or _TITLE.match(t) for t in lines[where + 1:hit + 1])
            and not any(_URL.search(t) for t in lines[where:start]))


#: Directories of a repo's layout that say which ComfyUI folder a file is for (Comfy-Org's
#: `split_files/<folder>/`, diffusers' `unet/`, `image_encoder/` …).
LAYOUT_FOLDERS = {
    "text_encoders": "text_encoders", "text_encoder": "text_encoders", "vae": "vae", "loras": "loras",
    "lora": "loras", "diffusion_models": "diffusion_models", "unet": "diffusion_models",
    "clip_vision": "clip_vision", "image_encoder": "clip_vision", "controlnet": "controlnet",
    "upscale_models": "upscale_models", "checkpoints": "checkpoints", "model_patches": "model_patches",
    "latent_upscale_models": "latent_upscale_models", "audio_encoders": "audio_encoders",
    "style_models": "style_models", "embeddings": "embeddings",
}


def layout_folder(repo_path: str | None) -> str | None:
    """The ComfyUI folder a file's directory in its repo names, if one does (nearest directory first)."""
    parts = (repo_path or "").replace("\\", "/").split("/")[:-1]
    for part in reversed(parts):
        if part.lower() in LAYOUT_FOLDERS:
            return LAYOUT_FOLDERS[part.lower()]
    return None


def _statement(lines: list[str], index: int) -> str:
    """The text of a call starting at line `index`, up to its closing parenthesis (bounded)."""
    out, depth = [], 0
    for i in range(index, min(len(lines), index + STATEMENT_LINES)):
        out.append(lines[i])
        depth += lines[i].count("(") - lines[i].count(")")
        if depth <= 0:
            break
    return "\n".join(out)


def _link_names(line: str) -> dict[str, str]:
    """URL -> the file name its Markdown link text gives, when the text is one."""
    out = {}
    for m in _MD_LINK.finditer(line):
        name = _clean_name(m.group(1))
        if name:
            out[m.group(2)] = name
    return out


def extract(path: str, text: str) -> list[Hit]:
    """Every documented source in one file of a pack, in file order."""
    is_code = path.lower().endswith(_CODE_EXT)
    lines = text.splitlines()
    hits: list[Hit] = []
    covered = -1  # the last line of a call already read
    for i, line in enumerate(lines):
        if len(line) > 4000:  # minified or data blobs
            continue
        short = line.strip()[:240]
        found: list[Hit] = []
        names = _link_names(line) if not is_code else {}
        file_spans: list[tuple[int, int]] = []
        for m in _HF_FILE.finditer(line):
            repo, rev, fpath = m.group(1), unquote(m.group(2)), unquote(m.group(3)).rstrip(".,;:")
            file_spans.append(m.span())
            base = fpath.rsplit("/", 1)[-1]
            if not has_model_extension(base):
                continue
            url = next((u for u in names if m.group(0) in u), None)
            name = names.get(url) if url else None
            found.append(Hit("hf", i + 1, name or base, {"type": "hf", "repo": repo, "path": fpath, "revision": rev},
                             context=short, column=m.start(), end=m.end()))
        for m in _HF_REPO.finditer(line):
            if any(a <= m.start() < b for a, b in file_spans):
                continue
            src = {"type": "hf", "repo": m.group(1)}
            if m.group(3):
                src["path_prefix"] = unquote(m.group(3)).rstrip("/") + "/"
            found.append(Hit("hf_repo", i + 1, None, src, context=short, column=m.start(), end=m.end()))
        for m in _CIVITAI.finditer(line):
            model_id, ver = m.group(1), m.group(2) or m.group(3)
            src = {"type": "civitai", "model_id": int(model_id) if model_id else None,
                   "version_id": int(ver) if ver else None}
            url = next((u for u in names if m.group(0) in u), None)
            found.append(Hit("civitai", i + 1, names.get(url) if url else None, src, context=short, column=m.start(), end=m.end()))
        for m in _URL.finditer(line):
            u = m.group(0).rstrip(".,;:")
            low = u.split("?", 1)[0].lower()
            if "huggingface.co" in low or "hf.co/" in low or "civitai.com" in low:
                continue
            base = unquote(low.rsplit("/", 1)[-1])
            if has_model_extension(base):
                name = names.get(m.group(0)) or unquote(u.split("?", 1)[0].rsplit("/", 1)[-1])
                found.append(Hit("url", i + 1, name, {"type": "url", "url": u}, context=short, column=m.start(), end=m.end()))
        if is_code and i > covered:
            more, covered = _code_hits(lines, i, short)
            found += more
        found = [h for h in found if h.filename is None or tidy_name(h.filename)]
        for h in found:
            if h.filename:
                h.filename = tidy_name(h.filename)
            place, dist = code_place(lines, i) if is_code else prose_place(lines, i, h.column, h.end)
            if place and h.folder is None:
                h.folder, h.subdir = place
                h.distance = abs(dist)
                h.same_block = same_block(lines, i, i + dist if is_code else i - dist, is_code)
                h.same_section = not is_code and dist > 0 and same_section(lines, i, i - dist)
        hits += found
    return hits


def _literal_block(lines: list[str], index: int) -> str:
    """A `repo_id` literal's line and the next few, up to the next repo or download call."""
    out = [lines[index]]
    for line in lines[index + 1:index + 4]:
        if _REPO_ID.search(line) or _HF_CALL.search(line) or _SNAPSHOT.search(line):
            break
        out.append(line)
    return " ".join(out)


def _code_hits(lines: list[str], i: int, short: str) -> tuple[list[Hit], int]:
    """Hits of the code at line i, and the last line they cover (a call's arguments are not read twice)."""
    line = lines[i]
    out: list[Hit] = []
    last = i
    call = _HF_CALL.search(line)
    repo_m = _REPO_ID.search(line)
    if call or repo_m:
        if call:
            stmt = _statement(lines, i)
            last = i + stmt.count("\n")
        else:
            stmt = _literal_block(lines, i)
        repo = (call.group(1) if call and call.group(1) else None) or (m.group(1) if (m := _REPO_ID.search(stmt)) else None)
        fname = (call.group(2) if call and call.group(2) else None) or (m.group(1) if (m := _FILENAME.search(stmt)) else None)
        sub = m.group(1) if (m := _SUBFOLDER.search(stmt)) else None
        if repo and fname and "{" not in fname and has_model_extension(fname):
            fpath = f"{sub.strip('/')}/{fname}" if sub else fname
            out.append(Hit("hf", i + 1, fname.rsplit("/", 1)[-1],
                           {"type": "hf", "repo": repo, "path": fpath, "revision": "main"}, context=short))
        elif repo and not call:
            out.append(Hit("hf_repo", i + 1, None, {"type": "hf", "repo": repo}, context=short))
    snap = _SNAPSHOT.search(line)
    if snap and not repo_m:
        out.append(Hit("hf_repo", i + 1, None, {"type": "hf", "repo": snap.group(1)}, context=short))
    return out, last
