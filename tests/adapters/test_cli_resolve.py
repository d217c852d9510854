"""`cmr resolve`: the JSON contract, the table, --write-back, --download (fakes in a thread)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from fakes.blobs import FakeFile
from support.paths import REPO
from support.sources import fake_hosts, workflow

CONTRACT = ["filename", "folder", "node_id", "node_type", "input", "active", "status", "local_path", "url",
            "hash", "hash_type", "confidence"]


def cmr(*args, hub, tmp, civ=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env.update({"CMR_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(REPO),
                "CMR_HF_ENDPOINT": hub.url if hub is not None else "http://127.0.0.1:9",
                "CMR_CIVITAI_BASE_URL": civ.url if civ is not None else "http://127.0.0.1:9",
                "CMR_ALLOWED_HOSTS": ",".join(fake_hosts(hub, civ)), "CMR_DISABLE_CATALOG": "1"})
    return subprocess.run([sys.executable, "-m", "comfyui_model_resolver.adapters.cli", *args],
                          capture_output=True, text=True, env=env, cwd=tmp, timeout=120)


def _setup(hub, tmp_path):
    hub.add_repo("Comfy-Org/Wan_2.1_ComfyUI_repackaged", [
        FakeFile.safetensors("split_files/vae/wan_2.1_vae.safetensors", 2048, seed=1),
        FakeFile.safetensors("split_files/text_encoders/umt5_xxl_fp16.safetensors", 2048, seed=2)], downloads=1000)
    wf = workflow(("VAELoader", ["wan_2.1_vae.safetensors"]), ("CLIPLoader", ["umt5_xxl_bf16.safetensors", "wan"]))
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    return path


def test_json_contract(fake_hub_thread, tmp_path):
    path = _setup(fake_hub_thread, tmp_path)
    r = cmr("resolve", "--json", str(path), hub=fake_hub_thread, tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    (line,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert {"providers", "disk", "requests", "models"} <= set(line)
    by = {m["filename"]: m for m in line["models"]}
    for m in line["models"]:
        assert list(m)[: len(CONTRACT)] == CONTRACT
    vae = by["wan_2.1_vae.safetensors"]
    assert vae["status"] == "resolved"
    assert list(vae["candidates"][0])[:6] == ["url", "source", "confidence", "size", "sha256", "reasons"]
    assert vae["candidates"][0]["size"] == 2048 and len(vae["candidates"][0]["sha256"]) == 64
    assert by["umt5_xxl_bf16.safetensors"]["status"] == "ambiguous"
    assert any("variant mismatch" in x for x in by["umt5_xxl_bf16.safetensors"]["candidates"][0]["reasons"])


def test_table_and_write_back(fake_hub_thread, tmp_path):
    path = _setup(fake_hub_thread, tmp_path)
    out = tmp_path / "shared" / "wf_with_links.json"
    r = cmr("resolve", str(path), "--write-back", str(out), hub=fake_hub_thread, tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "resolved" in r.stdout and "Comfy-Org/Wan_2.1_ComfyUI_repackaged" in r.stdout
    assert "wrote 1 download link(s)" in r.stderr
    saved = json.loads(out.read_text())
    entry = saved["nodes"][0]["properties"]["models"][0]
    assert entry["url"] == ("https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/"
                            "split_files/vae/wan_2.1_vae.safetensors")  # the public form, not the test endpoint
    assert entry["directory"] == "vae" and entry["hash_type"] == "sha256" and len(entry["hash"]) == 64
    assert "models" not in saved["nodes"][1]["properties"]  # ambiguous: nothing written


def test_download_fetches_the_confident_answers_only(fake_hub_thread, tmp_path):
    import hashlib

    path = _setup(fake_hub_thread, tmp_path)
    root = tmp_path / "ComfyUI"
    r = cmr("resolve", "--json", "--download", "--no-progress", "--comfyui-root", str(root), str(path),
            hub=fake_hub_thread, tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    done = [x for x in lines if "path" in x]
    vae = root / "models" / "vae" / "wan_2.1_vae.safetensors"
    assert done == [{"path": str(vae), "size": 2048, "sha256": done[0]["sha256"], "seconds": done[0]["seconds"]}]
    assert hashlib.sha256(vae.read_bytes()).hexdigest() == done[0]["sha256"]
    # The bf16 text encoder was only ambiguous (an fp16 file exists): it is not downloaded, and we say why.
    assert "not downloading umt5_xxl_bf16.safetensors" in r.stderr and "pick one" in r.stderr
    assert not (root / "models" / "text_encoders").exists() or not any((root / "models" / "text_encoders").iterdir())


def test_unusable_input_exits_2_with_a_json_error_line(fake_hub_thread, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = cmr("resolve", "--json", str(bad), hub=fake_hub_thread, tmp=tmp_path)
    assert r.returncode == 2 and json.loads(r.stdout)["errors"]


def test_looked_and_found_nothing_is_not_found_exit_4(fake_hub_thread, fake_civitai_thread, tmp_path):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow(("VAELoader", ["nowhere_vae.safetensors"]))))
    r = cmr("resolve", "--json", str(path), hub=fake_hub_thread, civ=fake_civitai_thread, tmp=tmp_path)
    assert r.returncode == 4, r.stderr
    [m] = json.loads(r.stdout)["models"]
    assert m["status"] == "not_found" and m["message"].startswith("no source has this file (tried ")


def test_offline_is_unavailable_exit_3_in_plain_words(tmp_path):
    """Neither the Hub nor Civitai answers: "no source could be asked", not "not found"."""
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow(("VAELoader", ["nowhere_vae.safetensors"]),
                                        ("LoraLoader", ["detail.safetensors", 1, 1]))))
    r = cmr("resolve", str(path), hub=None, tmp=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "OFFLINE? can't reach 127.0.0.1: check the network or proxy" in r.stdout
    assert r.stdout.count("unavailable") >= 2 and "not_found" not in r.stdout
    assert "Error" not in r.stdout and "Errno" not in r.stdout and "Traceback" not in r.stderr
    j = cmr("resolve", "--json", str(path), hub=None, tmp=tmp_path)
    assert j.returncode == 3
    out = json.loads(j.stdout)
    assert {m["status"] for m in out["models"]} == {"unavailable"}
    assert {p["name"]: p["state"] for p in out["providers"]}["huggingface"] == "unavailable"


def test_table_reads_ambiguous_as_a_choice_and_says_folder_unknown(fake_hub_thread, tmp_path):
    """Issue 11: an ambiguous model lists its candidates with their reasons and none is pre-chosen (no "->");
    a loader nobody describes says "folder unknown" with the candidates and how to download into one."""
    hub = fake_hub_thread
    hub.add_repo("alice99/style-lora", [FakeFile.safetensors("style.safetensors", 1024, seed=5)], downloads=41)
    hub.add_repo("bobmirror/style-lora", [FakeFile.safetensors("style.safetensors", 1024, seed=6)], downloads=38)
    hub.add_repo("labs/mystery-adapter", [FakeFile.safetensors("mystery_adapter.safetensors", 1024, seed=7)], downloads=500)
    wf = workflow(("LoraLoaderModelOnly", ["style.safetensors", 1.0]), ("MysteryAdapterLoader", ["mystery_adapter.safetensors"]))
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    r = cmr("resolve", str(path), hub=hub, tmp=tmp_path)
    assert r.returncode == 0, r.stderr
    blocks = {}
    for line in r.stdout.splitlines()[1:]:
        if not line.startswith("      ") and len(line.split()) >= 3:
            current = blocks.setdefault(line.split()[2], [line])
        elif line.startswith("      "):
            current.append(line.strip())
    style = blocks["style.safetensors"]
    assert style[0].split()[0] == "ambiguous" and not any(x.startswith("->") for x in style)
    assert "pick one of 2 candidates (none is certain):" in style
    choices = [x for x in style if x[:3] in ("1. ", "2. ")]
    assert len(choices) == 2 and all("— exact file name" in x for x in choices)
    assert {x.split()[2].split("/")[0] for x in choices} == {"alice99", "bobmirror"}
    mystery = blocks["mystery_adapter.safetensors"]
    assert mystery[0].split()[1] == "?"
    assert "folder unknown: one of checkpoints, diffusion_models, loras" in mystery
    assert "not downloaded without a folder: cmr download URL --folder <one of them>" in mystery
