"""The ``<final>.part`` file: positional writes from several connections, pre-allocation, fsync.

Every method blocks; `PartFile.run` calls one in a worker thread and `aclose` waits for all such
calls before the descriptor is closed. The SHA-256 of the file is computed by
`hashing.OrderedHasher` from the buffers written here, while the download runs.
"""
from __future__ import annotations

import asyncio
import errno
import os
import stat
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_futures
from typing import Callable

from ..errors import DownloadError, InsufficientSpace, UnsafePath

__all__ = ["PartFile", "format_bytes", "open_no_follow"]

_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


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


_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_no_follow(path: str, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """Open (create) a file we own next to a model: never through a symbolic link, never a file that
    has another name too (a hard link), never anything but a regular file — writing through those
    would change a file elsewhere (outside the models root, or another model).

    Raises UnsafePath for a link; OSError otherwise."""
    try:
        fd = os.open(path, flags | _NO_FOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (not _NO_FOLLOW and os.path.islink(path)):
            raise UnsafePath(f"{path} is a symbolic link; refusing to write through it.",
                             hint="Remove the link (the resolver only writes plain files in the models folder).") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1 or (not _NO_FOLLOW and os.path.islink(path)):
            what = "has another name too (a hard link)" if stat.S_ISREG(st.st_mode) else "is not a regular file"
            raise UnsafePath(f"{path} {what}; refusing to write to it.",
                             hint="Remove it; the resolver only writes plain files of its own.")
    except BaseException:
        os.close(fd)
        raise
    return fd


class PartFile:
    """An open part file. Methods block; call them from a worker thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.fd = open_no_follow(path)
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

    def write_buffers(self, offset: int, buffers: list) -> int:
        """Write `buffers` back to back from `offset`: one ``pwritev``, no joining copy."""
        if len(buffers) == 1 or not hasattr(os, "pwritev"):
            return self.write_at(offset, buffers[0] if len(buffers) == 1 else b"".join(buffers))
        total = sum(len(b) for b in buffers)
        try:
            done = os.pwritev(self.fd, buffers, offset)
        except OSError as exc:
            raise _io_error(exc, self.path, "writing") from None
        if done < total:  # a short write (rare): write the rest plainly
            rest = b"".join(buffers)[done:]
            done += self.write_at(offset + done, rest)
        return done

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
