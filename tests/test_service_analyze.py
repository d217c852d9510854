"""Resolver.analyze end to end: parsing + index + matching, with optional SHA-256 matching."""
from __future__ import annotations

import hashlib

import pytest

from comfyui_model_resolver.errors import WorkflowError
from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.settings import Settings


@pytest.fixture
async def resolver(tmp_path):
    models = tmp_path / "ComfyUI" / "models"
    (models / "loras").mkdir(parents=True)
    (models / "loras" / "renamed_by_user.safetensors").write_bytes(b"the lora bytes")
    (models / "loras" / "other.safetensors").write_bytes(b"something else")
    (models / "checkpoints").mkdir()
    (models / "checkpoints" / "base.safetensors").write_bytes(b"checkpoint v2")
    s = Settings.load({}, env_file="/nonexistent", comfyui_root=tmp_path / "ComfyUI", data_dir=tmp_path / "data")
    r = await build_resolver(s)
    yield r
    await r.close()


def wf(*nodes):
    return {"nodes": list(nodes), "links": []}


def loader(nid, ntype, value, sha):
    return {"id": nid, "type": ntype, "widgets_values": [value, 1.0],
            "properties": {"models": [{"name": value, "directory": "x", "hash": sha, "hash_type": "sha256"}]}}


async def test_hash_matching_finds_renamed_files_and_verifies_present_ones(resolver):
    lora_sha = hashlib.sha256(b"the lora bytes").hexdigest()
    wrong_sha = hashlib.sha256(b"checkpoint v1").hexdigest()
    workflow = wf(loader(1, "LoraLoaderModelOnly", "style.safetensors", lora_sha),
                  loader(2, "CheckpointLoaderSimple", "base.safetensors", wrong_sha))
    plain = await resolver.analyze(workflow)
    assert [m.status for m in plain.models] == ["missing", "present"]
    assert all(m.hash_verified is None for m in plain.models)
    hashed = await resolver.analyze(workflow, match_hashes=True)
    lora, ckpt = hashed.models
    assert (lora.status, lora.relink_value, lora.hash_verified) == ("relocated", "renamed_by_user.safetensors", True)
    assert (ckpt.status, ckpt.hash_verified) == ("present", False)
    assert ckpt.local_sha256 == hashlib.sha256(b"checkpoint v2").hexdigest()


async def test_analyze_path_errors(resolver, tmp_path):
    with pytest.raises(WorkflowError, match="Cannot read"):
        await resolver.analyze_path(tmp_path / "nope.json")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (resolver.settings.max_workflow_bytes + 1))
    with pytest.raises(WorkflowError, match="limit"):
        await resolver.analyze_path(big)
