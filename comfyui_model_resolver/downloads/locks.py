"""Cross-process (and cross-host) "one download per target file" locks.

* `FileLock`: ``flock`` on ``<final>.lock`` next to the part file. Works between processes on one
  host and, through the kernel's NFS lock emulation, between hosts sharing an NFS volume. The lock
  file holds who owns it (host, pid, job) so a waiting process can say who it waits for; it is
  removed on release, and a locker that finds its file unlinked under it retries with a new one.
* `RedisLock` (when CMR_REDIS_URL is set): ``SET key owner NX PX lease`` renewed every third of
  the lease, released with a compare-and-delete script. A holder that dies stops renewing, and the
  lock expires after one lease. Keys are ``cmr:download:<sha256 of the final path>``, so hosts must
  mount the shared models volume at the same path.

Both have the same small async interface: `try_acquire()`, `owner()`, `release()`, and `lost`
(an event set when a Redis lease could not be renewed). `acquire_lock` waits for one (saying whom
it waits for); `run_holding` runs the download while watching `lost`.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from typing import Any, Awaitable, Callable

from ..errors import DownloadError, ResolverError
from ..hosts import redact_url

log = logging.getLogger(__name__)

__all__ = ["PathLock", "FileLock", "RedisLock", "owner_text", "acquire_lock", "run_holding", "LOCK_POLL_SECONDS"]

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

    lost: asyncio.Event

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
        self.lost = asyncio.Event()

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


_RELEASE_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_RENEW_LUA = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
              "else return 0 end")


class RedisLock(PathLock):
    LEASE_MS = 30_000

    def __init__(self, client: Any, final_path: str, job_id: str, lease_ms: int | None = None) -> None:
        self.client = client
        self.key = "cmr:download:" + hashlib.sha256(os.path.abspath(final_path).encode()).hexdigest()
        self.job_id = job_id
        self.lease_ms = lease_ms or self.LEASE_MS
        self.token = json.dumps({**_owner_info(job_id), "id": uuid.uuid4().hex})
        self._held = False
        self._renewer: asyncio.Task | None = None
        self.lost = asyncio.Event()

    async def try_acquire(self) -> bool:
        if self._held:
            return True
        ok = await self.client.set(self.key, self.token, nx=True, px=self.lease_ms)
        if ok:
            self._held = True
            self.lost.clear()
            self._renewer = asyncio.get_running_loop().create_task(self._renew(), name="cmr-redis-lease")
        return bool(ok)

    async def _renew(self) -> None:
        interval = self.lease_ms / 3000
        last_ok = time.monotonic()
        while self._held:
            await asyncio.sleep(interval)
            try:
                ok = await self.client.eval(_RENEW_LUA, 1, self.key, self.token, self.lease_ms)
                if ok:
                    last_ok = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis unreachable: retry until the lease runs out
                log.warning("cannot renew the download lock %s: %s", self.key, exc)
                ok = (time.monotonic() - last_ok) * 1000 < self.lease_ms - interval * 1000
            if not ok:
                log.warning("lost the download lock %s", self.key)
                self._held = False
                self.lost.set()
                return

    async def owner(self) -> dict | None:
        raw = await self.client.get(self.key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    async def release(self) -> None:
        held, self._held = self._held, False
        if self._renewer is not None:
            self._renewer.cancel()
            try:
                await self._renewer
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._renewer = None
        if held:
            try:
                await self.client.eval(_RELEASE_LUA, 1, self.key, self.token)
            except Exception as exc:  # noqa: BLE001 - the lease expires on its own
                log.warning("cannot release the download lock %s: %s", self.key, exc)


async def acquire_lock(lock: PathLock, *, target: str, redis_url: str | None,
                       announce: Callable[[str | None], None], poll: float = LOCK_POLL_SECONDS) -> None:
    """Wait until `lock` is ours. While another process holds it, `announce` says who (once per
    change of owner), and `announce(None)` clears that once the lock is taken."""
    announced = None
    while True:
        try:
            got = await lock.try_acquire()
        except OSError as exc:
            raise DownloadError(f"Cannot create the lock file next to {target}: {exc.strerror or exc}.",
                                hint="Check that the models folder is writable.") from None
        except Exception as exc:  # noqa: BLE001 - Redis client errors
            if isinstance(exc, ResolverError):
                raise
            raise DownloadError(f"Cannot reach Redis for the download lock "
                                f"({redact_url(redis_url or '')}): {type(exc).__name__}.",
                                hint="Check CMR_REDIS_URL, or unset it to use file locks.") from None
        if got:
            break
        text = f"already downloading in {owner_text(await lock.owner())}; waiting for it"
        if text != announced:
            announced = text
            announce(text)
        await asyncio.sleep(poll)
    if announced:
        announce(None)


async def run_holding(lock: PathLock, work: Callable[[], Awaitable[None]]) -> bool:
    """Run `work()` while `lock` is held. Returns True (after cancelling the work) if the lock was
    lost meanwhile (a Redis lease that could not be renewed), False when the work finished."""
    loop = asyncio.get_running_loop()
    task = loop.create_task(work())
    lost = loop.create_task(lock.lost.wait())
    try:
        await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        lost.cancel()
        await asyncio.gather(task, lost, return_exceptions=True)
        raise
    if task.done():
        lost.cancel()
        await asyncio.gather(lost, return_exceptions=True)
        task.result()
        return False
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return True
