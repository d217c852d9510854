"""Name lookups in a new process come from the lower-cased name text saved with the index cache."""
from __future__ import annotations

import os
import time

from comfyui_model_resolver.index.layout import build_layout
from comfyui_model_resolver.index.name_text import NameText, SavedText
from comfyui_model_resolver.index.scan import ModelIndex

from .test_scan import _name_tree

MODEL = ["checkpoints/a/Model.safetensors", "checkpoints/b/model.SAFETENSORS", "loras/model.safetensors",
         "vae/deep/er/model.safetensors"]


def _warm(tmp_path):
    root = _name_tree(tmp_path)
    layout = build_layout(root, [], {})
    ModelIndex(layout, tmp_path / "cache").refresh()  # the process that scanned and saved
    idx = ModelIndex(layout, tmp_path / "cache")  # a new one
    assert idx.refresh().rescanned == 0
    return root, idx


def test_a_new_process_answers_from_the_saved_text_without_decoding_any_listing(tmp_path):
    root, idx = _warm(tmp_path)
    assert isinstance(idx._names, SavedText)
    assert sorted(idx.find_by_basename("MODEL.safetensors")) == sorted(str(root / r) for r in MODEL)  # own case
    assert idx.find_by_basename("other.PT") == [str(root / "vae" / "other.pt")]
    assert idx.find_by_basename("model.safetensors.ba") == [] and idx.find_by_basename("odel.safetensors") == []
    assert idx._by_name is None and all(e._files is None for e in idx._dirs.values())  # no map, nothing decoded
    # the same answers as a name map over every file
    reference = idx._name_map()
    for name in ("model.safetensors", "other.pt", "x-model.safetensors", "nope"):
        assert sorted(idx.find_by_basename(name)) == sorted(reference.get(name, []))


def test_a_text_from_another_save_or_none_at_all_is_never_used(tmp_path):
    root, idx = _warm(tmp_path)
    text = next((tmp_path / "cache").glob("*.text"))
    good = text.read_bytes()
    text.write_bytes(b"Z" * 16 + good[16:].replace(b"loras", b"xxxxx"))  # another writer's (its token)
    assert sorted(idx.find_by_basename("model.safetensors")) == sorted(str(root / r) for r in MODEL)
    assert isinstance(idx._names, NameText)  # built from this process's listings instead
    text.unlink()
    idx2 = ModelIndex(build_layout(root, [], {}), tmp_path / "cache")
    idx2.refresh()
    assert sorted(idx2.find_by_basename("model.safetensors")) == sorted(str(root / r) for r in MODEL)
    # replaced after the first lookup read it: the names' own case is read from the file again, and refused
    _root, idx3 = _warm(tmp_path / "again")
    assert idx3.find_by_basename("other.pt")
    saved = next((tmp_path / "again" / "cache").glob("*.text"))
    saved.write_bytes(b"Q" * 16 + saved.read_bytes()[16:])
    assert idx3.find_by_basename("other.pt") == [str(_root / "vae" / "other.pt")]
    assert isinstance(idx3._names, NameText)


def test_a_change_seen_by_refresh_replaces_the_saved_text(tmp_path):
    root, idx = _warm(tmp_path)
    (root / "loras" / "New.safetensors").write_bytes(b"x")
    past = time.time() - 30
    os.utime(root / "loras", (past, past))
    assert idx.refresh().rescanned == 1
    assert idx.find_by_basename("new.safetensors") == [str(root / "loras" / "New.safetensors")]
    fresh = ModelIndex(build_layout(root, [], {}), tmp_path / "cache")  # and the next process sees it too
    fresh.refresh()
    assert isinstance(fresh._names, SavedText)
    assert fresh.find_by_basename("NEW.safetensors") == [str(root / "loras" / "New.safetensors")]


def test_non_ascii_names_save_no_text_and_are_still_found(tmp_path):
    root = _name_tree(tmp_path)
    (root / "loras" / "Ärger.safetensors").write_bytes(b"x")
    os.utime(root / "loras", (time.time() - 60, time.time() - 60))
    layout = build_layout(root, [], {})
    ModelIndex(layout, tmp_path / "cache").refresh()
    assert not list((tmp_path / "cache").glob("*.text"))
    idx = ModelIndex(layout, tmp_path / "cache")
    idx.refresh()
    assert idx._names is None
    assert idx.find_by_basename("ärger.SAFETENSORS") == [str(root / "loras" / "Ärger.safetensors")]
    assert sorted(idx.find_by_basename("model.safetensors")) == sorted(str(root / r) for r in MODEL)
