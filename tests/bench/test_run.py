"""bench/run.py is a benchmark, not a test: here it only has to run in its tiny mode and print one
JSON object with a figure (or a reason for skipping) per section. No timing is asserted."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def work():
    """A work folder nginx's unprivileged workers can read (pytest's tmp_path is private)."""
    path = tempfile.mkdtemp(prefix="cmr-bench-test-")
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def test_the_bench_runs_in_tiny_mode_and_prints_one_json_object(work):
    res = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--tiny", "--no-install",
                          "--work", str(work)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)  # the whole of stdout is one JSON object
    assert out["tiny"] is True and out["load_start"]["cpus"] and "load average" in out["load_end"]["uptime"]
    figures = {"startup": ["help", "analyze", "download_1k"], "download": ["in_process", "cmr_download_end_to_end"],
               "capped": ["cmr_download_vs_aria2c_x4", "cmr_download_vs_aria2c_x4_checksum"], "sidecar": ["startup_api_only", "analyze_50_vs_1_client"],
               "index": ["warm_fresh_process", "warm_fresh_process_with_lookup"]}
    for section, names in figures.items():
        got = out[section]
        if "skipped" in got:  # a tool is missing (nginx, curl, aria2c): said in words
            assert isinstance(got["skipped"], str) and got["skipped"]
            continue
        for name in names:
            fig = got[name]
            # a figure can be 0 (a time with a start-up subtracted), never negative or missing
            assert fig["ours"]["best"] >= 0 and fig["ours"]["median"] >= 0 and fig["ours"]["runs"], (section, name)
            assert isinstance(fig["met_by_median"], bool) and fig["goal"]
            if "ratio" in fig:
                assert fig["base"]["median"] > 0 and fig["ratio"]["best"] >= 0 and fig["ratio"]["median"] >= 0
