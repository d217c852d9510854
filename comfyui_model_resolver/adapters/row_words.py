"""What a model row says about where its model comes from, in the words every door shows (the CLI's
tables, the Gradio UI; the sidebar has the same words in web/js/cmr_rows.js): implied by a preset, the
node pack of its loader, "folder unknown" with the candidate folders. Pure; rows are `ModelReport`
objects or their JSON."""
from __future__ import annotations

import re
from typing import Any, Mapping

_PRESET = re.compile(r"""^preset (?:'([^']*)'|"([^"]*)")""")


def _get(row: Any, key: str, default: Any = None) -> Any:
    if isinstance(row, Mapping):
        return row.get(key, default)
    return getattr(row, key, default)


def preset_of(row: Any) -> str | None:
    """The widget value (a preset) that implies the row's model, from its note ("preset 'PLUS (high strength)'; …")."""
    m = _PRESET.match(str(_get(row, "note") or ""))
    return None if m is None else (m.group(1) if m.group(1) is not None else m.group(2))


def implied_words(row: Any, node: str | None = None) -> str | None:
    """ "implied by <node> (preset 'X')" for a model no widget names, else None. `node` defaults to the type."""
    if not _get(row, "implied"):
        return None
    name = node or _get(row, "node_type") or "its node"
    preset = preset_of(row)
    if preset is not None:
        return f"implied by {name} (preset '{preset}')"
    said = _get(row, "implied_by")
    if said:  # the parser's words ("implied by T: its pack's code loads it (f.py:45)"), the node named as asked
        head = f"implied by {_get(row, 'node_type')}"
        return f"implied by {node}{said[len(head):]}" if node and said.startswith(head) else str(said)
    return f"implied by {name} (the node loads it itself)"


def pack_words(row: Any) -> str | None:
    """ "node pack <pack>" for a loader of a custom-node pack; None for core nodes and unknown packs."""
    pack = _get(row, "pack")
    return f"node pack {pack}" if pack else None


def unknown_folders(row: Any) -> tuple[str, ...] | None:
    """The candidate folders of a row whose folder nothing tells (most likely first); None when it is known."""
    if _get(row, "folder"):
        return None
    return tuple(dict.fromkeys(f for f in (_get(row, "alt_folders") or ()) if f))


def folder_words(row: Any) -> str | None:
    """ "folder unknown: one of a, b" (no folder is guessed); None when the folder is known."""
    folders = unknown_folders(row)
    if folders is None:
        return None
    return "folder unknown: " + (f"one of {', '.join(folders)}" if folders else "no candidate folder")


def origin_notes(row: Any) -> list[str]:
    """The notes of a row about its model's origin, in the order the tables show them."""
    return [w for w in (implied_words(row), pack_words(row), folder_words(row)) if w]
