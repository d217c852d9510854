"""Where the resolver may write: one check for every file it creates, renames or deletes.

A download may land only inside a **write root**, compared by real path (every link resolved) at the
moment of the write:

* the models root;
* every directory `extra_model_paths.yaml` (or ComfyUI's folder registry) configures beside it;
* the directories listed in ``CMR_WRITE_ROOTS`` (``os.pathsep``-separated), for model sub-folders a
  user linked to another disk (``models/checkpoints -> /mnt/disk2/checkpoints``).

ComfyUI's own tree — its code, ``user/``, ``custom_nodes/``, ``input/``, ``output/`` — is never a write
root, even inside a configured one, except the model sub-folders that node packs use
(`PACK_MODEL_DIRS`, from the loader table and the pack sources), which take model weights only.
A link anywhere — in the folder, in a sub-folder of the name, or the name itself — is followed and
the place it leads to is what is checked. `linked_folders` lists model folders whose links lead
outside the write roots, for ``/health`` and ``cmr serve --check``, each with the line that allows it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from ..errors import UnsafeFormat, UnsafePath
from ..index.layout import FolderLayout
from ..workflow.folders import MODEL_EXTENSIONS

__all__ = ["WEIGHT_EXTENSIONS", "WriteRoots", "write_roots", "check_writes", "pack_model_dir", "check_pack_file",
           "linked_folders", "PACK_PREFIX", "PART_SUFFIX", "LOCK_SUFFIX"]

PACK_PREFIX = "custom_nodes/"
#: The files a download writes beside its target: `<name>.part` (the data), `<name>.lock` (the owner).
PART_SUFFIX = ".part"
LOCK_SUFFIX = ".lock"
#: What a node pack's model folder may receive: weights (ComfyUI's and the packs' formats: GGUF,
#: ONNX, TensorRT engines, TorchScript, TFLite, Keras/HDF5). Never text a pack or the Manager reads as
#: configuration (requirements.txt, pyproject.toml, config.ini, .json, .yaml) or a browser renders.
WEIGHT_EXTENSIONS: tuple[str, ...] = MODEL_EXTENSIONS + (".engine", ".trt", ".plan", ".jit", ".torchscript",
                                                         ".tflite", ".h5", ".msgpack")
_DATA = Path(__file__).resolve().parents[1] / "data"
#: Entries of a ComfyUI install that mark it as one (so its tree is protected).
_COMFY_MARKERS = ("main.py", "comfy", "custom_nodes", "folder_paths.py")


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False


# ---- node packs' model folders ------------------------------------------------------------------
@lru_cache(maxsize=1)
def _pack_forms() -> dict[str, frozenset[str]]:
    """`<pack>/<sub>` -> file names the loader table presets there (beyond weights), from the shipped data."""
    forms: dict[str, set[str]] = {}

    def add(form: str, name: str | None = None) -> None:
        form = form.strip().strip("/")
        if form.count("/") >= 1 and ".." not in form.split("/"):
            names = forms.setdefault(form, set())
            if name:
                names.add(name)

    def walk(node: object, root: str | None) -> None:
        if isinstance(node, dict):
            root = node.get("root", root)
            if root == "custom_nodes":
                for key in ("folder", "dir"):
                    if isinstance(node.get(key), str):
                        add(node[key], node.get("filename") if key == "folder" else None)
                for key in ("folders", "alt_folders"):
                    for f in node.get(key) or ():
                        if isinstance(f, str):
                            add(f)
                if isinstance(node.get("repo"), dict) and isinstance(node["repo"].get("folder"), str):
                    add(node["repo"]["folder"])
            for value in node.values():
                walk(value, root)
        elif isinstance(node, list):
            for value in node:
                walk(value, root)

    try:
        walk(json.loads((_DATA / "loaders.json").read_text(encoding="utf-8")).get("nodes", {}), None)
    except (OSError, ValueError):
        pass
    try:
        packs = json.loads((_DATA / "pack_sources.json").read_text(encoding="utf-8")).get("packs", {})
    except (OSError, ValueError):
        packs = {}
    for body in packs.values():
        for f in body.get("files", ()) if isinstance(body, dict) else ():
            folder = f.get("folder") if isinstance(f, dict) else None
            if isinstance(folder, str) and folder.startswith(PACK_PREFIX):
                add(folder[len(PACK_PREFIX):])
    return {k: frozenset(v) for k, v in forms.items()}


def PACK_MODEL_DIRS() -> tuple[str, ...]:  # noqa: N802 - reads like the constant it is
    """The model sub-folders node packs use, as `custom_nodes/<pack>/<sub>`."""
    return tuple(sorted(PACK_PREFIX + f for f in _pack_forms()))


def pack_model_dir(folder: str) -> str:
    """The known pack model folder (`<pack>/<sub>`) that `custom_nodes/…` `folder` is, or lies in.

    Raises UnsafePath for the pack itself or any other place in it (code, web files, settings)."""
    rest = folder[len(PACK_PREFIX):].strip("/")
    pack = rest.split("/", 1)[0]
    best = max((f for f in _pack_forms() if rest == f or rest.startswith(f + "/")), key=len, default=None)
    if best is None:
        known = [PACK_PREFIX + f for f in _pack_forms() if f.split("/", 1)[0] == pack]
        where = (f"; this pack's model folders are {', '.join(sorted(known))}" if known else
                 "; no model folder of this pack is known")
        raise UnsafePath(f"{folder!r} is not a model folder: inside a node pack ({PACK_PREFIX}{pack}) the resolver "
                         f"writes only into the model folders packs use{where}.",
                         hint="Choose a model folder such as checkpoints or loras; node packs are installed with "
                              "ComfyUI-Manager.")
    return best


def _pack_file_ok(form: str, base: str) -> bool:
    for suffix in (PART_SUFFIX, LOCK_SUFFIX):  # our own files beside the target
        base = base.removesuffix(suffix) if base.endswith(suffix) and len(base) > len(suffix) else base
    return base.lower().endswith(WEIGHT_EXTENSIONS) or base in _pack_forms().get(form, ())


def check_pack_file(folder: str, filename: str) -> None:
    """Only model weights (or a file the loader table puts there, e.g. a tagger's tag list) may land in
    a pack's model folder. Raises UnsafeFormat otherwise."""
    form = pack_model_dir(folder)
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if not _pack_file_ok(form, base):
        raise _not_weights(folder, base)


def _not_weights(folder: str, base: str) -> UnsafeFormat:
    return UnsafeFormat(f"{base!r} is not a model file: only model weights ({', '.join(WEIGHT_EXTENSIONS)}) may be "
                       f"written into a node pack's folder ({folder}); a pack or ComfyUI-Manager would read other "
                       "files there as its own code or settings (requirements.txt, config.ini, web files).",
                       hint="Download only model files into node packs' folders.")


# ---- write roots ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WriteRoots:
    """Real paths: where writes may go (`roots`), ComfyUI's tree that they never enter (`never`) and the
    node packs' model folders that are the exception (`packs`: real directory, `<pack>/<dir>` form),
    which take model weights only. `ignored` lists configured roots that were dropped, with why."""

    roots: tuple[str, ...]
    never: tuple[str, ...] = ()
    packs: tuple[tuple[str, str], ...] = ()
    ignored: tuple[tuple[str, str], ...] = field(default=())

    def _in_roots(self, real: str) -> bool:
        return any(_inside(real, root) and not any(
            _inside(real, zone) and not (_inside(root, zone) and root != zone) for zone in self.never)
            for root in self.roots)

    def _pack_of(self, real: str) -> str | None:
        return next((form for d, form in self.packs if _inside(real, d)), None)

    def allows(self, real: str, *, is_file: bool = True) -> bool:
        """Whether the real path `real` may be written (a file: in a pack's model folder, weights only)."""
        if self._in_roots(real):
            return True
        form = self._pack_of(real)
        return form is not None and (not is_file or _pack_file_ok(form, os.path.basename(real)))

    def check(self, path: str | os.PathLike, *, what: str = "A download") -> str:
        """The real path of `path` (links resolved now) if it may be written; UnsafePath otherwise."""
        path = os.fspath(path)
        real = os.path.realpath(path)
        if self.allows(real):
            return real
        shown = path if real == os.path.abspath(path) else f"{path} (a link leads to {real})"
        form = self._pack_of(real)
        if form is not None:  # reached through a link from elsewhere: the pack rule holds all the same
            raise _not_weights(PACK_PREFIX + form, os.path.basename(real))
        protected = next((z for z in self.never if _inside(real, z)), None)
        if protected is not None:
            raise UnsafePath(f"{what} would be written to {shown}, inside ComfyUI's own files ({protected}); the "
                             "resolver writes only into model folders.",
                             hint="Remove the link, or choose another folder or file name.")
        allow = _allow_line(os.path.dirname(real))
        raise UnsafePath(f"{what} would be written to {shown}, outside the folders the resolver may write to "
                         f"({', '.join(self.roots) or 'none configured'}).",
                         hint=f"If that folder holds your models, allow it: {allow}; otherwise remove the link.")


def _allow_line(target: str, configured: Iterable[str] = ()) -> str:
    return "CMR_WRITE_ROOTS=" + os.pathsep.join(dict.fromkeys([*configured, target]))


def _comfy_dir(models_root: str) -> str | None:
    base = os.path.dirname(os.path.abspath(models_root))
    if any(os.path.exists(os.path.join(base, m)) for m in _COMFY_MARKERS):
        return base
    return None


def write_roots(layout: FolderLayout) -> WriteRoots:
    """The write roots of `layout`, resolved now. Blocking (stats the file system)."""
    if not layout.models_root:
        return WriteRoots(())
    models = os.path.realpath(layout.models_root)
    comfy = _comfy_dir(layout.models_root)
    never: list[str] = []
    packs: list[tuple[str, str]] = []
    if comfy is not None:
        never = list(dict.fromkeys(os.path.realpath(os.path.join(comfy, d)) for d in ("custom_nodes", "user", ".")))
        nodes = os.path.join(comfy, "custom_nodes")
        real_nodes = os.path.realpath(nodes)
        for form in _pack_forms():
            pack = os.path.join(nodes, form.split("/", 1)[0])
            if not os.path.isdir(pack):
                continue
            real_pack = os.path.realpath(pack)  # a pack may be a link to a checkout elsewhere, not into ComfyUI
            if not _inside(real_pack, real_nodes) and any(_inside(real_pack, z) for z in never):
                continue
            real = os.path.realpath(os.path.join(nodes, *form.split("/")))
            if _inside(real, real_pack):  # the pack's own folder, not a link out of it
                packs.append((real, form))
    roots, ignored = [models], []
    for d in (*layout.write_roots, *_configured_dirs(layout)):
        real = os.path.realpath(d)
        zone = next((z for z in never if _inside(real, z)), None)
        if zone is not None and not _inside(real, models):
            if not any(_inside(real, p) for p, _ in packs):  # a pack's model folder is allowed as such
                ignored.append((d, f"inside ComfyUI's own files ({zone})"))
        elif real not in roots:
            roots.append(real)
    return WriteRoots(tuple(roots), tuple(never), tuple(packs), tuple(ignored))


def _configured_dirs(layout: FolderLayout) -> list[str]:
    """Folder directories configured outside the models root (extra_model_paths.yaml, ComfyUI's registry)."""
    root = os.path.abspath(layout.models_root or "")
    return [d for _, d in layout.all_dirs() if not _inside(os.path.abspath(d), root)]


def check_writes(layout: FolderLayout, *paths: str, what: str = "A download") -> None:
    """Check each path against the write roots of `layout`, resolved now. Blocking."""
    roots = write_roots(layout)
    for path in paths:
        roots.check(path, what=what)


def linked_folders(layout: FolderLayout) -> list[dict]:
    """Model folders (and their direct sub-folders) that are links leading outside the write roots:
    downloads into them are refused. Each entry: folder, path, target, and the line that allows it
    (None when the target is inside ComfyUI's own files, which can never be allowed). Blocking."""
    roots = write_roots(layout)
    if not layout.models_root:
        return []
    models = os.path.abspath(layout.models_root)
    candidates: list[tuple[str, str]] = []
    for folder, d in layout.all_dirs():
        if not _inside(os.path.abspath(d), models):
            continue
        candidates.append((folder, d))
        try:
            with os.scandir(d) as it:
                candidates += [(f"{folder}/{e.name}", e.path) for e in it if e.is_symlink() and e.is_dir()]
        except OSError:
            continue
    out: list[dict] = []
    configured = [os.fspath(p) for p in layout.write_roots]
    seen: set[str] = set()
    for folder, d in candidates:
        real = os.path.realpath(d)
        if d in seen or real == os.path.abspath(d) or roots.allows(real, is_file=False):
            continue
        seen.add(d)
        protected = any(_inside(real, z) for z in roots.never)
        out.append({"folder": folder, "path": d, "target": real,
                    "allow": None if protected else _allow_line(real, configured),
                    "message": (f"{d} links to {real}, inside ComfyUI's own files: downloads there are refused"
                                if protected else f"{d} links to {real}, outside the write roots: downloads "
                                "there are refused until it is allowed")})
    for d, why in roots.ignored:
        out.append({"folder": None, "path": d, "target": os.path.realpath(d), "allow": None,
                    "message": f"{d} is configured as a model folder but is {why}: downloads there are refused"})
    return out
