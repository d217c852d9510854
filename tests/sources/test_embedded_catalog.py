"""Links the workflow carries (properties.models, root models, notes), the shipped catalog, and
ComfyUI-Manager's model list."""
from __future__ import annotations

import json

from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.sources.catalog import CatalogSource, load_catalog, load_manager_list, manager_list_paths
from comfyui_model_resolver.sources.manager_list import parse_size
from comfyui_model_resolver.types import ModelRef
from fakes.blobs import FakeFile
from support.sources import make_settings, workflow


async def test_properties_models_link_is_normalised_and_used(fake_hub, tmp_path):
    fake_hub.add_repo("Comfy-Org/Wan", [FakeFile.safetensors("split_files/vae/wan_2.1_vae.safetensors", 2048, seed=1)])
    wf = workflow(("VAELoader", ["wan_2.1_vae.safetensors"]))
    wf["nodes"][0]["properties"]["models"] = [{
        "name": "wan_2.1_vae.safetensors", "directory": "vae",
        "url": f"{fake_hub.url}/Comfy-Org/Wan/blob/main/split_files/vae/wan_2.1_vae.safetensors?download=true"}]
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub))
    try:
        m = (await r.resolve(wf, "wf")).models[0]
    finally:
        await r.close()
    assert m.status == "resolved" and m.chosen.source == "embedded"
    assert m.chosen.url == f"{fake_hub.url}/Comfy-Org/Wan/resolve/main/split_files/vae/wan_2.1_vae.safetensors"
    assert "linked by the workflow itself" in m.chosen.reasons
    assert m.preflight.state == "ok" and m.chosen.size == 2048  # size from the HEAD
    # the workflow's link settled it: no search, no listing
    assert [rec["method"] for rec in fake_hub.log.records] == ["HEAD"]


async def test_note_links_and_the_allowlist(fake_hub, tmp_path):
    fake_hub.add_repo("Comfy-Org/Wan", [FakeFile.safetensors("split_files/vae/wan_2.1_vae.safetensors", 2048, seed=1)])
    note = (f"Download [the VAE]({fake_hub.url}/Comfy-Org/Wan/resolve/main/split_files/vae/wan_2.1_vae.safetensors)"
            " and the encoder from https://evil.example.com/umt5_xxl_fp16.safetensors")
    wf = workflow(("VAELoader", ["wan_2.1_vae.safetensors"]), ("CLIPLoader", ["umt5_xxl_fp16.safetensors", "wan"]),
                  notes=(note,))
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub))
    try:
        res = await r.resolve(wf, "wf")
    finally:
        await r.close()
    vae = next(m for m in res.models if m.filename == "wan_2.1_vae.safetensors")
    assert vae.status == "resolved" and any(c.via == "note" for c in vae.candidates)
    enc = next(m for m in res.models if m.filename == "umt5_xxl_fp16.safetensors")
    assert all("evil.example.com" not in c.url for c in enc.candidates)
    assert any("rejected (host not allowed)" in q for q in enc.queries["embedded"])


def _ref(name, folder):
    return ModelRef(filename=name, folder=folder, node_id="1", node_type="X", input="i")


def test_shipped_catalog_is_built_from_the_templates():
    entries = load_catalog()
    assert len(entries) > 300
    names = {e["name"] for e in entries}
    assert {"wan_2.1_vae.safetensors", "t5xxl_fp16.safetensors", "ae.safetensors"} <= names
    assert all(e["url"].startswith("https://huggingface.co/") and e["folder"] for e in entries
               if e.get("origin") != "manager")


def test_catalog_lookup_and_switch(tmp_path):
    s = make_settings(tmp_path, disable_catalog=False)
    cat = CatalogSource(s, manager_paths=[])
    cands = cat.lookup(_ref("wan_2.1_vae.safetensors", "vae"))
    assert cands and all(c.via == "catalog" and c.folder == "vae" for c in cands)
    off = CatalogSource(make_settings(tmp_path, disable_catalog=True), manager_paths=[])
    assert off.lookup(_ref("wan_2.1_vae.safetensors", "vae")) == [] and off.disabled_reason


def test_comfyui_manager_model_list_beside_us(tmp_path):
    root = tmp_path / "ComfyUI"
    mgr = root / "custom_nodes" / "ComfyUI-Manager"
    mgr.mkdir(parents=True)
    (mgr / "model-list.json").write_text(json.dumps({"models": [
        {"name": "4x-UltraSharp", "type": "upscale", "base": "upscale", "save_path": "default",
         "description": "", "reference": "https://x", "filename": "4x-UltraSharp.pth",
         "url": "https://huggingface.co/lokCX/4x-Ultrasharp/resolve/main/4x-UltraSharp.pth", "size": "66.9MB"},
        {"name": "ip-adapter", "type": "IP-Adapter", "base": "SD1.5", "save_path": "ipadapter/sd15",
         "description": "", "reference": "", "filename": "ip-adapter_sd15.safetensors",
         "url": "https://huggingface.co/h94/IP-Adapter/resolve/main/models/ip-adapter_sd15.safetensors", "size": "44.6MB"},
    ]}))
    s = make_settings(tmp_path, disable_catalog=False, comfyui_root=str(root))
    assert manager_list_paths(s) == [mgr / "model-list.json"]
    entries = load_manager_list(mgr / "model-list.json")
    assert entries[0]["folder"] == "upscale_models" and entries[0]["size_text"] == "66.9MB" and "size" not in entries[0]
    assert entries[1]["folder"] == "ipadapter" and entries[1]["subdir"] == "sd15"
    cat = CatalogSource(s)
    c = cat.lookup(_ref("4x-UltraSharp.pth", "upscale_models"))[0]
    assert c.via == "manager" and c.repo == "lokCX/4x-Ultrasharp"
    assert parse_size("1.5GB") == 1_500_000_000 and parse_size("n/a") is None


async def test_catalog_answers_without_any_request(fake_hub, tmp_path):
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, disable_catalog=False))
    try:
        m = (await r.resolve(workflow(("VAELoader", ["wan_2.1_vae.safetensors"])), "wf", preflight=False)).models[0]
    finally:
        await r.close()
    assert m.candidates[0].source == "catalog"
    assert "in the curated catalog" in m.candidates[0].reasons
