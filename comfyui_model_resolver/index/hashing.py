"""SHA-256 of local files, computed lazily and cached by (path, size, mtime); matching a workflow's
model references against them (`match_by_hash`).

`sha256_file` blocks; async callers use `HashCache.sha256` which runs it in a worker thread.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from ..types import ModelReport
    from .scan import ModelIndex

log = logging.getLogger(__name__)

CHUNK = 8 * 1024 * 1024


def sha256_file(path: str | os.PathLike, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            if progress:
                progress(n)
    return h.hexdigest()


class HashCache:
    """sha256 per (path, size, mtime_ns), persisted in SQLite (or memory when no path)."""

    def __init__(self, db_path: str | os.PathLike | None = None) -> None:
        self._lock = threading.Lock()
        if db_path is not None:
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db_path) if db_path else ":memory:", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL") if db_path else None
        self._db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER, "
                         "mtime_ns INTEGER, sha256 TEXT NOT NULL)")
        self._db.commit()

    def get(self, path: str) -> str | None:
        """The cached hash if the file is unchanged, else None. Blocking (one stat)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        with self._lock:
            row = self._db.execute("SELECT size, mtime_ns, sha256 FROM hashes WHERE path = ?", (path,)).fetchone()
        if row and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return row[2]
        return None

    def put(self, path: str, sha256: str) -> None:
        st = os.stat(path)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?)",
                             (path, st.st_size, st.st_mtime_ns, sha256.lower()))
            self._db.commit()

    def sha256_sync(self, path: str) -> str:
        cached = self.get(path)
        if cached:
            return cached
        digest = sha256_file(path)
        self.put(path, digest)
        return digest

    async def sha256(self, path: str) -> str:
        """Hash off the event loop; cached results cost one stat."""
        return await asyncio.to_thread(self.sha256_sync, path)

    def close(self) -> None:
        with self._lock:
            self._db.close()


async def match_by_hash(m: "ModelReport", hashes: HashCache, index: "ModelIndex") -> "ModelReport":
    """`cmr analyze --match-hashes` for one reference that carries a SHA-256: a present file is
    verified against it; a missing one is looked for among the same folder's files under other
    names (each hashed once, then cached by path, size and mtime)."""
    want = (m.hash or "").lower()
    if len(want) != 64 or (m.hash_type not in (None, "sha256")) or m.kind != "file":
        return m
    if m.local_path and m.status in ("present", "relocated"):
        local = await hashes.sha256(m.local_path)
        return m.model_copy(update={"local_sha256": local, "hash_verified": local == want})
    if m.status != "missing" or not m.folder:
        return m
    ext = os.path.splitext(m.filename)[1].lower()
    for folder, base, rel in list(index.iter_files()):
        if folder != m.folder or (ext and not rel.lower().endswith(ext)):
            continue
        path = os.path.join(base, *rel.split("/"))
        log.info("hashing %s to look for %s", path, m.filename)
        local = await hashes.sha256(path)
        if local == want:
            relink = rel.replace("/", "\\") if os.name == "nt" else rel
            return m.model_copy(update={"status": "relocated", "local_path": path, "relink_value": relink,
                                        "local_sha256": local, "hash_verified": True,
                                        "note": "found by SHA-256 under another name"})
    return m
