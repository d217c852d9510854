"""A shared workflow decides what gets downloaded, and where: it must never reach outside the model
folders, nor place code where ComfyUI or the browser runs it.

The attack these cases replay (found by this suite, fixed in workflow/folders.py `embedded_folder`,
downloads/paths.py and the manager's format check): a workflow whose root `models` list says
`{"name": "__init__.py", "url": <any file on huggingface.co>, "directory": "custom_nodes/evilpack"}`
resolved "certain" and its Download wrote `ComfyUI/custom_nodes/evilpack/__init__.py`, which ComfyUI
imports (runs) at its next start.
"""
from __future__ import annotations

import pytest

from comfyui_model_resolver.errors import UnsafeFormat, UnsafePath
from comfyui_model_resolver.service import build_resolver
from comfyui_model_resolver.types import DownloadRequest
from comfyui_model_resolver.workflow.folders import embedded_folder, is_code_file
from fakes.blobs import FakeFile

from .conftest import core_settings
from .harness import assert_error_shape

PAYLOAD = b"import os\nos.system('echo pwned > /tmp/cmr-adversarial-pwned')\n"

#: (name in the workflow, directory in the workflow): each asks for a write outside the model folders
#: or for code.
HOSTILE_ENTRIES = [
    ("__init__.py", "custom_nodes/evilpack"),
    ("__init__.py", "custom_nodes"),
    ("evil.py", "../custom_nodes"),
    ("x.safetensors", "models/../../outside"),
    ("x.safetensors", "../../outside"),
    ("x.safetensors", "C:\\Users\\Public"),
    ("x.safetensors", "\\\\server\\share"),
    ("x.safetensors", "/abs/path"),
    ("evil.js", "loras"),
    ("evil.py", "checkpoints"),
    ("sub/__init__.py", "loras"),
    ("x.safetensors", "configs"),
]


def _served(hub, name: str) -> str:
    data = PAYLOAD if is_code_file(name) else None
    f = FakeFile(name.rsplit("/", 1)[-1], data=data, lfs=False) if data else \
        FakeFile.safetensors(name.rsplit("/", 1)[-1], 2048, seed=5)
    hub.add_repo("attacker/payload", [f])
    return f"{hub.url}/attacker/payload/resolve/main/{f.name}"


def _workflow(name: str, directory: str, url: str, *, on_node: bool) -> dict:
    entry = {"name": name, "url": url, "directory": directory}
    if on_node:  # a node whose widget names the file, with the entry in its properties
        return {"nodes": [{"id": 1, "type": "SomePackLoader", "mode": 0, "widgets_values": [name],
                           "properties": {"models": [entry]}}], "links": [], "version": 0.4}
    return {"nodes": [], "links": [], "models": [entry], "version": 0.4}  # the workflow-level list


@pytest.mark.parametrize("name,directory", HOSTILE_ENTRIES)
@pytest.mark.parametrize("on_node", [False, True], ids=["workflow-models", "node-models"])
async def test_hostile_workflow_resolve_and_download_stay_in_the_models_folders(sandbox, fake_hub, name, directory,
                                                                                on_node):
    url = _served(fake_hub, name)
    resolver = await build_resolver(core_settings(sandbox, fake_hub))
    try:
        resolution = await resolver.resolve(_workflow(name, directory, url, on_node=on_node), "shared.json")
        models = resolution.model_dump(mode="json")["models"]
        for m in models:  # the untrusted directory never becomes a path-like folder
            assert m["folder"] is None or ("/" not in m["folder"] and m["folder"] not in ("custom_nodes", "configs"))
        jobs, skipped, errors = await resolver.download_resolution(models)
        for job in jobs:
            await resolver.downloads.wait(job.id, timeout=20)
        done = [resolver.downloads.job(j.id) for j in jobs]
        # Whatever was planned: refused with a typed reason, skipped with one, or a model file inside models/
        for e in errors:
            assert e["error"]["type"] in ("UnsafeFormat", "UnsafePath") and len(e["error"]["message"]) > 20
        for s in skipped:
            assert s["reason"]
        for j in done:
            assert j.state == "completed" and j.path.startswith(str(sandbox.models)), j
            assert not is_code_file(j.path)
        assert not any(is_code_file(p) for p in sandbox.new_files())
    finally:
        await resolver.close()


@pytest.mark.parametrize("folder,filename,error", [
    ("custom_nodes/evilpack", "__init__.py", UnsafePath),  # a pack is not a model folder
    ("custom_nodes/evilpack", "weights.safetensors", UnsafePath),  # never creates a node pack
    ("custom_nodes/innocent", "__init__.py", UnsafePath),  # nor puts code into an installed one
    ("custom_nodes/innocent/web/js", "evil.js", UnsafePath),
    ("loras", "evil.PY", UnsafeFormat),
    ("loras", "lib/evil.so", UnsafeFormat),
    ("checkpoints", "run.sh", UnsafeFormat),
    ("models/a\\..\\..\\..", "x.safetensors", UnsafePath),  # a Windows traversal in the folder
    ("custom_nodes/../..", "x.safetensors", UnsafePath),
    ("loras/./..", "x.safetensors", UnsafePath),
])
async def test_download_requests_for_code_or_new_packs_are_refused(sandbox, fake_hub, managers, folder, filename,
                                                                  error):
    url = _served(fake_hub, filename)
    m = managers(core_settings(sandbox, fake_hub))
    with pytest.raises(error) as exc:
        await m.submit(DownloadRequest(url=url, folder=folder, filename=filename))
    assert len(exc.value.message) > 20
    assert m.jobs() == []


@pytest.mark.parametrize("body", [
    {"folder": "custom_nodes/evilpack", "filename": "__init__.py"},
    {"folder": "loras", "filename": "evil.js"},
    {"folder": "custom_nodes/evilpack", "filename": "x.safetensors"},
])
async def test_the_routes_refuse_code_and_new_packs(door, body):
    url = _served(door.hub, body["filename"])
    status, resp, _ = await door.request("POST", "/downloads", json_body={"url": url, **body})
    err = assert_error_shape(status, resp, statuses=(400,))
    assert err["type"] in ("UnsafeFormat", "UnsafePath")


async def test_a_hostile_resolve_result_posted_to_downloads_writes_nothing_outside(door):
    """The sidebar posts the resolve rows back; a page (or a doctored result) may change them."""
    url = _served(door.hub, "__init__.py")
    rows = [{"filename": "__init__.py", "folder": "custom_nodes/evilpack", "status": "resolved",
             "chosen": {"url": url, "source": "embedded"}},
            {"filename": "../../../outside/x.safetensors", "folder": "loras", "status": "resolved",
             "chosen": {"url": url, "source": "embedded"}},
            {"filename": "C:\\x.safetensors", "folder": "loras", "status": "resolved",
             "chosen": {"url": url, "source": "embedded"}},
            {"filename": "__init__.py", "folder": "loras", "status": "resolved",
             "chosen": {"url": url, "source": "embedded"}}]
    status, body, _ = await door.request("POST", "/downloads", json_body={"models": rows})
    assert status == 202, body
    assert body["jobs"] == []
    assert sorted(e["error"]["type"] for e in body["errors"]) == ["UnsafeFormat", "UnsafePath", "UnsafePath",
                                                                  "UnsafePath"]


@pytest.mark.parametrize("raw,expected", [
    ("checkpoints", "checkpoints"), ("clip", "text_encoders"), (" loras/ ", "loras"), ("ipadapter", "ipadapter"),
    ("custom_nodes", None), ("configs", None), ("custom_nodes/x", None), ("models/checkpoints", None),
    ("..", None), ("../loras", None), ("C:", None), ("a\\b", None), ("", None), (None, None), (3, None),
    ("x" * 200, None), ("loras\x00", None),
])
def test_embedded_folder_accepts_only_plain_model_folders(raw, expected):
    assert embedded_folder(raw) == expected
