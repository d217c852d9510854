"""Note links and write-back of properties.models (pure)."""
from __future__ import annotations

import json

import pytest

from comfyui_model_resolver.errors import WorkflowError
from comfyui_model_resolver.workflow.decode import decode_object
from comfyui_model_resolver.workflow.knowledge import Knowledge
from comfyui_model_resolver.workflow.notes import note_urls
from comfyui_model_resolver.workflow.parse import refs_from_decoded
from comfyui_model_resolver.workflow.writeback import ModelEntry, write_back
from support.paths import FRONTEND_FIXTURES


def test_note_urls_in_root_and_subgraphs():
    wf = {"nodes": [{"id": 1, "type": "MarkdownNote", "widgets_values": [
        "Get [vae](https://huggingface.co/a/b/resolve/main/vae/x.safetensors?download=true) "
        "and see https://github.com/comfyanonymous/ComfyUI for docs"]}],
          "definitions": {"subgraphs": [{"id": "sg", "nodes": [
              {"id": 5, "type": "Note", "widgets_values": ["https://civitai.com/api/download/models/1 no; "
                                                           "https://hf.co/c/d/resolve/main/y.gguf."]}]}]}}
    assert note_urls(wf) == ("https://huggingface.co/a/b/resolve/main/vae/x.safetensors?download=true",
                             "https://hf.co/c/d/resolve/main/y.gguf")
    assert note_urls([]) == () and note_urls({"nodes": "x"}) == ()


def _subgraph_wf():
    return json.loads((FRONTEND_FIXTURES / "missing" / "missing_models_in_subgraph.json").read_text())


def test_write_back_on_root_and_subgraph_nodes_and_reparse():
    wf = _subgraph_wf()
    refs = refs_from_decoded(decode_object(wf), Knowledge()).refs
    entries = [ModelEntry(node_id=r.node_id, subgraph_id=r.subgraph_id, name=r.filename,
                          url=f"https://huggingface.co/org/repo/resolve/main/{r.folder}/{r.filename}",
                          directory=r.folder, hash="AB" * 32, hash_type="sha256")
               for r in refs if r.folder]
    out, n = write_back(wf, entries)
    assert n == len(entries) > 0
    assert wf == _subgraph_wf()  # the input is not modified
    again = refs_from_decoded(decode_object(out), Knowledge()).refs
    by = {(r.subgraph_id, r.node_id, r.filename): r for r in again}
    for e in entries:
        r = by[(e.subgraph_id, e.node_id, e.name)]
        assert r.url == e.url and r.hash == "ab" * 32 and r.folder == e.directory
    if any(e.subgraph_id for e in entries):
        sg = out["definitions"]["subgraphs"][0]
        assert any(n.get("properties", {}).get("models") for n in sg["nodes"])


def test_write_back_merges_with_existing_entries_and_refuses_api_prompts():
    wf = {"nodes": [{"id": 3, "type": "VAELoader", "widgets_values": ["a.safetensors"],
                     "properties": {"models": [{"name": "a.safetensors", "url": "old", "directory": "vae"},
                                               {"name": "keep.safetensors", "url": "k", "directory": "vae"}]}}]}
    out, n = write_back(wf, [ModelEntry("3", None, "a.safetensors", "https://new", "vae")])
    models = out["nodes"][0]["properties"]["models"]
    assert n == 1 and models[0] == {"name": "a.safetensors", "url": "https://new", "directory": "vae"}
    assert models[1]["name"] == "keep.safetensors"
    out, _ = write_back(wf, [ModelEntry("", None, "extra.safetensors", "https://x", "loras")])
    assert out["models"] == [{"name": "extra.safetensors", "url": "https://x", "directory": "loras"}]
    with pytest.raises(WorkflowError):
        write_back({"1": {"class_type": "VAELoader", "inputs": {}}}, [])
