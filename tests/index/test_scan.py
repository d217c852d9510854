"""The local index: incremental rescans, persistence, symlinks."""
from __future__ import annotations

import os
import time

from comfyui_model_resolver.index.layout import build_layout
from comfyui_model_resolver.index.scan import ModelIndex


def make_tree(root):
    for rel in ("checkpoints/sd15/a.safetensors", "checkpoints/b.ckpt", "loras/x.safetensors",
                "loras/.hidden.safetensors", "loras/partial.safetensors.part"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def age(root):
    """Push directory mtimes into the past so they are trusted (not 'racily clean')."""
    past = time.time() - 60
    for d, _dirs, _files in os.walk(root):
        os.utime(d, (past, past))


def test_scan_lists_files_and_skips_hidden_and_partial(tmp_path):
    root = tmp_path / "models"
    make_tree(root)
    idx = ModelIndex(build_layout(root, [], {}))
    stats = idx.refresh()
    files = sorted(rel for folder, _b, rel in idx.iter_files() if folder in ("checkpoints", "loras"))
    assert files == ["b.ckpt", "sd15/a.safetensors", "x.safetensors"]
    assert stats.files == 3
    assert idx.has_file(str(root / "checkpoints"), "sd15/a.safetensors")
    assert idx.find_by_basename("A.SAFETENSORS") == [str(root / "checkpoints/sd15/a.safetensors")]


def test_warm_rescan_lists_nothing_and_changes_are_seen(tmp_path):
    root = tmp_path / "models"
    make_tree(root)
    age(root)
    cache = tmp_path / "cache"
    idx = ModelIndex(build_layout(root, [], {}), cache)
    cold = idx.refresh()
    assert cold.rescanned == cold.directories
    # A new Index (a new process) loads the persisted cache: nothing is listed again.
    idx2 = ModelIndex(build_layout(root, [], {}), cache)
    warm = idx2.refresh()
    assert warm.rescanned == 0 and warm.files == cold.files
    # A new file changes its directory's mtime: only that directory is listed again.
    (root / "loras" / "new.safetensors").write_bytes(b"y")
    after = idx2.refresh()
    assert after.rescanned == 1 and after.files == cold.files + 1
    assert idx2.find_by_basename("new.safetensors")


def test_recent_directories_are_not_trusted(tmp_path):
    root = tmp_path / "models"
    make_tree(root)  # mtimes are "now": a change within the same tick could be missed
    idx = ModelIndex(build_layout(root, [], {}))
    idx.refresh()
    assert idx.refresh().rescanned > 0


def test_symlinks_are_followed_without_looping(tmp_path):
    root = tmp_path / "models"
    make_tree(root)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "linked.safetensors").write_bytes(b"z")
    os.symlink(outside, root / "loras" / "shared")
    os.symlink(root / "loras", root / "loras" / "loop")
    idx = ModelIndex(build_layout(root, [], {}))
    idx.refresh()
    rels = sorted(rel for f, _b, rel in idx.iter_files() if f == "loras")
    assert rels == ["shared/linked.safetensors", "x.safetensors"]


def test_corrupt_cache_is_ignored(tmp_path):
    root = tmp_path / "models"
    make_tree(root)
    cache = tmp_path / "cache"
    idx = ModelIndex(build_layout(root, [], {}), cache)
    idx.refresh()
    for f in cache.iterdir():
        f.write_bytes(b"garbage")
    assert ModelIndex(build_layout(root, [], {}), cache).refresh().files == 3


def _name_tree(tmp_path):
    root = tmp_path / "models"
    for rel in ["checkpoints/a/Model.safetensors", "checkpoints/b/model.SAFETENSORS", "loras/model.safetensors",
                "loras/x-model.safetensors", "loras/model.safetensors.bak", "vae/other.pt", "vae/deep/er/model.safetensors"]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    (root / "empty").mkdir()
    age(root)
    return root


def test_name_lookups_search_the_listings_without_building_a_name_map(tmp_path):
    root = _name_tree(tmp_path)
    layout = build_layout(root, [], {})
    ModelIndex(layout, tmp_path / "cache").refresh()
    idx = ModelIndex(layout, tmp_path / "cache")  # a new process: the listings come from the cache
    idx.refresh()
    found = idx.find_by_basename("MODEL.safetensors")
    assert idx._by_name is None  # no map over every file for a lookup
    want = sorted(str(root / r) for r in ["checkpoints/a/Model.safetensors", "checkpoints/b/model.SAFETENSORS",
                                          "loras/model.safetensors", "vae/deep/er/model.safetensors"])
    assert sorted(found) == want  # whole names only: not x-model…, not ….bak
    assert idx.find_by_basename("other.pt") == [str(root / "vae" / "other.pt")]
    assert idx.find_by_basename("missing.safetensors") == [] and idx.find_by_basename("") == []
    assert idx.find_by_basename("a/Model.safetensors") == []  # a base name, never a path


def test_many_lookups_and_non_ascii_names_give_the_same_answers_as_a_name_map(tmp_path):
    root = _name_tree(tmp_path)
    (root / "loras" / "Ärger.safetensors").write_bytes(b"x")
    idx = ModelIndex(build_layout(root, [], {}))
    idx.refresh()
    names = ["model.safetensors", "ärger.safetensors", "other.pt", "nope"] * 20
    answers = [sorted(idx.find_by_basename(n)) for n in names]
    assert idx._by_name is not None  # a non-ASCII name (or many lookups): the map is built once
    fresh = ModelIndex(build_layout(root, [], {}))
    fresh.refresh()
    reference = fresh._name_map()
    assert answers == [sorted(reference.get(n.lower(), [])) for n in names]
    assert answers[1] == [str(root / "loras" / "Ärger.safetensors")]
    # a changed tree drops what was derived from the old listings
    (root / "loras" / "new.safetensors").write_bytes(b"x")
    past = time.time() - 60
    os.utime(root / "loras", (past + 1, past + 1))
    idx.refresh()
    assert idx.find_by_basename("NEW.safetensors") == [str(root / "loras" / "new.safetensors")]


def test_a_warm_start_reads_no_file_names_until_a_query_needs_them(tmp_path):
    root = _name_tree(tmp_path)
    layout = build_layout(root, [], {})
    ModelIndex(layout, tmp_path / "cache").refresh()
    names_files = list((tmp_path / "cache").glob("*.names"))
    assert len(names_files) == 1
    idx = ModelIndex(layout, tmp_path / "cache")
    stats = idx.refresh()
    assert stats.rescanned == 0 and stats.files == 7
    assert all(e._files is None for e in idx._dirs.values())  # names still on disk
    assert idx.has_file(str(root / "loras"), "model.safetensors")
    assert all(e._files is not None for e in idx._dirs.values())


def test_names_from_another_writer_are_never_paired_with_this_structure(tmp_path):
    root = _name_tree(tmp_path)
    layout = build_layout(root, [], {})
    ModelIndex(layout, tmp_path / "cache").refresh()
    names = next((tmp_path / "cache").glob("*.names"))
    # 1. the names file was replaced before this process loaded the structure: the cache is not used
    good = names.read_bytes()
    names.write_bytes(b"X" * 16 + good[16:])
    idx = ModelIndex(layout, tmp_path / "cache")
    assert idx.refresh().rescanned == idx.last_stats.directories  # listed again, cold
    # 2. replaced after the structure was loaded: the names are listed from the directories
    ModelIndex(layout, tmp_path / "cache").refresh()
    idx = ModelIndex(layout, tmp_path / "cache")
    assert idx.refresh().rescanned == 0
    names.write_bytes(b"Y" * 16 + names.read_bytes()[16:])
    assert sorted(idx.find_by_basename("model.safetensors")) == sorted(
        str(root / r) for r in ["loras/model.safetensors", "vae/deep/er/model.safetensors", "checkpoints/a/Model.safetensors",
                                "checkpoints/b/model.SAFETENSORS"])
    assert idx.has_file(str(root / "vae"), "other.pt") and not idx.has_file(str(root / "vae"), "nope.pt")


def test_a_warm_index_in_a_new_process_loads_only_what_it_needs(tmp_path):
    """bench/run.py's warm-index figure is a whole new process: it must not pay for the dataclasses
    module (which imports inspect), the download stack or the analysis stack. Modules, not timings."""
    import json
    import subprocess
    import sys

    from support.paths import REPO

    (tmp_path / "models" / "loras").mkdir(parents=True)
    (tmp_path / "models" / "loras" / "a.safetensors").write_bytes(b"x")
    probe = ("import json, sys\n"
             "from comfyui_model_resolver.index.layout import build_layout\n"
             "from comfyui_model_resolver.index.scan import ModelIndex\n"
             "for run in range(2):\n"
             "    idx = ModelIndex(build_layout(sys.argv[1], [], {}), sys.argv[2])\n"
             "    stats = idx.refresh()\n"
             "print(json.dumps({'stats': list(stats), 'found': idx.find_by_basename('a.safetensors'),\n"
             "                  'modules': sorted(sys.modules)}))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "models"), str(tmp_path / "cache")],
                         capture_output=True, text=True, env=env, check=True, timeout=60).stdout
    result = json.loads(out)
    assert result["found"] and result["stats"][1] >= 1  # it did index the file
    assert not {"dataclasses", "inspect", "aiohttp", "asyncio", "sqlite3"} & set(result["modules"])
    assert not any(m.startswith(("comfyui_model_resolver.downloads", "comfyui_model_resolver.workflow.detect"))
                   for m in result["modules"])
