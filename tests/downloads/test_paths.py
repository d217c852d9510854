"""Safe target paths: every way a name could escape the model folder is refused with a reason."""
from __future__ import annotations

import os

import pytest

from comfyui_model_resolver.errors import ConfigError, UnsafePath
from comfyui_model_resolver.downloads.paths import (content_disposition_filename, filename_from_url,
                                                     safe_relative_name, target_path)
from comfyui_model_resolver.index.layout import FolderLayout, build_layout


@pytest.fixture
def layout(tmp_path):
    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "models" / "loras").mkdir()
    return build_layout(tmp_path / "models")


def test_sub_folders_with_either_separator(layout, tmp_path):
    root = os.path.realpath(tmp_path / "models" / "checkpoints")
    assert target_path(layout, "checkpoints", "SD1.5/x.safetensors") == os.path.join(root, "SD1.5", "x.safetensors")
    assert target_path(layout, "checkpoints", "SD1.5\\x.safetensors") == os.path.join(root, "SD1.5", "x.safetensors")
    assert target_path(layout, "clip", "t5.safetensors").endswith(os.path.join("text_encoders", "t5.safetensors"))


@pytest.mark.parametrize("name, why", [
    ("../x.safetensors", "goes up"),
    ("a/../../x.safetensors", "goes up"),
    ("..\\..\\x.safetensors", "goes up"),
    ("/etc/passwd", "absolute"),
    ("\\windows\\x", "absolute"),
    ("C:\\models\\x.safetensors", "drive letter"),
    ("c:x.safetensors", "drive letter"),
    ("\\\\server\\share\\x.safetensors", "UNC"),
    ("//server/share/x", "UNC"),
    ("x\x00.safetensors", "NUL"),
    ("x\n.safetensors", "control character"),
    ("x\x1b[31m.safetensors", "control character"),
    ("CON", "reserved"),
    ("nul.safetensors", "reserved"),
    ("sub/COM1.txt", "reserved"),
    ("lpt9", "reserved"),
    ("x.safetensors.", "ends with a dot"),
    ("x.safetensors ", "ends with a dot or a space"),
    ("ab:c.safetensors", "Windows"),
    ("what?.safetensors", "Windows"),
    ("a//b.safetensors", "Empty"),
    ("./x.safetensors", "Empty"),
    ("", "Empty"),
    ("é" * 128 + ".safetensors", "longer than 255 bytes"),
    ("x" * 251 + ".st", "too long to add"),
])
def test_unsafe_names_are_refused(layout, name, why):
    with pytest.raises(UnsafePath) as info:
        target_path(layout, "checkpoints", name)
    assert why in info.value.message


def test_symlink_out_of_the_folder_is_refused(layout, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, tmp_path / "models" / "checkpoints" / "escape")
    with pytest.raises(UnsafePath, match="outside the folders the resolver may write to") as info:
        target_path(layout, "checkpoints", "escape/x.safetensors")
    assert f"CMR_WRITE_ROOTS={os.path.realpath(outside)}" in info.value.hint
    os.symlink(outside / "x.safetensors.part", tmp_path / "models" / "checkpoints" / "y.safetensors.part")
    with pytest.raises(UnsafePath, match="symbolic link"):  # any link under the part name: it is written in place
        target_path(layout, "checkpoints", "y.safetensors")


def test_a_folder_linked_to_another_disk_needs_that_disk_as_a_write_root(tmp_path):
    big = tmp_path / "bigdisk" / "loras"
    big.mkdir(parents=True)
    (tmp_path / "models").mkdir()
    os.symlink(big, tmp_path / "models" / "loras")
    with pytest.raises(UnsafePath, match="a link leads to") as info:
        target_path(build_layout(tmp_path / "models"), "loras", "a/b.safetensors")
    assert f"CMR_WRITE_ROOTS={os.path.realpath(big / 'a')}" in info.value.hint
    layout = build_layout(tmp_path / "models", write_roots=[tmp_path / "bigdisk"])
    assert target_path(layout, "loras", "a/b.safetensors") == os.path.join(tmp_path, "models", "loras", "a", "b.safetensors")


def test_extra_model_paths_entries_are_write_roots(tmp_path):
    (tmp_path / "models").mkdir()
    other = tmp_path / "other" / "loras"
    other.mkdir(parents=True)
    (tmp_path / "extra.yaml").write_text(f"mine:\n  is_default: true\n  loras: {other}\n")
    layout = build_layout(tmp_path / "models", [tmp_path / "extra.yaml"])
    assert target_path(layout, "loras", "x.safetensors") == os.path.join(other, "x.safetensors")


def test_folder_names(layout, tmp_path):
    assert target_path(layout, "my_custom", "x.bin").endswith(os.path.join("models", "my_custom", "x.bin"))
    for bad in ("../checkpoints", "a/b", "C:", "a\\b", ""):
        with pytest.raises(UnsafePath):
            target_path(layout, bad, "x.safetensors")
    with pytest.raises(ConfigError) as info:
        target_path(FolderLayout({}, None), "checkpoints", "x.safetensors")
    assert "CMR_COMFYUI_ROOT" in info.value.hint


def test_safe_relative_name_normalises():
    assert safe_relative_name("a\\b\\c.safetensors") == "a/b/c.safetensors"


@pytest.mark.parametrize("header, name", [
    ('attachment; filename="model.safetensors"', "model.safetensors"),
    ("attachment; filename=model.safetensors", "model.safetensors"),
    ("attachment; filename*=UTF-8''na%C3%AFve%20lora.safetensors; filename=\"naive.safetensors\"",
     "naïve lora.safetensors"),
    ('attachment; filename="my model (v2).safetensors"', "my model (v2).safetensors"),
    ("attachment", None),
    (None, None),
])
def test_content_disposition_names(header, name):
    assert content_disposition_filename(header) == name


@pytest.mark.parametrize("header", [
    'attachment; filename="../../x.safetensors"',
    'attachment; filename="sub/x.safetensors"',
    "attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd",
    'attachment; filename="CON"',
    'attachment; filename="a \\"q\\".bin"',
    'attachment; filename="x\\\\y.bin"',
])
def test_content_disposition_cannot_choose_a_path(header):
    with pytest.raises(UnsafePath, match="Content-Disposition"):
        content_disposition_filename(header)


def test_filename_from_url():
    assert filename_from_url("https://h/org/m/resolve/main/sub/x%20y.safetensors?download=true") == "x y.safetensors"
    assert filename_from_url("https://civitai.com/api/download/models/123") is None
    assert filename_from_url("https://h/..%2F..%2Fx.bin") is None
