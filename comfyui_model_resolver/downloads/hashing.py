"""The SHA-256 of a part file, computed from the buffers the download writes, in file order.

SHA-256 needs the bytes in file order, but segmented downloads write pieces out of order. The
hasher keeps a *frontier*: every byte before it has been hashed. The downloader says two things:

* `offer(offset, data)`: this buffer is now on disk at `offset`. Buffers that extend the written
  prefix of the file are always kept; buffers further ahead (another connection's piece) are kept
  while they fit in `HOLD_BUDGET`, and dropped otherwise.
* `advance_to(n)`: bytes [0, n) are on disk (the contiguous written prefix).

One task moves the frontier to the written prefix: it takes the kept buffers that start at the
frontier and hashes them, in batches of up to `HASH_BATCH` bytes, in a worker thread (hashlib
releases the GIL on large buffers, so receiving, writing and hashing run at the same time: a
pipeline receive -> pwrite -> hash, and the data is never read back). Only bytes that were not
kept are read back with ``pread`` (from the page cache, where they were just written):

* a resumed download in a new process re-hashes the bytes an earlier run left on disk, once;
* a piece written further ahead of the frontier than the hold budget allows.

`read_back` counts those bytes (0 for a fresh download that fits the budget). Writers call
`drain()` so that they wait while more than `MAX_BACKLOG` written bytes are not hashed yet: when
SHA-256 is slower than the network, the download slows to the hash speed instead of buffering.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
from concurrent.futures import Executor
from typing import Callable

from ..errors import DownloadError
from .partfile import PartFile

__all__ = ["OrderedHasher", "HOLD_BUDGET", "MAX_BACKLOG"]

HASH_BATCH = 8 * 1024 * 1024  # bytes hashed per worker-thread call
READ_CHUNK = 8 * 1024 * 1024  # bytes read back per call when a range was not kept
HOLD_BUDGET = 128 * 1024 * 1024  # out-of-order bytes kept in memory until the frontier reaches them
MAX_BACKLOG = 64 * 1024 * 1024  # written-but-unhashed prefix bytes before writers wait


class OrderedHasher:
    """SHA-256 in file order, behind the writers (see the module docstring).

    `reset()` starts over (the server ignored Range and the file is rewritten from byte 0)."""

    def __init__(self, part: PartFile, executor: Executor,
                 on_progress: Callable[[int], None] | None = None, *, hold_budget: int = HOLD_BUDGET) -> None:
        self._part = part
        self._executor = executor
        self._on_progress = on_progress
        self._hold_budget = hold_budget
        self._h = hashlib.sha256()
        self._gen = 0
        self.frontier = 0
        self._target = 0
        self._held: dict[int, tuple[int, list]] = {}  # offset -> (length, buffers)
        self._held_ahead = 0  # bytes kept that lie beyond the written prefix when offered
        self.read_back = 0
        self._wake = asyncio.Event()
        self._moved = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._error: BaseException | None = None
        self._buf: bytearray | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cmr-hash")

    # ---- what the writers say ----------------------------------------------------------------
    def offer(self, offset: int, buffers: list, length: int) -> None:
        """`buffers` (`length` bytes in all) are on disk from `offset`; keep them for hashing if they
        are wanted and fit."""
        if length <= 0 or offset + length <= self.frontier:
            return
        if offset < self.frontier:  # defensive: the front was hashed already
            joined = memoryview(b"".join(buffers))[self.frontier - offset:]
            buffers, length, offset = [joined], len(joined), self.frontier
        if offset in self._held:
            return
        if offset > self._target:  # ahead of the written prefix: another connection's piece
            if self._held_ahead + length > self._hold_budget:
                return  # read back later
            self._held_ahead += length
        self._held[offset] = (length, buffers)

    def advance_to(self, written_prefix: int) -> None:
        if written_prefix > self._target:
            self._target = written_prefix
            self._wake.set()

    @property
    def backlog(self) -> int:
        """Bytes written in the prefix but not hashed yet."""
        return self._target - self.frontier

    @property
    def held_bytes(self) -> int:
        return sum(n for n, _ in self._held.values())

    def reset(self) -> None:
        self._gen += 1
        self._h = hashlib.sha256()
        self.frontier = 0
        self._target = 0
        self._held.clear()
        self._held_ahead = 0
        self._moved.set()

    # ---- the hashing task --------------------------------------------------------------------
    @staticmethod
    def _hash_buffers(h, buffers: list) -> None:
        for b in buffers:
            h.update(b)

    def _hash_range(self, h, start: int, n: int) -> None:
        if self._buf is None:
            self._buf = bytearray(READ_CHUNK)
        view = memoryview(self._buf)[:n]
        got = os.preadv(self._part.fd, [view], start)
        if got != n:
            raise DownloadError(f"Read back {got} of {n} bytes at offset {start} of {self._part.path}.")
        h.update(view)

    def _take_batch(self, start: int) -> tuple[list, int]:
        """Kept buffers that continue the file from `start`, within the written prefix."""
        batch: list = []
        pos = start
        while pos - start < HASH_BATCH:
            got = self._held.get(pos)
            if got is None or pos + got[0] > self._target:
                break
            del self._held[pos]
            batch.extend(got[1])
            pos += got[0]
        return batch, pos - start

    async def _run(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self.frontier < self._target:
                    gen, h, start = self._gen, self._h, self.frontier
                    batch, n = self._take_batch(start)
                    if batch:
                        await self._part.run(self._executor, self._hash_buffers, h, batch)
                    elif start in self._held:
                        break  # kept but not all written yet: wait for the prefix to grow
                    else:
                        nxt = min((o for o in self._held if o > start), default=self._target)
                        n = min(READ_CHUNK, self._target - start, nxt - start)
                        await self._part.run(self._executor, self._hash_range, h, start, n)
                        self.read_back += n
                    if gen != self._gen:
                        break  # reset while hashing: discard
                    self.frontier = start + n
                    self._recount_ahead()
                    self._moved.set()
                    if self._on_progress:
                        self._on_progress(self.frontier)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # surfaced by wait_until / drain
            self._error = exc
            self._moved.set()

    def _recount_ahead(self) -> None:
        # Buffers that were ahead when offered count against the hold budget until the written
        # prefix reaches them; recomputing is cheap (a few hundred buffers at most).
        self._held_ahead = sum(n for o, (n, _) in self._held.items() if o > self._target)

    # ---- waiting -----------------------------------------------------------------------------
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

    async def drain(self, limit: int = MAX_BACKLOG) -> None:
        """Wait while more than `limit` written bytes wait to be hashed (the hash is the bottleneck)."""
        while self.backlog > limit:
            if self._error:
                raise self._error
            self._moved.clear()
            await self._moved.wait()

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
        self._held.clear()
