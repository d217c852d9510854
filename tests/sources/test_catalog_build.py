"""The catalog builder: offline from the templates, online from the Hub (against the fake)."""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.sources import catalog_build
from fakes.blobs import FakeFile
from support.paths import templates_dir
from support.sources import make_settings

TEMPLATES = templates_dir()
pytestmark = pytest.mark.skipif(TEMPLATES is None, reason="comfyui-workflow-templates-json is not installed")


def test_offline_build_keeps_known_sizes_and_hashes(tmp_path):
    out = tmp_path / "catalog.json"
    first = catalog_build.build(templates=TEMPLATES, previous=[], settings=None, offline=True)
    wan = next(m for m in first["models"] if m["name"] == "wan_2.1_vae.safetensors")
    previous = [dict(wan, size=123, sha256="ab" * 32)]
    again = catalog_build.build(templates=TEMPLATES, previous=previous, settings=None, offline=True)
    catalog_build.write(again, out)
    data = json.loads(out.read_text())
    kept = next(m for m in data["models"] if m["url"] == wan["url"])
    assert (kept["size"], kept["sha256"]) == (123, "ab" * 32)
    assert len(data["models"]) == len(first["models"]) > 300
    assert catalog_build.main(["--offline", "--output", str(out)]) == 0


async def test_online_refresh_reads_sizes_and_lfs_hashes(fake_hub, tmp_path):
    import asyncio

    f = FakeFile.safetensors("split_files/vae/wan_2.1_vae.safetensors", 2048, seed=3)
    fake_hub.add_repo("Comfy-Org/Wan_2.1_ComfyUI_repackaged", [
        f, FakeFile.safetensors("split_files/text_encoders/umt5_xxl_fp16.safetensors", 2048, seed=4)])
    settings = make_settings(tmp_path, hub=fake_hub)
    catalog = await asyncio.to_thread(catalog_build.build, templates=TEMPLATES, previous=[], settings=settings,
                                      offline=False, publishers=("Comfy-Org",), all_files=True)
    wan = [m for m in catalog["models"] if m["name"] == "wan_2.1_vae.safetensors"
           and "Wan_2.1_ComfyUI_repackaged" in m["url"]]
    assert wan and all((m["size"], m["sha256"]) == (2048, f.sha256) for m in wan)
    assert any(m["name"] == "umt5_xxl_fp16.safetensors" for m in catalog["models"])  # --all-files added it
    assert any("tree" in r["path"] for r in fake_hub.log.records)
