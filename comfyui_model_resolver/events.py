"""Async publish/subscribe for progress events. Knows no transport: adapters subscribe and forward
(ComfyUI send_sync, SSE, Gradio, tqdm).

A slow subscriber never blocks a publisher: its queue is bounded, and when full the oldest
progress event for the same job is dropped (the newest state of a job is what matters).
Terminal states (completed/failed/cancelled) are never dropped.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, AsyncIterator

_TERMINAL = {"completed", "failed", "cancelled"}


def _is_terminal(event: Any) -> bool:
    state = getattr(event, "state", None)
    return getattr(state, "value", state) in _TERMINAL


class Subscription:
    """An async iterator of events. Use as `async with bus.subscribe() as sub: async for e in sub:`."""

    def __init__(self, bus: "EventBus", maxsize: int) -> None:
        self._bus = bus
        self._maxsize = maxsize
        self._items: deque[Any] = deque()
        self._wakeup = asyncio.Event()
        self.closed = False
        self.dropped = 0

    def _push(self, event: Any) -> None:
        if self.closed:
            return
        if len(self._items) >= self._maxsize:
            # Drop the oldest non-terminal event to make room.
            for i, old in enumerate(self._items):
                if not _is_terminal(old):
                    del self._items[i]
                    self.dropped += 1
                    break
            else:
                self._items.popleft()
                self.dropped += 1
        self._items.append(event)
        self._wakeup.set()

    async def get(self, timeout: float | None = None) -> Any:
        """Next event; raises asyncio.TimeoutError after `timeout` seconds without one."""
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            if timeout is None:
                await self._wakeup.wait()
            else:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
        return self._items.popleft()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await self.get()

    def close(self) -> None:
        self.closed = True
        self._bus._subs.discard(self)
        self._wakeup.set()

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self.published = 0

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subs.add(sub)
        return sub

    def publish(self, event: Any) -> None:
        """Deliver to every subscriber. Never blocks, never raises. Call from the loop's thread."""
        self.published += 1
        for sub in list(self._subs):
            sub._push(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def close(self) -> None:
        for sub in list(self._subs):
            sub.close()
