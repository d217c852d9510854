"""What we know about node types: which widgets name model files, and in which folder.

Two sources, most trusted first:
  (a) node schemas: ComfyUI's `/object_info` (headless) or live schemas inside ComfyUI, with
      the folder each combo input reads when known (`input_folders`, or sentinel options);
  (b) the maintained loader table `data/loaders.json` (core + popular custom-node packs).
Pure data: built once per Resolver and queried by `detect`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import ConfigError
from .folders import canonical_folder

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
_UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "upload", "animated_image_upload", "model_upload")
_SENTINEL = re.compile(r"^cmr-sentinel-(.+?)\.[A-Za-z0-9]+$")


# ---- model specs --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FolderSpec:
    """The widget value is a file name inside one of these folders (canonical first)."""

    folders: tuple[str, ...]
    source: str = "table"  # "schema" | "table"

    @property
    def folder(self) -> str:
        return self.folders[0]


@dataclass(frozen=True, slots=True)
class PresetFile:
    filename: str
    folder: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class PresetSpec:
    """The widget value names a preset that the pack maps to files."""

    presets: Mapping[str, tuple[PresetFile, ...]]
    source: str = "table"


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """The widget value is a Hugging Face repo id the pack downloads into models/<folder>/<dir>."""

    folder: str
    dirname: str = "basename"  # basename | full | replace_slash
    source: str = "table"

    def local_name(self, repo_id: str) -> str:
        if self.dirname == "full":
            return repo_id
        if self.dirname == "replace_slash":
            return repo_id.replace("/", "--")
        return repo_id.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class DirSpec:
    """The widget value names a model directory inside a folder."""

    folder: str
    source: str = "table"


Spec = FolderSpec | PresetSpec | RepoSpec | DirSpec


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Everything detection needs about one node type."""

    widgets: tuple[str, ...] | None = None  # order of list-form widgets_values
    models: Mapping[str, Spec] = field(default_factory=dict)
    patterns: tuple[tuple[re.Pattern[str], Spec], ...] = ()
    dict_widgets: Mapping[str, Spec] = field(default_factory=dict)
    non_model_inputs: frozenset[str] = frozenset()
    non_model_node: str | None = None  # reason, when the node never loads models
    conflicts: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # input -> (folder, source)
    pack: str | None = None

    def spec_for(self, name: str) -> Spec | None:
        spec = self.models.get(name)
        if spec is not None:
            return spec
        for pattern, pspec in self.patterns:
            if pattern.search(name):
                return pspec
        return None


UNKNOWN = NodeInfo()


# ---- (b) the loader table ------------------------------------------------------------------
def _parse_spec(raw: Any, where: str) -> Spec:
    if isinstance(raw, str):
        return FolderSpec((canonical_folder(raw),))
    if isinstance(raw, dict):
        if "presets" in raw:
            presets: dict[str, tuple[PresetFile, ...]] = {}
            for name, files in raw["presets"].items():
                presets[name] = tuple(
                    PresetFile(f["filename"], canonical_folder(f["folder"]), f.get("url")) for f in files
                )
            return PresetSpec(presets)
        if "repo" in raw:
            r = raw["repo"]
            return RepoSpec(canonical_folder(r["folder"]), r.get("dirname", "basename"))
        if "dir" in raw:
            return DirSpec(canonical_folder(raw["dir"]))
        if "folder" in raw:
            folders = [raw["folder"], *raw.get("folders", [])]
            return FolderSpec(tuple(dict.fromkeys(canonical_folder(f) for f in folders)))
    raise ConfigError(f"Loader table: unreadable spec for {where}: {raw!r}")


@dataclass(frozen=True)
class LoaderTable:
    nodes: Mapping[str, NodeInfo]
    non_model: Mapping[str, str]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LoaderTable":
        nodes: dict[str, NodeInfo] = {}
        for ntype, entry in (data.get("nodes") or {}).items():
            models = {name: _parse_spec(spec, f"{ntype}.{name}") for name, spec in (entry.get("models") or {}).items()}
            patterns = tuple((re.compile(p), _parse_spec(spec, f"{ntype}.{p}"))
                             for p, spec in (entry.get("input_patterns") or {}).items())
            dict_widgets = {k: _parse_spec(spec, f"{ntype}.{k}") for k, spec in (entry.get("dict_widgets") or {}).items()}
            widgets = entry.get("widgets")
            nodes[ntype] = NodeInfo(
                widgets=tuple(widgets) if isinstance(widgets, list) else None,
                models=models,
                patterns=patterns,
                dict_widgets=dict_widgets,
                pack=entry.get("pack"),
            )
        non_model = {k: str(v) for k, v in (data.get("non_model") or {}).items()}
        return cls(nodes, non_model)

    @classmethod
    def load_default(cls) -> "LoaderTable":
        return _default_table()


@lru_cache(maxsize=1)
def _default_table() -> LoaderTable:
    path = Path(__file__).resolve().parent.parent / "data" / "loaders.json"
    try:
        return LoaderTable.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"The bundled loader table {path} cannot be read: {exc}") from None


# ---- (a) node schemas ----------------------------------------------------------------------
def _input_spec(raw: Any) -> tuple[str | None, list | None, dict]:
    """(type, combo options or None, options dict) of one object_info input entry."""
    if not isinstance(raw, (list, tuple)) or not raw:
        return None, None, {}
    head = raw[0]
    opts = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
    if isinstance(head, list):
        return "COMBO", head, opts
    if head == "COMBO":
        options = opts.get("options")
        return "COMBO", options if isinstance(options, list) else [], opts
    return head if isinstance(head, str) else None, None, opts


@dataclass(frozen=True, slots=True)
class SchemaNode:
    widgets: tuple[str, ...]
    model_folders: Mapping[str, tuple[str, ...]]  # input -> folders known from the schema
    non_model_inputs: frozenset[str]
    combos: frozenset[str]


def schema_node(entry: Mapping[str, Any], known_folders: Mapping[str, Iterable[str]] | None = None) -> SchemaNode:
    """Interpret one `/object_info` entry. `known_folders` (input -> folders) comes from live
    ComfyUI; otherwise folders are read from sentinel options (`cmr-sentinel-<folder>.<ext>`)."""
    inputs = entry.get("input") if isinstance(entry.get("input"), dict) else {}
    order = entry.get("input_order") if isinstance(entry.get("input_order"), dict) else {}
    widgets: list[str] = []
    folders: dict[str, tuple[str, ...]] = {}
    non_model: set[str] = set()
    combos: set[str] = set()
    for section in ("required", "optional"):
        sect = inputs.get(section)
        if not isinstance(sect, dict):
            continue
        names = order.get(section) if isinstance(order.get(section), list) else list(sect)
        for name in names:
            if name not in sect:
                continue
            typ, options, opts = _input_spec(sect[name])
            if typ not in WIDGET_TYPES or opts.get("forceInput"):
                continue
            widgets.append(name)
            if typ == "COMBO":
                combos.add(name)
                if any(opts.get(flag) for flag in _UPLOAD_FLAGS):
                    non_model.add(name)
                    widgets.append(f"{name}.upload")
                found = []
                for opt in options or ():
                    m = _SENTINEL.match(opt) if isinstance(opt, str) else None
                    if m:
                        found.append(canonical_folder(m.group(1)))
                if found:
                    folders[name] = tuple(dict.fromkeys(found))
            elif typ == "STRING" and opts.get("multiline"):
                non_model.add(name)
            elif typ in ("INT", "FLOAT", "BOOLEAN"):
                non_model.add(name)
            if opts.get("control_after_generate") or (typ == "INT" and name in ("seed", "noise_seed")
                                                       and opts.get("control_after_generate") is not False):
                widgets.append(f"{name}.control_after_generate")
    if known_folders:
        for name, fl in known_folders.items():
            fl = tuple(dict.fromkeys(canonical_folder(f) for f in fl))
            if fl:
                folders[name] = fl
    return SchemaNode(tuple(widgets), folders, frozenset(non_model), frozenset(combos))


# ---- the merged view -----------------------------------------------------------------------
class Knowledge:
    """Merged node knowledge. `schemas` wins over the table; disagreements are kept as conflicts."""

    def __init__(
        self,
        table: LoaderTable | None = None,
        object_info: Mapping[str, Any] | None = None,
        input_folders: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
    ) -> None:
        self.table = table if table is not None else LoaderTable.load_default()
        self._object_info = object_info if isinstance(object_info, Mapping) else {}
        self._input_folders = input_folders or {}
        self._cache: dict[str, NodeInfo] = {}

    @property
    def has_schemas(self) -> bool:
        return bool(self._object_info)

    def known_folders(self) -> set[str]:
        out: set[str] = set()
        for info in self.table.nodes.values():
            for spec in list(info.models.values()) + [s for _, s in info.patterns] + list(info.dict_widgets.values()):
                if isinstance(spec, FolderSpec):
                    out.update(spec.folders)
                elif isinstance(spec, (RepoSpec, DirSpec)):
                    out.add(spec.folder)
                elif isinstance(spec, PresetSpec):
                    out.update(f.folder for files in spec.presets.values() for f in files)
        return out

    def info(self, node_type: str) -> NodeInfo:
        cached = self._cache.get(node_type)
        if cached is None:
            cached = self._cache[node_type] = self._build(node_type)
        return cached

    def _build(self, node_type: str) -> NodeInfo:
        reason = self.table.non_model.get(node_type)
        table_info = self.table.nodes.get(node_type)
        entry = self._object_info.get(node_type)
        if reason is not None:
            return NodeInfo(non_model_node=reason)
        if not isinstance(entry, Mapping):
            return table_info or UNKNOWN
        schema = schema_node(entry, self._input_folders.get(node_type))
        base = table_info or UNKNOWN
        models: dict[str, Spec] = dict(base.models)
        conflicts: dict[str, tuple[str, str]] = {}
        for name, folders in schema.model_folders.items():
            prior = models.get(name)
            if isinstance(prior, FolderSpec) and prior.folder not in folders:
                conflicts[name] = (prior.folder, "table")
            if isinstance(prior, (PresetSpec, RepoSpec, DirSpec)):
                continue  # the table knows the value is not a plain file name
            models[name] = FolderSpec(folders, source="schema")
        non_model = frozenset(n for n in schema.non_model_inputs if n not in models)
        return NodeInfo(
            widgets=schema.widgets or base.widgets,
            models=models,
            patterns=base.patterns,
            dict_widgets=base.dict_widgets,
            non_model_inputs=non_model,
            conflicts=conflicts,
            pack=base.pack,
        )
