"""Where a download lands, and the checks before it gets its final name.

* `check_format` refuses program files always, and pickles under CMR_SAFETENSORS_ONLY;
  `pickle_warning` notes on the job that a pickle can run code.
* `recheck_target` re-derives the target path before a queued job writes (links planted meanwhile).
* `place` verifies a finished part file (size, SHA-256, safetensors header) and renames it into
  place, or moves it to ``<data dir>/quarantine`` and raises IntegrityError. In a fleet, `confirm`
  checks the job's lease right before the rename (it raises when this host lost it).
* `verify_existing` decides whether a file already under the target name is the download (then the
  job is done) or a different file (TargetExists: it is never overwritten).
* `remove_part_quietly` deletes a part file of ours, never a link planted under its name.

Every file written, renamed or deleted here is checked against the write roots first
(containment.check_writes), with links resolved at that moment.
"""
from __future__ import annotations

import asyncio
import os
import stat
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any, Awaitable, Callable

import aiohttp

from ..errors import DownloadError, IntegrityError, TargetExists, UnsafeFormat, UnsafePath
from ..index.hashing import sha256_file
from ..index.layout import FolderLayout
from ..settings import Settings
from ..workflow.folders import is_code_file, is_pickle_file
from .http import parse_content_range
from .containment import check_writes
from .paths import PART_SUFFIX, target_path
from .store import JobRecord
from .transfer import TransferResult, open_bounded
from .verify import check_safetensors, finalize, quarantine

__all__ = ["Placed", "check_format", "pickle_warning", "recheck_target", "place", "verify_existing",
           "remove_part_quietly"]


@dataclass(frozen=True)
class Placed:
    """A verified file under its final name: its hash (None when none was available), its size,
    and what to tell the user about how it was verified."""

    sha256: str | None
    size: int
    detail: str | None = None
    warning: str | None = None


def check_format(filename: str, settings: Settings) -> None:
    if is_code_file(filename):
        raise UnsafeFormat(f"{filename} is a program file, not a model: the resolver never downloads code "
                           "(a node pack's .py or a web extension's .js would run the next time ComfyUI starts).",
                           hint="Install node packs with ComfyUI-Manager; download only model files here.")
    if is_pickle_file(filename) and settings.safetensors_only:
        raise UnsafeFormat(f"{filename} is a pickle file, which can run code when loaded; "
                           "CMR_SAFETENSORS_ONLY refuses it.",
                           hint="Download a .safetensors version, or unset CMR_SAFETENSORS_ONLY if you trust it.")


def pickle_warning(rec: JobRecord, filename: str) -> None:
    """Note on the job (once) that a pickle file can run code when loaded."""
    if not is_pickle_file(filename):
        return
    msg = (f"{os.path.basename(filename)} is a pickle file: loading it can run code. "
           "Prefer a .safetensors version from a source you trust.")
    if msg not in rec.warnings:
        rec.warnings.append(msg)


async def recheck_target(layout: FolderLayout, rec: JobRecord) -> None:
    """The target was checked at submit; check it again before writing (a restart, or links planted
    while the job was queued)."""
    assert rec.path is not None
    path = await asyncio.to_thread(target_path, layout, rec.folder, rec.filename or os.path.basename(rec.path))
    if path != rec.path:
        raise UnsafePath(f"The target of this download moved since it was queued ({rec.path} -> {path}).",
                         hint="Submit the download again.")


async def place(rec: JobRecord, result: TransferResult, *, layout: FolderLayout, executor: Executor,
                data_dir: str, durable: bool, confirm: Callable[[], Awaitable[None]] | None = None) -> Placed:
    """Verify the part file; rename it into place, or quarantine it and raise IntegrityError.
    `confirm` (a fleet's lease fence) runs last before the rename; what it raises stops it."""
    assert rec.path is not None
    loop = asyncio.get_running_loop()
    part = rec.path + PART_SUFFIX
    name = rec.filename or os.path.basename(rec.path)
    try:
        if rec.expected_size is not None and result.size != rec.expected_size:
            raise IntegrityError(f"{name}: received {result.size} bytes, expected {rec.expected_size}.",
                                 hint="The server sent a different or truncated file.")
        if rec.expected_sha256 and result.sha256 != rec.expected_sha256:
            raise IntegrityError(f"{name}: SHA-256 mismatch: got {result.sha256}, expected {rec.expected_sha256}.",
                                 hint="The download is corrupt or the source changed the file.")
        if rec.path.lower().endswith(".safetensors"):
            await loop.run_in_executor(executor, check_safetensors, part, name)
    except IntegrityError as exc:
        moved = await asyncio.to_thread(quarantine, part, os.path.join(data_dir, "quarantine"), rec.id, name)
        rec.done, rec.total = [], None
        where = f" It was moved to {moved}." if moved else " It was deleted."
        raise IntegrityError(exc.message + where, hint=exc.hint) from None
    await asyncio.to_thread(check_writes, layout, part, rec.path)  # verifying took a while: links again
    if confirm is not None:
        await confirm()
    try:
        await loop.run_in_executor(executor, partial(finalize, part, rec.path, durable=durable))
    except OSError as exc:
        raise DownloadError(f"Cannot move the verified file into place at {rec.path}: {exc.strerror or exc}.",
                            hint="Check permissions of the models folder; the part file is kept.") from None
    return Placed(result.sha256, result.size)


async def verify_existing(rec: JobRecord, *, session: aiohttp.ClientSession, settings: Settings, executor: Executor,
                          retrying: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]],
                          announce: Callable[[str], None]) -> Placed:
    """The target already exists (a finished earlier run, another process, or a user's file).
    Returns how it was verified, or raises TargetExists when it is not this download."""
    assert rec.path is not None
    final = rec.path
    size = await asyncio.to_thread(os.path.getsize, final)
    want_sha, want_size = rec.expected_sha256, rec.expected_size
    if not want_sha:
        announce("the file exists; asking the server for its hash to compare")
        opened = await retrying(lambda: open_bounded(session, rec.url, settings, start=0,
                                                     tokens="auto" if rec.tokens else "none", stop_at_linked=True))
        try:
            want_sha = opened.linked_sha256
            if opened.status in (206, 416):
                server_size = parse_content_range(opened.resp.headers.get("Content-Range"))[2]
            elif opened.status == 200:
                server_size = opened.resp.content_length
            else:
                server_size = opened.linked_size
            want_size = want_size if want_size is not None else server_size
        finally:
            opened.close()
        if want_sha:
            rec.server_sha256 = rec.expected_sha256 = want_sha
    if want_size is not None and size != want_size:
        raise TargetExists(f"{final} already exists with {size} bytes, but the download has {want_size}.",
                           hint="Move or delete that file, or choose another file name.")
    if want_sha:
        announce("the file exists; verifying its SHA-256")
        got = await asyncio.get_running_loop().run_in_executor(executor, sha256_file, final)
        if got != want_sha:
            raise TargetExists(f"{final} already exists but its SHA-256 ({got}) is not the expected {want_sha}.",
                               hint="Move or delete that file, or choose another file name.")
        return Placed(got, size, detail="already present (SHA-256 verified)")
    if want_size is None:
        raise TargetExists(f"{final} already exists and the server gives no size or hash to compare it with.",
                           hint="Delete it to download it again, or choose another file name.")
    return Placed(None, size, detail="already present (same size; no hash to compare)",
                  warning="The file was already present with the expected size; no hash was available to verify it.")


def remove_part_quietly(layout: FolderLayout, path: str) -> None:
    """Delete a part file of ours: a plain file with one name, inside the write roots. A link (symbolic
    or hard) under that name, or a folder that now leads elsewhere, is not ours, so it stays (the job
    failed with UnsafePath because of it)."""
    try:
        check_writes(layout, path, what="Removing a partial download")
    except (UnsafePath, UnsafeFormat):
        return
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            os.unlink(path)
    except OSError:  # gone already, or a name the file system refuses (it was never created)
        pass
