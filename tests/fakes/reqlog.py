"""Request log shared by the servers of one fake (e.g. Hub + CDN), for assertions.

Each record is a plain dict::

    {"server": "cdn", "method": "GET", "host": "localhost:41234", "path": "/blobs/…",
     "raw_path": "/blobs/…?sig=…", "query": {"sig": "…"}, "query_items": [("sig", "…")],
     "range": "bytes=10485760-", "if_range": None, "authorization": None,
     "user_agent": "…", "accept_encoding": "gzip, deflate", "status": 206,
     "faults": ["drop_after"], "t": 12345.6}

``query`` keeps the first value of a repeated parameter; ``query_items`` keeps them all.
``authorization`` is the raw header value, so tests can assert that tokens never reach
a CDN. ``faults`` lists the switch knobs that took effect on that response.
"""

from __future__ import annotations

import threading
import time

from aiohttp import web

__all__ = ["LOG_RECORD", "RequestLog", "log_middleware", "note_faults"]

# Typed request-storage key where aiohttp has them (>= 3.12), a plain string before.
LOG_RECORD = web.RequestKey("log_record", dict) if hasattr(web, "RequestKey") else "log_record"


class RequestLog:
    """Append-only, thread-safe list of request records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict] = []

    def append(self, record: dict) -> None:
        with self._lock:
            self._records.append(record)

    def reset(self) -> None:
        with self._lock:
            self._records.clear()

    @property
    def records(self) -> list[dict]:
        with self._lock:
            return list(self._records)

    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def filter(
        self,
        path_prefix: str | None = None,
        *,
        server: str | None = None,
        method: str | None = None,
        status: int | None = None,
    ) -> list[dict]:
        """Records matching every given criterion (``path_prefix`` is matched on the decoded path)."""
        return [
            r
            for r in self.records
            if (path_prefix is None or r["path"].startswith(path_prefix))
            and (server is None or r["server"] == server)
            and (method is None or r["method"] == method.upper())
            and (status is None or r["status"] == status)
        ]


def log_middleware(log: RequestLog, server: str):
    """aiohttp middleware appending one record per request to ``log``."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        h = request.headers
        record = {
            "server": server,
            "method": request.method,
            "host": request.host,
            "path": request.path,
            "raw_path": request.raw_path,
            "query": {k: request.query.getone(k) for k in request.query},
            "query_items": list(request.query.items()),
            "range": h.get("Range"),
            "if_range": h.get("If-Range"),
            "authorization": h.get("Authorization"),
            "user_agent": h.get("User-Agent"),
            "accept_encoding": h.get("Accept-Encoding"),
            "status": None,
            "faults": [],
            "t": time.monotonic(),
        }
        request[LOG_RECORD] = record
        log.append(record)  # appended first so that order follows arrival
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            record["status"] = exc.status
            raise
        except BaseException:
            record["status"] = record["status"] or 500
            raise
        record["status"] = response.status
        return response

    return middleware


def note_faults(request: web.Request, names: list[str]) -> None:
    """Record which switch knobs took effect on this request."""
    record = request.get(LOG_RECORD)
    if record is not None and names:
        record["faults"].extend(n for n in names if n not in record["faults"])
