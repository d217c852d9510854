"""Which bytes each connection of a segmented download fetches next.

Pieces are handed out lowest offset first, so the written prefix of the file (and with it the
in-order SHA-256) keeps up with the download; a connection may not take a piece that ends more
than `max_lag` bytes ahead of the hash frontier (the bytes the hasher can keep in memory). When
no piece is left, an idle connection takes the upper half of the biggest piece still in flight
(work stealing), so one slow connection does not hold up the finish.
"""
from __future__ import annotations

import asyncio
from collections import deque

from . import intervals as iv

__all__ = ["Piece", "Scheduler", "first_failure", "MIN_STEAL"]

MIN_STEAL = 1024 * 1024  # a piece is split for an idle connection only if twice this is left
_STEAL_ALIGN = 64 * 1024


class Piece:
    __slots__ = ("start", "end", "pos", "written")

    def __init__(self, start: int, end: int | None) -> None:
        self.start = start
        self.end = end  # exclusive; None: until EOF (size unknown); may shrink when split
        self.pos = start  # next byte to receive
        self.written = start  # [start, written) is on disk

    @property
    def complete(self) -> bool:
        return self.end is not None and self.written >= self.end


class Scheduler:
    """Hands out pieces lowest-offset first; splits the biggest piece in flight at the end."""

    def __init__(self, done: list[iv.Interval], pieces: list[iv.Interval], *, segmented: bool,
                 max_lag: int, open_end: bool = False) -> None:
        self.done = list(done)
        self.unclaimed: deque[iv.Interval] = deque(pieces)
        self.active: list[Piece] = []
        self.segmented = segmented
        self.max_lag = max_lag
        self.open_end = open_end

    def claim(self, frontier: int) -> Piece | None | str:
        """The next piece, None when there is nothing left, or "wait" when the next piece ends too
        far ahead of the hash `frontier` (never for a piece that starts at or before it)."""
        if self.unclaimed:
            a, b = self.unclaimed[0]
            if self.segmented and b - frontier > self.max_lag and a > frontier:
                return "wait"
            self.unclaimed.popleft()
            piece = Piece(a, None if self.open_end else b)
            self.active.append(piece)
            return piece
        if not self.segmented:
            return None
        victim = max((p for p in self.active if p.end is not None), key=lambda p: p.end - p.pos, default=None)
        if victim is None or victim.end - victim.pos < 2 * MIN_STEAL:
            return None
        mid = victim.pos + (victim.end - victim.pos) // 2
        mid -= mid % _STEAL_ALIGN
        if mid <= victim.pos:
            return None
        piece = Piece(mid, victim.end)
        victim.end = mid
        self.active.append(piece)
        return piece

    def finish(self, piece: Piece) -> None:
        self.active.remove(piece)
        self.done = iv.merge([*self.done, (piece.start, piece.written)])

    def intervals(self) -> list[iv.Interval]:
        return iv.merge([*self.done, *((p.start, p.written) for p in self.active)])

    def prefix_end(self) -> int:
        """End of the contiguous written prefix [0, n)."""
        return iv.prefix_end(self.intervals())


async def first_failure(tasks: list[asyncio.Task]) -> None:
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
