"""The ``<final>.part`` file: positional writes from several connections, pre-allocation, fsync,
and the SHA-256 computed while the download runs.

Hashing (`FrontierHasher`): SHA-256 needs the bytes in file order, but segmented downloads write
pieces out of order. The hasher keeps a *frontier*: every byte before it has been hashed. Whenever
the contiguous written prefix of the file grows past the frontier, it reads the new bytes back
with ``pread`` and feeds them to the hash, in a worker thread. The downloader hands out pieces
lowest-offset first and never lets a connection run more than `max lag` ahead of the frontier,
so the bytes read back were written moments earlier and come from the page cache: a memory copy,
not a second read of the disk — hashing runs concurrently with the download, and when the last
byte arrives only the last few pieces remain to be hashed. The same path serves single-stream
downloads (the frontier simply trails the one writer).

``hashlib`` objects cannot be saved, so a resumed download (new process) re-hashes the part of the
file already on disk once, at disk speed, while the remaining bytes download; this is the only
case that reads bytes back from disk.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_futures
from typing import Callable

from ..errors import DownloadError, InsufficientSpace

__all__ = ["PartFile", "FrontierHasher", "format_bytes"]

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
HASH_CHUNK = 8 * 1024 * 1024


def format_bytes(n: float | int | None) -> str:
    if n is None:
        return "?"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _io_error(exc: OSError, path: str, what: str) -> Exception:
    if exc.errno in _NO_SPACE:
        free = None
        try:
            st = os.statvfs(os.path.dirname(path) or ".")
            free = st.f_bavail * st.f_frsize
        except OSError:
            pass
        return InsufficientSpace(f"The disk is full while {what} {path} ({format_bytes(free)} free).",
                                 hint="Free up space, then resume the download (the partial file is kept), "
                                      "or cancel it to delete the partial file.")
    return DownloadError(f"Cannot write {path}: {exc.strerror or exc}.",
                         hint="Check that the models folder is writable.")


class PartFile:
    """An open part file. Methods block; call them from a worker thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise _io_error(exc, path, "creating") from None
        self.closed = False
        self._inflight: set[Future] = set()

    async def run(self, executor: Executor, fn: Callable, *args):
        """Run a blocking method in `executor`; `aclose` waits for every such call before closing."""
        cf = executor.submit(fn, *args)
        self._inflight.add(cf)
        cf.add_done_callback(self._inflight.discard)
        return await asyncio.wrap_future(cf)

    async def aclose(self) -> None:
        """Close once no worker thread uses the descriptor any more (cancelled awaits leave them running)."""
        while self._inflight:
            pending = list(self._inflight)
            await asyncio.get_running_loop().run_in_executor(None, wait_futures, pending)
        self.close()

    def size_on_disk(self) -> tuple[int, int]:
        """(length, allocated bytes)."""
        st = os.fstat(self.fd)
        return st.st_size, getattr(st, "st_blocks", 0) * 512

    def preallocate(self, size: int) -> None:
        """Reserve `size` bytes (ENOSPC now rather than at 90 %). Falls back to a sparse file."""
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(self.fd, 0, size)
                return
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                raise _io_error(exc, self.path, "reserving space for") from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise _io_error(exc, self.path, "reserving space for") from None
        try:
            if os.fstat(self.fd).st_size < size:
                os.ftruncate(self.fd, size)
        except OSError as exc:
            raise _io_error(exc, self.path, "resizing") from None

    def write_at(self, offset: int, data: bytes) -> int:
        view = memoryview(data)
        pos = 0
        try:
            while pos < len(view):
                pos += os.pwrite(self.fd, view[pos:], offset + pos)
        except OSError as exc:
            raise _io_error(exc, self.path, "writing") from None
        return pos

    def truncate(self, size: int) -> None:
        try:
            os.ftruncate(self.fd, size)
        except OSError as exc:
            raise _io_error(exc, self.path, "truncating") from None

    def sync(self) -> None:
        try:
            (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(self.fd)
        except OSError as exc:
            raise _io_error(exc, self.path, "flushing") from None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


class FrontierHasher:
    """SHA-256 of a part file in file order, computed behind the writers (see module docstring).

    `advance_to(n)` says bytes [0, n) are written; hashing runs in `executor` and never blocks the
    event loop. `reset()` starts over (the server ignored Range and we rewrite from byte 0).
    """

    def __init__(self, part: PartFile, executor: Executor,
                 on_progress: Callable[[int], None] | None = None) -> None:
        self._part = part
        self._executor = executor
        self._on_progress = on_progress
        self._h = hashlib.sha256()
        self._gen = 0
        self.frontier = 0
        self._target = 0
        self._wake = asyncio.Event()
        self._moved = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._error: BaseException | None = None
        self._buf = bytearray(HASH_CHUNK)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cmr-hash")

    def advance_to(self, written_prefix: int) -> None:
        if written_prefix > self._target:
            self._target = written_prefix
            self._wake.set()

    def reset(self) -> None:
        self._gen += 1
        self._h = hashlib.sha256()
        self.frontier = 0
        self._target = 0
        self._moved.set()

    def _hash_range(self, h, start: int, n: int) -> None:
        view = memoryview(self._buf)[:n]
        got = os.preadv(self._part.fd, [view], start)
        if got != n:
            raise DownloadError(f"Read back {got} of {n} bytes at offset {start} of {self._part.path}.")
        h.update(view)

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self.frontier < self._target:
                    gen, h, start = self._gen, self._h, self.frontier
                    n = min(HASH_CHUNK, self._target - start)
                    await self._part.run(self._executor, self._hash_range, h, start, n)
                    if gen != self._gen:
                        break  # reset while hashing: discard
                    self.frontier = start + n
                    self._moved.set()
                    if self._on_progress:
                        self._on_progress(self.frontier)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced by wait_for
            self._error = exc
            self._moved.set()

    async def wait_until(self, n: int) -> None:
        """Wait until bytes [0, n) are hashed."""
        self.advance_to(n)
        while self.frontier < n:
            if self._error:
                raise self._error
            self._moved.clear()
            await self._moved.wait()
        if self._error:
            raise self._error

    async def changed(self) -> None:
        """Wait until the frontier moves (used to throttle connections that run too far ahead)."""
        self._moved.clear()
        await self._moved.wait()

    def hexdigest(self) -> str:
        return self._h.hexdigest()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
