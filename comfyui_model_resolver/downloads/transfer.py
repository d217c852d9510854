"""Moving the bytes of one file into its part file: probe, segments, resume, retries, hashing.

The sequence, for one `Transfer.run()`:

1. **Open** the URL with ``Range: bytes=<first missing byte>-`` (redirects followed and checked
   per hop by `http.open_url`). That one response tells the size (``Content-Range`` /
   ``Content-Length``), whether ranges work (206 vs 200), the validators (ETag, the Hub's sha256)
   — and it is not wasted: its body becomes the first piece.
2. **Validate a resume.** When the part file already holds bytes from an earlier run, the new
   answer must describe the same file: same size, same Hub sha256 (when the Hub gave one — the
   CDN's own ETag is then ignored, contract A.5.1), else same strong ETag, sent as ``If-Range`` so
   a changed file comes back whole (200). Anything else starts over from byte 0, cleanly.
   ``416`` means we asked past the end: if the file is exactly as long as what we hold, it is
   complete; otherwise start over.
3. **Reserve space**: free-space check (InsufficientSpace says how much is needed and free), then
   ``posix_fallocate`` so the disk cannot fill up half-way for a file of known size.
4. **Download.** Files larger than `Settings.segment_threshold` on servers that honour ranges
   are cut into pieces (`intervals.piece_size`) fetched by `Settings.segments` connections, each
   taking the lowest piece not yet taken; at the end idle connections split the largest piece
   left (work stealing), so one slow connection does not hold up the finish. Other files use one
   stream. Each connection retries on its own (the upstream policy's `RetryPolicy`: exponential
   backoff with jitter, honouring Retry-After), and resumes at the last byte it wrote; its retry budget
   (`Settings.download_retries`) refills whenever data arrives. No data for
   `Settings.stall_timeout` seconds counts as a dropped connection.
5. **Hash while downloading**: every written buffer goes to `hashing.OrderedHasher`, which hashes
   it in file order in a worker thread (no read-back; see `body.copy_body` for the pipeline),
   checkpoint the written intervals to SQLite every few seconds (after an fsync with
   CMR_DOWNLOAD_FSYNC), and return size + sha256.

The pieces: `schedule` (who fetches which bytes), `answers` (what a server's answer means),
`body` (copying one response into the part file), `hashing` (the SHA-256 in file order).
Writes, fsync and hashing run in worker threads; the event loop only moves buffers.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

import aiohttp

from ..errors import (DownloadError, HostNotAllowed, InsufficientSpace, NotFound, RateLimited, ResolverError,
                      SourceError)
from . import intervals as iv
from ..upstream import RetryPolicy
from .answers import Complete, Probe, Restart, adopt, check_piece, open_bounded, probe
from .body import copy_body
from .hashing import HOLD_BUDGET, OrderedHasher
from .http import Opened, Retryable, TokenPolicy
from .job import SpeedMeter
from .partfile import PartFile, format_bytes
from .schedule import Piece, Scheduler, first_failure
from .store import JobRecord

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Executor

    from ..settings import Settings

__all__ = ["RetryPolicy", "Transfer", "TransferResult", "Probe", "probe", "open_bounded"]

CHECKPOINT_SECONDS = 2.0
MAX_RESTARTS = 3  # "start over from byte 0" at most this often per run
#: One stream at least this fast (bytes/s) is not split over more connections.
FAST_SINGLE_STREAM = 300 * 1024 * 1024
#: Connections may take a piece that ends this far ahead of the hash frontier: the out-of-order
#: bytes the hasher keeps in memory, so that a segmented download is hashed without reading back.
MAX_HASH_LAG = HOLD_BUDGET


@dataclass
class TransferResult:
    size: int
    sha256: str
    read_back: int = 0  # bytes hashed by reading the part file (resumed bytes, or beyond the hold budget)


class Transfer:
    """Downloads `rec.url` into `part_path`, resuming from `rec.done`. Mutates `rec` as it learns."""

    def __init__(self, rec: JobRecord, part_path: str, *, session: aiohttp.ClientSession,
                 settings: Callable[[], "Settings"], executor: "Executor", retry: RetryPolicy,
                 save: Callable[[JobRecord], Awaitable[None]], on_progress: Callable[[], None],
                 on_detail: Callable[[str | None], None]) -> None:
        self.rec = rec
        self.part_path = part_path
        self.session = session
        self._settings = settings
        self.executor = executor
        self.retry = retry
        self._save = save
        self._on_progress = on_progress
        self._on_detail = on_detail
        self.meter = SpeedMeter()
        self.connections = 0
        self.final_url: str | None = None
        self.resumed_from = 0
        self._sched: Scheduler | None = None
        self._part: PartFile | None = None
        self._hasher: OrderedHasher | None = None
        self._resolve_lock = asyncio.Lock()

    # ---- state -------------------------------------------------------------------------
    @property
    def settings(self) -> "Settings":
        return self._settings()

    @property
    def bytes_done(self) -> int:
        if self._sched is not None:
            return iv.covered(self._sched.intervals())
        return iv.covered(tuple(x) for x in self.rec.done)

    def _intervals(self) -> list[iv.Interval]:
        if self._sched is not None:
            return self._sched.intervals()
        return iv.merge(tuple(x) for x in self.rec.done)

    async def checkpoint(self) -> None:
        """Store which bytes the part file holds.

        Written bytes survive a crash or kill -9 of this process (they are in the page cache). With
        CMR_DOWNLOAD_FSYNC the part file is also fsynced first, so that even after a power cut the
        stored intervals never claim bytes the disk does not have.
        """
        if self._part is None or self._part.closed:
            return
        spans = self._intervals()
        if self.settings.download_fsync:
            await self._part.run(self.executor, self._part.sync)
        self.rec.done = [list(x) for x in spans]
        await self._save(self.rec)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            try:
                await self.checkpoint()
            except ResolverError:
                pass  # the writers report the same disk error

    # ---- entry point -------------------------------------------------------------------
    async def run(self) -> TransferResult:
        self._part = await asyncio.get_running_loop().run_in_executor(self.executor, PartFile, self.part_path)
        self._hasher = OrderedHasher(self._part, self.executor)
        self._hasher.start()
        ticker = asyncio.get_running_loop().create_task(self._checkpoint_loop(), name="cmr-checkpoint")
        try:
            return await self._run()
        finally:
            ticker.cancel()
            try:
                await ticker
            except asyncio.CancelledError:
                pass
            try:
                await asyncio.shield(self._final_checkpoint())
            finally:
                await self._hasher.close()
                await self._part.aclose()
                self.connections = 0

    async def _final_checkpoint(self) -> None:
        try:
            await self.checkpoint()
        except ResolverError:
            pass

    # ---- the sequence ------------------------------------------------------------------
    def _validator(self) -> str | None:
        """If-Range value: the strong ETag, unless the Hub's sha256 identifies the file (A.5.1)."""
        if self.rec.server_sha256:
            return None
        etag = self.rec.etag
        return etag if etag and not etag.startswith("W/") else None

    async def _open_any(self, **kw) -> Opened:
        """Open the cached final URL (no Hub round trip); go back to the original URL if it expired.

        Re-resolving is serialised: when a signed URL expires under four connections, the Hub
        is asked once and the others wait for its answer.
        """
        s = self.settings
        tokens: TokenPolicy = "auto" if self.rec.tokens else "none"
        cached = self.final_url
        if cached and cached != self.rec.url:
            try:
                return await open_bounded(self.session, cached, s, tokens=tokens, **kw)
            except HostNotAllowed:
                raise
            except (NotFound, SourceError) as exc:
                if isinstance(exc, RateLimited):
                    raise
                if self.final_url == cached:
                    self.final_url = None  # signed URL expired or revoked: resolve again
        async with self._resolve_lock:
            fresh = self.final_url
            if fresh and fresh != cached and fresh != self.rec.url:
                return await open_bounded(self.session, fresh, s, tokens=tokens, **kw)
            opened = await open_bounded(self.session, self.rec.url, s, tokens=tokens, **kw)
            self.final_url = opened.url
            return opened

    def _reset(self, reason: str) -> None:
        self.rec.done = []
        self._sched = None
        if self._hasher is not None:
            self._hasher.reset()
        self._on_detail(f"starting over: {reason}")

    async def _run(self) -> TransferResult:
        rec = self.rec
        part = self._part
        assert part is not None and self._hasher is not None
        length, _alloc = await part.run(self.executor, part.size_on_disk)
        done = iv.merge(tuple(x) for x in rec.done)
        if done and done[-1][1] > length:  # the part file lost bytes (deleted, truncated): start over
            done = []
        rec.done = [list(x) for x in done]
        self.resumed_from = iv.covered(done)
        restarts = 0
        failures = 0
        carry: Opened | None = None
        while True:
            done = iv.merge(tuple(x) for x in rec.done)
            if rec.total is not None:
                done = iv.clip(done, rec.total)
                gaps = iv.holes(done, rec.total)
                if not gaps and carry is None:
                    return await self._finish(rec.total)
            else:
                gaps = iv.holes(done, 1 << 62)
            start = gaps[0][0] if gaps else 0
            try:
                if carry is not None:
                    opened, carry = carry, None
                else:
                    opened = await self._open_any(start=start, if_range=self._validator() if start else None)
                await self._adopt(opened, start, done)
                failures = 0
            except Restart as r:
                restarts += 1
                carry = self._start_over(r, restarts)
                continue
            except Complete as c:
                return await self._finish(c.size)
            except Retryable as e:
                failures += 1
                await self._backoff(e, failures)
                continue
            try:
                await self._download(opened)
            except Restart as r:
                restarts += 1
                carry = self._start_over(r, restarts)
                continue
            assert rec.total is not None
            return await self._finish(rec.total)

    def _start_over(self, r: Restart, restarts: int) -> Opened | None:
        """The server's file changed under us (or ignored Range): drop what we have and go on with the
        response it already sent, if any, unless that keeps happening."""
        if restarts > MAX_RESTARTS:
            raise DownloadError(f"Gave up after starting over {MAX_RESTARTS} times: {r.reason}.",
                                hint="The server keeps changing the file; try again later.") from None
        self._reset(r.reason)
        return r.opened

    async def _backoff(self, e: Retryable, failures: int) -> None:
        retries = e.budget(self.settings.download_retries)
        delay = self.retry.next_delay(failures, retries, e.retry_after)
        if delay is None:
            raise e.error
        self._on_detail(f"{e.error.message} — retry {failures}/{retries} in {delay:.1f} s")
        await asyncio.sleep(delay)
        self._on_detail(None)

    async def _adopt(self, opened: Opened, start: int, done: list[iv.Interval]) -> None:
        """Interpret the first response (`answers.adopt`), then reserve the space and save the job."""
        adopt(self.rec, opened, start, done, validated=bool(self._validator()))
        if self.rec.total is not None:
            await self._reserve(self.rec.total)
        await self._save(self.rec)

    async def _reserve(self, total: int) -> None:
        part = self._part
        assert part is not None
        length, allocated = await part.run(self.executor, part.size_on_disk)
        need = max(0, total - max(allocated, 0))
        if need:
            free = await asyncio.get_running_loop().run_in_executor(
                self.executor, lambda: shutil.disk_usage(os.path.dirname(self.part_path)).free)
            if need > free:
                raise InsufficientSpace(
                    f"Not enough disk space for {os.path.basename(self.rec.path or self.part_path)}: "
                    f"{format_bytes(need)} needed, {format_bytes(free)} free in {os.path.dirname(self.part_path)}.",
                    hint="Free up space or download into another models folder.")
        if total:
            await part.run(self.executor, part.preallocate, total)

    async def _download(self, first: Opened) -> None:
        rec = self.rec
        s = self.settings
        total = rec.total
        done = iv.merge(tuple(x) for x in rec.done)
        segmented = bool(rec.ranges and total is not None and total > s.segment_threshold and s.segments > 1)
        if total is None:
            # Size unknown (chunked): one stream to EOF from where we are.
            start = iv.prefix_end(done)
            self._sched = Scheduler(done, [(start, 1 << 62)], segmented=False, max_lag=0, open_end=True)
            workers = 1
        else:
            gaps = iv.holes(done, total)
            if segmented:
                pieces = iv.split(gaps, iv.piece_size(total, s.segments))
                workers = min(s.segments, max(1, len(pieces)))
            else:
                pieces = gaps
                workers = 1
            lag = max(MAX_HASH_LAG, 2 * iv.piece_size(total, s.segments))  # piece_size <= MAX_PIECE
            self._sched = Scheduler(done, pieces, segmented=segmented, max_lag=lag)
        self._advance_hash()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._worker(first), name="cmr-conn-0")]
        if workers > 1:
            tasks.append(loop.create_task(self._ramp_up(tasks, workers), name="cmr-ramp-up"))
        try:
            await first_failure(tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if total is None:  # EOF decided the size
            rec.total = self._sched.intervals()[-1][1] if self._sched.intervals() else 0
            self._sched = Scheduler([(0, rec.total)] if rec.total else [], [], segmented=False, max_lag=0)

    async def _ramp_up(self, tasks: list[asyncio.Task], workers: int) -> None:
        """Open the other connections only when one is slow.

        More connections pay off when a server or CDN caps each connection's speed; on a fast
        link one stream is already as fast as the disk and the SHA-256 allow, and extra
        connections only compete for the CPU. So measure the first stream for a moment and
        add the rest when it is below `FAST_SINGLE_STREAM` (Settings.download_ramp_probe = 0:
        open them all at once)."""
        probe = self.settings.download_ramp_probe
        if probe > 0:
            start_bytes, start = self.bytes_done, time.monotonic()
            await asyncio.wait([tasks[0]], timeout=probe)  # ends early when the one stream is done
            if tasks[0].done():
                return
            rate = (self.bytes_done - start_bytes) / max(1e-6, time.monotonic() - start)
            if rate >= FAST_SINGLE_STREAM:
                self._on_detail(None)
                return
        loop = asyncio.get_running_loop()
        for i in range(1, workers):
            tasks.append(loop.create_task(self._worker(None), name=f"cmr-conn-{i}"))

    async def _claim(self) -> Piece | None:
        assert self._sched is not None and self._hasher is not None
        while True:
            got = self._sched.claim(self._hasher.frontier)
            if got != "wait":
                return got  # type: ignore[return-value]
            try:
                await asyncio.wait_for(self._hasher.changed(), 1.0)
            except asyncio.TimeoutError:
                pass

    async def _worker(self, first: Opened | None) -> None:
        s = self.settings
        while True:
            piece = await self._claim()
            if piece is None:
                if first is not None:
                    first.close()
                return
            failures = 0
            self.connections += 1
            try:
                while not piece.complete:
                    before = piece.written
                    try:
                        opened, first = first, None
                        if opened is None:
                            end = piece.end - 1 if piece.end is not None else None
                            opened = await self._open_any(start=piece.written, end=end, if_range=self._validator())
                            check_piece(self.rec, opened, piece, segmented=self._sched is None or self._sched.segmented)
                        await self._stream(opened, piece)
                        if piece.end is None:  # open-ended stream reached EOF
                            piece.end = piece.written
                    except Retryable as e:
                        if piece.written > before:
                            failures = 0
                        failures += 1
                        piece.pos = piece.written
                        retries = e.budget(s.download_retries)
                        delay = self.retry.next_delay(failures, retries, e.retry_after)
                        if delay is None:
                            raise e.error from None
                        self._on_detail(f"{e.error.message} — retry {failures}/{retries} in {delay:.1f} s")
                        await asyncio.sleep(delay)
                        self._on_detail(None)
            finally:
                self.connections -= 1
            self._sched.finish(piece)  # type: ignore[union-attr]

    async def _stream(self, opened: Opened, piece: Piece) -> None:
        assert self._part is not None and self._hasher is not None
        await copy_body(opened, piece, part=self._part, executor=self.executor, hasher=self._hasher,
                        meter=self.meter, stall_timeout=self.settings.stall_timeout,
                        on_written=self._advance_hash, on_progress=self._on_progress)

    def _advance_hash(self) -> None:
        if self._sched is not None and self._hasher is not None:
            self._hasher.advance_to(self._sched.prefix_end())

    async def _finish(self, total: int) -> TransferResult:
        part = self._part
        assert part is not None and self._hasher is not None
        self._sched = Scheduler([(0, total)] if total else [], [], segmented=False, max_lag=0)
        length, _ = await part.run(self.executor, part.size_on_disk)
        if length != total:
            await part.run(self.executor, part.truncate, total)
        self._on_detail("verifying")
        await self._hasher.wait_until(total)
        self.rec.done = [[0, total]] if total else []
        return TransferResult(size=total, sha256=self._hasher.hexdigest(), read_back=self._hasher.read_back)
