"""The heap settings a downloading `cmr` process makes (adapters/heap_tuning.py).

Whether they pay off is measured by bench/run.py, not here (no timings in tests). Here: they are
set in a `cmr` process on glibc, only by the commands that download, and never in a process that
embeds `main(argv)`.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from support.paths import REPO

_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _run(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.skipif(not _GLIBC, reason="mallopt is glibc's")
def test_on_glibc_blocks_of_megabytes_then_come_from_the_heap():
    # An 8 MiB block is above glibc's mmap threshold (128 KiB at first): before tuning it is a mapping
    # of its own (its address far from the heap's small blocks); after tuning, a heap block.
    r = _run("""
import ctypes
from comfyui_model_resolver.adapters.heap_tuning import tune_heap_for_downloads
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p; libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
small = libc.malloc(64)
before = libc.malloc(8 << 20)
print(tune_heap_for_downloads())
after = libc.malloc(8 << 20)
print(abs(before - small) > (64 << 20), abs(after - small) < (64 << 20))
""")
    assert r.returncode == 0, r.stderr
    tuned, mapped_before, heap_after = r.stdout.split()
    assert tuned == "True"
    assert mapped_before == "True" and heap_after == "True"


def test_elsewhere_than_linux_nothing_is_changed(monkeypatch):
    from comfyui_model_resolver.adapters import heap_tuning

    monkeypatch.setattr(heap_tuning.sys, "platform", "darwin")
    assert heap_tuning.tune_heap_for_downloads() is False


def test_only_the_commands_that_download_tune_the_heap():
    from comfyui_model_resolver.adapters.cli import _PRELOADS, _load_command_modules

    _load_command_modules()
    downloading = {name for name, pre in _PRELOADS.items() if pre.downloads}
    assert downloading == {"download", "resolve", "ensure"}


def test_main_with_argv_leaves_the_heap_of_the_host_process_alone(monkeypatch, tmp_path):
    """`main(argv)` (tests, a program embedding us) does not tune its host's heap; the `cmr` process does."""
    from comfyui_model_resolver.adapters import cli, heap_tuning

    calls = []
    monkeypatch.setattr(heap_tuning, "tune_heap_for_downloads", lambda: calls.append(1) or True)
    monkeypatch.setenv("CMR_DATA_DIR", str(tmp_path / "data"))
    seen = {}
    real = cli._preload
    monkeypatch.setattr(cli, "_preload", lambda modules, **kw: seen.update(kw) or real(modules, **kw))
    cli.main(["resolve", "--models-root", str(tmp_path), str(tmp_path / "missing.json")])  # fails: no file
    assert seen.get("downloads") is False and calls == []
