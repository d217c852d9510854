"""The words every door uses for a row's origin (adapters/row_words.py), on rows as the parser makes them."""
from __future__ import annotations

from comfyui_model_resolver.adapters.row_words import (folder_words, implied_words, origin_notes, pack_words, preset_of,
                                                       unknown_folders)
from comfyui_model_resolver.types import ModelRef
from comfyui_model_resolver.workflow.knowledge import Knowledge
from comfyui_model_resolver.workflow.parse import parse_workflow_object


def _refs(*nodes):
    wf = {"last_node_id": 9, "last_link_id": 0, "version": 0.4, "links": [], "nodes": [
        {"id": i + 1, "type": t, "mode": 0, "widgets_values": w, "properties": {}} for i, (t, w) in enumerate(nodes)]}
    return parse_workflow_object(wf, Knowledge()).refs


def test_implied_pack_and_folder_unknown_from_parsed_rows():
    refs = {r.filename: r for r in _refs(("IPAdapterUnifiedLoader", ["PLUS (high strength)"]),
                                         ("MysteryAdapterLoader", ["mystery.safetensors"]),
                                         ("CheckpointLoaderSimple", ["sd.safetensors"]))}
    clip = refs["CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"]
    assert preset_of(clip) == "PLUS (high strength)"
    assert origin_notes(clip) == ["implied by IPAdapterUnifiedLoader (preset 'PLUS (high strength)')",
                                  "node pack ComfyUI_IPAdapter_plus"]
    mystery = refs["mystery.safetensors"]
    assert unknown_folders(mystery) == ("checkpoints", "diffusion_models", "loras")
    assert origin_notes(mystery) == ["folder unknown: one of checkpoints, diffusion_models, loras"]
    assert origin_notes(refs["sd.safetensors"]) == []  # a core loader naming its file: nothing to say


def test_json_rows_and_the_other_ways_a_model_is_implied():
    row = {"implied": True, "node_type": "PhotoMakerLoader", "note": "loaded by the node itself", "folder": "photomaker"}
    assert implied_words(row) == "implied by PhotoMakerLoader (the node loads it itself)"
    assert implied_words(row, node="Face loader") == "implied by Face loader (the node loads it itself)"
    said = {**row, "implied_by": "implied by PhotoMakerLoader: its pack's code loads it (a.py:4)"}
    assert implied_words(said) == said["implied_by"]
    assert implied_words(said, node="Face loader") == "implied by Face loader: its pack's code loads it (a.py:4)"
    assert implied_words({"note": "preset 'x'"}) is None and pack_words({"pack": None}) is None
    assert preset_of({"note": "preset \"it's\"; more"}) == "it's"
    assert folder_words({"folder": None, "alt_folders": []}) == "folder unknown: no candidate folder"
    assert folder_words(ModelRef(filename="a", folder="vae", node_id="1", node_type="VAELoader", input="v")) is None
