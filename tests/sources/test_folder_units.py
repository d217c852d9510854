"""Folder models (diffusers folders, repo snapshots a pack loads by id) resolve to one Hub repo and
plan as one group of downloads, like sharded checkpoints."""
from __future__ import annotations

from datetime import datetime, timezone

from comfyui_model_resolver.downloads.plan import plan_downloads
from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.sources.units import unit_files
from fakes.blobs import FakeFile
from support.sources import make_settings, workflow

DIFFUSERS = ["model_index.json", "README.md", ".gitattributes", "v2-1_768-ema-pruned.safetensors",
             "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
             "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.bin",
             "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.bin",
             "text_encoder/config.json", "text_encoder/model-00001-of-00002.safetensors",
             "text_encoder/model-00002-of-00002.safetensors", "text_encoder/model.safetensors.index.json",
             "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json",
             "scheduler/scheduler_config.json", "images/sample.png"]


def test_a_diffusers_folder_is_its_index_configs_and_one_weight_set_per_component():
    assert unit_files(DIFFUSERS) == [
        "model_index.json", "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model-00001-of-00002.safetensors",
        "text_encoder/model-00002-of-00002.safetensors", "text_encoder/model.safetensors.index.json",
        "tokenizer/merges.txt", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors",  # plain safetensors before fp16 and bin
        "vae/config.json", "vae/diffusion_pytorch_model.fp16.safetensors"]  # fp16 safetensors before bin


def test_a_repo_snapshot_keeps_configs_and_the_best_weights():
    got = unit_files(["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "README.md",
                      "processing_florence2.py", "sample.jpg"])
    assert got == ["config.json", "model.safetensors", "tokenizer.json"]


def _files(paths, seed):
    out = []
    for i, p in enumerate(paths):
        if p.endswith((".safetensors", ".bin")):
            out.append(FakeFile.safetensors(p, 2048 + i, seed=seed + i))
        else:
            out.append(FakeFile(p, f'{{"file": "{p}"}}'.encode(), lfs=False))
    return out


async def test_diffusers_loader_folder_resolves_and_plans_as_one_unit(fake_hub, fake_civitai, tmp_path):
    fake_hub.add_repo("stabilityai/stable-diffusion-2-1", _files(DIFFUSERS, 100), downloads=900_000,
                      created_at=datetime(2022, 12, 1, tzinfo=timezone.utc))
    fake_hub.add_repo("mirrorbot/stable-diffusion-2-1-backup", _files(DIFFUSERS, 100), downloads=50)
    fake_hub.add_repo("someone/stable-diffusion-2-1-unet", _files(["unet/diffusion_pytorch_model.safetensors"], 7))
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai))
    try:
        res = await r.resolve(workflow(("DiffusersLoader", ["stable-diffusion-2-1"])), "wf")
    finally:
        await r.close()
    (m,) = res.models
    assert m.kind == "directory" and m.folder == "diffusers"
    assert m.status == "resolved", (m.message, m.candidates)
    assert m.chosen.repo == "stabilityai/stable-diffusion-2-1"
    paths = [f.path for f in m.chosen.files]
    assert paths == unit_files(DIFFUSERS) and all(f.sha256 or not f.path.endswith(".safetensors") for f in m.chosen.files)
    requests, skipped = plan_downloads([m])
    assert not skipped
    assert {q.filename for q in requests} == {f"stable-diffusion-2-1/{p}" for p in paths}
    assert len({q.group for q in requests}) == 1 and all(q.folder == "diffusers" for q in requests)


async def test_a_linked_repo_folder_gets_its_files(fake_hub, fake_civitai, tmp_path):
    fake_hub.add_repo("microsoft/Florence-2-base", _files(["config.json", "model.safetensors", "pytorch_model.bin",
                                                            "tokenizer.json", "README.md"], 300))
    r = await build_resolver(make_settings(tmp_path, hub=fake_hub, civ=fake_civitai))
    try:
        res = await r.resolve(workflow(("DownloadAndLoadFlorence2Model", ["microsoft/Florence-2-base", "fp16", "sdpa"])),
                              "wf")
    finally:
        await r.close()
    (m,) = res.models
    assert m.kind == "directory" and m.status == "resolved", (m.message, m.candidates)
    assert [f.path for f in m.chosen.files] == ["config.json", "model.safetensors", "tokenizer.json"]


async def test_a_folder_model_downloads_into_its_folder_with_its_layout(fake_hub, fake_civitai, tmp_path):
    from support.downloads import sha256_of

    files = _files(DIFFUSERS, 500)
    fake_hub.add_repo("stabilityai/stable-diffusion-2-1", files, downloads=900_000)
    models = tmp_path / "models"
    (models / "diffusers").mkdir(parents=True)
    settings = make_settings(tmp_path, hub=fake_hub, civ=fake_civitai, models_root=str(models))
    r = await build_resolver(settings)
    try:
        res = await r.resolve(workflow(("DiffusersLoader", ["stable-diffusion-2-1"])), "wf")
        jobs, skipped, errors = await r.download_resolution(res.models)
        assert not skipped and not errors and len(jobs) == len(unit_files(DIFFUSERS))
        for job in jobs:
            done = await r.downloads.wait(job.id, timeout=30)
            assert done.state == "completed", done
    finally:
        await r.close()
    by_path = {f.path: f for f in files}
    for p in unit_files(DIFFUSERS):
        local = models / "diffusers" / "stable-diffusion-2-1" / p
        assert local.is_file(), p
        assert sha256_of(local) == by_path[p].sha256
    assert not (models / "diffusers" / "stable-diffusion-2-1" / "v2-1_768-ema-pruned.safetensors").exists()
