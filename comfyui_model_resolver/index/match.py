"""Match model references against the local index. Pure given the index's listings.

present   the widget value, as written, names a file ComfyUI will find in the node's folder;
relocated the same file name exists elsewhere: another sub-folder, a Windows `\\` path that
          does not resolve here, another case, or another folder (then it must be moved);
missing   nowhere to be found.
"""
from __future__ import annotations

import os
from typing import Protocol

from ..types import LocalMatch, LocalStatus, ModelRef
from ..workflow.folders import canonical_folder

#: ComfyUI tries these extensions for `embedding:name` without one.
_EMBEDDING_EXTS = ("", ".safetensors", ".pt", ".bin", ".pth", ".ckpt")


class Listing(Protocol):
    def has_file(self, base: str, rel: str) -> bool: ...
    def has_dir(self, base: str, rel: str) -> bool: ...
    def find_by_basename(self, name: str) -> list[str]: ...
    def locate(self, path: str) -> tuple[str, str, str] | None: ...
    def files_under(self, base: str) -> list[str]: ...
    @property
    def layout(self): ...


def _normalise(value: str) -> str:
    v = value.replace("\\", "/")
    while v.startswith("./"):
        v = v[2:]
    return v.strip("/")


def _widget_value(rel: str, windows: bool) -> str:
    return rel.replace("/", "\\") if windows else rel


def match_ref(ref: ModelRef, index: Listing, *, windows: bool = os.name == "nt") -> LocalMatch:
    folder = canonical_folder(ref.folder) if ref.folder else None
    bases: tuple[str, ...] = ()
    for f in ((folder,) if folder else ()) + tuple(ref.alt_folders):
        bases += tuple(d for d in index.layout.dirs(f) if d not in bases)
    written = ref.filename
    rel = _normalise(written)
    fuzzy = ref.match in ("fuzzy", "substring") or folder == "embeddings"
    exts = _EMBEDDING_EXTS if fuzzy else ("",)
    is_dir = ref.kind == "directory"

    def exists(base: str, r: str) -> bool:
        return index.has_dir(base, r) if is_dir else index.has_file(base, r)

    # 1. As written (on Windows both separators resolve; elsewhere only "/").
    literal_ok = windows or "\\" not in written
    for base in bases:
        for ext in exts:
            if exists(base, rel + ext):
                path = os.path.join(base, *(rel + ext).split("/"))
                if literal_ok:
                    return LocalMatch(status=LocalStatus.present, local_path=path)
                return LocalMatch(status=LocalStatus.relocated, local_path=path,
                                  relink_value=_widget_value(rel + ext, windows))
    if is_dir:
        return LocalMatch(status=LocalStatus.missing)
    if ref.match == "substring":
        # The pack uses the first file of the folder whose name contains the value.
        needle = rel.lower()
        for base in bases:
            for path in index.files_under(base):
                if needle in os.path.relpath(path, base).replace(os.sep, "/").lower():
                    return LocalMatch(status=LocalStatus.present, local_path=path)

    # 2. The same base name anywhere: same folder first (relinkable), then other folders.
    name = rel.rsplit("/", 1)[-1]
    candidates: list[tuple[int, str, str, str]] = []
    for ext in exts:
        for path in index.find_by_basename(name + ext):
            where = index.locate(path)
            if where is None:
                continue
            f, _base, r = where
            exact_case = os.path.basename(path) == name + ext
            rank = (0 if f == folder or f in ref.alt_folders else 2) + (0 if exact_case else 1)
            candidates.append((rank, path, f, r))
    if not candidates:
        return LocalMatch(status=LocalStatus.missing)
    candidates.sort(key=lambda c: (c[0], len(c[3]), c[3]))
    _rank, path, f, r = candidates[0]
    if ref.match == "fuzzy" and (f == folder or f in ref.alt_folders):
        # The pack falls back to a base-name match in its folder: the file will be found.
        return LocalMatch(status=LocalStatus.present, local_path=path)
    if folder is None:
        # Nothing told us the folder; a file at exactly the written relative path is the one.
        for _rank, path, f, r in candidates:
            if r == rel:
                return LocalMatch(status=LocalStatus.present, local_path=path)
        _rank, path, f, r = candidates[0]
    if f == folder:
        return LocalMatch(status=LocalStatus.relocated, local_path=path, relink_value=_widget_value(r, windows))
    return LocalMatch(status=LocalStatus.relocated, local_path=path, relink_value=None)
