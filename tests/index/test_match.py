"""present / relocated / missing, with the widget value that would fix a relocated file."""
from __future__ import annotations

from comfyui_model_resolver.index.layout import build_layout
from comfyui_model_resolver.index.match import match_ref
from comfyui_model_resolver.index.scan import ModelIndex
from comfyui_model_resolver.types import ModelRef


def ref(filename, folder="checkpoints", kind="file"):
    return ModelRef(filename=filename, folder=folder, node_id="1", node_type="X", input="i", kind=kind)


def index(tmp_path, *files, dirs=()):
    root = tmp_path / "models"
    for rel in files:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    for rel in dirs:
        (root / rel).mkdir(parents=True, exist_ok=True)
    idx = ModelIndex(build_layout(root, [], {}))
    idx.refresh()
    return root, idx


def test_present(tmp_path):
    root, idx = index(tmp_path, "checkpoints/SD1.5/x.safetensors", "checkpoints/y.safetensors")
    m = match_ref(ref("SD1.5/x.safetensors"), idx, windows=False)
    assert (m.status.value, m.local_path) == ("present", str(root / "checkpoints/SD1.5/x.safetensors"))
    assert match_ref(ref("y.safetensors"), idx, windows=False).status.value == "present"


def test_windows_separator_relinks_on_posix_and_is_present_on_windows(tmp_path):
    _root, idx = index(tmp_path, "checkpoints/SD1.5/x.safetensors")
    m = match_ref(ref("SD1.5\\x.safetensors"), idx, windows=False)
    assert (m.status.value, m.relink_value) == ("relocated", "SD1.5/x.safetensors")
    assert match_ref(ref("SD1.5\\x.safetensors"), idx, windows=True).status.value == "present"


def test_other_subfolder_gives_relink_value(tmp_path):
    root, idx = index(tmp_path, "checkpoints/XL/x.safetensors")
    m = match_ref(ref("SD1.5/x.safetensors"), idx, windows=False)
    assert (m.status.value, m.relink_value, m.local_path) == ("relocated", "XL/x.safetensors",
                                                             str(root / "checkpoints/XL/x.safetensors"))
    m = match_ref(ref("x.safetensors"), idx, windows=True)
    assert m.relink_value == "XL\\x.safetensors"


def test_legacy_alias_folder_counts_as_present(tmp_path):
    _root, idx = index(tmp_path, "clip/t5.safetensors", "unet/flux.safetensors")
    assert match_ref(ref("t5.safetensors", "text_encoders"), idx, windows=False).status.value == "present"
    assert match_ref(ref("flux.safetensors", "diffusion_models"), idx, windows=False).status.value == "present"


def test_other_folder_is_relocated_without_relink_value(tmp_path):
    root, idx = index(tmp_path, "checkpoints/lora_in_wrong_place.safetensors")
    m = match_ref(ref("lora_in_wrong_place.safetensors", "loras"), idx, windows=False)
    assert (m.status.value, m.relink_value) == ("relocated", None)
    assert m.local_path == str(root / "checkpoints/lora_in_wrong_place.safetensors")


def test_case_mismatch_is_relocated(tmp_path):
    _root, idx = index(tmp_path, "loras/Detail.safetensors")
    m = match_ref(ref("detail.safetensors", "loras"), idx, windows=False)
    assert (m.status.value, m.relink_value) == ("relocated", "Detail.safetensors")


def test_missing(tmp_path):
    _root, idx = index(tmp_path, "checkpoints/a.safetensors")
    assert match_ref(ref("b.safetensors"), idx, windows=False).status.value == "missing"


def test_embedding_without_extension(tmp_path):
    _root, idx = index(tmp_path, "embeddings/EasyNegative.safetensors")
    assert match_ref(ref("EasyNegative", "embeddings"), idx, windows=False).status.value == "present"


def test_directory_models(tmp_path):
    _root, idx = index(tmp_path, dirs=["LLM/Florence-2-base"])
    assert match_ref(ref("Florence-2-base", "LLM", "directory"), idx, windows=False).status.value == "present"
    assert match_ref(ref("Florence-2-large", "LLM", "directory"), idx, windows=False).status.value == "missing"


def test_unknown_folder_found_at_exact_path_is_present(tmp_path):
    _root, idx = index(tmp_path, "mystery/sub/m.safetensors")
    assert match_ref(ref("sub/m.safetensors", None), idx, windows=False).status.value == "present"


def test_alt_folders_sub_paths_and_literal_dirs(tmp_path):
    root, idx = index(tmp_path, "reswapper/reswapper_256.onnx", dirs=["insightface/models/antelopev2", "clip/clip-vit"])
    r = ModelRef(filename="reswapper_256.onnx", folder="insightface", alt_folders=("reswapper",), node_id="1",
                 node_type="X", input="i")
    assert match_ref(r, idx, windows=False).status.value == "present"
    assert match_ref(ref("antelopev2", "insightface/models", "directory"), idx, windows=False).status.value == "present"
    assert match_ref(ref("clip-vit", "models/clip", "directory"), idx, windows=False).status.value == "present"
    assert idx.layout.download_dir("models/clip") == str(root / "clip")
    assert idx.layout.download_dir("insightface/models") == str(root / "insightface" / "models")


def test_fuzzy_and_substring_matching(tmp_path):
    _root, idx = index(tmp_path, "loras/styles/ink_v2.safetensors", "loras/detail.safetensors")
    fuzzy = ModelRef(filename="detail", folder="loras", match="fuzzy", node_id="1", node_type="X", input="i")
    assert match_ref(fuzzy, idx, windows=False).status.value == "present"
    fuzzy_base = ModelRef(filename="other/ink_v2.safetensors", folder="loras", match="fuzzy", node_id="1",
                          node_type="X", input="i")
    assert match_ref(fuzzy_base, idx, windows=False).status.value == "present"
    sub = ModelRef(filename="ink", folder="loras", match="substring", node_id="1", node_type="X", input="i")
    assert match_ref(sub, idx, windows=False).local_path.endswith("ink_v2.safetensors")
