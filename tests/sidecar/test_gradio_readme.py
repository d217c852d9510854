"""The README's gradio_client example, run as written: the code block is taken from README.md and
executed unchanged with the default `Client(url)` (which fetches any dict with a `path` key as a file)
against `cmr serve` on the README's ports 5002/5001 and the fake Hub.

Those ports are made free by running the world in its own network namespace (`unshare --net`, root);
without one, the world runs here when 5001 and 5002 are free, and the test skips otherwise."""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys

import pytest

from support.paths import REPO

pytest.importorskip("gradio", reason="gradio is not installed (the 'ui' extra)")
pytest.importorskip("gradio_client", reason="gradio_client is not installed")
pytestmark = pytest.mark.timeout(600)

WORLD = REPO / "tests" / "sidecar" / "readme_client_world.py"


def readme_client_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    [block] = [b for b in blocks if "from gradio_client import" in b]
    return block


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _own_namespace_works() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


def test_readme_gradio_client_example_runs_as_written(tmp_path):
    code = tmp_path / "example.py"
    code.write_text(readme_client_block())
    command = [sys.executable, str(WORLD), str(tmp_path / "work"), str(code)]
    (tmp_path / "work").mkdir()
    if _own_namespace_works():
        command = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "world", *command]
    elif not (_free(5001) and _free(5002)):
        pytest.skip("ports 5001/5002 are taken and no network namespace can be made (needs root and unshare)")
    run = subprocess.run(command, capture_output=True, text=True, timeout=540, cwd=REPO)
    assert run.returncode == 0, run.stderr[-4000:] + (tmp_path / "work" / "serve.log").read_text()[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    # the block's own variables after it ran: the batch of a.json and shared.png, one merged list
    models, workflows = out["models"], out["workflows"]
    assert [row[1] for row in models["data"]] == ["vae/wan_2.1_vae.safetensors", "loras/extra.safetensors"]
    assert models["data"][0][2] == "a.json, shared.png" and models["data"][1][2] == "a.json"
    assert all(row[0] == "source found" for row in models["data"])
    assert workflows["data"] == [["a.json", 2, 0, 2, 2, 0, 0], ["shared.png", 1, 0, 1, 1, 0, 0]]
    details = json.loads(out["details"])  # the routes' JSON, with its `path` keys, as text
    assert [d["workflow"] for d in details] == ["a.json", "shared.png"]
    assert details[0]["models"][0]["candidates"][0]["path"] == "split_files/vae/wan_2.1_vae.safetensors"
    assert "Found sources for shared.png: 1 models (1 source found)" in out["log"]
    # /download_all fetched both files, verified, into the models folders
    assert [row[2] for row in out["final_jobs"]["data"]] == ["completed", "completed"]
    assert out["placed"] == out["expected"]
    assert "Finished vae/wan_2.1_vae.safetensors" in out["final_log"]
