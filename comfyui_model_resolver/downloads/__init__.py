"""Downloads: concurrent, resumable, segmented, verified; a bad file never gets the final name.

Public API: `DownloadManager` (manager.py), its `Job` snapshots (job.py), `RetryPolicy` (the upstream
policy's, `upstream/policy.py`). The modules, inside out:

    intervals.py   which bytes are on disk; cutting the rest into pieces (pure)
    paths.py       safe target paths inside a model folder (and Content-Disposition names)
    http.py        one GET through the upstream transport (every hop allowlist-checked); statuses -> errors
    partfile.py    the <final>.part file and the SHA-256 computed behind the writers
    transfer.py    one file's bytes: probe, resume checks, segments, retries, stall detection
    verify.py      size / sha256 / safetensors checks, atomic rename, quarantine
    placement.py   what may land, and landing it: format checks, verify + rename, existing files
    locks.py       cross-process locks (flock file, or Redis lease), waiting for and holding one
    store.py       job state in SQLite (resume after restart or kill -9)
    slots.py       the priority-ordered concurrency limit
    runner.py      one job's life: name, lock, slot, transfer, placement, outcome
    manager.py     the queue: submit and dedup, controls, queries, persistence, progress events
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..upstream.policy import RetryPolicy
    from .job import Job
    from .manager import DownloadManager

__all__ = ["DownloadManager", "Job", "RetryPolicy"]

# The names above load on first use, so that importing one module of the package (paths, hashing, …)
# does not import the manager and, with it, aiohttp: `cmr download` imports those while aiohttp loads
# in another thread (adapters/cli.py `_preload`).
_HOMES = {"DownloadManager": ".manager", "Job": ".job", "RetryPolicy": "..upstream.policy"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home, __name__), name)
