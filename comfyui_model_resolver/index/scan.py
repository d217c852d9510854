"""The local model index: every file and sub-directory under the model folders.

Scanning is blocking I/O; callers run `refresh()` in a worker thread. The index is cached per
directory, keyed on the directory's path and mtime (the same validation ComfyUI uses for its
file lists): a directory whose mtime is unchanged is not listed again, so rescanning an
unchanged tree costs one stat() per directory. The cache is persisted with an atomic write.
Files are never stat()ed during a scan; sizes are read lazily when a file is used.

A new process loads the cache without decoding the file names (they stay one marshal blob until a
query needs them), and answers name lookups without a map over every file (`find_by_basename`): it
searches the names as one lower-cased text, saved with the cache (`name_text.py`).
"""
from __future__ import annotations

import hashlib
import marshal
import os
import threading
import time
from pathlib import Path
from typing import NamedTuple

from .layout import FolderLayout
from .name_text import NameText, SavedText, saved_form

_CACHE_VERSION = 5
_RACY_NS = 2_000_000_000  # a directory modified this recently may change again within its mtime tick
_SEP = "\0"
_MAP_AFTER = 32  # name lookups answered by searching the listings before a name map is built


class ScanStats(NamedTuple):
    """What one refresh did (a named tuple, not a dataclass: see FolderLayout)."""

    directories: int
    files: int
    rescanned: int  # directories actually listed (the rest came from the cache)
    seconds: float


class _Dir:
    """One directory's listing (a plain slotted class: a warm start builds one per directory).

    Loaded from the cache, the file names stay undecoded until something asks for them: a warm
    refresh needs only mtimes and sub-directories (see `_LazyNames`)."""

    __slots__ = ("mtime_ns", "_files", "subdirs", "nfiles", "children", "_lazy")

    def __init__(self, mtime_ns: int, files: str | None, subdirs: str, nfiles: int = 0,
                 children: tuple[str, ...] = (), lazy: "_LazyNames | None" = None) -> None:
        self.mtime_ns = mtime_ns  # -1: do not trust, list again next time
        self._files = files  # "\0"-joined names; None until `lazy` decodes them
        self.subdirs = subdirs
        self.nfiles = nfiles
        self.children = children  # absolute paths of the sub-directories (saves joins on rescans)
        self._lazy = lazy

    @property
    def files(self) -> str:
        if self._files is None:
            self._lazy.fill()  # type: ignore[union-attr]
        return self._files  # type: ignore[return-value]

    def file_names(self) -> list[str]:
        files = self.files
        return files.split(_SEP) if files else []

    def subdir_names(self) -> list[str]:
        return self.subdirs.split(_SEP) if self.subdirs else []


class _LazyNames:
    """The file names of every cached directory, read from the names file on first use.

    The names file starts with the token of the structure it belongs to. Should another process
    have replaced it since (a race between two writers), the directories are listed again instead."""

    __slots__ = ("path", "token", "dirs", "entries")

    def __init__(self, path: Path, token: bytes, dirs: list[str]) -> None:
        self.path = path
        self.token = token
        self.dirs = dirs
        self.entries: list[_Dir] = []

    def fill(self) -> None:
        if not self.entries:
            return
        names = None
        try:
            raw = self.path.read_bytes()
            if raw[:_TOKEN] == self.token:
                names = marshal.loads(raw[_TOKEN:])
        except (OSError, EOFError, ValueError, TypeError):
            names = None
        if not isinstance(names, list) or len(names) != len(self.entries):
            names = [_list_names(d) for d in self.dirs]
        for entry, files in zip(self.entries, names):
            if entry._files is None:
                entry._files = files
        self.entries, self.dirs = [], []


_TOKEN = 16


def _list_names(d: str) -> str:
    """The file names of one directory, as `ModelIndex._list` keeps them (fallback of `_LazyNames`)."""
    return ModelIndex._list(d, 0, 0).files


class ModelIndex:
    """Directory listings of every model folder, refreshed incrementally."""

    def __init__(self, layout: FolderLayout, cache_dir: str | os.PathLike | None = None) -> None:
        self.layout = layout
        self._dirs: dict[str, _Dir] = {}
        self._lock = threading.RLock()
        self._by_name: dict[str, list[str]] | None = None
        self._names: NameText | SavedText | None = None
        self._lookups = 0
        self._loaded = False
        self._cache_file: Path | None = None
        if cache_dir is not None:
            key = hashlib.sha256(repr(sorted(layout.all_dirs())).encode()).hexdigest()[:16]
            self._cache_file = Path(cache_dir) / f"index-{key}.bin"
        self.last_stats: ScanStats | None = None

    # ---- persistence -------------------------------------------------------------------
    def _load_cache(self) -> None:
        """Load the structure (directories, mtimes, sub-directories); the names stay on disk."""
        self._loaded = True
        if self._cache_file is None:
            return
        names_file = self._cache_file.with_suffix(".names")
        try:
            data = marshal.loads(self._cache_file.read_bytes())
            with open(names_file, "rb") as f:
                token = f.read(_TOKEN)
        except (OSError, EOFError, ValueError, TypeError):
            return
        if not isinstance(data, dict) or data.get("v") != _CACHE_VERSION or data.get("token") != token:
            return
        try:
            dirs = data["dirs"]
            lazy = _LazyNames(names_file, token, dirs)
            entries = [_Dir(m, None, sub, n, tuple(c), lazy) for m, sub, n, c in data["meta"]]
        except (KeyError, TypeError, ValueError):
            return
        if len(entries) != len(dirs):
            return
        lazy.entries = entries
        self._dirs = dict(zip(dirs, entries))
        text = data.get("text")
        if isinstance(text, tuple) and len(text) == 3:  # the names as one lower-cased text (name_text.py)
            self._names = SavedText(self._cache_file.with_suffix(".text"), token, *text)

    def _save_cache(self) -> None:
        """Names first (per directory, and as one lower-cased text for lookups), then the structure
        that names their token: a reader never pairs the new structure with old names (and checks
        the token for the other order)."""
        if self._cache_file is None:
            return
        entries = list(self._dirs.items())
        token = os.urandom(_TOKEN)
        names = token + marshal.dumps([e.files for _, e in entries])
        self._names = text = NameText((d, e.files) for d, e in entries)
        saved = saved_form(token, text)  # None when the names are not ASCII: no text file
        blob = marshal.dumps({"v": _CACHE_VERSION, "token": token, "dirs": [d for d, _ in entries],
                              "meta": [(e.mtime_ns, e.subdirs, e.nfiles, e.children) for _, e in entries],
                              "text": saved and saved[1]})
        files = [(".names", names), *([(".text", saved[0])] if saved else []), (self._cache_file.suffix, blob)]
        try:
            self._cache_file.parent.mkdir(parents=True, exist_ok=True)
            for suffix, data in files:
                path = self._cache_file.with_suffix(suffix)
                tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, path)
        except OSError as exc:  # a cache that cannot be written is not fatal
            import logging

            logging.getLogger(__name__).warning("index cache not written to %s: %s", self._cache_file, exc.strerror)

    # ---- scanning ----------------------------------------------------------------------
    def refresh(self) -> ScanStats:
        """Bring the index up to date. Blocking: run it in a thread."""
        start = time.perf_counter()
        now_ns = time.time_ns()
        with self._lock:
            if not self._loaded:
                self._load_cache()
            old = self._dirs
            new: dict[str, _Dir] = {}
            seen_inodes: set[tuple[int, int]] = set()
            rescanned = files = 0
            changed = False
            for _folder, base in self.layout.all_dirs():
                stack = [base]
                while stack:
                    d = stack.pop()
                    if d in new:
                        continue
                    try:
                        st = os.stat(d)
                    except OSError:
                        continue
                    ident = (st.st_dev, st.st_ino)
                    if ident in seen_inodes:  # symlink loop or the same directory twice
                        continue
                    seen_inodes.add(ident)
                    cached = old.get(d)
                    if cached is not None and cached.mtime_ns == st.st_mtime_ns and cached.mtime_ns != -1:
                        entry = cached
                    else:
                        entry = self._list(d, st.st_mtime_ns, now_ns)
                        rescanned += 1
                        if cached is None or cached.files != entry.files or cached.subdirs != entry.subdirs:
                            changed = True
                    new[d] = entry
                    files += entry.nfiles
                    stack.extend(entry.children)
            if changed or len(new) != len(old):
                self._by_name = None
                self._names = None
            self._dirs = new
            if rescanned or len(new) != len(old):
                self._save_cache()
            stats = ScanStats(len(new), files, rescanned, time.perf_counter() - start)
            self.last_stats = stats
            return stats

    @staticmethod
    def _list(d: str, mtime_ns: int, now_ns: int) -> _Dir:
        files: list[str] = []
        subdirs: list[str] = []
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        # follows symlinks, like ComfyUI's os.walk(followlinks=True)
                        (subdirs if e.is_dir() else files).append(e.name)
                    except OSError:
                        continue
        except OSError:
            return _Dir(-1, "", "")
        joined = _SEP.join(files)
        if "\0." in "\0" + joined or ".part" in joined or ".cmr-tmp" in joined:
            # hidden files and our own partial downloads are not models
            files = [f for f in files if not (f.startswith(".") or f.endswith((".part", ".cmr-tmp")))]
            joined = _SEP.join(files)
        if subdirs:
            subdirs = [s for s in subdirs if not s.startswith(".")]
        trusted = mtime_ns if now_ns - mtime_ns > _RACY_NS else -1
        return _Dir(trusted, joined, _SEP.join(subdirs), len(files), tuple(os.path.join(d, x) for x in subdirs))

    # ---- queries -----------------------------------------------------------------------
    def _entry(self, directory: str) -> _Dir | None:
        return self._dirs.get(directory)

    def has_file(self, base: str, rel: str) -> bool:
        parent, _, name = rel.rpartition("/")
        entry = self._dirs.get(os.path.join(base, *parent.split("/")) if parent else base)
        return entry is not None and name in entry.file_names()

    def has_dir(self, base: str, rel: str) -> bool:
        parent, _, name = rel.rstrip("/").rpartition("/")
        entry = self._dirs.get(os.path.join(base, *parent.split("/")) if parent else base)
        return entry is not None and name in entry.subdir_names()

    def list_dir(self, directory: str) -> tuple[list[str], list[str]] | None:
        entry = self._dirs.get(directory)
        return (entry.file_names(), entry.subdir_names()) if entry else None

    def find_by_basename(self, name: str) -> list[str]:
        """Absolute paths of files whose base name equals `name`, case-insensitively.

        No name map over every file is built for the first lookups (a new process usually makes a
        few): the names of all directories are searched as one lower-cased text, in C. A process
        that keeps looking names up gets the map after `_MAP_AFTER` lookups."""
        needle = name.lower()
        if not needle or _SEP in needle or "/" in needle:
            return []
        with self._lock:
            if self._by_name is not None:
                return list(self._by_name.get(needle, ()))
            self._lookups += 1
            if self._lookups > _MAP_AFTER or not needle.isascii():
                self._by_name = self._name_map()
                return list(self._by_name.get(needle, ()))
            if self._names is None:
                self._names = NameText((d, e.files) for d, e in self._dirs.items())
            found = self._names.find(needle)
            if found is None and isinstance(self._names, SavedText):  # gone, or another writer's
                self._names = NameText((d, e.files) for d, e in self._dirs.items())
                found = self._names.find(needle)
            if found is None:  # names that are not ASCII: lower-casing may change their length
                self._by_name = self._name_map()
                return list(self._by_name.get(needle, ()))
            return found

    def _name_map(self) -> dict[str, list[str]]:
        by: dict[str, list[str]] = {}
        for d, entry in self._dirs.items():
            if entry.files:
                for f in entry.files.split(_SEP):
                    by.setdefault(f.lower(), []).append(os.path.join(d, f))
        return by

    def iter_files(self):
        """(folder, base directory, relative path with "/") for every indexed file."""
        for folder, base in self.layout.all_dirs():
            stack = [(base, "")]
            while stack:
                d, prefix = stack.pop()
                entry = self._dirs.get(d)
                if entry is None:
                    continue
                for f in entry.file_names():
                    yield folder, base, prefix + f
                for s in entry.subdir_names():
                    stack.append((os.path.join(d, s), prefix + s + "/"))

    def files_under(self, base: str) -> list[str]:
        """Absolute paths of every indexed file below `base`, in sorted order."""
        out: list[str] = []
        stack = [base]
        while stack:
            d = stack.pop()
            entry = self._dirs.get(d)
            if entry is None:
                continue
            out.extend(os.path.join(d, f) for f in entry.file_names())
            stack.extend(os.path.join(d, s) for s in entry.subdir_names())
        return sorted(out)

    def locate(self, path: str) -> tuple[str, str, str] | None:
        """(folder, base, relative path) of an absolute path inside the layout, longest base first."""
        best = None
        for folder, base in self.layout.all_dirs():
            if path.startswith(base.rstrip(os.sep) + os.sep) and (best is None or len(base) > len(best[1])):
                best = (folder, base, os.path.relpath(path, base).replace(os.sep, "/"))
        return best
