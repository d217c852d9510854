"""Hostile file and folder names — from a request, a workflow, or a server's Content-Disposition —
never make a write outside the model folder (the sandbox is checked after every case).

Names go through the download manager (the one place that turns a request into a path), both HTTP
doors, the `cmr download` command line, and a loopback server that names the file itself.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comfyui_model_resolver.errors import UnsafeFormat, UnsafePath
from comfyui_model_resolver.types import DownloadRequest
from fakes.blobs import make_safetensors

from .conftest import core_settings
from .harness import assert_error_shape
from support.paths import REPO

OUTSIDE = "{outside}"  # replaced by the sandbox's sentinel directory (an absolute path that exists)

#: (id, name): every one must be refused with UnsafePath before anything is fetched.
HOSTILE_NAMES = [
    ("dotdot", "../evil.safetensors"),
    ("dotdot-twice", "../../outside/evil.safetensors"),
    ("dotdot-after-sub", "SD1.5/../../evil.safetensors"),
    ("dotdot-deep", "a/b/c/../../../../../../../../outside/evil.safetensors"),
    ("backslash-dotdot", "..\\evil.safetensors"),
    ("backslash-dotdot-twice", "..\\..\\outside\\evil.safetensors"),
    ("mixed-separators", "ok/..\\..\\..\\evil.safetensors"),
    ("absolute-into-sentinel", OUTSIDE + "/abs.safetensors"),
    ("absolute-etc", "/etc/cmr-adversarial.safetensors"),
    ("absolute-backslash", "\\outside\\x.safetensors"),
    ("drive-absolute", "C:\\Windows\\System32\\x.safetensors"),
    ("drive-relative", "C:x.safetensors"),
    ("drive-forward", "c:/x.safetensors"),
    ("unc", "\\\\server\\share\\x.safetensors"),
    ("unc-forward", "//server/share/x.safetensors"),
    ("unc-device", "\\\\?\\C:\\x.safetensors"),
    ("unc-pipe", "\\\\.\\pipe\\x.safetensors"),
    ("nul-truncation", "x.safetensors\x00.txt"),
    ("nul-only", "\x00"),
    ("newline", "x\n.safetensors"),
    ("crlf", "x\r\n.safetensors"),
    ("ansi-escape", "x\x1b[2J.safetensors"),
    ("del", "x\x7f.safetensors"),
    ("c1-nel", "x\x85.safetensors"),
    ("c1-csi", "x\x9b31m.safetensors"),
    ("fullwidth-solidus", "..\uff0fevil.safetensors"),
    ("fullwidth-reverse-solidus", "..\uff3cevil.safetensors"),
    ("fullwidth-dots", "\uff0e\uff0e/evil.safetensors"),
    ("one-dot-leaders", "\u2024\u2024/evil.safetensors"),
    ("division-slash", "..\u2215evil.safetensors"),
    ("rtl-override", "evil\u202egnp.ckpt"),
    ("rtl-isolate", "model\u2067.safetensors"),
    ("lone-surrogate", "x\ud800.safetensors"),
    ("overlong-component", "a" * 300 + ".safetensors"),
    ("overlong-with-part-suffix", "a" * 240 + ".safetensors"),
    ("overlong-utf8", "\u00e9" * 130 + ".safetensors"),
    ("overlong-depth", "d/" * 3000 + "x.safetensors"),
    ("overlong-total", "/".join(["x" * 200] * 8) + "/x.safetensors"),
    ("windows-con", "CON.safetensors"),
    ("windows-nul", "nul"),
    ("windows-com1", "sub/COM1.safetensors"),
    ("windows-lpt9", "LPT9.ckpt"),
    ("trailing-dot", "x.safetensors."),
    ("trailing-space", "x.safetensors "),
    ("ads-stream", "x.safetensors:Zone.Identifier"),
    ("ads-data", "x.safetensors::$DATA"),
    ("windows-bad-chars", "a<b>|c?.safetensors"),
    ("blank", "   "),
    ("dot", "."),
    ("dotdot-only", ".."),
    ("slash-only", "/"),
    ("backslash-only", "\\"),
    ("empty-component", "a//b.safetensors"),
]

#: Odd but harmless names: accepted, and they land inside the folder (never interpreted).
ODD_BUT_SAFE = ["~/x.safetensors", "$HOME/x.safetensors", "%APPDATA%x.safetensors", "モデル（v2）.safetensors",
                "sub dir/x y.safetensors", ".hidden.safetensors", "a..b.safetensors", "...safetensors"]


def _name(raw: str, sandbox) -> str:
    return raw.replace(OUTSIDE, str(sandbox.outside))


def _url(hub) -> str:
    from fakes.blobs import FakeFile

    hub.add_repo("org/m", [FakeFile.safetensors("model.safetensors", 4096, seed=31)])
    return f"{hub.url}/org/m/resolve/main/model.safetensors"


@pytest.mark.parametrize("raw", [n for _, n in HOSTILE_NAMES], ids=[i for i, _ in HOSTILE_NAMES])
async def test_hostile_file_names_are_refused(sandbox, fake_hub, managers, raw):
    m = managers(core_settings(sandbox, fake_hub))
    with pytest.raises(UnsafePath) as exc:
        await m.submit(DownloadRequest(url=_url(fake_hub), folder="checkpoints", filename=_name(raw, sandbox)))
    assert len(exc.value.message) > 15
    assert "\x00" not in exc.value.message and "\x1b" not in exc.value.message  # safe to print
    assert m.jobs() == [] and fake_hub.requests(server="cdn") == []


@pytest.mark.parametrize("folder", ["../../outside", "..", "/abs", OUTSIDE, "checkpoints/../..", "C:",
                                    "C:\\x", "\\\\srv\\share", "", "loras\x00", "../custom_nodes", "loras\\..\\..",
                                    "lo\u202eras", "\uff0e\uff0e", "custom_nodes/innocent/../../..", "x" * 300])
async def test_hostile_folder_names_are_refused(sandbox, fake_hub, managers, folder):
    m = managers(core_settings(sandbox, fake_hub))
    with pytest.raises(UnsafePath):
        await m.submit(DownloadRequest(url=_url(fake_hub), folder=_name(folder, sandbox), filename="x.safetensors"))


@pytest.mark.parametrize("raw", ODD_BUT_SAFE)
async def test_odd_names_land_inside_the_folder(sandbox, fake_hub, managers, raw):
    m = managers(core_settings(sandbox, fake_hub))
    job = await m.wait((await m.submit(DownloadRequest(url=_url(fake_hub), folder="loras", filename=raw))).id,
                       timeout=30)
    assert job.state == "completed", job.error
    assert job.path.startswith(str(sandbox.models / "loras") + "/")
    new_models = [f for f in sandbox.new_files() if not f.startswith("data/")]
    assert len(new_models) == 1 and new_models[0].startswith("ComfyUI/models/loras/"), new_models


# ---- through both HTTP doors ------------------------------------------------------------------
DOOR_NAMES = ["../../outside/evil.safetensors", "..\\..\\evil.safetensors", OUTSIDE + "/abs.safetensors",
              "C:\\x.safetensors", "\\\\server\\share\\x.safetensors", "x\x00.safetensors", "..\uff0fx.safetensors",
              "evil\u202egnp.ckpt", "a" * 300 + ".safetensors", "d/" * 100 + "x.safetensors"]


@pytest.mark.parametrize("raw", DOOR_NAMES, ids=range(len(DOOR_NAMES)))
async def test_hostile_names_through_the_routes(door, sandbox, raw):
    body = {"url": _url(door.hub), "folder": "checkpoints", "filename": _name(raw, sandbox)}
    status, resp, _ = await door.request("POST", "/downloads", json_body=body)
    err = assert_error_shape(status, resp, statuses=(400,))
    assert err["type"] == "UnsafePath" and err["code"] == "unsafe_path"
    status, jobs, _ = await door.request("GET", "/downloads")
    assert status == 200 and jobs["jobs"] == []


@pytest.mark.parametrize("folder", ["../../outside", "/abs", "checkpoints/../..", "C:\\x"])
async def test_hostile_folders_through_the_routes(door, folder):
    body = {"url": _url(door.hub), "folder": folder, "filename": "x.safetensors"}
    status, resp, _ = await door.request("POST", "/downloads", json_body=body)
    assert assert_error_shape(status, resp, statuses=(400,))["type"] == "UnsafePath"


# ---- Content-Disposition: the server names the file ---------------------------------------------
CD_HEADERS = [
    ('attachment; filename="../evil.safetensors"', UnsafePath),
    ("attachment; filename*=UTF-8''..%2F..%2Fevil.safetensors", UnsafePath),
    ('attachment; filename="/etc/passwd"', UnsafePath),
    ("attachment; filename*=UTF-8''%2Fabs.safetensors", UnsafePath),
    ('attachment; filename="C:\\\\x.safetensors"', UnsafePath),
    ('attachment; filename="\\\\\\\\server\\\\share\\\\x.safetensors"', UnsafePath),
    ("attachment; filename*=UTF-8''x%00.safetensors", UnsafePath),
    ("attachment; filename*=UTF-8''x%0A.safetensors", UnsafePath),
    ("attachment; filename*=UTF-8''..%EF%BC%8Fevil.safetensors", UnsafePath),
    ("attachment; filename*=UTF-8''evil%E2%80%AEsrotnesefas.ckpt", UnsafePath),
    ("attachment; filename*=UTF-8''" + "a" * 300 + ".safetensors", UnsafePath),
    ('attachment; filename="sub/model.safetensors"', UnsafePath),
    ('attachment; filename=".."', UnsafePath),
    ('attachment; filename="CON"', UnsafePath),
    ('attachment; filename="safe.safetensors"; filename*=UTF-8\'\'..%2Fevil.safetensors', UnsafePath),
    ('attachment; filename="__init__.py"', UnsafeFormat),
    ('attachment; filename="evil.js"', UnsafeFormat),
    ('attachment; filename="x.safetensors::$DATA"', UnsafePath),
]


@pytest.mark.parametrize("header,error", CD_HEADERS, ids=range(len(CD_HEADERS)))
async def test_hostile_content_disposition_names(sandbox, scripted, managers, header, error):
    url = scripted.set("download", headers={"Content-Disposition": header}, body=make_safetensors(2048, seed=3))
    m = managers(core_settings(sandbox, allowed_hosts=(scripted.hostport(),)))
    job = await m.submit(DownloadRequest(url=url, folder="loras"))  # no name given: the server names it
    job = await m.wait(job.id, timeout=30)
    assert job.state == "failed" and job.error["type"] == error.__name__, job
    assert "Content-Disposition" in job.error["message"] or error is UnsafeFormat
    assert sandbox.new_files() == [] or all(f.startswith("data/") for f in sandbox.new_files())


async def test_content_disposition_pickle_name_under_safetensors_only(sandbox, scripted, managers):
    url = scripted.set("download", headers={"Content-Disposition": 'attachment; filename="model.ckpt"'},
                       body=b"\x80\x02cos\nsystem\n")
    m = managers(core_settings(sandbox, allowed_hosts=(scripted.hostport(),), safetensors_only=True))
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder="checkpoints"))).id, timeout=30)
    assert job.state == "failed" and job.error["type"] == "UnsafeFormat"
    assert "CMR_SAFETENSORS_ONLY" in job.error["message"]


# ---- the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["../../outside/evil.safetensors", OUTSIDE + "/abs.safetensors",
                                 "C:\\x.safetensors", "..\uff0fx.safetensors", "evil.py"])
def test_hostile_names_through_the_command_line(sandbox, fake_hub_thread, raw):
    url = _url(fake_hub_thread)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(sandbox.parent / "home"), "PYTHONPATH": str(REPO),
           "CMR_MODELS_ROOT": str(sandbox.models), "CMR_DATA_DIR": str(sandbox.data),
           "CMR_HF_ENDPOINT": fake_hub_thread.url, "CMR_ENV_FILE": "/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "comfyui_model_resolver", "download", url, "--folder", "checkpoints",
                           "--filename", _name(raw, sandbox), "--json", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    err = out.get("error") or {}
    assert err.get("type") in ("UnsafePath", "UnsafeFormat"), (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr


# ---- any name at all ----------------------------------------------------------------------------
_PIECES = st.sampled_from(["..", ".", "/", "\\", "C:", "\x00", "\uff0f", "\uff0e", "\u202e", "~", "a", "model",
                           ".safetensors", ".ckpt", ".py", " ", "CON", ":", "\ud800", "é", "//", "\\\\?\\"])
_NAMES = st.one_of(st.text(max_size=80), st.lists(_PIECES, max_size=12).map("".join))


@settings(max_examples=600, deadline=None)
@given(name=_NAMES, folder=st.sampled_from(["loras", "checkpoints", "clip", "upscale_models"]))
def test_any_name_is_refused_or_lands_inside_its_folder(tmp_path_factory, name, folder):
    import os

    from comfyui_model_resolver.downloads.paths import target_path
    from comfyui_model_resolver.index.layout import build_layout

    root = _property_root(tmp_path_factory)
    layout = build_layout(root / "models")
    try:
        path = target_path(layout, folder, name)
    except UnsafePath as exc:
        assert exc.message
        return
    base = os.path.realpath(layout.download_dir(folder))
    assert os.path.commonpath([os.path.realpath(path), base]) == base and os.path.realpath(path) != base
    rel = os.path.relpath(path, base)
    assert ".." not in rel.split(os.sep) and not os.path.isabs(rel)


_ROOT: list = []


def _property_root(factory):
    if not _ROOT:
        root = factory.mktemp("names")
        for d in ("loras", "checkpoints", "text_encoders", "upscale_models"):
            (root / "models" / d).mkdir(parents=True)
        _ROOT.append(root)
    return _ROOT[0]
