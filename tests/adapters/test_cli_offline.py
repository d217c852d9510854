"""Offline fails fast: a host name that does not resolve (endpoints and a download URL under the
reserved `.invalid` TLD, which never resolves) is retried once at most, then the CLI says
"offline / cannot resolve host" in words. Attempts are counted from the retry lines the CLI logs at
INFO, and the commands' answers; no clock is read."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from support.paths import REPO
from support.sources import workflow

HUB, CIVITAI, FILES = "hub.invalid", "civitai.invalid", "files.invalid"


def cmr(*args: str, tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    root = tmp / "ComfyUI"
    (root / "models" / "loras").mkdir(parents=True, exist_ok=True)
    env.update({"CMR_DATA_DIR": str(tmp / "data"), "PYTHONPATH": str(REPO), "CMR_COMFYUI_ROOT": str(root),
                "CMR_HF_ENDPOINT": f"https://{HUB}", "CMR_CIVITAI_BASE_URL": f"https://{CIVITAI}",
                "CMR_ALLOWED_HOSTS": FILES, "CMR_DISABLE_CATALOG": "1", "CMR_DOWNLOAD_RETRIES": "5"})
    return subprocess.run([sys.executable, "-m", "comfyui_model_resolver", "--log-level", "INFO", *args],
                          capture_output=True, text=True, env=env, cwd=tmp, timeout=300)


def test_download_from_an_unresolvable_host_is_retried_once_then_says_offline(tmp_path):
    r = cmr("download", f"https://{FILES}/org/model/resolve/main/lora.safetensors", "--folder", "loras", "--json",
            tmp=tmp_path)
    assert r.returncode == 1, r.stderr
    error = json.loads(r.stdout.strip().splitlines()[-1])["error"]
    assert error["message"] == f"Offline / cannot resolve host {FILES}." and error["type"] == "SourceUnavailable"
    retries = re.findall(r"retry (\d+)(?:/\d+)? in", r.stderr)
    assert retries == ["1"], r.stderr  # one retry although CMR_DOWNLOAD_RETRIES is 5
    assert "Traceback" not in r.stderr and "gaierror" not in r.stderr and "ClientConnector" not in r.stderr
    assert not any((tmp_path / "ComfyUI" / "models" / "loras").iterdir())


def test_resolve_with_unresolvable_endpoints_is_unavailable_not_not_found(tmp_path):
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(workflow(("LoraLoaderModelOnly", ["some_lora.safetensors"]))))
    r = cmr("resolve", "--json", str(wf), tmp=tmp_path)
    assert r.returncode == 3, r.stderr  # 3: a source could not be asked (4 would be "looked, found nothing")
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert [m["status"] for m in result["models"]] == ["unavailable"]
    providers = {p["name"]: p for p in result["providers"]}
    assert providers["huggingface"]["state"] == "unavailable" and providers["civitai"]["state"] == "unavailable"
    said = json.dumps(result)
    assert f"cannot resolve host {HUB}" in said and f"cannot resolve host {CIVITAI}" in said
    # at most one retry per upstream request: never two retry lines for the same request
    assert "retry 2" not in r.stderr
    assert "gaierror" not in said and "ClientConnector" not in said
    table = cmr("resolve", str(wf), tmp=tmp_path)
    assert table.returncode == 3 and "OFFLINE" in table.stdout + table.stderr
