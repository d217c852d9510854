"""A semaphore that admits the highest-priority waiter first (then the oldest)."""
from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Callable

__all__ = ["PrioritySlots"]


class PrioritySlots:
    """`limit` concurrent holders; waiters ordered by `priority()` (higher first), then arrival."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._seq = itertools.count()
        self._waiters: list[tuple[int, int, asyncio.Future, Callable[[], int]]] = []

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def reorder(self) -> None:
        """Priorities changed: rebuild the queue."""
        self._waiters = [(-prio(), seq, fut, prio) for _, seq, fut, prio in self._waiters]
        heapq.heapify(self._waiters)
        self._wake()

    @property
    def waiting(self) -> int:
        return sum(1 for *_, fut, _p in self._waiters if not fut.done())

    async def acquire(self, priority: Callable[[], int]) -> None:
        if self.in_use < self.limit and not self.waiting:
            self.in_use += 1
            return
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority(), next(self._seq), fut, priority))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted, then cancelled: give the slot back
                self.release()
            else:
                self._waiters = [w for w in self._waiters if w[2] is not fut]
                heapq.heapify(self._waiters)
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use < self.limit:
            _, _, fut, _ = heapq.heappop(self._waiters)
            if fut.done():
                continue
            self.in_use += 1
            fut.set_result(None)

    def slot(self, priority: Callable[[], int]) -> "_Slot":
        return _Slot(self, priority)


class _Slot:
    def __init__(self, slots: PrioritySlots, priority: Callable[[], int]) -> None:
        self._slots = slots
        self._priority = priority

    async def __aenter__(self) -> None:
        await self._slots.acquire(self._priority)

    async def __aexit__(self, *exc) -> None:
        self._slots.release()
