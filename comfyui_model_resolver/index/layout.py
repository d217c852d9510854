"""Which directories hold each model folder: the models root plus `extra_model_paths.yaml`.

`parse_extra_model_paths` is pure and mirrors ComfyUI's `utils/extra_config.py`: per section a
`base_path` (with `~` and environment variables expanded, relative to the YAML's directory),
`is_default` (its paths go first), and one or more newline-separated paths per folder key.
Legacy keys are mapped like `folder_paths.map_legacy` (clip -> text_encoders, unet -> diffusion_models).
"""
from __future__ import annotations

import os
import posixpath
import ntpath
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import LocalIndexError
from ..workflow.folders import DEFAULT_FOLDER_DIRS, NON_MODEL_FOLDERS, canonical_folder

_SKIP_KEYS = {"base_path", "is_default"}


class FolderLayout:
    """canonical folder -> directories, first one is where new downloads go. Read-only.

    A plain class, not a dataclass: a warm index in a new process imports this module, and importing
    the dataclasses module (it imports `inspect`) was about a third of that process's own time."""

    __match_args__ = ("folders", "models_root", "sources", "write_roots")

    def __init__(self, folders: Mapping[str, tuple[str, ...]], models_root: str | None = None,
                 sources: tuple[str, ...] = (), write_roots: tuple[str, ...] = ()) -> None:
        # sources: where the layout came from, for diagnostics; write_roots: more directories
        # downloads may be written to (CMR_WRITE_ROOTS; downloads/containment.py)
        for name, value in zip(self.__match_args__, (folders, models_root, sources, write_roots)):
            object.__setattr__(self, name, value)

    folders: Mapping[str, tuple[str, ...]]
    models_root: str | None
    sources: tuple[str, ...]
    write_roots: tuple[str, ...]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"FolderLayout is read-only (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"FolderLayout is read-only (cannot delete {name!r})")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if other.__class__ is self.__class__ else NotImplemented

    __hash__ = None  # type: ignore[assignment] - `folders` is a dict

    def __repr__(self) -> str:
        return "FolderLayout(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__match_args__) + ")"

    def dirs(self, folder: str) -> tuple[str, ...]:
        """Directories of a folder. Besides folder names this understands the forms the loader
        table uses: `insightface/models` (a sub-directory of a folder), `models/clip` (a literal
        directory under the models root) and `custom_nodes/<pack>/…` (inside a node pack)."""
        found = self.folders.get(canonical_folder(folder))
        if found is not None:
            return found
        head, sep, rest = folder.partition("/")
        if not sep or not rest or ".." in rest.split("/"):
            return ()
        parts = rest.split("/")
        if head == "models" and self.models_root:
            return (os.path.join(self.models_root, *parts),)
        if head == "custom_nodes" and self.models_root:
            return (os.path.join(os.path.dirname(self.models_root), "custom_nodes", *parts),)
        return tuple(os.path.join(d, *parts) for d in self.folders.get(canonical_folder(head), ()))

    def is_known(self, folder: str) -> bool:
        """One of ComfyUI's folders, a configured extra path or a folder that exists (or a sub-directory
        of one): a download may go there without creating a folder nobody will look in."""
        return bool(self.dirs(folder))

    def known_folders(self) -> list[str]:
        return sorted(self.folders)

    def download_dir(self, folder: str) -> str | None:
        """Where a new file of `folder` goes: its first directory, or models_root/<folder>."""
        dirs = self.dirs(folder)
        if dirs:
            return dirs[0]
        if self.models_root and folder and not folder.startswith(("/", "custom_nodes/")) and ".." not in folder.split("/"):
            return os.path.join(self.models_root, *canonical_folder(folder).split("/"))
        return None

    def all_dirs(self) -> list[tuple[str, str]]:
        """(folder, directory) pairs, without duplicates, in priority order."""
        seen: set[str] = set()
        out = []
        for folder, dirs in self.folders.items():
            for d in dirs:
                if d not in seen:
                    seen.add(d)
                    out.append((folder, d))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"models_root": self.models_root, "folders": {k: list(v) for k, v in self.folders.items()},
                "sources": list(self.sources)}


def _expand(path: str, environ: Mapping[str, str]) -> str:
    path = os.path.expanduser(path)
    # os.path.expandvars reads os.environ; do the same substitution from `environ` instead.
    if "$" in path or "%" in path:
        for key in sorted(environ, key=len, reverse=True):
            val = environ[key]
            path = path.replace("${" + key + "}", val).replace("$" + key, val).replace("%" + key + "%", val)
    return path


def _isabs(path: str) -> bool:
    return posixpath.isabs(path) or ntpath.isabs(path)


def parse_extra_model_paths(text: str, yaml_dir: str, environ: Mapping[str, str] | None = None,
                            *, origin: str = "extra_model_paths.yaml") -> list[tuple[str, str, bool]]:
    """(folder, absolute directory, is_default) entries of an extra_model_paths.yaml."""
    import yaml  # only when there is such a file: it costs start-up time

    environ = environ if environ is not None else {}
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LocalIndexError(f"{origin} is not valid YAML: {exc}") from None
    if config is None:
        return []
    if not isinstance(config, dict):
        raise LocalIndexError(f"{origin} must be a mapping of sections (e.g. comfyui:, a111:).")
    out: list[tuple[str, str, bool]] = []
    for section, conf in config.items():
        if conf is None:
            continue
        if not isinstance(conf, dict):
            raise LocalIndexError(f"{origin}: section {section!r} must be a mapping of folder names to paths.")
        base_path = conf.get("base_path")
        if base_path is not None:
            base_path = _expand(str(base_path), environ)
            if not _isabs(base_path):
                base_path = os.path.abspath(os.path.join(yaml_dir, base_path))
        is_default = bool(conf.get("is_default", False))
        for key, value in conf.items():
            if key in _SKIP_KEYS or value is None:
                continue
            if isinstance(value, (list, tuple)):
                lines = [str(v) for v in value]
            elif isinstance(value, (str, int, float)):
                lines = str(value).split("\n")
            else:
                raise LocalIndexError(f"{origin}: {section}.{key} must be a path or newline-separated paths.")
            for line in lines:
                line = line.strip()
                if not line:
                    continue
                line = _expand(line, environ)
                if base_path:
                    full = os.path.join(base_path, line)
                elif not _isabs(line):
                    full = os.path.abspath(os.path.join(yaml_dir, line))
                else:
                    full = line
                out.append((canonical_folder(str(key)), os.path.normpath(full), is_default))
    return out


def build_layout(models_root: str | os.PathLike | None,
                 extra_yaml_files: Iterable[str | os.PathLike] = (),
                 environ: Mapping[str, str] | None = None,
                 explicit: Mapping[str, Iterable[str]] | None = None,
                 write_roots: Iterable[str | os.PathLike] = ()) -> FolderLayout:
    """The folder layout of an install. `explicit` (from ComfyUI's folder_paths) wins when given."""
    folders: dict[str, list[str]] = {}
    sources: list[str] = []

    def add(folder: str, directory: str, is_default: bool = False) -> None:
        folder = canonical_folder(folder)
        if folder in NON_MODEL_FOLDERS:
            return
        paths = folders.setdefault(folder, [])
        if directory in paths:
            if is_default and paths[0] != directory:
                paths.remove(directory)
                paths.insert(0, directory)
            return
        if is_default:
            paths.insert(0, directory)
        else:
            paths.append(directory)

    root = os.path.abspath(os.fspath(models_root)) if models_root else None
    if explicit is not None:
        for folder, dirs in explicit.items():
            for d in dirs:
                add(folder, os.path.abspath(d))
        sources.append("comfyui folder_paths")
    elif root:
        sources.append(root)
        for folder, subdirs in DEFAULT_FOLDER_DIRS.items():
            for sub in subdirs:
                add(folder, os.path.join(root, sub))
        # Custom folders (ipadapter, animatediff_models, ultralytics, …) are sub-directories too.
        try:
            with os.scandir(root) as it:
                for entry in it:
                    if entry.is_dir() and not entry.name.startswith("."):
                        add(entry.name, entry.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LocalIndexError(f"Cannot read the models root {root}: {exc.strerror}") from None
    for yaml_file in extra_yaml_files:
        path = Path(yaml_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise LocalIndexError(f"Cannot read {path}: {exc.strerror}") from None
        for folder, directory, is_default in parse_extra_model_paths(
                text, str(path.resolve().parent), environ, origin=str(path)):
            add(folder, directory, is_default)
        sources.append(str(path))
    return FolderLayout({k: tuple(v) for k, v in folders.items()}, root, tuple(sources),
                        tuple(os.path.abspath(os.fspath(p)) for p in write_roots))
