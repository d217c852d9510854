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
from dataclasses import dataclass, field, replace
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
class PresetFile:
    """A file a preset or a node needs without a widget naming it."""

    filename: str
    folder: str
    url: str | None = None
    variant: str | None = None  # the model family it serves: sd15, sdxl, flux, …
    kind: str = "file"  # file | directory
    optional: bool = False
    auto_download: bool = False
    note: str | None = None
    where: str | None = None  # "file:line" of the pack's code that loads it, for files read from code


@dataclass(frozen=True, slots=True)
class FolderSpec:
    """The widget value is a file name inside one of `folders` (canonical first), unless it is one of
    the pack's presets (which map to files) or an ignored placeholder."""

    folders: tuple[str, ...]
    source: str = "table"  # "schema" | "table"
    presets: Mapping[str, tuple[PresetFile, ...]] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()
    value_folders: tuple[tuple[re.Pattern[str], str], ...] = ()
    match: str = "exact"  # exact | fuzzy (extension/basename optional) | substring
    auto_download: bool = False
    enabled_key: str | None = None  # dict widgets: the key that disables a row
    note: str | None = None

    @property
    def folder(self) -> str | None:
        return self.folders[0] if self.folders else None

    def folder_for(self, value: str) -> str | None:
        for pattern, folder in self.value_folders:
            if pattern.search(value):
                return folder
        return self.folder


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """The widget value is a Hugging Face repo id the pack downloads into models/<folder>/<dir>."""

    folder: str
    dirname: str = "basename"  # basename | full | replace_slash
    source: str = "table"
    ignore: frozenset[str] = frozenset()
    auto_download: bool = False
    note: str | None = None

    def local_name(self, repo_id: str) -> str:
        if self.dirname == "full":
            return repo_id
        if self.dirname == "replace_slash":
            return "models--" + repo_id.replace("/", "--")
        return repo_id.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class DirSpec:
    """The widget value names a model directory inside a folder."""

    folder: str
    source: str = "table"
    ignore: frozenset[str] = frozenset()
    auto_download: bool = False
    note: str | None = None


Spec = FolderSpec | RepoSpec | DirSpec


@dataclass(frozen=True, slots=True)
class TextPattern:
    """A model named inside prompt text: `embedding:<name>`, `<lora:name:w>`."""

    regex: re.Pattern[str]
    group: int
    folder: str
    match: str = "exact"
    note: str | None = None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Everything detection needs about one node type."""

    widgets: tuple[str, ...] | None = None  # order of list-form widgets_values
    models: Mapping[str, Spec] = field(default_factory=dict)
    patterns: tuple[tuple[re.Pattern[str], Spec], ...] = ()
    dict_widgets: Mapping[str, Spec] = field(default_factory=dict)
    text_patterns: Mapping[str, tuple[TextPattern, ...]] = field(default_factory=dict)
    implicit: tuple[PresetFile, ...] = ()
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
def table_folder(raw: str, *, root: str | None = None, hardcoded: bool = False) -> str:
    """A folder name from the table: canonical, or a literal path for hard-coded/custom_nodes ones.

    `models/<dir>` names the literal directory under the models root (a pack that ignores
    ComfyUI's folder registry); `custom_nodes/<path>` a directory inside a node pack."""
    raw = raw.strip().strip("/")
    if root == "custom_nodes":
        return f"custom_nodes/{raw}"
    if hardcoded:
        return f"models/{raw}"
    head, sep, rest = raw.partition("/")
    return canonical_folder(head) + sep + rest


def _preset_file(f: Mapping[str, Any]) -> PresetFile:
    folder = table_folder(f["folder"], root=f.get("root"), hardcoded=bool(f.get("hardcoded")))
    url = f.get("url")
    if not url and f.get("repo"):
        url = f"https://huggingface.co/{f['repo']}"
    kind = "directory" if f.get("kind") in ("dir", "directory") else "file"
    prov = f.get("provenance") if isinstance(f.get("provenance"), Mapping) else {}
    where = f"{prov['file']}:{prov['line']}" if prov.get("file") and prov.get("line") else None
    return PresetFile(f["filename"], folder, url, f.get("variant"), kind, bool(f.get("optional")),
                      bool(f.get("auto_download")), f.get("note"), where)


def _parse_spec(raw: Any, where: str) -> Spec:
    if isinstance(raw, str):
        return FolderSpec((canonical_folder(raw),))
    if not isinstance(raw, dict):
        raise ConfigError(f"Loader table: unreadable spec for {where}: {raw!r}")
    common = {"ignore": frozenset(raw.get("ignore_values") or ()), "auto_download": bool(raw.get("auto_download")),
              "note": raw.get("note")}
    root, hardcoded = raw.get("root"), bool(raw.get("hardcoded"))
    if "repo" in raw:
        r = raw["repo"]
        return RepoSpec(table_folder(r["folder"], root=root, hardcoded=hardcoded), r.get("dirname", "basename"), **common)
    if "dir" in raw:
        return DirSpec(table_folder(raw["dir"], root=root, hardcoded=hardcoded), **common)
    if "folder" in raw or "presets" in raw:
        folders = [raw["folder"]] if raw.get("folder") else []
        folders += list(raw.get("alt_folders") or ()) + list(raw.get("folders") or ())
        presets = {name: tuple(_preset_file(f) for f in files) for name, files in (raw.get("presets") or {}).items()}
        return FolderSpec(
            tuple(dict.fromkeys(table_folder(f, root=root, hardcoded=hardcoded) for f in folders)),
            presets=presets,
            value_folders=tuple((re.compile(p), table_folder(f)) for p, f in (raw.get("value_folders") or {}).items()),
            match=raw.get("match", "exact"),
            enabled_key=raw.get("enabled_key"),
            **common,
        )
    raise ConfigError(f"Loader table: unreadable spec for {where}: {raw!r}")


def _text_patterns(raw: Mapping[str, Any] | None) -> dict[str, tuple[TextPattern, ...]]:
    out: dict[str, tuple[TextPattern, ...]] = {}
    for widget, items in (raw or {}).items():
        out[widget] = tuple(TextPattern(re.compile(i["regex"]), int(i.get("group", 1)), table_folder(i["folder"]),
                                        i.get("match", "exact"), i.get("note")) for i in items)
    return out


def _node_info(ntype: str, entry: Mapping[str, Any]) -> NodeInfo:
    models = {name: _parse_spec(spec, f"{ntype}.{name}") for name, spec in (entry.get("models") or {}).items()}
    patterns = tuple((re.compile(p), _parse_spec(spec, f"{ntype}.{p}"))
                     for p, spec in (entry.get("input_patterns") or {}).items())
    dict_widgets = {k: _parse_spec(spec, f"{ntype}.{k}") for k, spec in (entry.get("dict_widgets") or {}).items()}
    widgets = entry.get("widgets")
    return NodeInfo(
        widgets=tuple(widgets) if isinstance(widgets, list) else None,
        models=models,
        patterns=patterns,
        dict_widgets=dict_widgets,
        text_patterns=_text_patterns(entry.get("text_patterns")),
        implicit=tuple(_preset_file(f) for f in entry.get("implicit") or ()),
        pack=entry.get("pack"),
    )


class _LazyNodes(Mapping[str, NodeInfo]):
    """Node type -> NodeInfo, each entry parsed on first lookup: a workflow uses a few dozen node
    types of the thousands the table knows, and parsing them all costs a whole CLI start-up."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw
        self._parsed: dict[str, NodeInfo] = {}

    def __getitem__(self, ntype: str) -> NodeInfo:
        info = self._parsed.get(ntype)
        if info is None:
            entry = self._raw[ntype]
            if not isinstance(entry, Mapping):
                raise ConfigError(f"Loader table: unreadable entry for {ntype}: {entry!r}")
            info = self._parsed[ntype] = _node_info(ntype, entry)
        return info

    def __iter__(self):
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


@dataclass(frozen=True)
class LoaderTable:
    nodes: Mapping[str, NodeInfo]
    non_model: Mapping[str, str]
    packs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # packs read by loaders_build
    _pack_folders: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)  # memo

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "LoaderTable":
        """The table from its JSON; each node's entry is parsed when it is first looked up."""
        non_model = {k: str(v) for k, v in (data.get("non_model") or {}).items()}
        packs = data.get("packs") if isinstance(data.get("packs"), Mapping) else {}
        return cls(_LazyNodes(data.get("nodes") or {}), non_model, packs)

    def pack_named(self, name: str | None) -> str | None:
        """The table's name of a pack given by name, `owner/name` repo or Registry id (a workflow
        node's `properties.cnr_id` / `aux_id`), without case; None when the table does not know it."""
        if not name:
            return None
        low = name.strip().lower().removeprefix("https://github.com/").rstrip("/")
        for pack, info in self.packs.items():
            if low in (pack.lower(), str(info.get("repo") or "").lower(), str(info.get("registry_id") or "").lower()):
                return pack
        return None

    def pack_folders(self, name: str | None) -> list[str]:
        """Candidate folders for a model of a node this table has no entry for, from the node's pack:
        the folders the pack's known loaders read (most used first), then the folder keys it registers.
        Empty for a pack the table does not know: then the folder is unknown."""
        pack = self.pack_named(name)
        if pack is None:
            return []
        if pack in self._pack_folders:
            return list(self._pack_folders[pack])
        count: dict[str, int] = {}
        for ntype in self.nodes:
            info = self.nodes[ntype]
            if info.pack != pack:
                continue
            for spec in list(info.models.values()) + [s for _, s in info.patterns]:
                for folder in (spec.folders if isinstance(spec, FolderSpec) else (spec.folder,)):
                    count[folder] = count.get(folder, 0) + 1
        ordered = sorted(count, key=lambda f: (-count[f], f))
        for reg in self.packs[pack].get("registers") or ():
            key = reg.get("path") or reg.get("key")
            if key:
                ordered.append(canonical_folder(key))
        self._pack_folders[pack] = list(dict.fromkeys(ordered))
        return list(self._pack_folders[pack])

    @classmethod
    def load_default(cls) -> "LoaderTable":
        return _default_table()


@lru_cache(maxsize=1)
def _default_table() -> LoaderTable:
    path = Path(__file__).resolve().parent.parent / "data" / "loaders.json"
    try:
        return LoaderTable.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as exc:
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
                    out.update(f.folder for files in spec.presets.values() for f in files)
                else:
                    out.add(spec.folder)
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
            if isinstance(prior, (RepoSpec, DirSpec)):
                continue  # the table knows the value is not a plain file name
            if isinstance(prior, FolderSpec):
                if prior.folder and prior.folder not in folders:
                    conflicts[name] = (prior.folder, "table")
                # Keep what the table knows about presets, placeholders and matching.
                models[name] = replace(prior, folders=folders, source="schema")
            else:
                models[name] = FolderSpec(folders, source="schema")
        non_model = frozenset(n for n in schema.non_model_inputs if n not in models)
        return NodeInfo(
            widgets=schema.widgets or base.widgets,
            models=models,
            patterns=base.patterns,
            dict_widgets=base.dict_widgets,
            text_patterns=base.text_patterns,
            implicit=base.implicit,
            non_model_inputs=non_model,
            conflicts=conflicts,
            pack=base.pack,
        )
