"""Live node schemas from inside ComfyUI, with the model folder behind every combo input.

ComfyUI's `/object_info` says a loader's `ckpt_name` is a combo of file names, but not which folder
the names came from, and an empty folder gives an empty list that says nothing at all. So while
we call each node's `INPUT_TYPES` (V1) or `GET_NODE_INFO_V1` (V3), `folder_paths.get_filename_list`
is wrapped, for this thread only, to hand out *tagged* results: every name is a `str` subclass that
remembers its folder, and the list itself is a `list` subclass that does too. Whatever a node does
with them — pass the list through, sort it, filter it, prepend "None", merge two folders — the
surviving elements (or the list object itself, when the folder is empty) say which folder(s) an
input reads. Two fallbacks cover the rest: one folder asked for and one combo left unexplained, and
option lists that are exactly a known folder's files (nodes that listed files at import time).

Nothing here imports ComfyUI: the `folder_paths` and `nodes` modules are passed in by
`adapters/comfyui.py`. The tagged values are ordinary strings to everyone else; other threads (the
prompt worker, ComfyUI's own /object_info) are never given tagged values.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..workflow.folders import NON_MODEL_FOLDERS, canonical_folder, is_empty_choice

log = logging.getLogger(__name__)


class _TaggedName(str):
    """A file name that remembers which folder listed it."""

    cmr_folder: str


class _TaggedList(list):
    """A get_filename_list result that remembers its folder (survives only if passed through as is)."""

    cmr_folder: str


@dataclass
class NodeSchemas:
    """What `collect` found: object_info-style entries and input -> folders for each node type."""

    object_info: dict[str, dict] = field(default_factory=dict)
    input_folders: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # node type -> error
    seconds: float = 0.0

    def stats(self) -> dict[str, Any]:
        inputs = sum(len(v) for v in self.input_folders.values())
        return {"node_types": len(self.object_info), "model_inputs": inputs, "failed": len(self.failed),
                "seconds": round(self.seconds, 3)}


class _Recorder:
    """Wraps folder_paths.get_filename_list; tags results only for the thread that is recording."""

    def __init__(self, folder_paths: Any) -> None:
        self._fp = folder_paths
        self._local = threading.local()
        self._original: Callable[..., Any] | None = None
        self._wrapper: Callable[..., Any] | None = None

    # -- install / remove ------------------------------------------------------------------
    def __enter__(self) -> "_Recorder":
        original = getattr(self._fp, "get_filename_list", None)
        if not callable(original):
            return self
        local = self._local
        canonical = self._canonical

        def get_filename_list(folder_name: str, *args: Any, **kwargs: Any) -> Any:
            result = original(folder_name, *args, **kwargs)
            calls = getattr(local, "calls", None)
            if calls is None:
                return result
            try:
                folder = canonical(folder_name)
                calls.append(folder)
                if isinstance(result, list):
                    tagged = _TaggedList(_tag(v, folder) for v in result)
                    tagged.cmr_folder = folder
                    local.lists[id(tagged)] = (tagged, folder)
                    return tagged
            except Exception:  # noqa: BLE001 - never break a node's INPUT_TYPES
                log.debug("tagging %r failed", folder_name, exc_info=True)
            return result

        get_filename_list.__wrapped__ = original  # type: ignore[attr-defined]
        self._original, self._wrapper = original, get_filename_list
        self._fp.get_filename_list = get_filename_list
        return self

    def __exit__(self, *exc: Any) -> None:
        # Restore only if nobody wrapped it after us (then our wrapper stays, and is inert).
        if self._wrapper is not None and getattr(self._fp, "get_filename_list", None) is self._wrapper:
            self._fp.get_filename_list = self._original

    def _canonical(self, folder_name: str) -> str:
        mapper = getattr(self._fp, "map_legacy", None)
        name = mapper(folder_name) if callable(mapper) else folder_name
        return canonical_folder(str(name))

    # -- per node ----------------------------------------------------------------------------
    def start(self) -> None:
        self._local.calls = []
        self._local.lists = {}

    def stop(self) -> tuple[list[str], dict[int, tuple[list, str]]]:
        calls, lists = self._local.calls, self._local.lists
        self._local.calls = None
        self._local.lists = None
        return calls, lists


def _tag(value: Any, folder: str) -> Any:
    if type(value) is str:
        tagged = _TaggedName(value)
        tagged.cmr_folder = folder
        return tagged
    return value


def _plain(value: Any) -> Any:
    """Copy an INPUT_TYPES structure into plain JSON-like data (tags dropped, odd objects named)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)[:200]


def _combo_options(spec: Any) -> list | None:
    """The option list of a combo input spec (V1 list head, or the "COMBO" + options form)."""
    if not isinstance(spec, (list, tuple)) or not spec:
        return None
    head = spec[0]
    if isinstance(head, list):
        return head
    if head == "COMBO" and len(spec) > 1 and isinstance(spec[1], Mapping):
        options = spec[1].get("options")
        return options if isinstance(options, list) else None
    return None


def _node_info(cls: type) -> dict:
    """What ComfyUI's /object_info gives for one class (the parts detection needs)."""
    v3 = getattr(cls, "GET_NODE_INFO_V1", None)
    if callable(v3):
        return dict(v3())
    inputs = cls.INPUT_TYPES()
    if not isinstance(inputs, Mapping):
        raise TypeError(f"INPUT_TYPES returned {type(inputs).__name__}, not a dict")
    return {"input": inputs,
            "input_order": {k: list(v.keys()) for k, v in inputs.items() if isinstance(v, Mapping)}}


def _attribute(info: Mapping[str, Any], calls: list[str], lists: Mapping[int, tuple[list, str]],
               all_folders: Iterable[str], folder_files: Callable[[str], frozenset[str] | None],
               ) -> dict[str, tuple[str, ...]]:
    """input name -> model folders, for the combo inputs of one node."""
    inputs = info.get("input") if isinstance(info.get("input"), Mapping) else {}
    found: dict[str, tuple[str, ...]] = {}
    unexplained: list[tuple[str, list]] = []
    for section in ("required", "optional"):
        sect = inputs.get(section)
        if not isinstance(sect, Mapping):
            continue
        for name, spec in sect.items():
            options = _combo_options(spec)
            if options is None:
                continue
            folders: list[str] = []
            entry = lists.get(id(options))
            # the list handed out, passed through as is (copies may lose the attribute: then elements tell)
            folder = getattr(options, "cmr_folder", None) if isinstance(options, _TaggedList) else None
            if folder is None and entry is not None and entry[0] is options:
                folder = entry[1]
            if folder is not None:
                folders.append(folder)
            for opt in options:
                folder = getattr(opt, "cmr_folder", None)
                if folder is not None and folder not in folders:
                    folders.append(folder)
            folders = [f for f in folders if f not in NON_MODEL_FOLDERS]
            if folders:
                found[str(name)] = tuple(folders)
            else:
                unexplained.append((str(name), options))
    # Folders asked for but seen in no option list, and combos whose options are only placeholders
    # (empty folders whose lists were copied or reshaped): e.g. `["None"] + get_filename_list("x")`,
    # two merged lists, or a V3 node with three `text_encoders` combos.
    unused_calls = [f for f in calls if f not in NON_MODEL_FOLDERS and not any(f in fl for fl in found.values())]
    unused = list(dict.fromkeys(unused_calls))
    placeholders = [n for n, o in unexplained if all(is_empty_choice(v) for v in o)]
    assigned: dict[str, tuple[str, ...]] = {}
    if unused and len(placeholders) == 1:
        assigned[placeholders[0]] = tuple(unused)
    elif len(unused) == 1:
        assigned = {n: (unused[0],) for n in placeholders}
    elif unused_calls and len(unused_calls) == len(placeholders):
        assigned = {n: (f,) for n, f in zip(placeholders, unused_calls)}  # one call per combo, in order
    found.update(assigned)
    unexplained = [u for u in unexplained if u[0] not in assigned]
    # Options listed at import time (no call now): exactly one folder holds them all.
    for name, options in unexplained:
        values = {v for v in options if isinstance(v, str) and not is_empty_choice(v)}
        if not values:
            continue
        matches = [f for f in all_folders if (files := folder_files(f)) and values <= files]
        if len(matches) == 1:
            found[name] = (matches[0],)
    return found


def collect(folder_paths: Any, node_classes: Mapping[str, type],
            display_names: Mapping[str, str] | None = None) -> NodeSchemas:
    """Call every node's schema once (blocking: run it in a worker thread) and attribute folders."""
    t0 = time.perf_counter()
    out = NodeSchemas()
    registered = getattr(folder_paths, "folder_names_and_paths", {}) or {}
    all_folders = list(dict.fromkeys(canonical_folder(str(f)) for f in registered
                                     if canonical_folder(str(f)) not in NON_MODEL_FOLDERS))
    files_cache: dict[str, frozenset[str] | None] = {}

    def folder_files(folder: str) -> frozenset[str] | None:
        if folder not in files_cache:
            try:
                files_cache[folder] = frozenset(str(x) for x in original(folder))
            except Exception:  # noqa: BLE001
                files_cache[folder] = None
        return files_cache[folder]

    original = getattr(folder_paths, "get_filename_list")
    recorder = _Recorder(folder_paths)
    with recorder:
        for node_type, cls in list(node_classes.items()):
            recorder.start()
            try:
                info = _node_info(cls)
            except Exception as exc:  # noqa: BLE001 - one broken node pack must not hide the others
                recorder.stop()
                out.failed[str(node_type)] = f"{type(exc).__name__}: {exc}"[:300]
                continue
            calls, lists = recorder.stop()
            try:
                folders = _attribute(info, calls, lists, all_folders, folder_files)
            except Exception as exc:  # noqa: BLE001
                folders = {}
                out.failed[str(node_type)] = f"attribution: {type(exc).__name__}: {exc}"[:300]
            entry = _plain({k: info[k] for k in ("input", "input_order") if k in info})
            entry["name"] = str(node_type)
            entry["display_name"] = str((display_names or {}).get(node_type) or info.get("display_name") or node_type)
            entry["python_module"] = str(getattr(cls, "RELATIVE_PYTHON_MODULE", info.get("python_module", "nodes")))
            out.object_info[str(node_type)] = entry
            if folders:
                out.input_folders[str(node_type)] = folders
    if out.failed:
        log.debug("node schemas that could not be read: %s", out.failed)
    out.seconds = time.perf_counter() - t0
    return out


def folder_dirs(folder_paths: Any) -> dict[str, list[str]]:
    """Every registered folder with its directories (defaults, extra_model_paths.yaml, packs)."""
    out: dict[str, list[str]] = {}
    for name, value in dict(getattr(folder_paths, "folder_names_and_paths", {}) or {}).items():
        paths = value[0] if isinstance(value, (tuple, list)) and value else ()
        if isinstance(paths, (str, bytes)):
            paths = [paths]
        out[str(name)] = [str(p) for p in paths if isinstance(p, str)]
    return out


__all__ = ["NodeSchemas", "collect", "folder_dirs"]
