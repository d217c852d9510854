"""ComfyUI-Manager's model list in the shipped catalog: folders, renames, precedence, and a rename
that really downloads under the workflow's name (resolve -> plan -> download job, fake Hub)."""
from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import pytest

from comfyui_model_resolver.downloads.plan import plan_downloads
from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.sources import catalog_build
from comfyui_model_resolver.sources.catalog import CatalogSource, apply_precedence, load_catalog
from comfyui_model_resolver.sources.manager_list import (MANAGER_PIN, installed_manager, manager_place,
                                                         manager_rows, origin_of, read_model_list)
from comfyui_model_resolver.types import ModelRef
from fakes.blobs import FakeFile
from support.sources import make_settings, workflow

ROOT = Path(__file__).resolve().parents[2]
CLIP_H = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"


def _ref(name: str, folder: str) -> ModelRef:
    return ModelRef(filename=name, folder=folder, node_id="1", node_type="X", input="i")


def test_the_pin_is_the_dev_extras_and_the_installed_package():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(rf'"comfyui-manager=={re.escape(MANAGER_PIN)}"', pyproject)
    found = installed_manager()
    assert found is not None, "the dev extra installs comfyui-manager"
    assert found[1] == MANAGER_PIN


@pytest.mark.parametrize("entry,place", [
    ({"type": "upscale", "save_path": "default"}, ("upscale_models", None)),
    ({"type": "VAE", "save_path": "default"}, ("vae", None)),
    ({"type": "clip", "save_path": "default"}, ("text_encoders", None)),
    ({"type": "lora", "save_path": "loras/SDXL/lcm"}, ("loras", "SDXL/lcm")),
    ({"type": "clip", "save_path": "clip/t5"}, ("text_encoders", "t5")),  # a legacy alias is canonicalised
    ({"type": "x", "save_path": "custom_nodes/ComfyUI-Pack/models/ckpts"}, ("custom_nodes/ComfyUI-Pack/models/ckpts", None)),
    ({"type": "x", "save_path": "custom_nodes/ComfyUI-Pack"}, None),  # the pack itself: never
    ({"type": "x", "save_path": "custom_nodes"}, None),
    ({"type": "lora", "save_path": "loras/../../etc"}, None),
    ({"type": "lora", "save_path": "/etc/x"}, ("etc", "x")),  # read relative to models/, like every save_path
    ({"type": "unknown-kind", "save_path": "default"}, None),
])
def test_save_path_and_type_to_folder(entry, place):
    assert manager_place(entry) == place


def test_rows_keep_renames_and_skip_what_is_not_a_file():
    data = {"models": [
        {"name": "CLIPVision H", "type": "clip_vision", "base": "ViT-H", "save_path": "clip_vision",
         "filename": CLIP_H, "url": "https://huggingface.co/h94/IP-Adapter/resolve/main/models/image_encoder/model.safetensors",
         "size": "2.53GB"},
        {"name": "Janus", "type": "Janus-Pro", "save_path": "Janus-Pro", "filename": "<huggingface>",
         "url": "deepseek-ai/Janus-Pro-1B"},
        {"name": "code", "type": "lora", "save_path": "loras", "filename": "x.py", "url": "https://h/x.py"},
        {"name": "sub", "type": "lora", "save_path": "loras", "filename": "a/b.safetensors", "url": "https://h/b.safetensors"},
        "not a dict",
    ]}
    rows = manager_rows(data, origin="test")
    assert len(rows) == 1
    row = rows[0]
    assert row["name"] == CLIP_H and row["folder"] == "clip_vision" and row["url"].endswith("image_encoder/model.safetensors")
    assert row["size_text"] == "2.53GB" and "size" not in row  # a display string, never checked against bytes
    assert row["provenance"] == {"source": "test", "index": 0}


def test_precedence_templates_over_the_manager():
    t = [{"name": "clip_l.safetensors", "folder": "text_encoders", "url": "https://t/clip_l.safetensors"},
         {"name": "flux1-dev-fp8.safetensors", "folder": "checkpoints", "url": "https://t/ckpt"}]
    m = [{"name": "CLIP_L.safetensors", "folder": "text_encoders", "url": "https://m/clip_l.safetensors"},
         {"name": "clip_l.safetensors", "folder": "text_encoders", "url": "https://t/clip_l.safetensors"},
         {"name": "flux1-dev-fp8.safetensors", "folder": "diffusion_models", "url": "https://m/unet"},
         {"name": "x.safetensors", "folder": "loras", "url": "https://m/1"},
         {"name": "x.safetensors", "folder": "loras", "url": "https://m/2"}]
    kept, shadowed = apply_precedence([t, m])
    assert [r["url"] for r in shadowed] == ["https://m/clip_l.safetensors", "https://m/unet"]
    urls = [r["url"] for r in kept]
    assert urls.count("https://t/clip_l.safetensors") == 1  # the same URL again is a duplicate, not a rival
    assert "https://m/unet" not in urls  # the templates' file of that name wins in any folder
    assert {"https://m/1", "https://m/2"} <= set(urls)  # one list never shadows itself


def test_shipped_catalog_holds_the_pinned_manager_list():
    """The shipped rows are exactly what the builder makes of the pinned package (refresh with
    `python -m comfyui_model_resolver.sources.catalog_build`), templates first."""
    directory, version = installed_manager()
    shipped = load_catalog()
    doc = json.loads((ROOT / "comfyui_model_resolver/data/catalog.json").read_text())
    assert origin_of(MANAGER_PIN) in doc["sources"]
    expected = manager_rows(read_model_list(directory), origin=origin_of(version))
    templates = [r for r in shipped if r.get("origin") != "manager"]
    kept, shadowed = apply_precedence([templates, [dict(r, origin="manager") for r in expected]])
    ship_mgr = {(r["name"], r["url"], r["folder"], r.get("subdir")) for r in shipped if r.get("origin") == "manager"}
    want = {(r["name"], r["url"], r["folder"], r.get("subdir")) for r in kept if r.get("origin") == "manager"}
    assert ship_mgr == want and len(ship_mgr) > 400
    assert {(s["name"], s["url"]) for s in doc["manager"]["shadowed"]} == {(r["name"], r["url"]) for r in shadowed}
    rename = next(r for r in shipped if r["name"] == CLIP_H)
    assert rename["url"] == "https://huggingface.co/h94/IP-Adapter/resolve/main/models/image_encoder/model.safetensors"
    assert rename["provenance"]["source"] == origin_of(MANAGER_PIN) and isinstance(rename["provenance"]["index"], int)
    assert all(r.get("provenance") for r in shipped)


def test_builder_reads_the_wheel_pip_download_leaves(tmp_path):
    directory, _ = installed_manager()
    whl = tmp_path / f"comfyui_manager-{MANAGER_PIN}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.write(directory / "model-list.json", "comfyui_manager/model-list.json")
    out = tmp_path / "catalog.json"
    assert catalog_build.main(["--offline", "--output", str(out), "--manager", str(whl)]) == 0
    doc = json.loads(out.read_text())
    assert origin_of(MANAGER_PIN) in doc["sources"] and doc["manager"]["rows"] > 400
    # without a list to read, the previous Manager rows stay
    assert catalog_build.main(["--offline", "--output", str(out), "--no-manager"]) == 0
    again = json.loads(out.read_text())
    assert again["manager"]["rows"] == doc["manager"]["rows"]


def test_precedence_in_the_running_catalog(tmp_path):
    cat = CatalogSource(make_settings(tmp_path, disable_catalog=False), manager_paths=[])
    clip_l = cat.lookup(_ref("clip_l.safetensors", "text_encoders"))
    assert clip_l and all(c.via == "catalog" for c in clip_l if c.filename == "clip_l.safetensors")
    fp8 = [c for c in cat.lookup(_ref("flux1-dev-fp8.safetensors", "diffusion_models"))
           if c.filename == "flux1-dev-fp8.safetensors"]
    assert [c.repo for c in fp8] == ["Comfy-Org/flux1-dev"]  # the templates' file, not the Manager's Kijai/flux-fp8
    lcm = cat.lookup(_ref("pytorch_lora_weights.safetensors", "loras"))
    assert len({c.repo for c in lcm}) >= 3 and all(c.via == "manager" for c in lcm)  # one list: all stay
    # a live Manager list beside us is newer than the shipped copy: its row for a file wins
    live = tmp_path / "model-list.json"
    live.write_text(json.dumps({"models": [{"name": "u", "type": "upscale", "save_path": "default",
                                            "filename": "4x-UltraSharp.pth", "url": "https://huggingface.co/new/up/resolve/main/4x-UltraSharp.pth"}]}))
    cat = CatalogSource(make_settings(tmp_path, disable_catalog=False), manager_paths=[live])
    ups = [c for c in cat.lookup(_ref("4x-UltraSharp.pth", "upscale_models")) if c.filename == "4x-UltraSharp.pth"]
    assert [c.repo for c in ups] == ["new/up"]


def test_a_sub_folder_picks_the_row_of_that_place(tmp_path):
    cat = CatalogSource(make_settings(tmp_path, disable_catalog=False), manager_paths=[])
    name = "SDXL/controlnet-union-sdxl-1.0/diffusion_pytorch_model.safetensors"
    got = cat.lookup(_ref(name, "controlnet"))
    assert [c.repo for c in got] == ["xinsir/controlnet-union-sdxl-1.0"]
    several = cat.lookup(_ref("diffusion_pytorch_model.safetensors", "controlnet"))
    assert len({c.repo for c in several}) > 3  # without the sub-folder it stays a choice


async def test_a_manager_rename_downloads_under_the_workflows_name(fake_hub, tmp_path):
    """The workflow names CLIP-ViT-H-14-…; the Manager says it is h94/IP-Adapter's
    models/image_encoder/model.safetensors. A re-upload under the workflow's name is around too."""
    real = FakeFile.safetensors("models/image_encoder/model.safetensors", 4096, seed=11)
    fake_hub.add_repo("h94/IP-Adapter", [real, FakeFile.safetensors("models/ip-adapter_sd15.safetensors", 1024, seed=12)],
                      downloads=900_000)
    fake_hub.add_repo("someone/clip-vision-reupload", [FakeFile.safetensors(CLIP_H, 4096, seed=13)], downloads=40)
    models = tmp_path / "models"
    settings = make_settings(tmp_path, hub=fake_hub, disable_catalog=False, models_root=str(models))
    r = await build_resolver(settings)
    try:
        res = await r.resolve(workflow(("CLIPVisionLoader", [CLIP_H])), "wf")
        m = res.models[0]
        assert m.folder == "clip_vision" and m.status == "resolved", (m.status, m.message, m.candidates[:3])
        assert (m.chosen.repo, m.chosen.path) == ("h94/IP-Adapter", "models/image_encoder/model.safetensors")
        assert m.chosen.via == "manager" and "in ComfyUI-Manager's model list" in m.chosen.reasons
        requests, skipped = plan_downloads(res.model_dump(mode="json")["models"])
        assert not skipped and [(q.folder, q.filename) for q in requests] == [("clip_vision", CLIP_H)]
        jobs, skipped, errors = await r.download_resolution(res.model_dump(mode="json")["models"])
        assert not errors and not skipped and len(jobs) == 1
        await r.downloads.wait(jobs[0].id, timeout=30)
        job = r.downloads.job(jobs[0].id)
    finally:
        await r.close()
    target = models / "clip_vision" / CLIP_H
    assert job.state == "completed" and Path(job.path) == target
    assert hashlib.sha256(target.read_bytes()).hexdigest() == real.sha256
    assert not (models / "clip_vision" / "model.safetensors").exists()
