"""Copy one response body into the part file: receive -> pwrite -> hash, pipelined.

The event loop only receives (up to `RECV_SIZE` bytes at a time, `widen_receive`): chunks are
gathered into about `WRITE_CHUNK` bytes and handed to a worker thread that writes them with one
``pwritev`` at their offset (no joining copy); up to `MAX_PENDING_WRITES` writes per connection
are in flight while the next bytes arrive. When a write is done, its buffers go to the
`OrderedHasher`, which hashes them in another worker thread (no read-back), and the piece's
written mark moves on. When more written bytes wait for the hash than the hasher's backlog
allows, the connection waits (SHA-256 is then the bottleneck).
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Callable

import aiohttp

from ..errors import SourceUnavailable
from .hashing import MAX_BACKLOG, OrderedHasher
from .http import Opened, Retryable
from .partfile import PartFile
from .schedule import Piece

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Executor

    from .job import SpeedMeter

__all__ = ["copy_body", "widen_receive", "RECV_SIZE", "WRITE_CHUNK", "MAX_PENDING_WRITES"]

WRITE_CHUNK = 1024 * 1024  # bytes gathered before one pwritev
MAX_PENDING_WRITES = 8  # per connection
#: Bytes asked of the socket per receive on a download connection. asyncio's default is 256 KiB,
#: and every receive costs one pass through the event loop, aiohttp's parser and its read timeout
#: (a timer cancelled and set again) on the thread that also hands buffers to the writer and the
#: hasher. 1 MiB took `cmr download` of 1 GiB on loopback from 0.80x to 0.86x curl (median of 6,
#: same run); 2 and 4 MiB were slower: each receive allocates that much, and blocks that large
#: bypass the heap unless the process is tuned (`adapters.heap_tuning`). aiohttp's read buffer
#: (`read_bufsize` of the download session) is as large, so that one receive does not pause reading.
RECV_SIZE = 1024 * 1024


def widen_receive(resp: aiohttp.ClientResponse) -> None:
    """Let the connection under `resp` receive up to `RECV_SIZE` bytes at a time.

    asyncio's socket transports read ``transport.max_size`` bytes per receive; other event loops
    (uvloop) size their reads themselves and are left as they are."""
    conn = resp.connection
    transport = conn.transport if conn is not None else None
    if transport is not None and isinstance(getattr(transport, "max_size", None), int) \
            and transport.max_size < RECV_SIZE:
        try:
            transport.max_size = RECV_SIZE
        except AttributeError:  # pragma: no cover - a read-only attribute of another loop's transport
            pass


async def copy_body(opened: Opened, piece: Piece, *, part: PartFile, executor: "Executor",
                    hasher: OrderedHasher, meter: "SpeedMeter", stall_timeout: float,
                    on_written: Callable[[], None], on_progress: Callable[[], None]) -> None:
    """Copy the response body into the part file from piece.pos, up to piece.end (or EOF).

    `on_written()` is called whenever piece.written moves (the caller advances the hash target).
    Raises Retryable when the connection stalls, drops or closes early; the bytes received until
    then are written and count."""
    resp = opened.resp
    widen_receive(resp)
    pending: deque[tuple[asyncio.Future, int, list, int]] = deque()
    buf: list[bytes] = []
    buffered = 0
    base = piece.pos
    finished_body = False

    def flush() -> None:
        nonlocal buf, buffered, base
        if not buffered:
            return
        fut = asyncio.ensure_future(part.run(executor, part.write_buffers, base, buf))
        # A write still in flight when this task is cancelled may fail after nobody awaits it
        # any more; its error is reported by the write that awaits it, or not at all.
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        pending.append((fut, base, buf, buffered))
        base += buffered
        buf, buffered = [], 0

    broken = False  # a write failed: nothing after it may count as written (it would skip a hole)

    async def retire_one() -> None:
        nonlocal broken
        fut, start, data, length = pending.popleft()
        try:
            await asyncio.shield(fut)  # a pause must not lose track of a write in flight
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is not None:
                broken = True
            raise
        if not broken:
            hasher.offer(start, data, length)
            piece.written = max(piece.written, start + length)
            on_written()

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
                    f"No data for {stall_timeout:g} s (stalled) at byte {piece.pos}.",
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
            meter.add(len(chunk))
            if buffered >= WRITE_CHUNK or (end is not None and piece.pos >= end):
                flush()
            while pending and (len(pending) > MAX_PENDING_WRITES or pending[0][0].done()):
                await retire_one()
            if hasher.backlog > MAX_BACKLOG:
                await hasher.drain(MAX_BACKLOG)
            on_progress()
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
                for fut, *_ in pending:
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
        on_progress()
        if write_error is not None and not isinstance(error, asyncio.CancelledError):
            raise write_error
    if piece.end is not None and piece.written < piece.end:
        raise Retryable(SourceUnavailable(
            f"The connection closed early at byte {piece.written} of {piece.end}."))
