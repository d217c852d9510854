"""SHA-256 is computed off the event loop and cached by (path, size, mtime)."""
from __future__ import annotations

import hashlib
import os
import threading

from comfyui_model_resolver.index.hashing import HashCache, sha256_file


def test_sha256_matches_hashlib(tmp_path):
    p = tmp_path / "f.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()


async def test_cached_by_path_size_mtime_and_off_loop(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(b"hello world")
    cache = HashCache(tmp_path / "h.sqlite")
    loop_thread = threading.get_ident()
    seen_threads = []
    original = cache.sha256_sync

    def spy(path):
        seen_threads.append(threading.get_ident())
        return original(path)

    cache.sha256_sync = spy  # observe where the work runs
    h = await cache.sha256(str(p))
    assert h == hashlib.sha256(b"hello world").hexdigest()
    assert seen_threads and all(t != loop_thread for t in seen_threads)
    assert cache.get(str(p)) == h
    # Persisted: a new cache object (a new process) knows it.
    assert HashCache(tmp_path / "h.sqlite").get(str(p)) == h
    # A changed file (size) is hashed again.
    p.write_bytes(b"hello world!")
    assert cache.get(str(p)) is None
    assert await cache.sha256(str(p)) == hashlib.sha256(b"hello world!").hexdigest()
    cache.close()
