"""Record: frozen keyword-only value types; equality, hashing and repr as a dataclass's (records.py
defines them once in the base instead of generating them for every class at start-up)."""
from __future__ import annotations

import dataclasses

import pytest

from comfyui_model_resolver.downloads.job import Job
from comfyui_model_resolver.types import Analysis, DownloadRequest, FolderConflict, ModelRef, ModelReport


def test_equal_fields_are_equal_and_hash_alike():
    a = DownloadRequest(url="http://x/a", folder="loras", sha256="ab" * 32)
    b = DownloadRequest(url="http://x/a", folder="loras", sha256="ab" * 32)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != dataclasses.replace(a, folder="vae") and a != a.model_copy(update={"priority": 3})


def test_another_class_with_the_same_fields_is_not_equal():
    node = dict(filename="m.safetensors", folder="checkpoints", node_id="4", node_type="CheckpointLoaderSimple",
                input="ckpt_name")
    ref, report = ModelRef(**node), ModelReport(**node)
    assert ref != report and report != ref
    assert ref.__eq__(report) is NotImplemented
    assert (ref == "m.safetensors") is False


def test_nested_records_and_tuples_compare_by_value():
    node = dict(filename="a.pt", folder="vae", node_id="1", node_type="VAELoader", input="vae_name")
    a = Analysis(workflow="w", format="ui", models=[ModelReport(**node)], errors=())
    b = Analysis(workflow="w", format="ui", models=(ModelReport(**node),), errors=())
    assert a == b and hash(a) == hash(b) and isinstance(a.models, tuple)


def test_repr_names_the_class_and_every_field_in_order():
    c = FolderConflict(folder="loras", source="table")
    assert repr(c) == "FolderConflict(folder='loras', source='table')"
    assert repr(DownloadRequest(url="u", folder="f")).startswith("DownloadRequest(url='u', folder='f', filename=None")


def test_frozen_keyword_only_and_still_a_dataclass():
    c = FolderConflict(folder="loras", source="table")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.folder = "vae"  # type: ignore[misc]
    with pytest.raises(TypeError):
        FolderConflict("loras", "table")  # type: ignore[misc]
    assert dataclasses.is_dataclass(c) and [f.name for f in dataclasses.fields(c)] == ["folder", "source"]
    assert set(Job.model_fields) >= {"id", "url", "state"}


def test_a_record_holding_a_dict_is_unhashable_as_a_dataclass_would_be():
    from comfyui_model_resolver.types import ResolvedModel

    node = dict(filename="a.pt", folder="vae", node_id="1", node_type="VAELoader", input="vae_name")
    r = ResolvedModel(**node, queries={"hf": ("a.pt",)})
    assert r == ResolvedModel(**node, queries={"hf": ("a.pt",)})
    with pytest.raises(TypeError):
        hash(r)
