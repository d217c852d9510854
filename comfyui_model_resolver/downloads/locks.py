"""Cross-process (and cross-host) "one download per target file" locks.

`FileLock`: ``flock`` on ``<final>.lock`` next to the part file. Works between processes on one
host and, through the kernel's NFS lock emulation, between hosts sharing an NFS volume; the kernel
drops it when its process dies (kill -9 included). The lock file holds who owns it (host, pid,
job) so a waiting process can say who it waits for; it is removed on release, and a locker that
finds its file unlinked under it retries with a new one.

In a fleet (CMR_REDIS_URL) the fleet queue keeps one job per file of the volume; the file lock is
what still holds while Redis is away. `acquire_lock` waits for the lock, saying whom it waits for.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import time
from typing import Any, Callable

from ..errors import DownloadError
from .paths import LOCK_SUFFIX

log = logging.getLogger(__name__)

__all__ = ["PathLock", "FileLock", "file_lock", "owner_text", "acquire_lock", "LOCK_POLL_SECONDS"]

LOCK_POLL_SECONDS = 0.5


def _owner_info(job_id: str) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "job": job_id, "since": time.time()}


def owner_text(owner: dict | None) -> str:
    if not owner:
        return "another process"
    where = f"process {owner.get('pid', '?')}"
    host = owner.get("host")
    if host and host != socket.gethostname():
        where += f" on {host}"
    return where


class PathLock:
    """Interface shared by the lock kinds."""

    async def try_acquire(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    async def owner(self) -> dict | None:  # pragma: no cover - interface
        raise NotImplementedError

    async def release(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class FileLock(PathLock):
    def __init__(self, lock_path: str, job_id: str) -> None:
        self.path = lock_path
        self.job_id = job_id
        self._fd: int | None = None

    def _try(self) -> bool:
        import fcntl

        from .partfile import open_no_follow  # never through a link: the lock file is truncated below

        for _ in range(5):
            fd = open_no_follow(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return False
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the file between our open and flock: try a fresh one
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(_owner_info(self.job_id)).encode(), 0)
            self._fd = fd
            return True
        return False

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        return await asyncio.to_thread(self._try)

    def _read_owner(self) -> dict | None:
        try:
            with open(self.path, "rb") as f:
                return json.loads(f.read(4096) or b"null")
        except (OSError, ValueError):
            return None

    async def owner(self) -> dict | None:
        return await asyncio.to_thread(self._read_owner)

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(fd)  # closing drops the flock

    async def release(self) -> None:
        await asyncio.to_thread(self._release)


async def file_lock(final_path: str, job_id: str) -> FileLock:
    """The lock that keeps one download per target file, next to its part file. It holds between
    processes, between hosts of a shared volume (NFS locks), and in a fleet while Redis is away
    (the fleet queue keeps one job per file while Redis is there)."""
    try:  # sub-folders of the name ("SD1.5/x.safetensors") are created here, inside the folder
        await asyncio.to_thread(os.makedirs, os.path.dirname(final_path), exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"Cannot create the folder {os.path.dirname(final_path)}: {exc.strerror or exc}.",
                            hint="Check that the models folder is writable.") from None
    return FileLock(final_path + LOCK_SUFFIX, job_id)


async def acquire_lock(lock: PathLock, *, target: str, announce: Callable[[str | None], None], poll: float = LOCK_POLL_SECONDS) -> None:
    """Wait until `lock` is ours. While another process holds it, `announce` says who (once per
    change of owner), and `announce(None)` clears that once the lock is taken."""
    announced = None
    while True:
        try:
            got = await lock.try_acquire()
        except OSError as exc:
            raise DownloadError(f"Cannot create the lock file next to {target}: {exc.strerror or exc}.",
                                hint="Check that the models folder is writable.") from None
        if got:
            break
        text = f"already downloading in {owner_text(await lock.owner())}; waiting for it"
        if text != announced:
            announced = text
            announce(text)
        await asyncio.sleep(poll)
    if announced:
        announce(None)
