"""Moving a model found in the wrong folder into the folder its loader reads (the sidebar's Move).

Through the Resolver (analyze -> misplaced -> move -> present) and the real aiohttp routes; the
safety rules are the download's: containment, never overwrite, never through a link, atomic.
"""
from __future__ import annotations

import os

import pytest

from comfyui_model_resolver.errors import TargetExists, UnknownFolder, UnsafePath
from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.settings import Settings

WF = {"nodes": [{"id": 3, "type": "CLIPLoader", "widgets_values": ["t5xxl.safetensors", "flux"]}], "links": []}


@pytest.fixture
async def setup(tmp_path):
    models = tmp_path / "ComfyUI" / "models"
    for d in ("loras", "text_encoders", "checkpoints"):
        (models / d).mkdir(parents=True)
    (models / "loras" / "t5xxl.safetensors").write_bytes(b"t5 bytes" * 100)
    s = Settings.load({}, env_file="/nonexistent", comfyui_root=tmp_path / "ComfyUI", data_dir=tmp_path / "data")
    r = await build_resolver(s)
    yield r, models
    await r.close()


async def test_a_misplaced_model_is_moved_and_then_present(setup):
    r, models = setup
    before = (await r.analyze(WF)).models[0]
    assert before.status == "relocated" and before.relink_value is None  # found in another folder: move it
    assert before.folder == "text_encoders"
    moved = await r.move_model(before.local_path, before.folder, before.filename)
    target = models / "text_encoders" / "t5xxl.safetensors"
    assert moved == {"from": str(models / "loras" / "t5xxl.safetensors"), "to": str(target),
                     "folder": "text_encoders", "filename": "t5xxl.safetensors", "size": 800}
    assert target.read_bytes() == b"t5 bytes" * 100 and os.stat(target).st_nlink == 1
    assert not (models / "loras" / "t5xxl.safetensors").exists()
    after = (await r.analyze(WF)).models[0]
    assert after.status == "present" and after.local_path == str(target)


async def test_an_existing_file_is_never_overwritten(setup):
    r, models = setup
    (models / "text_encoders" / "t5xxl.safetensors").write_bytes(b"another file")
    src = str(models / "loras" / "t5xxl.safetensors")
    with pytest.raises(TargetExists) as err:
        await r.move_model(src, "text_encoders", "t5xxl.safetensors")
    assert "never overwritten" in err.value.message
    assert (models / "text_encoders" / "t5xxl.safetensors").read_bytes() == b"another file"
    assert os.path.exists(src)


@pytest.mark.parametrize("filename", ["../loras/x.safetensors", "/etc/passwd", "a\\..\\..\\x.safetensors", "x.py"])
async def test_unsafe_destinations_are_refused(setup, filename):
    r, models = setup
    src = str(models / "loras" / "t5xxl.safetensors")
    with pytest.raises(UnsafePath):
        await r.move_model(src, "text_encoders", filename)
    assert os.path.exists(src)


async def test_only_model_files_the_index_lists_are_moved(setup, tmp_path):
    r, models = setup
    outside = tmp_path / "secret.safetensors"
    outside.write_bytes(b"not a model of ours")
    with pytest.raises(UnsafePath):
        await r.move_model(str(outside), "text_encoders", "secret.safetensors")
    # a link inside a model folder to a file elsewhere: not moved either
    (models / "loras" / "link.safetensors").symlink_to(outside)
    with pytest.raises(UnsafePath):
        await r.move_model(str(models / "loras" / "link.safetensors"), "text_encoders", "link.safetensors")
    # a folder name that is a path, or a typo ComfyUI would never read
    src = str(models / "loras" / "t5xxl.safetensors")
    with pytest.raises(UnknownFolder):
        await r.move_model(src, "text_encoderz", "t5xxl.safetensors")
    with pytest.raises(UnsafePath):
        await r.move_model(src, "../text_encoders", "t5xxl.safetensors")
    assert outside.read_bytes() == b"not a model of ours" and os.path.exists(src)


async def test_across_file_systems_the_bytes_are_copied_then_renamed(tmp_path):
    """A text_encoders folder on another file system (tmpfs): a hard link can't cross, so the bytes are
    copied into a part file, linked into place, and only then is the original removed."""
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second file system (/dev/shm) on this machine")
    other = tmp_path.name
    encoders = os.path.join(shm, f"cmr-move-{other}", "text_encoders")
    os.makedirs(encoders)
    root = tmp_path / "ComfyUI"
    (root / "models" / "loras").mkdir(parents=True)
    (root / "models" / "loras" / "t5xxl.safetensors").write_bytes(b"t5 bytes" * 100)
    yaml = tmp_path / "extra.yaml"
    yaml.write_text(f"other:\n  text_encoders: {encoders}\n")
    s = Settings.load({}, env_file="/nonexistent", comfyui_root=root, data_dir=tmp_path / "data",
                      extra_model_paths=(yaml,))
    r = await build_resolver(s)
    try:
        before = (await r.analyze(WF)).models[0]
        assert before.status == "relocated" and before.relink_value is None
        target = r.layout.download_dir("text_encoders")
        moved = await r.move_model(before.local_path, "text_encoders", "t5xxl.safetensors")
        assert os.path.dirname(moved["to"]) == target
        with open(moved["to"], "rb") as f:
            assert f.read() == b"t5 bytes" * 100
        assert not os.path.exists(before.local_path) and not os.path.exists(moved["to"] + ".part")
        assert (await r.analyze(WF)).models[0].status == "present"
    finally:
        await r.close()
        import shutil

        shutil.rmtree(os.path.dirname(encoders), ignore_errors=True)
