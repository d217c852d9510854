"""The piece scheduler: lowest offset first, never further ahead of the hash than it can keep,
and idle connections split the biggest piece left at the end."""
from __future__ import annotations

from comfyui_model_resolver.downloads.schedule import MIN_STEAL, Scheduler

MiB = 1 << 20


def test_pieces_go_lowest_first_and_wait_when_they_would_end_beyond_the_lag():
    pieces = [(i * 4 * MiB, (i + 1) * 4 * MiB) for i in range(8)]
    s = Scheduler([], pieces, segmented=True, max_lag=10 * MiB)
    got = [s.claim(0), s.claim(0)]
    assert [(p.start, p.end) for p in got] == [(0, 4 * MiB), (4 * MiB, 8 * MiB)]
    assert s.claim(0) == "wait"  # [8, 12) MiB would end 12 MiB ahead of a frontier at 0
    third = s.claim(2 * MiB)
    assert (third.start, third.end) == (8 * MiB, 12 * MiB)


def test_a_piece_at_the_frontier_is_never_held_back():
    s = Scheduler([], [(0, 64 * MiB)], segmented=True, max_lag=8 * MiB)  # bigger than the lag
    piece = s.claim(0)
    assert piece != "wait" and piece.start == 0


def test_idle_connections_split_the_biggest_piece_left():
    s = Scheduler([], [(0, 16 * MiB)], segmented=True, max_lag=64 * MiB)
    first = s.claim(0)
    first.pos = first.written = 2 * MiB
    stolen = s.claim(0)
    assert stolen.start == 9 * MiB and first.end == 9 * MiB and stolen.end == 16 * MiB
    first.pos = first.written = first.end - MIN_STEAL
    stolen.pos = stolen.written = stolen.end - MIN_STEAL
    assert s.claim(0) is None  # too little left to split
