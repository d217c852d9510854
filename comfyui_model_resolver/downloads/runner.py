"""`JobRunner`: one job's life, from the queue to its outcome.

    name the file (when the URL does not) -> re-check the target -> take the target's lock
    (waiting for whoever holds it) -> take a download slot (highest priority first) ->
    transfer into ``<final>.part`` -> verify -> (in a fleet: confirm the lease) -> rename into place
-> completed

or failed / paused / cancelled. In a fleet, a job whose lease this host lost (another host took
it over, or it was cancelled) is stopped ("lost", LeaseLost) without recording anything: the fleet
link settles it (fleet/lease.py), and the file is never renamed into place.

The runner keeps no state of its own: the queue (`DownloadManager`) hands it a `JobEntry` and is
its `host` for what is shared between jobs (settings, the HTTP session, slots, the job database,
the event bus, the map of targets being written).
"""
from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import aiohttp

from ..errors import DownloadError, ResolverError, UnsafePath
from ..hosts import redact_secrets, redact_text, redact_url
from ..index.layout import FolderLayout
from ..settings import Settings
from .http import Retryable
from .locks import PathLock, acquire_lock
from .paths import PART_SUFFIX, content_disposition_filename, filename_from_url, target_path
from .placement import (Placed, check_format, pickle_warning, place, recheck_target, remove_part_quietly,
                        verify_existing)
from .slots import PrioritySlots
from .store import JobRecord
from .transfer import RetryPolicy, Transfer, probe

log = logging.getLogger(__name__)

__all__ = ["JobEntry", "JobRunner", "ACTIVE_STATES", "LeaseLost"]

#: States of a job that is (or will be) worked on.
ACTIVE_STATES = ("queued", "running", "verifying")


class LeaseLost(Exception):
    """In a fleet, this host no longer holds the job's lease (`reason`: lost, completed, pause,
    cancel, cancel-keep): the job stops here and its file is not put in place."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class JobEntry:
    """A job as the queue holds it: its record, and its task while it runs."""

    rec: JobRecord
    task: asyncio.Task | None = None
    transfer: Transfer | None = None
    stop: str | None = None  # "pause" | "cancel" | "shutdown" while being stopped
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    last_publish: float = 0.0


class RunnerHost(Protocol):
    """What the runner uses of the queue that owns the jobs."""

    settings: Settings
    layout: FolderLayout
    retry: RetryPolicy
    slots: PrioritySlots
    session: aiohttp.ClientSession
    executor: Executor
    data_dir: str
    fleet: Any  # fleet.link.FleetLink in a fleet, else None

    async def save(self, rec: JobRecord) -> None: ...

    def publish(self, entry: JobEntry, force: bool = False) -> None: ...

    def live_for_path(self, path: str) -> JobEntry | None: ...

    def claim_path(self, entry: JobEntry) -> None: ...

    def release_path(self, rec: JobRecord) -> None: ...

    async def make_lock(self, rec: JobRecord) -> PathLock: ...

    async def completed(self, entry: JobEntry) -> None: ...


class JobRunner:
    def __init__(self, host: RunnerHost) -> None:
        self.host = host

    async def run(self, entry: JobEntry) -> None:
        """The job's task: runs it to an outcome, which it records and publishes."""
        h = self.host
        rec = entry.rec
        try:
            if rec.path is None:
                await self._name_job(entry)
            else:  # checked at submit; again now (a restart, or links planted while it was queued)
                await recheck_target(h.layout, rec)
            lock = await h.make_lock(rec)
            await acquire_lock(lock, target=rec.path or "", announce=lambda text: self._announce(entry, text))
            try:
                async with h.slots.slot(lambda: rec.priority):
                    await self._download(entry)
            finally:
                await asyncio.shield(lock.release())
        except asyncio.CancelledError:
            await asyncio.shield(self._stopped(entry))
            return
        except LeaseLost:
            entry.stop = "lost"  # the fleet link settles it (fleet/lease.py)
        except ResolverError as exc:
            await asyncio.shield(self._failed(entry, exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the queue; report it on the job
            log.exception("download %s failed unexpectedly", rec.id)
            await asyncio.shield(self._failed(entry, DownloadError(
                f"Unexpected error: {type(exc).__name__}: {redact_text(str(exc))[:300]}",
                hint="This is a bug; the log has the details.")))
        finally:
            entry.transfer = None
            if entry.stop != "cancel":  # cancel() records the outcome, then settles the job
                entry.settled.set()

    def _announce(self, entry: JobEntry, text: str | None) -> None:
        entry.rec.detail = text
        if text is not None:
            self.host.publish(entry, force=True)

    # ---- outcomes --------------------------------------------------------------------------
    async def _stopped(self, entry: JobEntry) -> None:
        rec = entry.rec
        reason = entry.stop
        if reason == "pause":
            rec.state, rec.detail = "paused", None
        elif reason == "shutdown":
            rec.state = "queued" if rec.state in ACTIVE_STATES else rec.state
            rec.detail = None
        elif reason in ("cancel", "lost"):
            return  # cancel() records the outcome; a job another fleet host took over is that host's now
        else:  # cancelled from outside (event loop shutting down)
            rec.state = "queued" if rec.state in ACTIVE_STATES else rec.state
        await self.host.save(rec)
        if reason != "shutdown":
            self.host.publish(entry, force=True)

    async def _failed(self, entry: JobEntry, exc: ResolverError) -> None:
        h = self.host
        rec = entry.rec
        rec.state, rec.detail = "failed", None
        err = exc.to_dict()
        err["message"] = redact_secrets(err.get("message") or "", h.settings)
        if err.get("hint"):
            err["hint"] = redact_secrets(err["hint"], h.settings)
        rec.error = err
        if rec.path and not rec.done:  # nothing worth resuming: leave no empty part file behind
            await asyncio.to_thread(remove_part_quietly, h.layout, rec.path + PART_SUFFIX)
        h.release_path(rec)
        await h.save(rec)
        h.publish(entry, force=True)
        log.info("download %s failed: %s", redact_url(rec.url), rec.error["message"])

    async def _completed(self, entry: JobEntry, placed: Placed) -> None:
        rec = entry.rec
        if placed.warning:
            rec.warnings.append(placed.warning)
        rec.state, rec.sha256, rec.total, rec.detail, rec.error = "completed", placed.sha256, placed.size, \
            placed.detail, None
        rec.done = [[0, placed.size]] if placed.size else []
        self.host.release_path(rec)
        await self.host.save(rec)
        self.host.publish(entry, force=True)
        await self.host.completed(entry)

    # ---- steps -----------------------------------------------------------------------------
    async def _name_job(self, entry: JobEntry) -> None:
        """Ask the server for the file name (Content-Disposition, else the last segment of the final
        URL), then fix the target path."""
        h = self.host
        rec = entry.rec
        rec.detail = "asking the server for the file name"
        h.publish(entry, force=True)
        async with h.slots.slot(lambda: rec.priority):
            info = await self.with_retries(entry, lambda: probe(h.session, rec.url, h.settings,
                                                                tokens="auto" if rec.tokens else "none"))
        name = content_disposition_filename(info.content_disposition) or filename_from_url(info.url) \
            or filename_from_url(rec.url)
        if not name:
            raise UnsafePath(f"The server does not name the file at {redact_url(rec.url)}.",
                             hint="Give a file name (--filename / \"filename\").")
        check_format(name, h.settings)
        pickle_warning(rec, name)
        path = await asyncio.to_thread(target_path, h.layout, rec.folder, name)
        rec.filename, rec.path, rec.detail = name, path, None
        other = h.live_for_path(path)
        if other is not None and other is not entry:
            rec.detail = f"same file as job {other.rec.id[:8]}; waiting for it"
            h.publish(entry, force=True)
            await other.settled.wait()
            rec.detail = None
        h.claim_path(entry)
        await h.save(rec)

    async def with_retries(self, entry: JobEntry, call: Callable[[], Any]) -> Any:
        """Run `call`, retrying what the upstream policy calls retryable, and say so on the job."""
        failures = 0
        while True:
            try:
                return await call()
            except Retryable as e:
                failures += 1
                delay = self.host.retry.next_delay(failures, e.budget(self.host.settings.download_retries),
                                                   e.retry_after)
                if delay is None:
                    raise e.error from None
                log.info("%s: %s — retry %d in %.1f s", entry.rec.filename, e.error.message, failures, delay)
                entry.rec.detail = f"{e.error.message} — retry {failures} in {delay:.1f} s"
                self.host.publish(entry, force=True)
                await asyncio.sleep(delay)

    async def _download(self, entry: JobEntry) -> None:
        h = self.host
        rec = entry.rec
        assert rec.path is not None
        final = rec.path
        rec.state, rec.error = "running", None
        h.publish(entry, force=True)
        await h.save(rec)
        if await asyncio.to_thread(os.path.lexists, final):
            placed = await verify_existing(rec, session=h.session, settings=h.settings, executor=h.executor,
                                           retrying=lambda call: self.with_retries(entry, call),
                                           announce=lambda text: self._announce(entry, text))
            await self._completed(entry, placed)
            return
        transfer = Transfer(rec, final + PART_SUFFIX, session=h.session, settings=lambda: h.settings,
                            executor=h.executor, retry=h.retry, save=h.save,
                            on_progress=lambda: h.publish(entry),
                            on_detail=lambda d: self._set_detail(entry, d))
        entry.transfer = transfer
        result = await transfer.run()
        rec.state, rec.detail = "verifying", None
        h.publish(entry, force=True)
        confirm = (lambda: h.fleet.leases.confirm(entry)) if h.fleet is not None else None
        placed = await place(rec, result, layout=h.layout, executor=h.executor, data_dir=h.data_dir,
                             durable=h.settings.download_fsync, confirm=confirm)
        await self._completed(entry, placed)

    def _set_detail(self, entry: JobEntry, detail: str | None) -> None:
        if detail == "verifying":
            entry.rec.state = "verifying"
            detail = None
        if detail:
            log.info("%s: %s", entry.rec.filename or redact_url(entry.rec.url), detail)
        entry.rec.detail = detail
        self.host.publish(entry, force=True)
