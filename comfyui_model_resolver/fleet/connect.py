"""The Redis client of a fleet host, telling "Redis is away" from other errors, and bounded waits."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from ..errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["connect", "is_outage", "default_host_name", "bounded", "kept_cancel", "CLOSE_SECONDS"]

CLOSE_SECONDS = 3.0  # the longest a closing host waits for one step (its loops, a Redis call)


def connect(url: str) -> Any:
    """A `redis.asyncio` client (decoded strings). Raises ConfigError without the 'redis' package."""
    try:
        import redis.asyncio as redis_asyncio
    except ImportError:
        raise ConfigError("CMR_REDIS_URL is set but the 'redis' package is not installed.",
                          hint="pip install 'comfyui-model-resolver[redis]' or unset CMR_REDIS_URL.") from None
    # Short timeouts: a host must notice within seconds that Redis is gone and carry on locally.
    # Blocking reads wait at most 2 s, well inside the socket timeout.
    return redis_asyncio.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=3,
                                  health_check_interval=15)


def is_outage(exc: BaseException) -> bool:
    """Redis cannot be reached (refused, reset, timed out, loading, read-only replica): the host
    falls back to local operation. Anything else is a bug or a misconfiguration."""
    try:
        from redis import exceptions as rx
    except ImportError:  # pragma: no cover - connect() refused already
        return False
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, rx.BusyLoadingError, rx.ReadOnlyError,
                        ConnectionError, TimeoutError, OSError)):
        return True
    # A Redis that restarted empty: the stream's group is gone until someone creates it again.
    return isinstance(exc, rx.ResponseError) and str(exc).startswith("NOGROUP")


async def kept_cancel(call: Any) -> Any:
    """Await a Redis call; if this task was cancelled meanwhile and the client absorbed the cancel
    (redis-py can end a command that a cancel interrupts normally, or with its own error), raise it
    again. Seen: a download's checkpoint loop and the fleet loops kept running after being
    cancelled, so the job (or the host's shutdown) waited for ever."""
    try:
        result = await call
    except Exception:
        _reraise_absorbed_cancel()
        raise
    _reraise_absorbed_cancel()
    return result


def _reraise_absorbed_cancel() -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def default_host_name() -> str:
    """This host's name in the fleet: the machine's name and the process id (several servers can
    run on one machine)."""
    return f"{socket.gethostname()}-{os.getpid()}"

async def bounded(tasks: list, what: str) -> None:
    """Wait at most CLOSE_SECONDS for `tasks`; one still running then is left to finish (or fail)
    on its own, with a warning, rather than hold up a shutdown."""
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: a failed best-effort step is not an unhandled error
    for task in pending:
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
    if pending:
        log.warning("fleet: %s (%s) did not finish within %.0f s; not waiting for it", what,
                    ", ".join(t.get_name() for t in pending), CLOSE_SECONDS)
