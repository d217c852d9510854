"""Where a download may be written: safe names and a final path inside one model folder.

`target_path(layout, folder, filename)` is the only way the downloader turns a request into a
path. It accepts a relative name with sub-folders (``SD1.5/x.safetensors``, also written with
``\\`` as Windows users and workflows do) and refuses, with an UnsafePath that says why:

* ``..`` components, absolute paths, drive letters (``C:``), UNC paths (``\\\\server\\share``);
* NUL and other control characters, characters Windows cannot store (``<>:"|?*``), names that
  end in a dot or space, reserved device names (``CON``, ``NUL``, ``COM1``, ``LPT1.txt`` …);
* components longer than 255 bytes (UTF-8) — including the ``.part`` suffix we add;
* any path whose real location (every link resolved) is outside the write roots (containment.py);
* in a node pack, any folder but the model folders packs use, and any file but model weights.

Names from ``Content-Disposition`` go through the same checks (`content_disposition_filename`),
and must be a single component.
"""
from __future__ import annotations

import os
import re
import unicodedata
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError, UnknownFolder, UnsafePath
from ..index.layout import FolderLayout
from ..workflow.folders import canonical_folder
from .containment import LOCK_SUFFIX, PACK_PREFIX, PART_SUFFIX, check_pack_file, pack_model_dir, write_roots

__all__ = ["PART_SUFFIX", "LOCK_SUFFIX", "safe_relative_name", "target_path", "content_disposition_filename",
           "filename_from_url", "check_folder_name"]

MAX_COMPONENT_BYTES = 255
_RESERVED = {"con", "prn", "aux", "nul", "conin$", "conout$",
             *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10)),
             "com¹", "com²", "com³", "lpt¹", "lpt²", "lpt³"}
_WINDOWS_BAD = set('<>:"|?*')
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
#: Bidirectional-text controls: "x\u202egnp.ckpt" shows as "xkpc.png"-like text while staying .ckpt.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Slashes that are not separators but look like them (NFKC folds the fullwidth ones to / and \).
_SEPARATOR_LOOKALIKES = frozenset("\u2044\u2215\u29f8\u29f9\ufe68\uff0f\uff3c")
#: Limits on a relative name: no file system takes more than 4096 bytes of path, and no model needs this many.
MAX_NAME_BYTES = 1024
MAX_NAME_DEPTH = 32


def _check_component(part: str, whole: str) -> None:
    if part in ("", "."):
        raise UnsafePath(f"Empty or '.' path component in {whole!r}.")
    if part == "..":
        raise UnsafePath(f"{whole!r} goes up a directory ('..'); a download must stay inside its model folder.")
    bad = [c for c in part if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F]
    if bad:
        raise UnsafePath(f"{whole!r} contains a control character ({bad[0]!r}).")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in part):
        raise UnsafePath(f"{whole!r} is not valid Unicode (a lone surrogate).")
    bidi = [c for c in part if c in _BIDI_CONTROLS]
    if bidi:
        raise UnsafePath(f"{whole!r} contains an invisible text-direction character (U+{ord(bidi[0]):04X}), "
                         "which can disguise a file's real extension.")
    folded = unicodedata.normalize("NFKC", part)
    if any(c in _SEPARATOR_LOOKALIKES for c in part) or "/" in folded or "\\" in folded or folded in (".", ".."):
        raise UnsafePath(f"{whole!r} contains a character that looks like a path separator or '..' "
                         f"({part!r}); use plain '/' between folders.")
    win = sorted({c for c in part if c in _WINDOWS_BAD})
    if win:
        raise UnsafePath(f"{whole!r} contains {''.join(win)!r}, which file names on Windows cannot hold.")
    if part[-1] in ". ":
        raise UnsafePath(f"{whole!r}: the name {part!r} ends with a dot or a space.")
    stem = part.split(".", 1)[0].rstrip(" ").lower()
    if stem in _RESERVED:
        raise UnsafePath(f"{whole!r}: {part!r} is a reserved device name on Windows.")
    if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise UnsafePath(f"{whole!r}: the name {part[:40]!r}… is longer than {MAX_COMPONENT_BYTES} bytes.")


def safe_relative_name(name: str) -> str:
    """Validate a relative file name (sub-folders allowed); return it with '/' separators."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafePath("Empty file name.", hint="Give a file name such as model.safetensors.")
    if "\x00" in name:
        raise UnsafePath(f"{name!r} contains a NUL character.")
    if name.startswith(("\\\\", "//")):
        raise UnsafePath(f"{name!r} is a UNC/network path; give a name relative to the model folder.")
    if name.startswith(("/", "\\")):
        raise UnsafePath(f"{name!r} is an absolute path; give a name relative to the model folder.")
    if _DRIVE_RE.match(name):
        raise UnsafePath(f"{name!r} has a drive letter; give a name relative to the model folder.")
    parts = name.replace("\\", "/").split("/")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES or len(parts) > MAX_NAME_DEPTH:
        raise UnsafePath(f"{name[:60]!r}… is too long ({len(parts)} folders deep, "
                         f"{len(name.encode('utf-8', 'surrogatepass'))} bytes; at most {MAX_NAME_DEPTH} and "
                         f"{MAX_NAME_BYTES}).", hint="Give a shorter file name.")
    for part in parts:
        _check_component(part, name)
    if len((parts[-1] + PART_SUFFIX).encode("utf-8")) > MAX_COMPONENT_BYTES:
        raise UnsafePath(f"{name!r}: the file name is too long to add the {PART_SUFFIX!r} suffix "
                         f"({MAX_COMPONENT_BYTES} bytes at most).")
    return "/".join(parts)


def check_folder_name(layout: FolderLayout, folder: str) -> str:
    """The canonical folder name; unknown folders must be one plain name (no separators)."""
    if not isinstance(folder, str) or not folder.strip():
        raise UnsafePath("Empty folder name.", hint="Give a ComfyUI model folder such as checkpoints or loras.")
    if "\\" in folder or folder.startswith("/") or _DRIVE_RE.match(folder):
        raise UnsafePath(f"Folder {folder!r} must be a folder name such as 'loras', not a path.")
    for part in folder.split("/"):  # the loader table's `custom_nodes/<pack>/…` forms: plain parts only
        _check_component(part, folder)
    canonical = canonical_folder(folder)
    if canonical.startswith(PACK_PREFIX):
        pack_model_dir(canonical)  # only the model folders packs use, never the pack's code or settings
    if layout.dirs(canonical):
        return canonical
    if "/" in folder:
        raise UnsafePath(f"Folder {folder!r} must be a folder name such as 'loras', not a path.")
    return canonical


def check_download_folder(layout: FolderLayout, folder: str, *, create: bool = False) -> None:
    """Refuse a folder a user typed that ComfyUI would never look in (`lorass`), unless `create`
    says to make it: one of ComfyUI's folders, a configured extra path or an existing folder is fine."""
    canonical = check_folder_name(layout, folder)  # a path, `..`, a drive: UnsafePath first
    if create or layout.is_known(canonical):
        return
    import difflib  # only for the message: every download checks its folder

    known = layout.known_folders()
    close = difflib.get_close_matches(canonical.lower(), known, n=3, cutoff=0.6)
    raise UnknownFolder(
        f"{folder!r} is not a ComfyUI model folder" + (f": did you mean {' or '.join(close)}?" if close else "."),
        hint="Use one of " + ", ".join(known[:12]) + (", …" if len(known) > 12 else "")
             + " (a folder ComfyUI scans), or ask to create it (--create-folder, \"create_folder\": true).")


def target_path(layout: FolderLayout, folder: str, filename: str) -> str:
    """Absolute final path for `filename` in `folder`, where every link on the way leads into the
    write roots (downloads/containment.py).

    Blocking (stats the file system for symlinks). Does not create anything.
    """
    canonical = check_folder_name(layout, folder)
    rel = safe_relative_name(filename)
    base = layout.download_dir(canonical)
    if base is None:
        raise ConfigError(f"No directory is known for the folder {canonical!r}.",
                          hint="Set CMR_COMFYUI_ROOT or CMR_MODELS_ROOT (or --comfyui-root).")
    if canonical.startswith(PACK_PREFIX):  # a pack's own model folder (loader table): never a new pack
        check_pack_file(canonical, rel)
        pack = os.path.join(os.path.dirname(layout.models_root or ""), "custom_nodes", canonical.split("/")[1])
        if not layout.models_root or not os.path.isdir(pack):
            raise UnsafePath(f"{canonical!r} is inside a node pack that is not installed; the resolver never "
                             "creates node packs.", hint="Install the node pack first (ComfyUI-Manager).")
    final = os.path.join(os.path.abspath(base), *rel.split("/"))
    roots = write_roots(layout)
    real = roots.check(final, what=f"{filename!r} in {canonical}")
    # The part and lock files are written in place: a link under their names would redirect the
    # writes elsewhere (outside the folder, or onto another model). The writers open them without
    # following links too (partfile.open_no_follow); this says so before anything starts.
    for suffix in (PART_SUFFIX, LOCK_SUFFIX):
        if os.path.islink(final + suffix):
            raise UnsafePath(f"{final + suffix} is a symbolic link; refusing to write through it.",
                             hint="Remove the link (the resolver only writes plain files in the models folder).")
    if os.path.isdir(real) or real in roots.roots:
        raise UnsafePath(f"{final} is a directory; give a file name.")
    if os.path.islink(final) and not os.path.exists(final):
        raise UnsafePath(f"{final} is a broken symbolic link.", hint="Remove the link or choose another file name.")
    return final


_CD_STAR_RE = re.compile(r"""filename\*\s*=\s*([^;]+)""", re.I)
_CD_PLAIN_RE = re.compile(r"""filename\s*=\s*("(?:[^"\\]|\\.)*"|[^;]+)""", re.I)


def content_disposition_filename(header: str | None) -> str | None:
    """The file name of a Content-Disposition header (RFC 6266, filename* preferred), validated.

    None when the header has no name. Raises UnsafePath for a name that is not one safe component.
    """
    if not header:
        return None
    name: str | None = None
    m = _CD_STAR_RE.search(header)
    if m:
        value = m.group(1).strip().strip('"')
        charset, _, rest = value.partition("'")
        _lang, _, encoded = rest.partition("'")
        if encoded:
            try:
                name = unquote(encoded, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                name = None
    if name is None:
        m = _CD_PLAIN_RE.search(header.replace("filename*", "filename_star"))
        if m:
            raw = m.group(1).strip()
            if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            name = raw.strip()
    if not name:
        return None
    return _single_component(name, "the server's Content-Disposition")


def _single_component(name: str, origin: str) -> str:
    if "/" in name or "\\" in name:
        raise UnsafePath(f"{origin} names the file {name!r}, which contains a path.",
                         hint="Pass a file name explicitly (--filename / \"filename\").")
    try:
        return safe_relative_name(name)
    except UnsafePath as exc:
        raise UnsafePath(f"{origin} gives an unusable file name: {exc.message}",
                         hint="Pass a file name explicitly (--filename / \"filename\").") from None


def filename_from_url(url: str) -> str | None:
    """The last path segment of a URL if it looks like a file name (has an extension), else None."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    last = unquote(path.rstrip("/").rsplit("/", 1)[-1]) if path else ""
    if not last or "." not in last.strip(".") or "/" in last or "\\" in last:
        return None
    try:
        return safe_relative_name(last)
    except UnsafePath:
        return None
