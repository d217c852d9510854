"""Links written in a workflow's Note / MarkdownNote nodes (root graph and subgraph definitions). Pure.

Template authors list download links there ("Download [vae](https://…/ae.safetensors?download=true)
and put it in models/vae"). Only links whose path ends in a model file name are returned; the
caller normalises them and matches them to references by file name.
"""
from __future__ import annotations

import re
from typing import Any

from .folders import has_model_extension

NOTE_TYPES = frozenset({"Note", "MarkdownNote", "PrimitiveStringMultiline"})
_URL = re.compile(r"https?://[^\s<>\"'`\])]+(?:\([^\s<>\"'`)]*\)[^\s<>\"'`\])]*)*")
MAX_NOTE_CHARS = 200_000


def _texts(node: dict) -> list[str]:
    out = []
    values = node.get("widgets_values")
    if isinstance(values, list):
        out.extend(v for v in values if isinstance(v, str))
    elif isinstance(values, dict):
        out.extend(v for v in values.values() if isinstance(v, str))
    return out


def _iter_nodes(graph: dict):
    nodes = graph.get("nodes")
    if isinstance(nodes, list):
        yield from (n for n in nodes if isinstance(n, dict))
    defs = graph.get("definitions")
    subgraphs = defs.get("subgraphs") if isinstance(defs, dict) else None
    if isinstance(subgraphs, list):
        for sg in subgraphs:
            if isinstance(sg, dict) and isinstance(sg.get("nodes"), list):
                yield from (n for n in sg["nodes"] if isinstance(n, dict))


def _path_is_model(url: str) -> bool:
    path = url.split("?", 1)[0].split("#", 1)[0]
    return has_model_extension(path.rstrip("/"))


def note_urls(graph: Any) -> tuple[str, ...]:
    """Model-file links in the notes of a UI workflow, in order of appearance, without duplicates."""
    if not isinstance(graph, dict):
        return ()
    seen: dict[str, None] = {}
    for node in _iter_nodes(graph):
        kind = node.get("type")
        if not isinstance(kind, str) or kind not in NOTE_TYPES:  # a hostile workflow may put a list there
            continue
        for text in _texts(node):
            for m in _URL.finditer(text[:MAX_NOTE_CHARS]):
                url = m.group(0).rstrip(".,;:!?*_")  # sentence punctuation, markdown emphasis
                if _path_is_model(url):
                    seen.setdefault(url, None)
    return tuple(seen)
