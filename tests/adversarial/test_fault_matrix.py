"""The download fault matrix: every fault of the downloads issue, where it is tested, and a sweep
that holds the one invariant all of them share — **zero corrupt final files**: a download ends with
the exact bytes under the final name (sha256 checked here against the source), or with a typed
error and nothing under the final name.

`MATRIX` maps each fault to the tests that inject it (file::test); `test_every_fault_has_a_test`
keeps the map honest. SECURITY.md points here.
"""
from __future__ import annotations

import ast
import errno
import os
from pathlib import Path

import pytest

from comfyui_model_resolver.types import DownloadRequest
from fakes.blobs import FakeFile, make_safetensors
from support.downloads import sha256_of

from .conftest import core_settings, hostport

MiB = 1 << 20
TESTS = Path(__file__).resolve().parents[1]

MATRIX: dict[str, list[str]] = {
    "connection dropped mid-body (resume with Range)": [
        "downloads/test_faults.py::test_dropped_connection_resumes_with_range",
        "downloads/test_faults.py::test_dropped_connections_in_segments_resume",
        "downloads/test_faults.py::test_connection_that_keeps_dropping_fails_clearly",
        "adversarial/test_fault_matrix.py::test_no_fault_leaves_a_corrupt_final_file"],
    "dropped with no Content-Length (chunked)": ["adversarial/test_fault_matrix.py::test_no_fault_leaves_a_corrupt_final_file"],
    "Range ignored (200 instead of 206)": ["downloads/test_faults.py::test_range_ignored_restarts_cleanly"],
    "416 range not satisfiable": ["downloads/test_faults.py::test_416_when_we_already_hold_every_byte",
                                  "downloads/test_faults.py::test_spurious_416_is_retried",
                                  "downloads/test_faults.py::test_persistent_416_fails_clearly"],
    "429 with Retry-After (seconds, HTTP date, too long)": [
        "downloads/test_faults.py::test_429_with_retry_after",
        "downloads/test_faults.py::test_429_retry_after_longer_than_we_wait_fails_with_rate_limited"],
    "5xx (transient, persistent, with Retry-After)": [
        "adversarial/test_fault_matrix.py::test_server_errors_are_retried_then_reported"],
    "stalled connection": ["downloads/test_faults.py::test_stall_is_detected_and_resumed"],
    "302/307 chains, each hop re-checked": ["downloads/test_faults.py::test_redirect_chain_is_followed_and_rechecked",
                                            "adversarial/test_ssrf.py::test_a_redirect_chain_is_checked_at_every_hop",
                                            "adversarial/test_ssrf.py::test_a_redirect_loop_ends_with_a_clear_error"],
    "redirect off the allowlist": ["downloads/test_faults.py::test_redirect_off_the_allowlist_is_refused",
                                   "adversarial/test_ssrf.py::test_redirects_off_the_allowlist_are_refused_at_the_hop"],
    "signed URL expires mid-download": ["downloads/test_faults.py::test_expired_signed_url_is_resolved_again"],
    "file changed on the server (ETag) mid-download": [
        "downloads/test_faults.py::test_cdn_etag_change_is_ignored_when_the_hub_sha256_is_known",
        "downloads/test_faults.py::test_civitai_download_names_the_file_and_keeps_the_key_home"],
    "wrong bytes (same size)": ["downloads/test_faults.py::test_wrong_bytes_are_quarantined",
                                "downloads/test_faults.py::test_wrong_bytes_without_a_known_hash_fail_the_safetensors_check"],
    "short / long body": ["downloads/test_faults.py::test_body_shorter_than_the_hub_says_fails",
                          "adversarial/test_fault_matrix.py::test_no_fault_leaves_a_corrupt_final_file",
                          "adversarial/test_fault_matrix.py::test_a_truncated_file_without_any_hash_is_caught_by_its_header"],
    "hash given by the request disagrees": [
        "downloads/test_faults.py::test_requested_hash_disagreeing_with_the_hub_fails_before_downloading"],
    "host unreachable (connection refused)": ["adversarial/test_fault_matrix.py::test_an_unreachable_host_fails_cleanly"],
    "ENOSPC (disk full)": ["downloads/test_manager.py::test_not_enough_space_is_refused_up_front",
                           "downloads/test_manager.py::test_disk_full_mid_download_fails_cleanly",
                           "adversarial/test_fault_matrix.py::test_disk_full_then_resume_after_space_is_freed"],
    "I/O error while writing": ["adversarial/test_fault_matrix.py::test_an_io_error_while_writing_fails_cleanly"],
    "kill -9 mid-download, restart resumes": [
        "downloads/test_processes.py::test_kill_9_mid_download_then_resume_in_a_new_process",
        "downloads/test_faults.py::test_416_when_we_already_hold_every_byte",
        "adversarial/test_load.py::test_sidecar_killed_mid_downloads_resumes_them_all_verified"],
    "two processes, one file (file lock, Redis)": [
        "downloads/test_processes.py::test_two_processes_one_download_with_the_file_lock",
        "downloads/test_processes.py::test_two_processes_one_download_with_redis"],
    "gated / 401 / 403": ["downloads/test_faults.py::test_gated_without_token_is_a_clear_auth_error",
                          "adversarial/test_tokens.py::test_tokens_echoed_by_an_upstream_never_reach_errors_or_logs"],
    "404": ["downloads/test_faults.py::test_missing_file_is_not_found"],
    "links under the part/lock/final names": ["adversarial/test_symlinks.py::test_links_in_the_models_folder_are_never_written_through",
                                              "adversarial/test_symlinks.py::test_hard_links_under_our_names_are_refused"],
}


def test_every_fault_has_a_test():
    defined: dict[str, set[str]] = {}
    for refs in MATRIX.values():
        assert refs
        for ref in refs:
            path, _, name = ref.partition("::")
            if path not in defined:
                tree = ast.parse((TESTS / path).read_text(encoding="utf-8"))
                defined[path] = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            assert name in defined[path], f"{ref} does not exist"


# ---- the sweep --------------------------------------------------------------------------------------
#: one knob set per case, applied to the CDN (times=None: every response)
SWEEP = {
    "drop-once": dict(drop_after=300_000, times=1),
    "drop-thrice": dict(drop_after=200_000, times=3),
    "drop-always": dict(drop_after=100_000),
    "drop-at-zero": dict(drop_after=0, times=2),
    "chunked": dict(chunked=True),
    "chunked-drop": dict(chunked=True, drop_after=500_000, times=1),
    "ignore-range": dict(ignore_range=True),
    "ignore-range-and-drop": dict(ignore_range=True, drop_after=700_000, times=2),
    "416-once": dict(force_416=True, times=1),
    "416-always": dict(force_416=True),
    "429-once": dict(status=429, retry_after=0, times=1),
    "503-twice": dict(status=503, times=2),
    "500-always": dict(status=500),
    "stall": dict(stall_at=400_000, stall_seconds=30, times=1),
    "wrong-bytes": dict(wrong_bytes=True),
    "wrong-bytes-once": dict(wrong_bytes=True, times=1),
    "short-body": dict(short_body=1000, ignore_range=True),
    "long-body": dict(long_body=1000, ignore_range=True),
    "etag-changes": dict(etag_changes=True),
    "no-etag": dict(no_etag=True),
    "throttled": dict(throttle_bps=8 * MiB),
}


@pytest.mark.parametrize("segmented", [False, True], ids=["one-stream", "segmented"])
@pytest.mark.parametrize("fault", list(SWEEP))
async def test_no_fault_leaves_a_corrupt_final_file(sandbox, fake_hub, managers, fault, segmented):
    f = FakeFile.safetensors("model.safetensors", 2 * MiB + 12345, seed=71)
    fake_hub.add_repo("org/m", [f])
    knobs = dict(SWEEP[fault])
    times = knobs.pop("times", None)
    fake_hub.switch(on="cdn", times=times, **knobs)
    s = core_settings(sandbox, fake_hub, segment_threshold=MiB if segmented else 64 * MiB, stall_timeout=0.5,
                      download_retries=3)
    m = managers(s)
    job = await m.wait((await m.submit(DownloadRequest(url=f"{fake_hub.url}/org/m/resolve/main/model.safetensors",
                                                       folder="checkpoints"))).id, timeout=60)
    final = sandbox.models / "checkpoints" / "model.safetensors"
    if job.state == "completed":
        assert sha256_of(final) == f.sha256 == job.sha256 and final.stat().st_size == f.size
    else:
        assert job.state == "failed" and job.error["type"] and len(job.error["message"]) > 10, job
        assert not final.exists(), f"{fault}: a failed download left {final}"
    leftovers = [p.name for p in (sandbox.models / "checkpoints").iterdir() if p.suffix == ".lock"]
    assert leftovers == []


async def test_server_errors_are_retried_then_reported(sandbox, fake_hub, managers):
    f = FakeFile.safetensors("model.safetensors", MiB, seed=72)
    fake_hub.add_repo("org/m", [f])
    url = f"{fake_hub.url}/org/m/resolve/main/model.safetensors"
    m = managers(core_settings(sandbox, fake_hub, download_retries=3))
    fake_hub.switch(on="cdn", status=502, times=1)
    fake_hub.switch("resolve", on="hub", status=503, retry_after=0, times=2)
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder="checkpoints"))).id, timeout=60)
    assert job.state == "completed" and job.sha256 == f.sha256
    statuses = [r["status"] for r in fake_hub.requests()]
    assert statuses.count(503) == 2 and statuses.count(502) == 1
    fake_hub.clear_switches()
    fake_hub.switch(on="cdn", status=503)
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder="loras"))).id, timeout=60)
    assert job.state == "failed" and job.error["type"] == "SourceUnavailable" and "503" in job.error["message"]
    assert not (sandbox.models / "loras" / "model.safetensors").exists()


async def test_an_unreachable_host_fails_cleanly(sandbox, fake_hub, managers):
    fake_hub.add_repo("org/m", [FakeFile.safetensors("model.safetensors", 4096, seed=73)])
    fake_hub.switch("resolve", on="hub", status=302, location="http://127.0.0.1:9/blob")
    m = managers(core_settings(sandbox, fake_hub, allowed_hosts=(hostport(fake_hub.cdn_url), "127.0.0.1:9")))
    job = await m.wait((await m.submit(DownloadRequest(url=f"{fake_hub.url}/org/m/resolve/main/model.safetensors",
                                                       folder="checkpoints"))).id, timeout=60)
    assert job.state == "failed" and job.error["type"] == "SourceUnavailable"
    assert "connect" in job.error["message"].lower()
    assert not (sandbox.models / "checkpoints" / "model.safetensors").exists()


class _FailingWrites:
    """os.pwrite that fails with `err` once `after` bytes were written (then works again if `once`)."""

    def __init__(self, err: int, after: int, once: bool) -> None:
        self.real = os.pwrite
        self.err, self.after, self.once = err, after, once
        self.written = 0
        self.fired = False

    def __call__(self, fd, data, offset):
        if not (self.once and self.fired) and self.written + len(data) > self.after:
            self.fired = True
            raise OSError(self.err, os.strerror(self.err))
        n = self.real(fd, data, offset)
        self.written += n
        return n

    def vectored(self, fd, buffers, offset):
        """os.pwritev, failing the same way (the downloader writes gathered buffers with it)."""
        data = b"".join(buffers)
        return self(fd, data, offset)


@pytest.mark.parametrize("segmented", [False, True], ids=["one-stream", "segmented"])
async def test_disk_full_then_resume_after_space_is_freed(sandbox, fake_hub, managers, monkeypatch, segmented):
    """Found by this test: a failed write was skipped over by the writes queued after it, so the
    checkpoint claimed bytes that were never written and the resumed file failed its SHA-256."""
    f = FakeFile.safetensors("model.safetensors", 3 * MiB, seed=74)
    fake_hub.add_repo("org/m", [f])
    failing = _FailingWrites(errno.ENOSPC, after=MiB, once=True)
    monkeypatch.setattr(os, "pwrite", failing)
    monkeypatch.setattr(os, "pwritev", failing.vectored)
    m = managers(core_settings(sandbox, fake_hub, segment_threshold=MiB if segmented else 64 * MiB))
    job = await m.wait((await m.submit(DownloadRequest(url=f"{fake_hub.url}/org/m/resolve/main/model.safetensors",
                                                       folder="checkpoints"))).id, timeout=60)
    assert job.state == "failed" and job.error["type"] == "InsufficientSpace" and "resume" in job.error["hint"]
    final = sandbox.models / "checkpoints" / "model.safetensors"
    assert not final.exists() and failing.fired
    job = await m.wait((await m.resume(job.id)).id, timeout=60)  # "space was freed"
    assert job.state == "completed" and sha256_of(final) == f.sha256, job.error


async def test_an_io_error_while_writing_fails_cleanly(sandbox, fake_hub, managers, monkeypatch):
    f = FakeFile.safetensors("model.safetensors", 2 * MiB, seed=75)
    fake_hub.add_repo("org/m", [f])
    monkeypatch.setattr(os, "pwrite", _FailingWrites(errno.EIO, after=500_000, once=False))
    m = managers(core_settings(sandbox, fake_hub))
    job = await m.wait((await m.submit(DownloadRequest(url=f"{fake_hub.url}/org/m/resolve/main/model.safetensors",
                                                       folder="checkpoints"))).id, timeout=60)
    assert job.state == "failed" and job.error["type"] == "DownloadError" and "Cannot write" in job.error["message"]
    assert not (sandbox.models / "checkpoints" / "model.safetensors").exists()


async def test_a_truncated_file_without_any_hash_is_caught_by_its_header(sandbox, scripted, managers):
    """A plain server: no hash, no size but its own Content-Length — the safetensors header still
    says how long the file must be."""
    whole = make_safetensors(200_000, seed=76)
    url = scripted.set("model.safetensors", headers={"Content-Length": str(len(whole) - 5000)}, body=whole[:-5000])
    m = managers(core_settings(sandbox, allowed_hosts=(scripted.hostport(),)))
    job = await m.wait((await m.submit(DownloadRequest(url=url, folder="checkpoints"))).id, timeout=60)
    assert job.state == "failed" and job.error["type"] == "IntegrityError"
    assert not (sandbox.models / "checkpoints" / "model.safetensors").exists()
    assert len(list((sandbox.data / "quarantine").iterdir())) == 1
