"""Download jobs persisted in SQLite (``<data dir>/downloads.sqlite``), so a download resumes after a
dropped connection, a pause, a crash or ``kill -9``.

One row per job: indexed columns for lookups (id, final path, state) and the whole record as JSON
(`JobRecord`). The record holds what a resume needs: the URL, the final path, the size and
validators the server gave (ETag, the Hub's sha256), the expected sha256, and the byte intervals
already written to ``<final>.part``. Written bytes survive a crash or kill -9 (page cache); with
CMR_DOWNLOAD_FSYNC the part file is fsynced *before* the intervals are stored, so they never claim
bytes that a power cut could lose.

Rows belong to a volume (volume.py): a store opened for one volume reads and writes only its own
rows, so instances with different models roots that share a data dir never see or run each
other's jobs. Rows written before volumes existed are adopted by the first store whose models root
holds their target (a job whose file name is not known yet goes to the first store opened).

All methods block (small SQLite transactions); async callers run them in a worker thread. The file
is created with mode 0600: a URL may carry a user's own ``?token=``.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from ..text import encodable

__all__ = ["JobRecord", "JobStore", "UNFINISHED_STATES"]

#: States a job can be resumed from after a restart.
UNFINISHED_STATES = ("queued", "running", "verifying")
_HISTORY = 500  # finished jobs kept for listing
#: The rows of this store's volume (every row for a store without one); binds `_scope`.
_MINE = "(? IS NULL OR volume = ?)"
#: Fields that hold text from outside (URLs, server-chosen names, upstream error text): normalised on
#: every assignment, loads from the database included, so a job always encodes (text.encodable).
_TEXT_FIELDS = frozenset({"url", "folder", "filename", "source", "etag", "error", "warnings", "detail"})


@dataclass
class JobRecord:
    id: str
    url: str
    folder: str
    filename: str | None  # relative name inside the folder (None until the server named it)
    path: str | None  # absolute final path (None until the name is known)
    state: str = "queued"
    priority: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    source: str | None = None
    tokens: bool = True  # send configured tokens to their own hosts
    expected_sha256: str | None = None  # what the file must hash to (request or server)
    requested_sha256: str | None = None  # what the caller asked for
    server_sha256: str | None = None  # the Hub's X-Linked-Etag
    sha256: str | None = None  # computed after download
    expected_size: int | None = None  # from the request or the Hub's X-Linked-Size
    total: int | None = None  # what the server serves
    etag: str | None = None
    ranges: bool | None = None
    done: list[list[int]] = field(default_factory=list)  # written intervals of the part file
    error: dict | None = None
    warnings: list[str] = field(default_factory=list)
    detail: str | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _TEXT_FIELDS and value is not None:
            value = encodable(value)
        object.__setattr__(self, name, value)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "JobRecord":
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class JobStore:
    def __init__(self, path: str | os.PathLike, volume: str | None = None, *,
                 owns: Callable[[str | None], bool] | None = None) -> None:
        """`volume` scopes the rows; `owns(path)` says whether a row written before volumes
        existed (target `path`, None when not named yet) belongs to this volume. Without a volume
        the store reads every row and writes unscoped ones (as before volumes existed)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, path TEXT, state TEXT NOT NULL, "
                         "updated REAL NOT NULL, data TEXT NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS jobs_path ON jobs(path)")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "volume" not in columns:
            self._db.execute("ALTER TABLE jobs ADD COLUMN volume TEXT")
        self._db.execute("CREATE INDEX IF NOT EXISTS jobs_volume ON jobs(volume, state)")
        self.volume = volume
        if volume is not None:
            self._adopt_legacy(owns)
        self._db.commit()

    @property
    def _scope(self) -> tuple[str | None, str | None]:
        return (self.volume, self.volume)

    def _adopt_legacy(self, owns: Callable[[str | None], bool] | None) -> None:
        rows = self._db.execute("SELECT id, path FROM jobs WHERE volume IS NULL").fetchall()
        mine = [(self.volume, job_id) for job_id, path in rows if owns is None or owns(path)]
        if mine:
            self._db.executemany("UPDATE jobs SET volume = ? WHERE id = ? AND volume IS NULL", mine)

    def save(self, rec: JobRecord) -> None:
        rec.updated = time.time()
        self.save_row(rec.id, rec.path, rec.state, rec.updated, rec.to_json())

    def save_row(self, job_id: str, path: str | None, state: str, updated: float, data: str) -> None:
        """Store a record serialised by the caller (so the record is not read from another thread)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO jobs (id, path, state, updated, data, volume) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (job_id, path, state, updated, data, self.volume))
            self._db.commit()

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM jobs WHERE id = ? AND " + _MINE, (job_id, *self._scope)).fetchone()
        return JobRecord.from_json(row[0]) if row else None

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ? AND " + _MINE, (job_id, *self._scope))
            self._db.commit()

    def latest_for_path(self, path: str, states: tuple[str, ...]) -> JobRecord | None:
        """The most recently updated job for `path` in one of `states`."""
        marks = ",".join("?" * len(states))
        with self._lock:
            row = self._db.execute(f"SELECT data FROM jobs WHERE {_MINE} AND path = ? AND state IN ({marks}) "
                                   "ORDER BY updated DESC LIMIT 1", (*self._scope, path, *states)).fetchone()
        return JobRecord.from_json(row[0]) if row else None

    def load(self, *, history: int = _HISTORY) -> list[JobRecord]:
        """Unfinished and paused jobs, plus the most recent `history` finished ones, oldest first."""
        with self._lock:
            live = self._db.execute(f"SELECT data FROM jobs WHERE {_MINE} AND state IN "
                                    "('queued','running','verifying','paused') ORDER BY updated", self._scope).fetchall()
            old = self._db.execute(f"SELECT data FROM jobs WHERE {_MINE} AND state NOT IN ('queued','running',"
                                   "'verifying','paused') ORDER BY updated DESC LIMIT ?", (*self._scope, history)).fetchall()
        recs = [JobRecord.from_json(r[0]) for r in live] + [JobRecord.from_json(r[0]) for r in reversed(old)]
        recs.sort(key=lambda r: r.created)
        return recs

    def prune(self, keep: int = _HISTORY) -> int:
        """Forget finished jobs beyond the newest `keep`. Returns how many rows were deleted."""
        with self._lock:
            cur = self._db.execute(
                f"DELETE FROM jobs WHERE {_MINE} AND state IN ('completed','failed','cancelled') AND id NOT IN "
                f"(SELECT id FROM jobs WHERE {_MINE} AND state IN ('completed','failed','cancelled') "
                "ORDER BY updated DESC LIMIT ?)", (*self._scope, *self._scope, keep))
            self._db.commit()
            return cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
