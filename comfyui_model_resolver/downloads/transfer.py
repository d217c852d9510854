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
5. **Hash while downloading** (`partfile.FrontierHasher`), checkpoint the written intervals to
   SQLite every few seconds (after an fsync with CMR_DOWNLOAD_FSYNC), and return size + sha256.

Writes, fsync and hashing run in worker threads; the event loop only moves buffers.
"""
from __future__ import annotations

import asyncio
import time
import os
import shutil
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

import aiohttp

from ..errors import (DownloadError, HostNotAllowed, InsufficientSpace, IntegrityError, NotFound, RateLimited,
                      ResolverError, SourceError, SourceUnavailable)
from ..hosts import redact_url
from . import intervals as iv
from ..upstream import RetryPolicy
from .http import Opened, Retryable, TokenPolicy, open_url, parse_content_range
from .job import SpeedMeter
from .partfile import FrontierHasher, PartFile, format_bytes
from .store import JobRecord

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Executor

    from ..settings import Settings

__all__ = ["RetryPolicy", "Transfer", "TransferResult", "Probe", "probe", "open_bounded"]

WRITE_CHUNK = 1024 * 1024  # bytes gathered before one pwrite
MAX_PENDING_WRITES = 8  # per connection
CHECKPOINT_SECONDS = 2.0
MAX_RESTARTS = 3  # "start over from byte 0" at most this often per run
MIN_STEAL = 1024 * 1024  # a piece is split for an idle connection only if twice this is left
#: One stream at least this fast (bytes/s) is not split over more connections.
FAST_SINGLE_STREAM = 300 * 1024 * 1024
MIN_HASH_LAG = 512 * 1024 * 1024  # connections may run this far ahead of the hash frontier


@dataclass
class TransferResult:
    size: int
    sha256: str


@dataclass
class Probe:
    """What a first response says about a file (used to name a job before downloading)."""

    url: str
    content_disposition: str | None
    size: int | None
    linked_sha256: str | None


class _Restart(Exception):
    """Start over from byte 0 (the server ignored Range, or the file changed)."""

    def __init__(self, reason: str, opened: Opened | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.opened = opened  # a 200 response for the whole file, to continue with


class _Piece:
    __slots__ = ("start", "end", "pos", "written")

    def __init__(self, start: int, end: int | None) -> None:
        self.start = start
        self.end = end  # exclusive; None: until EOF (size unknown); may shrink when split
        self.pos = start  # next byte to receive
        self.written = start  # [start, written) is on disk

    @property
    def complete(self) -> bool:
        return self.end is not None and self.written >= self.end


class _Scheduler:
    """Hands out pieces lowest-offset first; splits the biggest piece in flight at the end."""

    def __init__(self, done: list[iv.Interval], pieces: list[iv.Interval], *, segmented: bool,
                 max_lag: int, open_end: bool = False) -> None:
        self.done = list(done)
        self.unclaimed: deque[iv.Interval] = deque(pieces)
        self.active: list[_Piece] = []
        self.segmented = segmented
        self.max_lag = max_lag
        self.open_end = open_end

    def claim(self, frontier: int) -> _Piece | None | str:
        if self.unclaimed:
            a, b = self.unclaimed[0]
            if self.segmented and a - frontier > self.max_lag:
                return "wait"
            self.unclaimed.popleft()
            piece = _Piece(a, None if self.open_end else b)
            self.active.append(piece)
            return piece
        if not self.segmented:
            return None
        victim = max((p for p in self.active if p.end is not None), key=lambda p: p.end - p.pos, default=None)
        if victim is None or victim.end - victim.pos < 2 * MIN_STEAL:
            return None
        mid = victim.pos + (victim.end - victim.pos) // 2
        mid -= mid % (64 * 1024)
        if mid <= victim.pos:
            return None
        piece = _Piece(mid, victim.end)
        victim.end = mid
        self.active.append(piece)
        return piece

    def finish(self, piece: _Piece) -> None:
        self.active.remove(piece)
        self.done = iv.merge([*self.done, (piece.start, piece.written)])

    def intervals(self) -> list[iv.Interval]:
        return iv.merge([*self.done, *((p.start, p.written) for p in self.active)])


def _timeout(settings: "Settings") -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=None, sock_connect=settings.download_timeout, sock_read=settings.stall_timeout)


async def open_bounded(session: aiohttp.ClientSession, url: str, settings: "Settings", **kw) -> Opened:
    """open_url bounded by CMR_DOWNLOAD_TIMEOUT for connect + redirects + response headers."""
    try:
        return await asyncio.wait_for(open_url(session, url, settings, timeout=_timeout(settings), **kw),
                                      settings.download_timeout)
    except asyncio.TimeoutError:
        raise Retryable(SourceUnavailable(f"No response within {settings.download_timeout:g} s from "
                                          f"{redact_url(url).split('/')[2]}.",
                                          hint="CMR_DOWNLOAD_TIMEOUT sets this limit.")) from None


async def probe(session: aiohttp.ClientSession, url: str, settings: "Settings", *,
                tokens: TokenPolicy = "auto") -> Probe:
    """Open `url` for its name and size, without downloading the body."""
    opened = await open_bounded(session, url, settings, start=0, tokens=tokens)
    try:
        size = _size_of(opened)
        return Probe(opened.url, opened.content_disposition, size, opened.linked_sha256)
    finally:
        opened.close()


def _size_of(opened: Opened) -> int | None:
    if opened.status in (206, 416):
        return parse_content_range(opened.resp.headers.get("Content-Range"))[2]
    return opened.resp.content_length


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
        self._sched: _Scheduler | None = None
        self._part: PartFile | None = None
        self._hasher: FrontierHasher | None = None
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
        self._hasher = FrontierHasher(self._part, self.executor)
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
            except _Restart as r:
                restarts += 1
                carry = self._start_over(r, restarts)
                continue
            except _Complete as c:
                return await self._finish(c.size)
            except Retryable as e:
                failures += 1
                await self._backoff(e, failures)
                continue
            try:
                await self._download(opened)
            except _Restart as r:
                restarts += 1
                carry = self._start_over(r, restarts)
                continue
            assert rec.total is not None
            return await self._finish(rec.total)

    def _start_over(self, r: _Restart, restarts: int) -> Opened | None:
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
        """Interpret the first response; raise _Restart/_Complete, or set rec.total/ranges/validators."""
        rec = self.rec
        status = opened.status
        headers = opened.resp.headers
        if status == 416:
            total = parse_content_range(headers.get("Content-Range"))[2]
            opened.release()
            if total is not None and total == start and iv.prefix_end(done) >= start:
                rec.total = total  # we already hold every byte: nothing left to fetch
                raise _Complete(total)
            if total == 0:
                rec.total = 0
                raise _Complete(0)
            if total is not None and total < start:
                rec.total = None
                raise _Restart(f"the file on the server ({format_bytes(total)}) is shorter than what we hold")
            raise Retryable(SourceError(f"The server answered 416 (range not satisfiable) to bytes {start}- of a "
                                        f"{format_bytes(total)} file ({redact_url(rec.url)}).",
                                        hint="The server mishandles range requests; try again later."))
        if status == 200:
            # We always send Range, so a 200 means ranges do not work here (or If-Range failed).
            total = opened.resp.content_length
            rec.ranges = False
            if start > 0:
                why = "the file changed on the server" if self._validator() else "the server ignored the Range request"
                raise _Restart(why, opened)
        else:  # 206
            a, _b, total = parse_content_range(headers.get("Content-Range"))
            if a != start:
                opened.close()
                raise SourceError(f"Asked for bytes from {start} but the server sent a range starting at {a}.")
            rec.ranges = True
        # Same file as the bytes we already hold?
        if done:
            changed = None
            if rec.total is not None and total is not None and total != rec.total:
                changed = f"its size changed from {rec.total} to {total} bytes"
            elif rec.server_sha256 and opened.linked_sha256 and opened.linked_sha256 != rec.server_sha256:
                changed = "the Hub reports a different SHA-256"
            elif not rec.server_sha256 and rec.etag and opened.etag and opened.etag != rec.etag:
                changed = "its ETag changed"
            if changed:
                opened.close()
                rec.total = None
                raise _Restart(f"the file changed on the server ({changed})")
        if opened.linked_sha256:
            if rec.requested_sha256 and rec.requested_sha256 != opened.linked_sha256:
                opened.close()
                raise IntegrityError(f"The server says this file's SHA-256 is {opened.linked_sha256}, but "
                                     f"{rec.requested_sha256} was requested.",
                                     hint="Check the URL and the expected hash; nothing was downloaded.")
            rec.server_sha256 = opened.linked_sha256
            rec.expected_sha256 = rec.requested_sha256 or opened.linked_sha256
        if opened.linked_size is not None and rec.expected_size is None:
            rec.expected_size = opened.linked_size
        rec.total = total
        rec.etag = opened.etag
        if total is not None:
            await self._reserve(total)
        await self._save(rec)

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
            self._sched = _Scheduler(done, [(start, 1 << 62)], segmented=False, max_lag=0, open_end=True)
            workers = 1
        else:
            gaps = iv.holes(done, total)
            if segmented:
                pieces = iv.split(gaps, iv.piece_size(total, s.segments))
                workers = min(s.segments, max(1, len(pieces)))
            else:
                pieces = gaps
                workers = 1
            lag = max(MIN_HASH_LAG, 8 * iv.piece_size(total, s.segments))
            self._sched = _Scheduler(done, pieces, segmented=segmented, max_lag=lag)
        self._advance_hash()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._worker(first), name="cmr-conn-0")]
        if workers > 1:
            tasks.append(loop.create_task(self._ramp_up(tasks, workers), name="cmr-ramp-up"))
        try:
            await _first_failure(tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if total is None:  # EOF decided the size
            rec.total = self._sched.intervals()[-1][1] if self._sched.intervals() else 0
            self._sched = _Scheduler([(0, rec.total)] if rec.total else [], [], segmented=False, max_lag=0)

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

    async def _claim(self) -> _Piece | None:
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
                            self._check_piece(opened, piece)
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

    def _check_piece(self, opened: Opened, piece: _Piece) -> None:
        rec = self.rec
        if opened.status == 206:
            a, _b, total = parse_content_range(opened.resp.headers.get("Content-Range"))
            if a != piece.written or (rec.total is not None and total is not None and total != rec.total):
                opened.close()
                raise _Restart(f"the server sent bytes {a}-/{total} when asked for {piece.written}-/{rec.total}")
            if rec.etag and opened.etag and opened.etag != rec.etag and not rec.server_sha256:
                opened.close()
                raise _Restart("the file changed on the server (its ETag changed)")
            return
        if opened.status == 200:
            if piece.written == 0 and rec.total is not None and opened.resp.content_length == rec.total \
                    and self._sched is not None and not self._sched.segmented:
                return  # a whole-file answer for a single stream at byte 0 is fine
            rec.ranges = False
            raise _Restart("the server ignored the Range request", opened)
        opened.release()
        raise _Restart(f"the server answered {opened.status} to a range request")

    async def _stream(self, opened: Opened, piece: _Piece) -> None:
        """Copy the response body into the part file from piece.pos, up to piece.end (or EOF)."""
        part = self._part
        assert part is not None
        resp = opened.resp
        pending: deque[tuple[asyncio.Future, int]] = deque()
        buf: list[bytes] = []
        buffered = 0
        base = piece.pos
        finished_body = False

        def flush() -> None:
            nonlocal buf, buffered, base
            if not buffered:
                return
            data = buf[0] if len(buf) == 1 else b"".join(buf)
            fut = asyncio.ensure_future(part.run(self.executor, part.write_at, base, data))
            # A write still in flight when this task is cancelled may fail after nobody awaits it
            # any more; its error is reported by the write that awaits it, or not at all.
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            pending.append((fut, base + len(data)))
            base += len(data)
            buf, buffered = [], 0

        broken = False  # a write failed: nothing after it may count as written (it would skip a hole)

        async def retire_one() -> None:
            nonlocal broken
            fut, end = pending.popleft()
            try:
                await asyncio.shield(fut)  # a pause must not lose track of a write in flight
            except BaseException:
                if fut.done() and not fut.cancelled() and fut.exception() is not None:
                    broken = True
                raise
            if not broken:
                piece.written = max(piece.written, end)
                self._advance_hash()

        error: BaseException | None = None
        try:
            while True:
                end = piece.end
                if end is not None and piece.pos >= end:
                    break
                try:
                    chunk = await resp.content.readany()
                except asyncio.TimeoutError:
                    raise Retryable(SourceUnavailable(
                        f"No data for {self.settings.stall_timeout:g} s (stalled) at byte {piece.pos}.",
                        hint="CMR_STALL_TIMEOUT sets how long a silent connection is tolerated.")) from None
                except (aiohttp.ClientError, ConnectionError) as exc:
                    raise Retryable(SourceUnavailable(
                        f"The connection dropped at byte {piece.pos} ({type(exc).__name__}).")) from None
                if not chunk:
                    finished_body = True
                    break
                end = piece.end
                if end is not None and piece.pos + len(chunk) > end:
                    chunk = chunk[: end - piece.pos]
                buf.append(chunk)
                buffered += len(chunk)
                piece.pos += len(chunk)
                self.meter.add(len(chunk))
                if buffered >= WRITE_CHUNK or (end is not None and piece.pos >= end):
                    flush()
                while pending and (len(pending) > MAX_PENDING_WRITES or pending[0][0].done()):
                    await retire_one()
                self._on_progress()
        except BaseException as exc:
            error = exc
            raise
        finally:
            if not broken:
                flush()  # bytes received are good bytes: keep them
            write_error: BaseException | None = None
            while pending:
                try:
                    await retire_one()
                except BaseException as exc:  # noqa: BLE001 - first write error wins below
                    write_error = write_error or exc
                    # Later writes cannot count past a failed one: wait for them, count nothing.
                    for fut, _ in pending:
                        try:
                            await fut
                        except BaseException:  # noqa: BLE001
                            pass
                    pending.clear()
            piece.pos = piece.written
            if finished_body or (piece.end is not None and resp.content.at_eof()):
                opened.release()
            else:
                opened.close()
            self._on_progress()
            if write_error is not None and not isinstance(error, asyncio.CancelledError):
                raise write_error
        if piece.end is not None and piece.written < piece.end:
            raise Retryable(SourceUnavailable(
                f"The connection closed early at byte {piece.written} of {piece.end}."))

    def _advance_hash(self) -> None:
        if self._sched is not None and self._hasher is not None:
            self._hasher.advance_to(iv.prefix_end(self._sched.intervals()))

    async def _finish(self, total: int) -> TransferResult:
        part = self._part
        assert part is not None and self._hasher is not None
        self._sched = _Scheduler([(0, total)] if total else [], [], segmented=False, max_lag=0)
        length, _ = await part.run(self.executor, part.size_on_disk)
        if length != total:
            await part.run(self.executor, part.truncate, total)
        self._on_detail("verifying")
        await self._hasher.wait_until(total)
        self.rec.done = [[0, total]] if total else []
        return TransferResult(size=total, sha256=self._hasher.hexdigest())


class _Complete(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


async def _first_failure(tasks: list[asyncio.Task]) -> None:
    """Wait for all tasks, including ones appended to `tasks` while waiting; on the first
    exception cancel the rest (the caller does) and raise it."""
    while True:
        for t in tasks:
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
