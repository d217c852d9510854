"""The Gradio UI's pure tables (sidecar/ui_tables.py) for issue 11's rows: implied models, node packs,
folder unknown, ambiguous answers, and the ticks that turn a user's choice into a download."""
from __future__ import annotations

import json

from sidecar import ui_tables as t

SHA = "ab" * 32


def _cand(repo: str, confidence: float, **kw) -> dict:
    return {"url": f"https://huggingface.co/{repo}/resolve/main/m.safetensors", "source": "huggingface",
            "confidence": confidence, "repo": repo, "path": "m.safetensors", "reasons": ["exact file name"], **kw}


def _row(**kw) -> dict:
    base = {"filename": "m.safetensors", "folder": "loras", "node_id": "3", "node_type": "LoraLoader", "input": "lora_name",
            "active": True, "status": "resolved", "local_status": "missing", "subgraph_path": [], "candidates": [],
            "alt_folders": [], "implied": False, "pack": None, "note": None}
    return {**base, **kw}


def test_certain_models_are_ticked_the_rest_are_offered_as_choices():
    certain = _row(filename="ok.safetensors", candidates=[_cand("acme/ok", 0.95)], chosen=_cand("acme/ok", 0.95))
    amb = _row(filename="style.safetensors", status="ambiguous", candidates=[_cand("alice/s", 0.6), _cand("bob/s", 0.55)],
               message="bob/s is almost as likely")
    unknown = _row(filename="sub\\adapter.safetensors", folder=None, node_type="MysteryLoader", input="widget_0",
                   alt_folders=["checkpoints", "loras"], candidates=[_cand("labs/a", 0.95, sha256=SHA, size=7)],
                   chosen=_cand("labs/a", 0.95, sha256=SHA, size=7))
    models = [certain, amb, unknown]
    assert t.downloadable(models) == ["loras/ok.safetensors"]
    choices = t.download_choices(models)
    labels = [label for label, _ in choices]
    assert labels[0] == "loras/ok.safetensors"
    assert labels[1:3] == ["loras/style.safetensors from alice/s/m.safetensors (60%) — candidate 1 of 2",
                           "loras/style.safetensors from bob/s/m.safetensors (55%) — candidate 2 of 2"]
    assert labels[3:] == ["checkpoints/sub/adapter.safetensors from labs/a/m.safetensors (95%) — folder unknown, your pick",
                          "loras/sub/adapter.safetensors from labs/a/m.safetensors (95%) — folder unknown, your pick"]
    values = dict(choices)
    assert t.pick_body(models, values[labels[2]])["url"] == amb["candidates"][1]["url"]
    assert t.pick_body(models, values[labels[4]]) == {"url": unknown["chosen"]["url"], "folder": "loras",
                                                      "filename": "sub/adapter.safetensors", "source": "huggingface",
                                                      "sha256": SHA, "size": 7}
    # only what was offered: a folder nobody listed, a model not in the list, a candidate that does not exist
    for forged in ({"model": "?/sub\\adapter.safetensors", "candidate": 0, "folder": "vae"},
                   {"model": "?/sub\\adapter.safetensors", "candidate": 0, "folder": "../../etc"},
                   {"model": "loras/style.safetensors", "candidate": 0, "folder": "checkpoints"},
                   {"model": "loras/style.safetensors", "candidate": 9, "folder": "loras"},
                   {"model": "loras/nothing.safetensors", "candidate": 0, "folder": "loras"}):
        assert t.pick_body(models, json.dumps(forged)) is None, forged
    assert t.pick_body(models, "not json") is None


def test_rows_say_implied_pack_folder_unknown_and_ambiguous_in_words():
    implied = _row(filename="CLIP-ViT-H.safetensors", folder="clip_vision", node_type="IPAdapterUnifiedLoader", node_id="2",
                   input="preset", implied=True, pack="ComfyUI_IPAdapter_plus", note="preset 'PLUS (high strength)'",
                   status="missing", candidates=[])
    amb = _row(filename="style.safetensors", status="ambiguous", candidates=[_cand("alice/s", 0.6), _cand("bob/s", 0.55)],
               message="bob/s is almost as likely")
    lonely = _row(filename="x.bin", folder=None, status="ambiguous", candidates=[_cand("labs/x", 0.5)], alt_folders=[],
                  message="only an upload by labs has this name")
    rows = {r[1]: r for r in t.model_rows([implied, amb, lonely])}
    assert rows["clip_vision/CLIP-ViT-H.safetensors"][2] == (
        "IPAdapterUnifiedLoader #2; implied by IPAdapterUnifiedLoader (preset 'PLUS (high strength)'); "
        "node pack ComfyUI_IPAdapter_plus")
    style = rows["loras/style.safetensors"]
    assert style[0] == "not certain: pick a source"
    assert style[3] == ("2 candidates, none certain: (1) huggingface: alice/s/m.safetensors, 60% — exact file name "
                        "(2) huggingface: bob/s/m.safetensors, 55% — exact file name")
    assert style[4] == "bob/s is almost as likely"  # why, not one candidate's URL
    x = rows["?/x.bin"]
    assert x[0] == "not certain: pick a source, folder unknown"
    assert x[4] == "folder unknown: no candidate folder — use Download from a URL with the folder you choose"
    assert t.download_choices([lonely]) == []  # no folder to offer: nothing is guessed
