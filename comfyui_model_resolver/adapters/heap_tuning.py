"""Heap settings for a `cmr` process that downloads: receive buffers reuse the heap, not fresh pages.

glibc's malloc serves a block above its *mmap threshold* with a fresh mapping of its own, and
gives the free top of the heap back to the system above its *trim threshold*. The mmap
threshold starts at 128 KiB and only rises to the size of a mapped block that is freed. A
download allocates one buffer per receive (`downloads.body.RECV_SIZE`, 1 MiB), which Python
shrinks to what arrived; freeing a shrunk block lifts the threshold only that far, so many
receives map fresh pages and fault them in, and a heap top freed past the trim threshold is
given back only to be faulted in again. `cmr download` of 1 GiB from loopback nginx, whole
process, 3 runs each alternating (`/usr/bin/time`): 43k–49k minor page faults and 0.92–1.01 s
system time without these settings, 28k–33k and 0.79–0.85 s with them (wall 2.01–2.20 s vs
1.85–2.09 s).

Fixed thresholds keep those buffers on the heap, which is reused from one receive to the next.
At most `TRIM_THRESHOLD` bytes of free heap stay with the process. Only processes the `cmr`
command owns call this (never ComfyUI's, whose memory is not ours to tune). Elsewhere than glibc
(musl, macOS, Windows) nothing changes.
"""
from __future__ import annotations

import sys

__all__ = ["tune_heap_for_downloads", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

MMAP_THRESHOLD = 16 * 1024 * 1024  # blocks below this come from the heap (receive buffers are 1 MiB)
TRIM_THRESHOLD = 64 * 1024 * 1024  # free heap kept for reuse before it goes back to the system
_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3


def tune_heap_for_downloads() -> bool:
    """Set glibc's thresholds for this process; True when they were set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, ImportError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; musl has no mallopt symbol, or one that does nothing and returns 0
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
