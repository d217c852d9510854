"""extra_model_paths.yaml, as ComfyUI reads it."""
from __future__ import annotations

import os

import pytest

from comfyui_model_resolver.errors import LocalIndexError
from comfyui_model_resolver.index.layout import build_layout, parse_extra_model_paths

YAML = """
a111:
    base_path: ~/sd-webui
    checkpoints: models/Stable-diffusion
    loras: |
         models/Lora
         models/LyCORIS
    unet: models/unet
comfyui:
    base_path: $MODELS_BASE/comfy
    is_default: true
    clip: models/clip/
    t2i_adapter: models/t2i
relative:
    vae: ./vae_here
empty:
"""


def test_parse_sections_bases_aliases_and_multiline(tmp_path):
    entries = parse_extra_model_paths(YAML, str(tmp_path), {"MODELS_BASE": "/data"})
    home = os.path.expanduser("~")
    assert (("checkpoints", os.path.join(home, "sd-webui/models/Stable-diffusion"), False) in entries)
    assert ("loras", os.path.join(home, "sd-webui/models/Lora"), False) in entries
    assert ("loras", os.path.join(home, "sd-webui/models/LyCORIS"), False) in entries
    assert ("diffusion_models", os.path.join(home, "sd-webui/models/unet"), False) in entries  # unet alias
    assert ("text_encoders", "/data/comfy/models/clip", True) in entries  # clip alias, env var, is_default
    assert ("controlnet", "/data/comfy/models/t2i", True) in entries
    assert ("vae", str(tmp_path / "vae_here"), False) in entries  # relative to the YAML's directory


def test_relative_base_path_is_relative_to_the_yaml(tmp_path):
    entries = parse_extra_model_paths("x:\n  base_path: ../shared\n  loras: l\n", str(tmp_path / "cfg"))
    assert entries == [("loras", os.path.normpath(str(tmp_path / "shared" / "l")), False)]


@pytest.mark.parametrize("text,msg", [("a: [1, 2", "not valid YAML"), ("- a\n- b\n", "mapping of sections"),
                                      ("a: 5\n", "must be a mapping"), ("a:\n  loras: {x: 1}\n", "must be a path")])
def test_bad_yaml_is_a_clear_error(text, msg):
    with pytest.raises(LocalIndexError, match=msg):
        parse_extra_model_paths(text, "/tmp")


def test_build_layout_default_first_and_custom_folders(tmp_path):
    root = tmp_path / "models"
    (root / "checkpoints").mkdir(parents=True)
    (root / "ipadapter").mkdir()
    (root / "clip").mkdir()
    extra = tmp_path / "extra_model_paths.yaml"
    extra.write_text("big:\n  base_path: /mnt/big\n  is_default: true\n  checkpoints: ckpt\nother:\n  loras: /mnt/l\n")
    layout = build_layout(root, [extra], {})
    assert layout.dirs("checkpoints") == ("/mnt/big/ckpt", str(root / "checkpoints"))
    assert layout.download_dir("checkpoints") == "/mnt/big/ckpt"
    assert layout.dirs("loras") == (str(root / "loras"), "/mnt/l")
    assert layout.dirs("clip") == layout.dirs("text_encoders") == (str(root / "text_encoders"), str(root / "clip"))
    assert layout.dirs("ipadapter") == (str(root / "ipadapter"),)
    assert layout.download_dir("animatediff_models") == str(root / "animatediff_models")


def test_explicit_folder_paths_win(tmp_path):
    layout = build_layout(tmp_path, [], {}, explicit={"checkpoints": ["/a", "/b"], "configs": ["/c"]})
    assert layout.dirs("checkpoints") == ("/a", "/b")
    assert layout.dirs("configs") == ()  # not a model folder
