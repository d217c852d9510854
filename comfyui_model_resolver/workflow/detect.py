"""Detect model references in flat node views. Pure: NodeView + Knowledge -> ModelRef.

Folder inference, most trusted first: node schema, loader table, the embedded `directory`
(`properties.models` / root `models`), and a generic rule for any other widget string with a
model extension (low confidence). Disagreements are kept as `conflicts`.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from ..types import FOLDER_CONFIDENCE, FolderConflict, ModelRef
from .folders import (embedded_folder, folder_candidates, guess_folder, is_config_or_code, is_empty_choice,
                      looks_like_model_value)
from .graph import NodeView
from .knowledge import UNKNOWN, DirSpec, FolderSpec, Knowledge, NodeInfo, PresetFile, RepoSpec, Spec

_EMBEDDING = re.compile(r"(?i)embedding:([^\s,()\[\]{}<>|:\"']+)")
#: A1111/LoRA-manager tags in text widgets: <lora:name:weight>, <lyco:name:…>.
_LORA_TAG = re.compile(r"(?i)<(?:lora|lyco):([^:<>\n]+?)(?::[^<>\n]*)?>")
#: Input types that never hold a file name: a model name there is a value shifted against its slot.
#: Node types that load the LoRAs their text or list widgets name (LoRA-manager loaders, stackers,
#: selectors); a plain prompt's <lora:…> tag loads nothing in ComfyUI.
_LORA_NODE = re.compile(r"(?i)lora[\w ]*?(load|stack|select)")
_SCALAR_TYPES = frozenset({"BOOLEAN", "INT", "FLOAT"})
#: Input names of prompt text: a value there is a prompt, even when it ends in ".pt".
_TEXT_INPUTS = re.compile(r"(?i)^(text|text_[gl]|prompt|positive|negative|string|caption|wildcard_text|populated_text)"
                          r"(_\d+)?$")
_HASH_TYPES = {"sha256", "sha-256", "autov2", "autov1", "autov3", "blake3", "crc32", "md5", "sha1"}


def _basename(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1]


class _Emitter:
    """Builds refs for one node, remembering which (input, filename) pairs exist."""

    __slots__ = ("node", "out", "seen", "pack", "known", "pack_folders")

    def __init__(self, node: NodeView, pack: str | None = None, known: bool = True,
                 pack_folders: tuple[str, ...] = ()) -> None:
        self.node = node
        self.known = known  # the loader table or /object_info describes the node type
        self.pack = pack if pack and pack.lower() != "comfyui" else None
        self.pack_folders = pack_folders  # folders the node's pack reads (a node of a known pack the table lacks)
        self.out: list[ModelRef] = []
        self.seen: set[tuple[str, str]] = set()

    def add(self, filename: str, folder: str | None, source: str | None, input_name: str, *,
            kind: str = "file", url: str | None = None, note: str | None = None,
            conflicts: Iterable[FolderConflict] = (), active: bool = True,
            widget_index: int | None = None, widget_key: str | None = None, **extra: Any) -> None:
        key = (input_name, filename)
        if key in self.seen or (kind == "file" and is_config_or_code(filename)):
            return
        self.seen.add(key)
        n = self.node
        self.out.append(ModelRef(
            filename=filename,
            folder=folder,
            node_id=n.node_id,
            node_type=n.node_type,
            input=input_name,
            subgraph_path=n.subgraph_path,
            subgraph_id=n.subgraph_id,
            active=n.active and active,
            url=url,
            folder_source=source if folder else None,
            confidence=FOLDER_CONFIDENCE.get(source or "", 0.0) if folder else 0.0,
            kind=kind,  # type: ignore[arg-type]
            conflicts=tuple(conflicts),
            note=note,
            widget_index=widget_index,
            widget_key=widget_key,
            pack=self.pack,
            **extra,
        ))


def _named_values(node: NodeView, info: NodeInfo) -> Iterator[tuple[str, Any, int | None, str | None]]:
    """(input name, value, widget index, dict key) for every widget value of the node."""
    if node.named is not None:  # API format
        for name, value in node.named.items():
            if not isinstance(value, list):  # lists are links to other nodes
                yield str(name), value, None, None
        return
    values = node.values
    overrides = node.overrides
    if isinstance(values, dict):
        for name, value in values.items():
            yield str(name), overrides.get(str(name), value), None, str(name)
        return
    used: set[str] = set()
    seen_values: list[Any] = []
    if isinstance(values, list):
        names = info.widgets
        if names is None and len(node.widget_inputs) == len(values):
            # Newer frontends give every widget an input slot, in widget order.
            names = node.widget_inputs
        names = names or ()
        for i, value in enumerate(values):
            name = names[i] if i < len(names) else f"widget_{i}"
            if name in overrides:
                value = overrides[name]
                used.add(name)
            seen_values.append(value)
            yield name, value, i, None
    # Promoted values whose widget position we do not know.
    for name, value in overrides.items():
        if name not in used and value not in seen_values:
            yield name, value, None, None


def _emit_files(em: _Emitter, files: Iterable[PresetFile], source: str, input_name: str, note: str | None,
                preset: str | None = None) -> None:
    """Files a preset (`preset` set) or the node itself implies; `implied_by` says which, in words."""
    ntype = em.node.node_type
    for f in files:
        if preset is not None:
            why = f"implied by {ntype}'s preset {preset!r}"
        elif f.where:
            why = f"implied by {ntype}: its pack's code loads it ({f.where})"
        else:
            why = f"implied by {ntype}: the node loads it itself"
        em.add(f.filename, f.folder, source, input_name, kind=f.kind, url=f.url,
               note=f.note if note is None else (f"{note}; {f.note}" if f.note else note),
               variant=f.variant, optional=f.optional, auto_download=f.auto_download, implied=True, implied_by=why)


def _emit_spec(em: _Emitter, spec: Spec, name: str, value: Any, info: NodeInfo,
               widget_index: int | None, widget_key: str | None, *, active: bool = True) -> None:
    if not isinstance(value, str) or is_empty_choice(value) or value in spec.ignore:
        return
    source = spec.source
    where = {"widget_index": widget_index, "widget_key": widget_key, "active": active,
             "auto_download": spec.auto_download}
    if isinstance(spec, FolderSpec):
        files = spec.presets.get(value)
        if files is not None:
            _emit_files(em, files, source, name, f"preset {value!r}", preset=value)
            return
        folder = spec.folder_for(value)
        if folder is None:  # a preset-only widget holding something else
            if looks_like_model_value(value):
                _emit_generic(em, name, value, widget_index, widget_key, active=active)
            return
        if spec.match == "exact" and "." not in _basename(value):
            return  # virtual choices (e.g. "pixel_space") name no file
        conflicts = ()
        if name in info.conflicts:
            cfolder, csrc = info.conflicts[name]
            conflicts = (FolderConflict(folder=cfolder, source=csrc),)  # type: ignore[arg-type]
        em.add(value, folder, source, name, conflicts=conflicts, note=spec.note if spec.auto_download else None,
               alt_folders=tuple(f for f in spec.folders if f != folder), match=spec.match, **where)
    elif isinstance(spec, RepoSpec):
        if "/" not in value or value.count("/") > 1 or looks_like_model_value(value):
            if looks_like_model_value(value):
                em.add(value, spec.folder, source, name, **where)
            return
        em.add(spec.local_name(value), spec.folder, source, name, kind="directory",
               url=f"https://huggingface.co/{value}", note=f"Hugging Face repo {value}", **where)
    elif isinstance(spec, DirSpec):
        em.add(value, spec.folder, source, name, kind="directory", **where)


def _emit_generic(em: _Emitter, name: str, value: str, widget_index: int | None, widget_key: str | None,
                  active: bool = True) -> None:
    """A model-looking value nothing describes. Never is its folder taken from a widget's position
    or a word of the file name ("VAE" in a checkpoint's name). For a node the loader table or
    /object_info knows, the input's own name or the node type may say it ("lora_name",
    "…LoraLoader…"). For a node of a pack nobody described, even those are guesses (IPAdapter-Flux's
    "ipadapter" input reads models/ipadapter-flux): the folder is unknown, and the candidates are
    listed (alt_folders, most likely first), not presented as the answer."""
    node = em.node
    named = name if not name.startswith("widget_") else None
    folder = guess_folder(named, node.node_type)
    if folder and em.known:
        em.add(value, folder, "generic", name, active=active, widget_index=widget_index, widget_key=widget_key)
        return
    options = tuple(dict.fromkeys(list(em.pack_folders[:3]) + ([folder] if folder else [])
                                  + list(folder_candidates(value))))[:4]
    why = f"folder unknown: nothing describes {node.node_type}" if not em.known else "folder unknown"
    if em.pack_folders and not em.known:
        why += f" (its pack {em.pack} reads {', '.join(em.pack_folders[:3])})"
    em.add(value, None, None, name, active=active, widget_index=widget_index, widget_key=widget_key,
           alt_folders=options, note=why + (f"; one of {', '.join(options)}" if options else ""))


def _scan_dict(em: _Emitter, info: NodeInfo, container: dict, base: str, index: int | None) -> None:
    """rgthree-style dict widgets: {"on": true, "lora": "x.safetensors", "strength": 1}."""
    for key, value in container.items():
        if not isinstance(value, str):
            continue
        spec = info.dict_widgets.get(key)
        if spec is not None:
            enabled_key = getattr(spec, "enabled_key", None) or "on"
            _emit_spec(em, spec, f"{base}.{key}", value, info, index, key,
                       active=container.get(enabled_key, True) is not False)
        elif looks_like_model_value(value):
            _emit_generic(em, key, value, index, key, active=container.get("on", True) is not False)


def _scan_text(em: _Emitter, info: NodeInfo, name: str, value: str, index: int | None, key: str | None) -> None:
    """Models named inside prompt text: the node's own patterns, else ComfyUI's `embedding:name`."""
    patterns = info.text_patterns.get(name)
    if patterns:
        for tp in patterns:
            for m in tp.regex.finditer(value):
                found = (m.group(tp.group) or "").strip().rstrip(".;")
                if found:
                    em.add(found, tp.folder, "table", name, note=tp.note and tp.note.split(";")[0],
                           widget_index=index, widget_key=key, match=tp.match)
    else:
        if "mbedding:" in value:
            for m in _EMBEDDING.finditer(value):
                em.add(m.group(1).rstrip(".;"), "embeddings", "table", name, note="embedding in prompt text",
                       widget_index=index, widget_key=key, match="fuzzy")
        if "<" in value and _LORA_NODE.search(em.node.node_type):  # a LoRA loader's text, not a plain prompt
            for m in _LORA_TAG.finditer(value):
                _emit_lora_name(em, m.group(1), name, index, key, "LoRA tag in text")


def _emit_lora_name(em: _Emitter, raw: str, input_name: str, index: int | None, key: str | None, note: str,
                    active: bool = True) -> None:
    """A LoRA named without its extension (`<lora:name:1.0>`, LoRA-manager lists): the node finds
    the file by name, so the match is fuzzy; once per file per node."""
    name = raw.strip()
    if not name or any(r.filename == name and r.folder == "loras" for r in em.out):
        return
    em.add(name, "loras", "table", input_name, note=note, widget_index=index, widget_key=key, match="fuzzy",
           active=active)


def _scan_list(em: _Emitter, name: str, value: list, index: int | None) -> None:
    """LoRA-manager style list widgets: [{"name": "x", "strength": 0.8, "active": true}, …]."""
    if not _LORA_NODE.search(em.node.node_type):
        return
    for item in value[:256]:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and ("strength" in item or "active" in item):
            label = item["name"]
            if 0 < len(label) <= 255 and "\n" not in label and "://" not in label:
                _emit_lora_name(em, label, name, index, None, "LoRA in a LoRA list",
                                active=item.get("active", True) is not False)


def _embedded_entries(raw: Any) -> list[dict]:
    if not isinstance(raw, list):
        return []
    return [m for m in raw if isinstance(m, dict) and isinstance(m.get("name"), str) and m["name"]]


def _hash_of(entry: dict) -> tuple[str | None, str | None]:
    h = entry.get("hash")
    if not isinstance(h, str) or not h.strip():
        return None, None
    ht = entry.get("hash_type")
    ht = ht.lower() if isinstance(ht, str) and ht.lower() in _HASH_TYPES else ("sha256" if len(h) == 64 else None)
    return h.strip(), ht


def apply_embedded(refs: list[ModelRef], entries: list[dict], *, only_missing_url: bool = False) -> tuple[list[ModelRef], list[dict]]:
    """Attach url/hash/directory from embedded entries to refs with the same file name.
    Returns the updated refs and the entries that matched nothing."""
    if not entries:
        return refs, []
    by_name: dict[str, dict] = {}
    for e in entries:
        by_name.setdefault(e["name"], e)
        by_name.setdefault(_basename(e["name"]), e)
    used: set[int] = set()
    out: list[ModelRef] = []
    for ref in refs:
        e = by_name.get(ref.filename) or by_name.get(_basename(ref.filename))
        if e is None:
            out.append(ref)
            continue
        used.add(id(e))
        update: dict[str, Any] = {}
        if isinstance(e.get("url"), str) and e["url"] and not (only_missing_url and ref.url):
            update["url"] = e["url"]
        h, ht = _hash_of(e)
        if h and not ref.hash:
            update["hash"], update["hash_type"] = h, ht
        d = embedded_folder(e.get("directory"))
        if d is not None:
            if ref.folder_source in (None, "generic"):
                if ref.folder and ref.folder != d:
                    update["conflicts"] = ref.conflicts + (FolderConflict(folder=ref.folder, source="generic"),)
                update.update(folder=d, folder_source="embedded", confidence=FOLDER_CONFIDENCE["embedded"])
            elif d != ref.folder and all(c.folder != d for c in ref.conflicts):
                update["conflicts"] = ref.conflicts + (FolderConflict(folder=d, source="embedded"),)
        out.append(ref.model_copy(update=update) if update else ref)
    return out, [e for e in entries if id(e) not in used]


def detect_node(node: NodeView, knowledge: Knowledge) -> list[ModelRef]:
    """All model references of one node."""
    info = knowledge.info(node.node_type)
    if info.non_model_node is not None:
        return []
    known = info is not UNKNOWN
    pack, pack_folders = info.pack, ()
    if not known and node.properties:  # a node of a pack the table knows, saved with its Registry id / repo
        for key in ("cnr_id", "aux_id"):
            named = knowledge.table.pack_named(node.properties.get(key) if isinstance(node.properties.get(key), str) else None)
            if named:
                pack, pack_folders = named, tuple(knowledge.table.pack_folders(named))
                break
    em = _Emitter(node, pack, known=known, pack_folders=pack_folders)
    string_values: list[tuple[str, str, int | None, str | None]] = []
    slot_types = dict(zip(node.widget_inputs, node.widget_types)) if node.widget_types else {}
    for name, value, index, key in _named_values(node, info):
        if isinstance(value, dict):
            _scan_dict(em, info, value, name, index)
            continue
        if isinstance(value, list):
            _scan_list(em, name, value, index)
            continue
        spec = info.spec_for(name)
        if spec is not None:
            _emit_spec(em, spec, name, value, info, index, key)
            continue
        if not isinstance(value, str):
            continue
        string_values.append((name, value, index, key))
        if name in info.non_model_inputs or slot_types.get(name) in _SCALAR_TYPES or _TEXT_INPUTS.match(name):
            continue  # a boolean/number slot (values shifted against the inputs), or prompt text
        if not node.active and info.models and info.widgets is not None:
            continue  # a bypassed node of known shape: its model slots were read above; others are shifted values
        if looks_like_model_value(value):
            _emit_generic(em, name, value, index, key)

    # Models named inside prompt text, and files the node always loads.
    for name, value, index, key in string_values:
        _scan_text(em, info, name, value, index, key)
    if info.implicit:
        _emit_files(em, info.implicit, "table", "(implicit)", "loaded by the node itself")

    refs = em.out
    entries = _embedded_entries(node.properties.get("models")) if node.properties else []
    if entries:
        refs, unmatched = apply_embedded(refs, entries)
        # An embedded entry naming a widget value we did not recognise as a model.
        for e in unmatched:
            for name, value, index, key in string_values:
                if value == e["name"] or _basename(value) == e["name"]:
                    ref = _generic_ref(node, name, value, index, key)
                    if ref is not None:  # None: a config or code file, never a model
                        extra, _ = apply_embedded([ref], [e])
                        refs.extend(extra)
                    break
    return refs


def _generic_ref(node: NodeView, name: str, value: str, index: int | None, key: str | None) -> ModelRef | None:
    em = _Emitter(node, known=False)
    _emit_generic(em, name, value, index, key)
    return em.out[0] if em.out else None
