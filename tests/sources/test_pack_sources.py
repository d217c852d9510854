"""The pack-sources table (data/pack_sources.json) and its query API."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from comfyui_model_resolver.sources.pack_sources import DEFAULT_PATH, PackSources
from comfyui_model_resolver.sources.pack_sources_build import REVIEW_PATH, mirror_dir

CLIP_H = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
MIN_PACKS = 80  # issue 11: documented sources for at least 80 packs, by popularity


def _table() -> PackSources:
    return PackSources({"version": 1, "packs": {
        "PackA": {"repo": "a/PackA", "commit": "1" * 40, "popularity": 10, "files": [
            {"filename": "x_sd15.safetensors", "folder": "ipadapter", "source": {"type": "hf", "repo": "org/ip", "path": "models/x_sd15.safetensors"},
             "family": "sd15", "sha256": None, "provenance": {"file": "README.md", "line": 3}},
            {"filename": "enc.safetensors", "folder": "clip_vision", "source": {"type": "hf", "repo": "org/ip", "path": "image_encoder/model.safetensors", "revision": "v1"},
             "family": None, "sha256": None, "provenance": {"file": "README.md", "line": 4}},
            {"filename": "style.safetensors", "folder": "loras", "source": {"type": "civitai", "model_id": 5, "version_id": 77},
             "family": "sdxl", "sha256": None, "provenance": {"file": "docs/models.md", "line": 9}}],
         "repos": [{"folder": "ipadapter", "source": {"type": "hf", "repo": "org/ip-extra", "path_prefix": "sdxl/"}, "family": None,
                    "provenance": {"file": "README.md", "line": 1}}]},
        "PackB": {"repo": "b/PackB", "commit": "2" * 40, "popularity": 5, "files": [
            {"filename": "X_SD15.safetensors", "folder": "ipadapter", "source": {"type": "url", "url": "https://example.org/w/x_sd15.safetensors"},
             "family": None, "sha256": None, "provenance": {"file": "nodes.py", "line": 40}}],
         "repos": [{"folder": "ipadapter", "source": {"type": "hf", "repo": "other/ip"}, "family": None, "provenance": {"file": "README.md", "line": 2}},
                   {"folder": "ipadapter", "source": {"type": "hf", "repo": "org/ip"}, "family": None, "provenance": {"file": "README.md", "line": 5}}]},
        "Broken": "not a pack",
    }})


def test_files_named_is_exact_basename_without_case():
    t = _table()
    got = t.files_named("sub/x_SD15.safetensors")
    assert {(s.pack, s.filename) for s in got} == {("PackA", "x_sd15.safetensors"), ("PackB", "X_SD15.safetensors")}
    assert t.files_named("x_sd15.bin") == [] and t.files_named("sd15.safetensors") == []
    assert len(t) == 2 and "Broken" not in t.packs


def test_urls_renames_and_reasons():
    t = _table()
    enc = t.files_named("enc.safetensors")[0]
    assert enc.url == "https://huggingface.co/org/ip/resolve/v1/image_encoder/model.safetensors"
    assert enc.is_rename and enc.repo == "org/ip"
    assert enc.reason == "documented by PackA (README.md:4)"
    assert enc.provenance["commit"] == "1" * 40 and enc.provenance["repo"] == "a/PackA"
    style = t.files_named("style.safetensors")[0]
    assert style.url == "https://civitai.com/api/download/models/77" and not style.is_rename and style.repo is None
    b = [s for s in t.files_named("x_sd15.safetensors") if s.pack == "PackB"][0]
    assert b.url == "https://example.org/w/x_sd15.safetensors" and b.is_rename  # other case: saved as the pack names it


def test_for_pack_and_repos_first():
    t = _table()
    assert [s.filename for s in t.for_pack("packa", "ipadapter")] == ["x_sd15.safetensors", None]
    assert len(t.for_pack("PackA")) == 4 and t.for_pack("nope") == []
    repos = t.repos_for(pack="PackA", folder="ipadapter")
    # the pack's repo entries first, then its files' repos, then what other packs document for the folder
    assert [(r["repo"], r["path_prefix"]) for r in repos] == [("org/ip-extra", "sdxl/"), ("org/ip", ""), ("other/ip", "")]
    assert repos[0]["reason"] == "documented by PackA (README.md:1)"
    anyone = t.repos_for(pack=None, folder="ipadapter")
    assert anyone[0]["repo"] == "org/ip"  # documented twice (PackA's file, PackB's repo)
    assert t.repos_for(pack=None, folder=None) == []
    assert [r["repo"] for r in t.repos_for(pack="PackB", folder=None)] == ["other/ip", "org/ip"]


def test_load_from_a_path_and_the_shipped_table(tmp_path):
    p = tmp_path / "t.json"
    p.write_text('{"version": 1, "packs": {}}')
    assert len(PackSources.load(p)) == 0
    shipped = PackSources.load()
    assert shipped is PackSources.load()  # read once
    assert len(shipped) >= MIN_PACKS


def test_shipped_table_entries_are_complete():
    t = PackSources.load()
    folders_ok = re.compile(r"^(custom_nodes/[\w.+-]+/[\w.+-]+|[A-Za-z0-9][\w.+-]*)$")
    n = 0
    for pack in t.packs:
        info = t.pack_info(pack)
        assert re.fullmatch(r"[0-9a-f]{40}", info["commit"]) and "/" in info["repo"]
        for s in t.for_pack(pack):
            n += 1
            assert folders_ok.match(s.folder), (pack, s)
            assert s.provenance["file"] and s.provenance["line"] >= 1
            assert s.source["type"] in ("hf", "civitai", "url")
            if s.is_file:
                assert s.url and s.url.startswith("https://"), (pack, s)
            assert s.family in (None, "sd15", "sdxl", "flux", "sd3", "video")
    assert n > 100
    assert len(t) >= MIN_PACKS
    clip = [s for s in t.files_named(CLIP_H) if s.pack == "ComfyUI_IPAdapter_plus"]
    assert clip and clip[0].is_rename and clip[0].folder == "clip_vision"
    assert clip[0].source["path"] == "models/image_encoder/model.safetensors"


def test_packs_are_chosen_by_popularity_and_say_so():
    raw = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    assert raw["popularity"].startswith("GitHub stars, comfyui-manager==")
    stars = [(p.get("popularity") or 0) for p in raw["packs"].values()]
    assert stars == sorted(stars, reverse=True)
    assert sum(1 for s in stars if s >= 500) >= 30  # the popular packs are there, not a long tail


def test_held_back_hits_are_not_shipped():
    """What the strict review held back (review file, `uncertain`) is not in the table as a fact."""
    review = json.loads(REVIEW_PATH.read_text(encoding="utf-8"))
    t = PackSources.load()
    held = 0
    for name, r in review["packs"].items():
        for u in r.get("uncertain") or ():
            held += 1
            assert u["why"] and u["provenance"]["line"] >= 1 and u["folder_guess"]
            # the same fact may be shipped from another place that says it with certainty, never from this one
            shipped = [(s.folder + (f"/{s.subdir}" if s.subdir else ""), s.source, s.provenance["file"], s.provenance["line"])
                       for s in t.for_pack(name) if s.filename == u.get("filename")]
            assert (u["folder_guess"], u["source"], u["provenance"]["file"], u["provenance"]["line"]) not in shipped, (name, u)
    assert held > 0


def test_spot_checks_of_real_entries():
    t = PackSources.load()
    (clip,) = [s for s in t.files_named(CLIP_H) if s.pack == "ComfyUI_IPAdapter_plus"]
    assert (clip.repo, clip.source["path"], clip.folder) == ("h94/IP-Adapter", "models/image_encoder/model.safetensors", "clip_vision")
    assert clip.url == "https://huggingface.co/h94/IP-Adapter/resolve/main/models/image_encoder/model.safetensors"
    assert clip.is_rename and clip.filename == CLIP_H  # downloaded under the workflow's name
    sd15 = [s for s in t.files_named("ip-adapter_sd15.safetensors") if s.pack == "ComfyUI_IPAdapter_plus"][0]
    assert (sd15.folder, sd15.family, sd15.repo) == ("ipadapter", "sd15", "h94/IP-Adapter")
    first = t.repos_for(pack="ComfyUI_IPAdapter_plus", folder="clip_vision")[0]
    assert first["repo"] == "h94/IP-Adapter" and first["reason"].startswith("documented by ComfyUI_IPAdapter_plus (README.md:")


MIRROR = os.environ.get("PACK_MIRROR")


@pytest.mark.skipif(not MIRROR, reason="set PACK_MIRROR to the folder of the packs' git mirrors to check provenance")
def test_every_entry_is_on_the_line_it_cites():
    """Each entry's cited line, in the pack's repo at the cited commit, names its repo, file or URL."""
    t = PackSources.load()
    checked = 0
    for pack in t.packs:
        info = t.pack_info(pack)
        git_dir = mirror_dir(Path(MIRROR), info["repo"])
        if git_dir is None:
            continue
        cache: dict[str, list[str]] = {}
        for s in t.for_pack(pack):
            f = s.provenance["file"]
            if f not in cache:
                cache[f] = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{info['commit']}:{f}"], check=True,
                                          capture_output=True, text=True, errors="replace").stdout.splitlines()
            at = s.provenance["line"] - 1
            line = " ".join(cache[f][at:at + (12 if f.endswith(".py") else 1)])  # a call's arguments follow it
            words = [str(s.source.get(k)) for k in ("repo", "url", "model_id", "version_id") if s.source.get(k)]
            words += [s.filename] if s.filename else []
            assert any(w in line for w in words), (pack, s, line)
            checked += 1
    assert checked > 100
