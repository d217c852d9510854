"""The bundled loader table: every entry parses, and a Knowledge parses only the node types it is
asked about (the table holds thousands; a workflow uses a few dozen)."""
from __future__ import annotations

import pytest

from comfyui_model_resolver.errors import ConfigError
from comfyui_model_resolver.workflow.knowledge import Knowledge, LoaderTable, NodeInfo


def test_every_bundled_entry_parses():
    table = LoaderTable.load_default()
    assert len(table.nodes) > 100
    for ntype in table.nodes:
        assert isinstance(table.nodes[ntype], NodeInfo), ntype


def test_entries_are_parsed_on_first_lookup_only():
    table = LoaderTable.from_json({
        "nodes": {"CheckpointLoaderSimple": {"models": {"ckpt_name": "checkpoints"}},
                  "LoraLoader": {"models": {"lora_name": "loras"}}},
        "non_model": {"KSampler": "samples"}})
    k = Knowledge(table=table)
    assert table.nodes._parsed == {}
    assert k.info("CheckpointLoaderSimple").models["ckpt_name"].folders == ("checkpoints",)
    assert set(table.nodes._parsed) == {"CheckpointLoaderSimple"}
    assert k.info("KSampler").non_model_node == "samples"
    assert set(table.nodes._parsed) == {"CheckpointLoaderSimple"}


def test_a_broken_entry_is_a_config_error_when_used():
    table = LoaderTable.from_json({"nodes": {"Good": {"models": {"a": "loras"}}, "Bad": {"models": {"x": 5}}}})
    assert Knowledge(table=table).info("Good").models["a"].folders == ("loras",)
    with pytest.raises(ConfigError, match="Bad.x"):
        Knowledge(table=table).info("Bad")
