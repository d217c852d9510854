"""Interval bookkeeping of the part file, checked against a byte-set model."""
from __future__ import annotations

from hypothesis import given, strategies as st

from comfyui_model_resolver.downloads import intervals as iv

spans = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), max_size=12)


def _bytes(intervals):
    return {i for a, b in intervals for i in range(a, b)}


@given(spans)
def test_merge_is_sorted_disjoint_and_lossless(xs):
    merged = iv.merge(xs)
    assert _bytes(merged) == _bytes(xs)
    assert all(a < b for a, b in merged)
    assert all(b1 < a2 for (_, b1), (a2, _) in zip(merged, merged[1:]))
    assert iv.covered(xs) == len(_bytes(xs))


@given(spans, st.integers(0, 400))
def test_holes_complement_within_size(xs, size):
    gaps = iv.holes(xs, size)
    assert _bytes(gaps) == set(range(size)) - _bytes(xs)
    assert _bytes(iv.clip(xs, size)) == _bytes(xs) & set(range(size))


@given(spans)
def test_prefix_end(xs):
    have = _bytes(xs)
    n = 0
    while n in have:
        n += 1
    assert iv.prefix_end(xs) == n


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 5_000)), max_size=5), st.integers(1, 3_000))
def test_split_covers_gaps_in_order_with_bounded_pieces(raw, piece):
    gaps = iv.merge((a, a + n) for a, n in raw)
    pieces = iv.split(gaps, piece)
    assert iv.merge(pieces) == gaps
    assert all(0 < b - a <= piece for a, b in pieces)
    assert pieces == sorted(pieces)


def test_piece_size_bounds():
    assert iv.piece_size(10, 4) == iv.MIN_PIECE
    assert iv.piece_size(1 << 40, 4) == iv.MAX_PIECE
    assert iv.piece_size(1 << 30, 4) == 16 << 20
    assert iv.piece_size(128 << 20, 4) == 8 << 20
    assert iv.piece_size(100 << 20, 4) % (64 << 10) == 0
