"""`DownloadManager`: the queue of download jobs, their controls, and their life cycle.

    manager = DownloadManager(settings, layout, events)
    await manager.start()                      # resumes unfinished jobs from SQLite
    job = await manager.submit(DownloadRequest(url=…, folder="loras", sha256=…))
    job = await manager.wait(job.id)           # completed / failed / cancelled / paused
    await manager.pause(id); await manager.resume(id); await manager.cancel(id, keep_partial=False)
    await manager.set_priority(id, 10); manager.jobs(); manager.job(id)
    await manager.close()

A job goes: queued → (waits for the cross-process lock on its target) → (waits for one of
`Settings.max_concurrent_downloads` slots, highest priority first) → running → verifying →
completed, or failed / paused / cancelled. Every change of state, and progress at most four times a
second, is published on the EventBus as a `ProgressEvent`.

Guarantees:
* the final name only ever holds bytes whose size, SHA-256 (when known: the request's, the Hub's
  X-Linked-Etag) and safetensors header were verified; a file that fails is moved to
  ``<data dir>/quarantine`` and the job fails with IntegrityError;
* two requests for the same target share one job (in this process, or in the fleet queue with
  CMR_REDIS_URL) or wait for the other process that is downloading it (a file lock next to the
  part file), and then report the verified file as done;
* an existing file under the target name is never overwritten: it is verified and reported as done,
  or the job fails with TargetExists.
With CMR_REDIS_URL jobs go through the fleet queue (fleet/link.py): any host of the volume runs them.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError, DownloadCancelled, DownloadError, JobNotFound
from ..events import EventBus
from ..hosts import check_url
from ..index.layout import FolderLayout
from ..settings import Settings
from ..types import DownloadRequest, DownloadState
from ..workflow.folders import has_model_extension
from . import intervals as iv
from .containment import check_writes
from .job import TERMINAL_STATES, Job
from .locks import PathLock, file_lock
from .paths import LOCK_SUFFIX, PART_SUFFIX, check_folder_name, filename_from_url, safe_relative_name, target_path
from .slots import PrioritySlots
from .store import JobRecord, JobStore
from .volume import layout_owns, volume_id
# last, those that need aiohttp (`cmr download` imports it in a thread meanwhile: adapters/cli.py _preload)
from ..upstream import RetryPolicy, open_session
from .body import RECV_SIZE
from .http import TokenPolicy
from .placement import check_format, pickle_warning, remove_part_quietly
from .runner import ACTIVE_STATES, JobEntry, JobRunner

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp

log = logging.getLogger(__name__)

__all__ = ["DownloadManager", "Job", "RetryPolicy"]

PUBLISH_INTERVAL = 0.25  # progress events per job: at most 4 per second (state changes always)
#: aiohttp's per-connection read buffer: as large as one receive (`body.RECV_SIZE`), so a receive does
#: not pause reading. When a connection drops, aiohttp discards what is still buffered (up to twice
#: this), so it also bounds the bytes fetched again after a drop.
_READ_BUFSIZE = RECV_SIZE


class DownloadManager:
    """Queue and control downloads; `JobRunner` runs each. One per process (`service.build_resolver`)."""

    def __init__(self, settings: Settings, layout: FolderLayout, events: EventBus | None = None, *,
                 retry: RetryPolicy | None = None, on_complete: Callable[[Job], Any] | None = None,
                 resume_unfinished: bool = True) -> None:
        self._settings = settings
        self.layout = layout
        self.events = events or EventBus()
        self.retry = retry or RetryPolicy()
        self.on_complete = on_complete
        self.resume_unfinished = resume_unfinished
        self._entries: dict[str, JobEntry] = {}
        self._by_path: dict[str, str] = {}  # final path -> id of the live job writing it
        self.slots = PrioritySlots(settings.max_concurrent_downloads)
        self._store: JobStore | None = None
        self.session: aiohttp.ClientSession | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.fleet: Any = None  # fleet.link.FleetLink with CMR_REDIS_URL
        self._runner = JobRunner(self)
        self.volume: str | None = None  # the models volume's id (volume.py), known once started
        self._db_lock: asyncio.Lock | None = None
        self._start_lock: asyncio.Lock | None = None
        self._submit_lock: asyncio.Lock | None = None
        self._started = self._closed = False

    # ---- configuration ---------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self._settings

    def update_settings(self, settings: Settings) -> None:
        """Apply changed settings (tokens, limits, allowlist) to jobs from now on."""
        self._settings = settings
        self.slots.set_limit(settings.max_concurrent_downloads)

    @property
    def data_dir(self) -> str:
        return os.fspath(self._settings.effective_data_dir)

    # ---- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the job database and (unless disabled) resume unfinished jobs. Idempotent."""
        if self._started:
            return
        if self._closed:
            raise DownloadError("The download manager is closed.")
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            self._db_lock = asyncio.Lock()
            self._submit_lock = asyncio.Lock()
            s = self._settings
            workers = 4 + s.max_concurrent_downloads * (s.segments + 2)
            self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cmr-download")
            path = os.path.join(self.data_dir, "downloads.sqlite")
            lay = self.layout
            self.volume = await asyncio.to_thread(volume_id, lay.models_root, s.volume_id)
            owns = layout_owns(lay.models_root, (d for _, d in lay.all_dirs()))
            try:
                self._store = await asyncio.to_thread(JobStore, path, self.volume, owns=owns)
            except (OSError, Exception) as exc:  # sqlite3.Error or OSError
                raise ConfigError(f"Cannot open the download job database {path}: {exc}.",
                                  hint="Set CMR_DATA_DIR to a writable directory.") from None
            self.session = open_session(downloads=True, read_bufsize=_READ_BUFSIZE)
            self._started = True
            records = await asyncio.to_thread(self._store.load) if self.resume_unfinished else []
            for rec in records:  # in a fleet, the queue decides which host runs them
                self._adopt_record(rec, run=rec.state in ACTIVE_STATES and not s.redis_url)
            if s.redis_url:
                from ..fleet.link import FleetLink
                self.fleet = FleetLink(self)
                await self.fleet.start()

    async def close(self) -> None:
        """Stop every job (running ones are checkpointed and resume at the next start)."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        if self.fleet is not None:  # take no more jobs; the ones running here go back to the queue
            await self.fleet.stop_loops()
        entries = [e for e in self._entries.values() if e.task is not None and not e.task.done()]
        for e in entries:
            e.stop = "shutdown"
            e.task.cancel()  # type: ignore[union-attr]
        await asyncio.gather(*(e.task for e in entries if e.task), return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        if self.fleet is not None:
            await self.fleet.close()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
        if self.executor is not None:  # every job has stopped; this returns at once
            await asyncio.to_thread(self.executor.shutdown, True)

    async def __aenter__(self) -> "DownloadManager":
        return await self.start() or self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ---- queries ---------------------------------------------------------------------------
    def _entry(self, job_id: str) -> JobEntry:
        entry = self._entries.get(job_id)
        if entry is None:
            raise JobNotFound(f"No download job {job_id!r}.", hint="List jobs with GET /downloads.")
        return entry

    def _snapshot(self, entry: JobEntry) -> Job:
        rec = entry.rec
        t = entry.transfer
        if rec.state == "completed" and rec.total is not None:
            done = rec.total
        elif t is not None:
            done = t.bytes_done
        else:
            done = iv.covered(tuple(x) for x in rec.done)
        speed = t.meter.speed if t is not None and rec.state == "running" else 0.0
        where = self.fleet.lease_of(rec.id, self.runs_here(rec.id)) if self.fleet is not None else {}
        return Job.from_record(rec, bytes_done=done, speed=speed, connections=t.connections if t else 0, **where)

    def jobs(self) -> list[Job]:
        """Every job known to this manager (in a fleet: to the models volume's fleet), oldest first."""
        if self.fleet is not None:
            return self.fleet.jobs()
        return [self._snapshot(e) for e in sorted(self._entries.values(), key=lambda e: e.rec.created)]

    def job(self, job_id: str) -> Job:
        return self.fleet.job(job_id) if self.fleet is not None else self._snapshot(self._entry(job_id))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until the job is completed, failed, cancelled or paused; returns its snapshot."""
        if self.fleet is not None and not self.runs_here(job_id):
            return await self.fleet.wait(job_id, timeout)
        entry = self._entry(job_id)
        await asyncio.wait_for(entry.settled.wait(), timeout)
        if self.fleet is not None and entry.rec.state in ACTIVE_STATES:  # handed to another host
            return await self.fleet.wait(job_id, timeout)
        return self._snapshot(entry)

    # ---- submit ----------------------------------------------------------------------------
    async def submit(self, req: DownloadRequest, *, tokens: TokenPolicy = "auto") -> Job:
        """Queue a download, or return the job already downloading the same target.

        `tokens="auto"` sends CMR_HF_TOKEN / CMR_CIVITAI_API_KEY to their own hosts only;
        `tokens="none"` never sends a token. Raises HostNotAllowed, UnsafePath, UnsafeFormat or
        ConfigError for requests that cannot work; network problems surface in the job.
        """
        await self.start()
        assert self._submit_lock is not None
        async with self._submit_lock:  # two identical requests at once must find each other
            return await self._submit(req, tokens)

    async def _submit(self, req: DownloadRequest, tokens: TokenPolicy) -> Job:
        check_url(req.url, self._settings)
        folder = check_folder_name(self.layout, req.folder)
        path = None
        filename = req.filename
        if not filename:  # a URL ending in a model file name names the file; else the server will
            from_url = filename_from_url(req.url)
            filename = from_url if from_url and has_model_extension(from_url) else None
        if filename:
            filename = safe_relative_name(filename)
            check_format(filename, self._settings)
            path = await asyncio.to_thread(target_path, self.layout, folder, filename)
            live = self.live_for_path(path)
            if live is not None:
                if live.rec.state in ("paused", "failed"):
                    return await self.resume(live.rec.id)
                return self._snapshot(live)
        else:
            for e in self._entries.values():
                if e.rec.url == req.url and e.rec.folder == folder and e.rec.state in ACTIVE_STATES:
                    return self._snapshot(e)
        requested = req.sha256.lower() if req.sha256 else None
        rec = None
        if path is not None:
            assert self._store is not None
            old = await asyncio.to_thread(self._store.latest_for_path, path, (*ACTIVE_STATES, "paused", "failed"))
            if old is not None and old.id not in self._entries and (
                    old.url == req.url or (requested and old.expected_sha256 == requested)):
                rec = old  # pick up where that run stopped (Ctrl-C, crash, kill -9)
                rec.priority = req.priority
                rec.requested_sha256 = requested or old.requested_sha256
                rec.expected_sha256 = requested or old.expected_sha256
                if req.size is not None:
                    rec.expected_size = req.size
                rec.state, rec.error, rec.detail = "queued", None, None
                rec.tokens = tokens == "auto"
        if rec is None:
            rec = JobRecord(id=uuid.uuid4().hex, url=req.url, folder=folder, filename=filename, path=path,
                            priority=req.priority, source=req.source, tokens=tokens == "auto",
                            expected_sha256=requested, requested_sha256=requested, expected_size=req.size)
        if filename:
            pickle_warning(rec, filename)
        if self.fleet is not None:
            return await self.fleet.submit(rec)
        await self.save(rec)
        entry = self._adopt_record(rec, run=True)
        self.publish(entry, force=True)
        return self._snapshot(entry)

    def _adopt_record(self, rec: JobRecord, *, run: bool) -> JobEntry:
        if rec.state in ("running", "verifying"):
            rec.state = "queued"
        entry = JobEntry(rec)
        self._entries[rec.id] = entry
        if rec.path and DownloadState(rec.state) not in TERMINAL_STATES:
            self._by_path[rec.path] = rec.id
        if run:
            self._schedule(entry)
        else:
            entry.settled.set()
        return entry

    # ---- controls --------------------------------------------------------------------------
    def _remote(self, job_id: str) -> bool:
        """In a fleet, with Redis reachable, a job this host does not run is controlled through the queue."""
        return self.fleet is not None and self.fleet.online and not self.runs_here(job_id)

    async def stop_task(self, entry: JobEntry, reason: str) -> None:
        task = entry.task
        if task is not None and not task.done():
            entry.stop = reason
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def pause(self, job_id: str) -> Job:
        """Stop a queued or running job, keeping its partial data; `resume` continues it."""
        if self._remote(job_id):
            return await self.fleet.control(job_id, "pause")
        entry = self._entry(job_id)
        if entry.rec.state in ACTIVE_STATES:
            await self.stop_task(entry, "pause")
            if entry.rec.state in ACTIVE_STATES:  # the task was stopped before it could record it
                entry.rec.state = "paused"
                entry.rec.detail = None
                await self.save(entry.rec)
                self.publish(entry, force=True)
        return self._snapshot(entry)

    async def resume(self, job_id: str) -> Job:
        """Queue a paused or failed job again; it continues from the bytes already on disk."""
        if self._remote(job_id):
            return await self.fleet.control(job_id, "resume")
        entry = self._entry(job_id)
        if entry.rec.state in ("paused", "failed"):
            rec = entry.rec
            rec.state, rec.error, rec.detail = "queued", None, None
            if rec.path:
                self._by_path[rec.path] = rec.id
            await self.save(rec)
            self._schedule(entry)
            self.publish(entry, force=True)
        return self._snapshot(entry)

    async def cancel(self, job_id: str, keep_partial: bool = False) -> Job:
        """Stop a job for good; its part file is deleted unless `keep_partial`. Completed jobs stay."""
        if self._remote(job_id):
            return await self.fleet.control(job_id, "cancel-keep" if keep_partial else "cancel")
        entry = self._entry(job_id)
        rec = entry.rec
        if rec.state == "completed" or rec.state == "cancelled":
            return self._snapshot(entry)
        await self.stop_task(entry, "cancel")
        if not keep_partial and rec.path:
            await asyncio.to_thread(remove_part_quietly, self.layout, rec.path + PART_SUFFIX)
            rec.done = []
        rec.state, rec.detail = "cancelled", None
        rec.error = DownloadCancelled("Cancelled" + (" (partial file kept)." if keep_partial else "."),
                                      hint="Submit it again to download it.").to_dict()
        self.release_path(rec)
        await self.save(rec)
        entry.settled.set()
        self.publish(entry, force=True)
        return self._snapshot(entry)

    async def set_priority(self, job_id: str, priority: int) -> Job:
        """Higher runs first among queued jobs (running jobs are not interrupted)."""
        if self._remote(job_id):
            return await self.fleet.set_priority(job_id, priority)
        entry = self._entry(job_id)
        entry.rec.priority = int(priority)
        self.slots.reorder()
        await self.save(entry.rec)
        self.publish(entry, force=True)
        return self._snapshot(entry)

    # ---- what the runner uses (runner.RunnerHost) ----------------------------------------
    def _schedule(self, entry: JobEntry) -> None:
        entry.stop = None
        entry.settled.clear()
        entry.task = asyncio.get_running_loop().create_task(self._runner.run(entry),
                                                            name=f"cmr-job-{entry.rec.id[:8]}")

    def live_for_path(self, path: str) -> JobEntry | None:
        """The unfinished job of this process writing `path`, if any."""
        job_id = self._by_path.get(path)
        entry = self._entries.get(job_id) if job_id else None
        if entry is None or DownloadState(entry.rec.state) in TERMINAL_STATES:
            return None
        return entry

    def claim_path(self, entry: JobEntry) -> None:
        assert entry.rec.path is not None
        self._by_path[entry.rec.path] = entry.rec.id

    def release_path(self, rec: JobRecord) -> None:
        if rec.path and self._by_path.get(rec.path) == rec.id:
            del self._by_path[rec.path]

    async def make_lock(self, rec: JobRecord) -> PathLock:
        """The lock, the part file and the sub-folders are written from here on: links resolved now."""
        await asyncio.to_thread(check_writes, self.layout, rec.path, rec.path + LOCK_SUFFIX, rec.path + PART_SUFFIX)
        return await file_lock(rec.path, rec.id)  # type: ignore[arg-type]

    async def completed(self, entry: JobEntry) -> None:
        """Tell the `on_complete` listener (the Resolver refreshes its index)."""
        if self.on_complete is None:
            return
        try:
            out = self.on_complete(self._snapshot(entry))
            if asyncio.iscoroutine(out):
                await out
        except Exception:  # noqa: BLE001 - a listener must not fail the download
            log.exception("on_complete listener failed")

    # ---- persistence and events ------------------------------------------------------------
    async def save(self, rec: JobRecord) -> None:
        if self._store is None or self._db_lock is None:
            return
        async with self._db_lock:  # in order: a stale checkpoint never overwrites a newer state
            rec.updated = time.time()
            row = rec.to_json()
            try:
                await asyncio.to_thread(self._store.save_row, rec.id, rec.path, rec.state, rec.updated, row)
            except Exception as exc:  # noqa: BLE001 - a full disk must not turn into a crash
                log.warning("cannot save download job %s: %s", rec.id, exc)
            if self.fleet is not None:
                await self.fleet.saved(rec)

    def publish(self, entry: JobEntry, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - entry.last_publish < PUBLISH_INTERVAL:
            return
        entry.last_publish = now
        job = self._snapshot(entry)
        self.events.publish(job.event())
        if self.fleet is not None:
            self.fleet.published(job, entry.rec, force)

    # ---- what the fleet link uses (fleet/link.py) ------------------------------------------
    def entries(self) -> list[JobEntry]:
        return list(self._entries.values())

    def entry(self, job_id: str) -> JobEntry | None:
        return self._entries.get(job_id)

    def runs_here(self, job_id: str) -> bool:
        entry = self._entries.get(job_id)
        return entry is not None and entry.task is not None and not entry.task.done()

    adopt = _adopt_record
    schedule = _schedule
    snapshot = _snapshot

    async def forget(self, job_id: str) -> None:
        await asyncio.to_thread(self._store.delete, job_id)  # type: ignore[union-attr]

