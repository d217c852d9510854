"""`cmr analyze`: the JSON-lines contract, the table, and exit codes (0 ran, 2 unusable input)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support.images import make_png
from support.paths import FRONTEND_FIXTURES, OBJECT_INFO, REPO

CONTRACT = ["filename", "folder", "node_id", "node_type", "input", "active", "status", "local_path", "url",
            "hash", "hash_type", "confidence"]


def cmr(*args, env_extra=None, tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update({"CMR_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(REPO)}, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "comfyui_model_resolver.adapters.cli", *args],
                          capture_output=True, text=True, env=env, cwd=tmp, timeout=120)


@pytest.fixture
def install(tmp_path):
    root = tmp_path / "ComfyUI"
    for rel in ("models/checkpoints/sd_xl_base_1.0.safetensors", "models/checkpoints/SD1.5/fake_model.safetensors"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    return root


def test_json_lines_contract(tmp_path, install):
    png = tmp_path / "wf.png"
    wf = json.loads((FRONTEND_FIXTURES / "missing/missing_models_real_urls.json").read_text())
    png.write_bytes(make_png({"workflow": json.dumps(wf)}))
    r = cmr("analyze", "--json", "--comfyui-root", str(install),
            str(FRONTEND_FIXTURES / "missing/missing_models.json"), str(png), tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [line["format"] for line in lines] == ["ui", "png"]
    first, second = lines
    assert first["workflow"].endswith("missing_models.json") and first["errors"] == []
    for m in first["models"] + second["models"]:
        assert list(m)[: len(CONTRACT)] == CONTRACT
    assert {(m["status"], m.get("relink_value")) for m in first["models"]} == {("relocated", "SD1.5/fake_model.safetensors")}
    by_name = {m["filename"]: m for m in second["models"]}
    assert by_name["sd_xl_base_1.0.safetensors"]["status"] == "present"
    assert by_name["sd_xl_base_1.0.safetensors"]["local_path"] == str(install / "models/checkpoints/sd_xl_base_1.0.safetensors")
    assert by_name["flux1-dev.safetensors"]["status"] == "missing"
    assert by_name["flux1-dev.safetensors"]["folder"] == "diffusion_models"
    assert by_name["flux1-dev.safetensors"]["url"].startswith("https://huggingface.co/black-forest-labs/")


def test_unusable_input_exits_2_with_a_json_error_line(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"nodes": [')
    r = cmr("analyze", "--json", str(bad), str(FRONTEND_FIXTURES / "inputs/checkpoint_loader.json"),
            str(tmp_path / "does-not-exist.json"), tmp=tmp_path)
    assert r.returncode == 2
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == 3
    assert lines[0]["format"] is None and "not valid JSON" in lines[0]["errors"][0]["message"]
    assert lines[1]["models"][0]["filename"] == "sd_xl_base_1.0.safetensors"
    assert "Cannot read" in lines[2]["errors"][0]["message"]
    assert "Traceback" not in r.stderr


def test_table_output(tmp_path, install):
    r = cmr("analyze", "--comfyui-root", str(install), str(FRONTEND_FIXTURES / "missing/missing_models_bypassed.json"),
            tmp=tmp_path)
    assert r.returncode == 0
    row = next(line for line in r.stdout.splitlines() if "fake_model.safetensors" in line)
    assert row.split()[:3] == ["relocated", "checkpoints", "fake_model.safetensors"]
    assert "inactive" in row and "relink -> SD1.5/fake_model.safetensors" in row
    assert "1 models: 0 present, 1 relocated, 0 missing" in r.stdout


def test_object_info_file_option(tmp_path):
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"nodes": [{"id": 1, "type": "CLIPLoader", "mode": 0,
                                         "widgets_values": ["t5.safetensors", "flux", "default"]}], "links": []}))
    r = cmr("analyze", "--json", "--object-info", str(OBJECT_INFO / "comfyui-0.3.64-sentinel-models.json"), str(wf),
            tmp=tmp_path)
    (m,) = json.loads(r.stdout)["models"]
    assert (m["folder"], m["folder_source"]) == ("text_encoders", "schema")


def test_bad_config_exits_2(tmp_path):
    r = cmr("analyze", str(FRONTEND_FIXTURES / "inputs/checkpoint_loader.json"),
            env_extra={"CMR_MAX_CONCURRENT_DOWNLOADS": "zero"}, tmp=tmp_path)
    assert r.returncode == 2 and "CMR_MAX_CONCURRENT_DOWNLOADS" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("fmt", [["--json"], []], ids=["json", "table"])
def test_output_cut_short_by_head_ends_quietly(tmp_path, install, fmt):
    """`cmr analyze --json … | head`: no BrokenPipeError traceback; the exit code says SIGPIPE (141)."""
    wf = tmp_path / "wf.json"
    wf.write_text((FRONTEND_FIXTURES / "default.json").read_text())
    args = " ".join(["analyze", *fmt, "--comfyui-root", str(install)] + [str(wf)] * 400)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update({"CMR_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)})
    script = f"{sys.executable} -m comfyui_model_resolver {args} 2>err.txt | head -n 1; echo \"rc=${{PIPESTATUS[0]}}\""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
    first, rc = out.stdout.splitlines()[0], out.stdout.splitlines()[-1]
    assert rc == "rc=141", out.stdout[-500:]
    if fmt:
        assert json.loads(first)["workflow"] == str(wf)
    else:
        assert first.startswith(str(wf))


def test_table_says_implied_pack_and_folder_unknown(tmp_path, install):
    """Issue 11: a row says when a preset implies its model and which node pack the loader is from; a loader
    nobody describes gets "folder unknown" with the candidate folders, never a guessed folder."""
    wf = {"last_node_id": 3, "last_link_id": 0, "version": 0.4, "links": [], "nodes": [
        {"id": 1, "type": "IPAdapterUnifiedLoader", "mode": 0, "widgets_values": ["PLUS (high strength)"], "properties": {}},
        {"id": 2, "type": "InstantIDFaceAnalysis", "mode": 0, "widgets_values": ["CPU"], "properties": {}},
        {"id": 3, "type": "MysteryAdapterLoader", "mode": 0, "widgets_values": ["mystery_adapter.safetensors"], "properties": {}}]}
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    r = cmr("analyze", "--comfyui-root", str(install), str(path), tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[2]: line for line in r.stdout.splitlines()[2:] if line.startswith("  missing")}
    assert "implied by IPAdapterUnifiedLoader (preset 'PLUS (high strength)'), node pack ComfyUI_IPAdapter_plus" \
        in lines["CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"]
    assert "implied by InstantIDFaceAnalysis (preset 'CPU'), node pack ComfyUI_InstantID" in lines["antelopev2"]
    mystery = lines["mystery_adapter.safetensors"]
    assert mystery.split()[1] == "?"  # no folder presented as the answer
    assert "folder unknown: one of checkpoints, diffusion_models, loras" in mystery
    (line,) = [json.loads(x) for x in cmr("analyze", "--json", "--comfyui-root", str(install), str(path),
                                          tmp=tmp_path).stdout.splitlines()]
    rows = {m["filename"]: m for m in line["models"]}
    assert rows["antelopev2"]["implied"] is True and rows["antelopev2"]["pack"] == "ComfyUI_InstantID"
    assert rows["mystery_adapter.safetensors"]["folder"] is None
    assert rows["mystery_adapter.safetensors"]["alt_folders"] == ["checkpoints", "diffusion_models", "loras"]
