"""Detection: which (node, input) names a model, and in which folder."""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.workflow.knowledge import Knowledge
from comfyui_model_resolver.workflow.parse import parse_workflow_object
from support.paths import FRONTEND_FIXTURES, OBJECT_INFO


def refs(obj, knowledge=None):
    return parse_workflow_object(obj, knowledge or Knowledge()).refs


def ui(*nodes, **extra):
    return {"nodes": list(nodes), "links": [], **extra}


def node(nid, ntype, values, **kw):
    return {"id": nid, "type": ntype, "mode": 0, "widgets_values": values, **kw}


def test_core_loader_from_table():
    (r,) = refs(ui(node(1, "LoraLoader", ["style.safetensors", 0.8, 1.0])))
    assert (r.filename, r.folder, r.input, r.folder_source, r.widget_index) == (
        "style.safetensors", "loras", "lora_name", "table", 0)
    assert r.confidence >= 0.9


def test_filename_kept_exactly_as_written_with_windows_separator():
    (r,) = refs(ui(node(1, "CheckpointLoaderSimple", ["SD1.5\\dreamshaper_8.safetensors"])))
    assert r.filename == "SD1.5\\dreamshaper_8.safetensors"


def test_rgthree_power_lora_loader_dict_widgets():
    values = [{}, {"type": "PowerLoraLoaderHeaderWidget"},
              {"on": True, "lora": "detail.safetensors", "strength": 1, "strengthTwo": None},
              {"on": False, "lora": "off.safetensors", "strength": 0.5},
              {"on": True, "lora": "None", "strength": 1},
              {}, ""]
    out = refs(ui(node(7, "Power Lora Loader (rgthree)", values)))
    assert [(r.filename, r.folder, r.active, r.widget_index, r.widget_key) for r in out] == [
        ("detail.safetensors", "loras", True, 2, "lora"),
        ("off.safetensors", "loras", False, 3, "lora"),
    ]


def test_dict_form_widgets_values():
    (r,) = refs(ui(node(1, "CheckpointLoaderSimple", {"ckpt_name": "x.safetensors"})))
    assert (r.input, r.widget_key, r.folder) == ("ckpt_name", "ckpt_name", "checkpoints")


def test_custom_pack_loader_gguf():
    (r,) = refs(ui(node(1, "UnetLoaderGGUF", ["flux1-dev-Q4_K_S.gguf"])))
    assert (r.folder, r.folder_source) == ("diffusion_models", "table")


def test_preset_maps_to_files_of_the_workflows_model_family():
    # No other model tells the family: every variant is listed, the family-specific ones optional.
    out = {r.filename: r for r in refs(ui(node(1, "IPAdapterUnifiedLoader", ["PLUS (high strength)"])))}
    assert out["ip-adapter-plus_sd15.safetensors"].optional and out["ip-adapter-plus_sd15.safetensors"].variant == "sd15"
    assert out["ip-adapter-plus_sdxl_vit-h.safetensors"].optional
    assert out["CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"].folder == "clip_vision"
    assert not out["CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"].optional
    assert all("PLUS" in r.note for r in out.values())
    # An SDXL checkpoint in the same workflow: only the SDXL adapter is needed.
    out = refs(ui(node(1, "IPAdapterUnifiedLoader", ["PLUS (high strength)"]),
                  node(2, "CheckpointLoaderSimple", ["juggernautXL_v9.safetensors"])))
    names = {r.filename for r in out}
    assert "ip-adapter-plus_sdxl_vit-h.safetensors" in names and "ip-adapter-plus_sd15.safetensors" not in names
    assert not any(r.optional for r in out)


def test_vae_loader_placeholders_and_taesd_preset():
    assert refs(ui(node(1, "VAELoader", ["pixel_space"]))) == ()
    out = refs(ui(node(1, "VAELoader", ["taesdxl"])))
    assert {(r.filename, r.folder) for r in out} == {("taesdxl_encoder.pth", "vae_approx"),
                                                      ("taesdxl_decoder.pth", "vae_approx")}


def test_lora_tags_in_prompt_text():
    out = refs(ui(node(1, "Power Prompt (rgthree)", ["a cat <lora:styles/ink:0.8> and embedding:neg", "", ""])))
    assert {(r.filename, r.folder, r.match) for r in out} >= {("styles/ink", "loras", "fuzzy")}


def test_implicit_files_of_a_node():
    out = refs(ui(node(1, "ReActorFaceSwap", [True, "inswapper_128.onnx", "retinaface_resnet50", "codeformer-v0.1.0.pth",
                                             1, 0.5, "no", "no", "0", "0", 1])))
    assert ("buffalo_l", "insightface/models", "directory") in {(r.filename, r.folder, r.kind) for r in out}
    assert ("inswapper_128.onnx", "insightface") in {(r.filename, r.folder) for r in out}


def test_hugging_face_repo_widget():
    (r,) = refs(ui(node(1, "DownloadAndLoadFlorence2Model", ["microsoft/Florence-2-base", "fp16", "sdpa"])))
    assert (r.filename, r.folder, r.kind, r.url) == ("Florence-2-base", "LLM", "directory",
                                                    "https://huggingface.co/microsoft/Florence-2-base")


def test_unknown_loader_gets_folder_unknown_with_candidates_not_a_guess():
    # no table entry, no /object_info: the widget's position and the file's words are no answer
    (r,) = refs(ui(node(1, "SomeUnknownPackLoader", ["control_v11p_sd15_canny.pth", 0.5, "cuda"])))
    assert (r.folder, r.folder_source, r.input) == (None, None, "widget_0")
    assert r.alt_folders[0] == "controlnet" and "one of controlnet" in r.note
    assert r.confidence == 0.0


def test_unknown_pack_input_names_rank_the_candidates_but_are_not_the_answer():
    wf = ui({"id": 1, "type": "FancyPackLoraPicker", "mode": 0, "widgets_values": ["sdxl_vae_style.safetensors"],
             "inputs": [{"name": "pick", "type": "COMBO", "widget": {"name": "pick"}, "link": None}]},
            {"id": 2, "type": "MysteryLoader", "mode": 0, "widgets_values": ["realVAEmix_v2.safetensors"],
             "inputs": [{"name": "ckpt_name", "type": "COMBO", "widget": {"name": "ckpt_name"}, "link": None}]})
    got = {r.node_id: (r.folder, r.alt_folders[0], r.note.split(";")[0]) for r in refs(wf)}
    assert got == {"1": (None, "loras", "folder unknown: nothing describes FancyPackLoraPicker"),
                   "2": (None, "checkpoints", "folder unknown: nothing describes MysteryLoader")}


def test_a_known_node_s_undescribed_slot_takes_its_folder_from_the_input_name_not_the_file_name():
    # CheckpointLoader|pysssss is in the table; its extra "example" combo is not a described slot
    (r,) = [x for x in refs(ui(node(1, "LoraLoader|pysssss", ["style_vae_xl.safetensors", 1.0, 1.0, "", "[none]"])))]
    assert (r.folder, r.folder_source) == ("loras", "table")


def test_non_model_strings_are_not_reported():
    wf = ui(node(1, "LoadImage", ["picture.safetensors", "image"]),
            node(2, "Note", ["Get model.safetensors from https://x/model.safetensors"]),
            node(3, "KSampler", [1, "randomize", 20, 8, "euler", "normal", 1]),
            node(4, "SaveImage", ["ComfyUI"]),
            node(5, "CLIPTextEncode", ["a photo of a cat.safetensors\nwith two lines"]),
            node(6, "SomeUnknownNode", ["https://example.com/x.safetensors", "abc"]))
    assert refs(wf) == ()


def test_loader_none_choice_is_not_a_model():
    wf = ui(node(1, "VAELoader", ["pixel_space"]), node(2, "LoraLoaderModelOnly", ["None", 1.0]))
    assert refs(wf) == ()


def test_embedding_references_in_prompt_text():
    wf = ui(node(1, "CLIPTextEncode", ["masterpiece, (embedding:EasyNegative:1.2), embedding:sub/bad_hands.pt, cat"]))
    out = refs(wf)
    assert [(r.filename, r.folder, r.input) for r in out] == [("EasyNegative", "embeddings", "text"),
                                                             ("sub/bad_hands.pt", "embeddings", "text")]


def test_embedded_properties_models_give_url_hash_and_folder():
    models = [{"name": "mystery.safetensors", "url": "https://huggingface.co/a/b/resolve/main/mystery.safetensors",
               "directory": "style_models", "hash": "A" * 64, "hash_type": "SHA256"}]
    (r,) = refs(ui(node(1, "MysteryLoader", ["mystery.safetensors"], properties={"models": models})))
    assert (r.folder, r.folder_source, r.url, r.hash, r.hash_type) == (
        "style_models", "embedded", models[0]["url"], "A" * 64, "sha256")


def test_embedded_entry_for_a_value_without_model_extension():
    models = [{"name": "weights-v2", "url": "https://huggingface.co/a/b/resolve/main/weights-v2", "directory": "x"}]
    (r,) = refs(ui(node(1, "OddLoader", ["weights-v2"], properties={"models": models})))
    assert (r.filename, r.folder, r.folder_source) == ("weights-v2", "x", "embedded")


def test_conflict_between_table_and_embedded_directory_is_reported():
    wf = json.loads((FRONTEND_FIXTURES / "missing/missing_models.json").read_text())
    out = refs(wf)
    assert len(out) == 2
    for r in out:
        assert r.folder == "checkpoints" and r.folder_source == "table"
        assert [(c.folder, c.source) for c in r.conflicts] == [("text_encoders", "embedded")]


def test_root_models_entry_used_by_no_node_is_still_reported():
    wf = ui(node(1, "KSampler", [1, "fixed", 20, 8, "euler", "normal", 1]),
            models=[{"name": "extra.safetensors", "url": "https://huggingface.co/a/b/resolve/main/extra.safetensors",
                     "directory": "loras"}])
    (r,) = refs(wf)
    assert (r.filename, r.folder, r.node_id, r.input) == ("extra.safetensors", "loras", "", "models")


def test_api_format_dynamic_inputs():
    wf = json.loads((FRONTEND_FIXTURES / "inputs/native_lora_sparse_api.json").read_text())
    assert [(r.filename, r.folder, r.input) for r in refs(wf)] == [
        ("native-lora-e2e/A.safetensors", "loras", "loras.1.lora_name"),
        ("native-lora-e2e/C.safetensors", "loras", "loras.3.lora_name")]


# ---- node schemas (object_info) ----------------------------------------------------------
@pytest.fixture(scope="module")
def empty_info():
    return json.loads((OBJECT_INFO / "comfyui-0.3.64-empty-models.json").read_text())


@pytest.fixture(scope="module")
def sentinel_info():
    return json.loads((OBJECT_INFO / "comfyui-0.3.64-sentinel-models.json").read_text())


def test_schema_with_empty_folders_still_orders_widgets(empty_info):
    k = Knowledge(object_info=empty_info)
    wf = ui(node(1, "CLIPLoader", ["t5xxl_fp16.safetensors", "flux", "default"]),
            node(2, "KSampler", [5, "randomize", 20, 8, "euler", "normal", 1]),
            node(3, "LoadImage", ["x.safetensors", "image"]))
    (r,) = refs(wf, k)
    assert (r.filename, r.folder, r.input) == ("t5xxl_fp16.safetensors", "text_encoders", "clip_name")


def test_sentinel_schema_gives_folders_without_the_table(sentinel_info):
    from comfyui_model_resolver.workflow.knowledge import LoaderTable

    k = Knowledge(table=LoaderTable({}, {}), object_info=sentinel_info)
    wf = ui(node(1, "CLIPLoader", ["t5.safetensors", "flux", "default"]),
            node(2, "UpscaleModelLoader", ["4x.pth"]),
            node(3, "ControlNetLoader", ["canny.safetensors"]),
            node(4, "LoadImage", ["x.safetensors", "image"]))
    out = {r.node_id: r for r in refs(wf, k)}
    assert set(out) == {"1", "2", "3"}
    assert (out["1"].folder, out["1"].folder_source) == ("text_encoders", "schema")
    assert out["2"].folder == "upscale_models"
    assert out["3"].folder == "controlnet"


def test_live_input_folders_override_table():
    info = {"MyLoader": {"input": {"required": {"model": [[], {}], "strength": ["FLOAT", {}]}},
                         "input_order": {"required": ["model", "strength"]}}}
    k = Knowledge(object_info=info, input_folders={"MyLoader": {"model": ["unet"]}})
    (r,) = refs(ui(node(1, "MyLoader", ["m.safetensors", 1.0])), k)
    assert (r.folder, r.folder_source, r.input) == ("diffusion_models", "schema", "model")


def test_lora_manager_text_and_list_widgets_name_loras():
    wf = ui(node(1, "Lora Loader (LoraManager)", [
        "<lora:add_detail:0.6> <lora:flux.1_turbo-alpha:1>",
        [{"name": "add_detail", "strength": 0.6, "active": True, "clipStrength": 0.6},
         {"name": "flux.1_turbo-alpha", "strength": 1, "active": True},
         {"name": "old_style", "strength": 0.5, "active": False}]]),
        node(2, "CLIPTextEncode", ["a cat <lora:copied_from_civitai:0.8>, masterpiece"]))
    got = {(r.filename, r.folder, r.match, r.active) for r in refs(wf)}
    assert got == {("add_detail", "loras", "fuzzy", True), ("flux.1_turbo-alpha", "loras", "fuzzy", True),
                   ("old_style", "loras", "fuzzy", False)}  # a plain prompt's <lora:…> tag loads nothing


def test_shifted_values_of_bypassed_nodes_and_boolean_slots_are_not_models():
    wf = ui({"id": 1, "type": "SomePackSampler", "mode": 4,
             "widgets_values": [True, "juggernautXL_v9.safetensors", 20],
             "inputs": [{"name": "enabled", "type": "BOOLEAN", "widget": {"name": "enabled"}, "link": None},
                        {"name": "add_noise", "type": "BOOLEAN", "widget": {"name": "add_noise"}, "link": None},
                        {"name": "steps", "type": "INT", "widget": {"name": "steps"}, "link": None}]},
            {"id": 2, "type": "CheckpointLoaderSimple", "mode": 4,
             "widgets_values": ["sd_xl_base_1.0.safetensors", "stale_value.safetensors"]})
    got = [(r.node_id, r.filename, r.active) for r in refs(wf)]
    assert got == [("2", "sd_xl_base_1.0.safetensors", False)]


def test_a_whole_prompt_ending_in_pt_is_not_an_embedding_or_a_model():
    wf = ui(node(1, "SomeUnknownPromptNode", ["portrait of a woman, studio light, style of embedding.pt"]),
            node(2, "ShowText|pysssss", ["a b c d e f g h.pt"]))
    assert refs(wf) == ()


def test_config_and_code_files_are_never_models():
    wf = ui(node(1, "SomeUnknownDownloader", ["config.json"]), node(2, "SomeUnknownDownloader", ["pipeline.cfg.py"]),
            node(3, "SomeUnknownDownloader", ["model.safetensors.index.json"]))
    assert refs(wf) == ()
    from comfyui_model_resolver.workflow.folders import is_config_or_code
    assert is_config_or_code("inference.cfg.py") and is_config_or_code("config.json") and is_config_or_code("x.py")
    assert not is_config_or_code("model.safetensors") and not is_config_or_code("inpaint_v26.fooocus.patch")


def test_implied_models_of_presets_are_kept_and_marked():
    out = refs(ui(node(1, "IPAdapterUnifiedLoader", ["PLUS (high strength)"])))
    assert out and all(r.implied for r in out)
    assert {r.folder for r in out} >= {"ipadapter", "clip_vision"}
    assert not any(r.implied for r in refs(ui(node(2, "CheckpointLoaderSimple", ["x.safetensors"]))))
    assert all(r.implied_by == "implied by IPAdapterUnifiedLoader's preset 'PLUS (high strength)'" for r in out)
    assert all(r.implied_by is None for r in refs(ui(node(2, "CheckpointLoaderSimple", ["x.safetensors"]))))


def test_a_model_the_nodes_code_loads_is_implied_with_where_it_is_loaded():
    (r,) = refs(ui(node(1, "PhotoMakerInsightFaceLoader", ["CPU"])))
    assert (r.filename, r.folder, r.kind, r.implied, r.pack) == (
        "buffalo_l", "insightface/models", "directory", True, "ComfyUI-PhotoMaker-Plus")
    assert r.implied_by == "implied by PhotoMakerInsightFaceLoader: its pack's code loads it (insightface_package.py:45)"
    row = r.model_dump(mode="json")
    assert row["implied_by"] == r.implied_by and row["pack"] == "ComfyUI-PhotoMaker-Plus"


def test_a_node_the_table_lacks_of_a_pack_it_knows_offers_that_packs_folders_first():
    """Saved workflows carry the node's pack (`properties.cnr_id` / `aux_id`): a node the table has no
    entry for, of a pack it knows, gets the pack's own folders as candidates, still not as the answer."""
    n = node(1, "IPAdapterFluxLoaderV9", ["ip_adapter_v9.bin"],
             properties={"aux_id": "Shakker-Labs/ComfyUI-IPAdapter-Flux"})
    (r,) = refs(ui(n))
    assert r.folder is None and r.alt_folders[0] == "ipadapter-flux" and r.pack == "ComfyUI-IPAdapter-Flux"
    assert r.note.startswith("folder unknown") and "ipadapter-flux" in r.note
    (r2,) = refs(ui(node(1, "IPAdapterFluxLoaderV9", ["ip_adapter_v9.bin"], properties={"cnr_id": "not-a-known-pack"})))
    assert r2.folder is None and r2.pack is None and "ipadapter-flux" not in r2.alt_folders


def test_reactor_face_model_builders_imply_the_face_analysis_model():
    # ReActor builds and saves face models by running insightface on the images (nodes.py:749, :878 at
    # 6ad6b35a): the face-analysis model is needed, while the face model's name is an output, not a model.
    for node_type, values in (("ReActorBuildFaceModel", [True, True, "default", "Mean"]),
                              ("ReActorSaveFaceModel", [True, "default", 0])):
        (r,) = refs(ui(node(1, node_type, values)))
        assert (r.filename, r.folder, r.implied, r.pack) == ("buffalo_l", "insightface/models", True, "ComfyUI-ReActor")
        assert r.implied_by == f"implied by {node_type}: its pack's code loads it (scripts/reactor_swapper.py:100)"
