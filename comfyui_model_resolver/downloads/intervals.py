"""Byte intervals: which parts of a file are on disk, and how to cut the rest into pieces. Pure.

An interval is a half-open ``(start, end)`` pair of ints. Lists of intervals are kept sorted and
merged (no overlaps, no touching neighbours), which is also how they are persisted.
"""
from __future__ import annotations

from typing import Iterable

Interval = tuple[int, int]

KiB = 1024
MiB = 1024 * KiB
#: Pieces are never smaller than this (one HTTP request per piece) …
MIN_PIECE = 256 * KiB
#: … nor larger than this: the connections work on neighbouring pieces, and the bytes ahead of the
#: hash frontier (about one piece per connection) are kept in memory for the hash (hashing.HOLD_BUDGET).
MAX_PIECE = 16 * MiB
_ALIGN = 64 * KiB


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, merged, empty intervals dropped."""
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def covered(intervals: Iterable[Interval]) -> int:
    """Bytes covered by merged intervals."""
    return sum(b - a for a, b in merge(intervals))


def prefix_end(intervals: Iterable[Interval]) -> int:
    """End of the covered run that starts at 0 (0 when byte 0 is missing)."""
    merged = merge(intervals)
    return merged[0][1] if merged and merged[0][0] == 0 else 0


def holes(intervals: Iterable[Interval], size: int) -> list[Interval]:
    """The parts of [0, size) not covered."""
    out: list[Interval] = []
    pos = 0
    for a, b in merge(intervals):
        if a >= size:
            break
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if pos < size:
        out.append((pos, size))
    return out


def clip(intervals: Iterable[Interval], size: int) -> list[Interval]:
    """Intervals cut to [0, size)."""
    return merge((max(0, a), min(b, size)) for a, b in intervals)


def piece_size(size: int, connections: int) -> int:
    """Piece length for `size` bytes over `connections`: about 4 pieces per connection, 64 KiB aligned."""
    target = -(-size // max(1, connections * 4))
    target = max(MIN_PIECE, min(MAX_PIECE, target))
    return -(-target // _ALIGN) * _ALIGN


def split(gaps: Iterable[Interval], piece: int) -> list[Interval]:
    """Cut each gap into pieces of at most `piece` bytes, in file order."""
    if piece <= 0:
        raise ValueError("piece must be positive")
    out: list[Interval] = []
    for a, b in gaps:
        while a < b:
            out.append((a, min(b, a + piece)))
            a += piece
    return out
