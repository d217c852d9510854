"""What one workflow may hold: the caps that keep analyzing any accepted input within a memory budget.

The byte limit (CMR_MAX_WORKFLOW_BYTES) alone does not bound memory: 16 MB of `[[],[],…]` or of
200,000 loader nodes parse into objects worth more than a gigabyte. So before JSON is parsed, its
objects/arrays and values are counted (a character scan, no parsing: a `,`, `{` or `[` inside a string
counts too, which only makes the check stricter), and while the graph is walked, its nodes and model
references are counted. Each cap sits far above any workflow ComfyUI saves (the
largest of the 660 official templates: 211 nodes, 5,203 objects/arrays, 16,739 values) and low enough
that the worst accepted input is analyzed within 256 MB over idle (bench/analyze_memory.py).
Anything over a cap is refused with the one "too large" error (413), in plain words.

`InputGate` bounds how many big inputs are held at once: one (the doors hold it while they read a big
body, the core while it decodes one), so three 50 MB uploads at once cost about what one does.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, AsyncIterator

from ..errors import too_large

__all__ = ["BIG_INPUT_BYTES", "InputGate", "MAX_CONTAINERS", "MAX_MODELS", "MAX_NODES", "MAX_VALUES",
           "check_json_text", "check_models", "check_nodes"]

#: Nodes of a workflow, subgraph instances expanded (every copy counts).
MAX_NODES = 5_000
#: Model references found in one workflow.
MAX_MODELS = 1_000
#: JSON objects and arrays in one workflow text.
MAX_CONTAINERS = 100_000
#: JSON values (counted as the separators between them) in one workflow text.
MAX_VALUES = 300_000


def check_json_text(text: str | bytes, what: str = "workflow") -> None:
    """Refuse JSON text that would parse into more objects than a workflow ever has (before parsing)."""
    if len(text) <= min(MAX_VALUES, MAX_CONTAINERS):  # fewer characters than the smallest cap
        return
    comma, brace, bracket = (",", "{", "[") if isinstance(text, str) else (b",", b"{", b"[")
    containers = text.count(brace) + text.count(bracket)
    if containers > MAX_CONTAINERS:
        raise too_large(what, containers, MAX_CONTAINERS, unit="JSON objects and arrays")
    values = text.count(comma)
    if values > MAX_VALUES:
        raise too_large(what, values, MAX_VALUES, unit="JSON values")


def check_nodes(count: int, *, at_least: bool = False) -> None:
    if count > MAX_NODES:
        raise too_large("workflow", count, MAX_NODES, unit="nodes", at_least=at_least)


def check_models(count: int) -> None:
    if count > MAX_MODELS:
        raise too_large("workflow", count, MAX_MODELS, unit="model references")


#: An input at least this big is a "big input": read, parsed and analyzed one at a time.
BIG_INPUT_BYTES = 1024 * 1024
_HELD: ContextVar[bool] = ContextVar("cmr_big_input_held", default=False)


class InputGate:
    """One big input at a time, per process: what bounds memory when several arrive at once.

    A door holds it from before it reads a big body until the answer is built; the core takes it
    around decoding and analyzing big bytes (for callers that are not doors). It is re-entrant within
    one task (the core sees the door already holds it). Small inputs never wait. The price: a client
    that sends a big upload slowly makes other big uploads wait; small requests are not affected."""

    def __init__(self, threshold: int = BIG_INPUT_BYTES) -> None:
        self.threshold = threshold
        self._sem: asyncio.Semaphore | None = None

    def is_big(self, size: int | None) -> bool:
        return size is None or size >= self.threshold

    @asynccontextmanager
    async def hold(self, size: int | None) -> AsyncIterator[None]:
        """`size` None means "not known yet" (a chunked body): treated as big."""
        if not self.is_big(size) or _HELD.get():
            yield
            return
        if self._sem is None:
            self._sem = asyncio.Semaphore(1)
        async with self._sem:
            token = _HELD.set(True)
            try:
                yield
            finally:
                _HELD.reset(token)
                _return_freed_memory()


def _return_freed_memory() -> None:
    """Hand the memory a big input used back to the system. glibc keeps freed blocks of up to 32 MB
    in the heap once it has seen one that big (the dynamic mmap threshold), so without this a process
    stays at its peak after the first big upload; malloc_trim releases them. Elsewhere a no-op."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None
