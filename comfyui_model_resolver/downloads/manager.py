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
* two requests for the same target share one job (in this process) or wait for the other
  process/host that is downloading it (file lock, or Redis with CMR_REDIS_URL), and then report the
  verified file as done;
* an existing file under the target name is never overwritten: it is verified and reported as done,
  or the job fails with TargetExists.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import aiohttp

from ..errors import (ConfigError, DownloadCancelled, DownloadError, IntegrityError, JobNotFound, ResolverError, TargetExists,
                      UnsafeFormat, UnsafePath)
from ..events import EventBus
from ..hosts import check_url, redact_text, redact_url
from ..index.hashing import sha256_file
from ..index.layout import FolderLayout
from ..settings import Settings
from ..types import DownloadRequest, DownloadState
from ..workflow.folders import has_model_extension, is_pickle_file
from . import intervals as iv
from .http import Retryable, TokenPolicy, parse_content_range
from .job import TERMINAL_STATES, Job
from .locks import FileLock, PathLock, RedisLock, owner_text
from .paths import (LOCK_SUFFIX, PART_SUFFIX, check_folder_name, content_disposition_filename, filename_from_url,
                    safe_relative_name, target_path)
from .slots import PrioritySlots
from .store import JobRecord, JobStore
from .transfer import RetryPolicy, Transfer, TransferResult, open_bounded, probe
from .verify import check_safetensors, finalize, quarantine

log = logging.getLogger(__name__)

__all__ = ["DownloadManager", "Job", "RetryPolicy"]

PUBLISH_INTERVAL = 0.25  # progress events per job: at most 4 per second (state changes always)
LOCK_POLL_SECONDS = 0.5
_ACTIVE = ("queued", "running", "verifying")
#: aiohttp's per-connection read buffer. When a connection drops, aiohttp discards what is still
#: buffered (up to twice this), so it bounds the bytes re-fetched after a drop; larger buffers did
#: not measurably speed up loopback transfers.
_READ_BUFSIZE = 256 * 1024


@dataclass
class _Entry:
    rec: JobRecord
    task: asyncio.Task | None = None
    transfer: Transfer | None = None
    stop: str | None = None  # "pause" | "cancel" | "shutdown" while being stopped
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    last_publish: float = 0.0


class DownloadManager:
    """Queue, run and control downloads. One per process (built by `service.build_resolver`)."""

    def __init__(self, settings: Settings, layout: FolderLayout, events: EventBus | None = None, *,
                 retry: RetryPolicy | None = None, on_complete: Callable[[Job], Any] | None = None,
                 resume_unfinished: bool = True) -> None:
        self._settings = settings
        self.layout = layout
        self.events = events or EventBus()
        self.retry = retry or RetryPolicy()
        self.on_complete = on_complete
        self.resume_unfinished = resume_unfinished
        self._entries: dict[str, _Entry] = {}
        self._by_path: dict[str, str] = {}  # final path -> id of the live job writing it
        self._slots = PrioritySlots(settings.max_concurrent_downloads)
        self._store: JobStore | None = None
        self._session: aiohttp.ClientSession | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._redis: Any = None
        self._db_lock: asyncio.Lock | None = None
        self._start_lock: asyncio.Lock | None = None
        self._submit_lock: asyncio.Lock | None = None
        self._started = False
        self._closed = False

    # ---- configuration ---------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self._settings

    def update_settings(self, settings: Settings) -> None:
        """Apply changed settings (tokens, limits, allowlist) to jobs from now on."""
        self._settings = settings
        self._slots.set_limit(settings.max_concurrent_downloads)

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
            self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cmr-download")
            path = os.path.join(self.data_dir, "downloads.sqlite")
            try:
                self._store = await asyncio.to_thread(JobStore, path)
            except (OSError, Exception) as exc:  # sqlite3.Error or OSError
                raise ConfigError(f"Cannot open the download job database {path}: {exc}.",
                                  hint="Set CMR_DATA_DIR to a writable directory.") from None
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, enable_cleanup_closed=True),
                auto_decompress=False, read_bufsize=_READ_BUFSIZE, trust_env=False)
            self._started = True
            if self.resume_unfinished:
                for rec in await asyncio.to_thread(self._store.load):
                    self._adopt_record(rec, run=rec.state in _ACTIVE)

    async def close(self) -> None:
        """Stop every job (running ones are checkpointed and resume at the next start)."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        entries = [e for e in self._entries.values() if e.task is not None and not e.task.done()]
        for e in entries:
            e.stop = "shutdown"
            e.task.cancel()  # type: ignore[union-attr]
        await asyncio.gather(*(e.task for e in entries if e.task), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._redis is not None:
            try:
                await self._redis.aclose()
            except Exception:  # noqa: BLE001 - best effort
                pass
        if self._store is not None:
            await asyncio.to_thread(self._store.close)
        if self._executor is not None:  # every job has stopped; this returns at once
            await asyncio.to_thread(self._executor.shutdown, True)

    async def __aenter__(self) -> "DownloadManager":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ---- queries ---------------------------------------------------------------------------
    def _entry(self, job_id: str) -> _Entry:
        entry = self._entries.get(job_id)
        if entry is None:
            raise JobNotFound(f"No download job {job_id!r}.", hint="List jobs with GET /downloads.")
        return entry

    def _snapshot(self, entry: _Entry) -> Job:
        rec = entry.rec
        t = entry.transfer
        if rec.state == "completed" and rec.total is not None:
            done = rec.total
        elif t is not None:
            done = t.bytes_done
        else:
            done = iv.covered(tuple(x) for x in rec.done)
        speed = t.meter.speed if t is not None and rec.state == "running" else 0.0
        return Job.from_record(rec, bytes_done=done, speed=speed, connections=t.connections if t else 0)

    def jobs(self) -> list[Job]:
        """Every job known to this manager, oldest first."""
        return [self._snapshot(e) for e in sorted(self._entries.values(), key=lambda e: e.rec.created)]

    def job(self, job_id: str) -> Job:
        return self._snapshot(self._entry(job_id))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Wait until the job is completed, failed, cancelled or paused; returns its snapshot."""
        entry = self._entry(job_id)
        await asyncio.wait_for(entry.settled.wait(), timeout)
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
            self._check_format(filename)
            path = await asyncio.to_thread(target_path, self.layout, folder, filename)
            live = self._live_for_path(path)
            if live is not None:
                if live.rec.state in ("paused", "failed"):
                    return await self.resume(live.rec.id)
                return self._snapshot(live)
        else:
            for e in self._entries.values():
                if e.rec.url == req.url and e.rec.folder == folder and e.rec.state in _ACTIVE:
                    return self._snapshot(e)
        requested = req.sha256.lower() if req.sha256 else None
        rec = None
        if path is not None:
            assert self._store is not None
            old = await asyncio.to_thread(self._store.latest_for_path, path, (*_ACTIVE, "paused", "failed"))
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
        if filename and is_pickle_file(filename):
            self._warn_pickle(rec, filename)
        await self._save(rec)
        entry = self._adopt_record(rec, run=True)
        self._publish(entry, force=True)
        return self._snapshot(entry)

    def _live_for_path(self, path: str) -> _Entry | None:
        job_id = self._by_path.get(path)
        entry = self._entries.get(job_id) if job_id else None
        if entry is None or DownloadState(entry.rec.state) in TERMINAL_STATES:
            return None
        return entry

    def _adopt_record(self, rec: JobRecord, *, run: bool) -> _Entry:
        if rec.state in ("running", "verifying"):
            rec.state = "queued"
        entry = _Entry(rec)
        self._entries[rec.id] = entry
        if rec.path and DownloadState(rec.state) not in TERMINAL_STATES:
            self._by_path[rec.path] = rec.id
        if run:
            self._schedule(entry)
        else:
            entry.settled.set()
        return entry

    def _check_format(self, filename: str) -> None:
        if is_pickle_file(filename) and self._settings.safetensors_only:
            raise UnsafeFormat(f"{filename} is a pickle file, which can run code when loaded; "
                               "CMR_SAFETENSORS_ONLY refuses it.",
                               hint="Download a .safetensors version, or unset CMR_SAFETENSORS_ONLY if you trust it.")

    @staticmethod
    def _warn_pickle(rec: JobRecord, filename: str) -> None:
        msg = (f"{os.path.basename(filename)} is a pickle file: loading it can run code. "
               "Prefer a .safetensors version from a source you trust.")
        if msg not in rec.warnings:
            rec.warnings.append(msg)

    # ---- controls --------------------------------------------------------------------------
    async def _stop(self, entry: _Entry, reason: str) -> None:
        task = entry.task
        if task is not None and not task.done():
            entry.stop = reason
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def pause(self, job_id: str) -> Job:
        """Stop a queued or running job, keeping its partial data; `resume` continues it."""
        entry = self._entry(job_id)
        if entry.rec.state in _ACTIVE:
            await self._stop(entry, "pause")
            if entry.rec.state in _ACTIVE:  # the task was stopped before it could record it
                entry.rec.state = "paused"
                entry.rec.detail = None
                await self._save(entry.rec)
                self._publish(entry, force=True)
        return self._snapshot(entry)

    async def resume(self, job_id: str) -> Job:
        """Queue a paused or failed job again; it continues from the bytes already on disk."""
        entry = self._entry(job_id)
        if entry.rec.state in ("paused", "failed"):
            rec = entry.rec
            rec.state, rec.error, rec.detail = "queued", None, None
            if rec.path:
                self._by_path[rec.path] = rec.id
            await self._save(rec)
            self._schedule(entry)
            self._publish(entry, force=True)
        return self._snapshot(entry)

    async def cancel(self, job_id: str, keep_partial: bool = False) -> Job:
        """Stop a job for good; its part file is deleted unless `keep_partial`. Completed jobs stay."""
        entry = self._entry(job_id)
        rec = entry.rec
        if rec.state == "completed" or rec.state == "cancelled":
            return self._snapshot(entry)
        await self._stop(entry, "cancel")
        if not keep_partial and rec.path:
            await asyncio.to_thread(_remove_quietly, rec.path + PART_SUFFIX)
            rec.done = []
        rec.state, rec.detail = "cancelled", None
        rec.error = DownloadCancelled("Cancelled" + (" (partial file kept)." if keep_partial else "."),
                                      hint="Submit it again to download it.").to_dict()
        if rec.path and self._by_path.get(rec.path) == rec.id:
            del self._by_path[rec.path]
        await self._save(rec)
        entry.settled.set()
        self._publish(entry, force=True)
        return self._snapshot(entry)

    async def set_priority(self, job_id: str, priority: int) -> Job:
        """Higher runs first among queued jobs (running jobs are not interrupted)."""
        entry = self._entry(job_id)
        entry.rec.priority = int(priority)
        self._slots.reorder()
        await self._save(entry.rec)
        self._publish(entry, force=True)
        return self._snapshot(entry)

    # ---- running a job ---------------------------------------------------------------------
    def _schedule(self, entry: _Entry) -> None:
        entry.stop = None
        entry.settled.clear()
        entry.task = asyncio.get_running_loop().create_task(self._run(entry), name=f"cmr-job-{entry.rec.id[:8]}")

    async def _run(self, entry: _Entry) -> None:
        rec = entry.rec
        try:
            if rec.path is None:
                await self._name_job(entry)
            while True:
                lock = await self._make_lock(rec)
                await self._acquire(entry, lock)
                try:
                    async with self._slots.slot(lambda: rec.priority):
                        lost = await self._download_holding(entry, lock)
                finally:
                    await asyncio.shield(lock.release())
                if not lost:
                    break
                rec.detail = "lost the download lock (Redis lease expired); waiting to get it back"
                self._publish(entry, force=True)
        except asyncio.CancelledError:
            await asyncio.shield(self._stopped(entry))
            return
        except ResolverError as exc:
            await asyncio.shield(self._failed(entry, exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the queue; report it on the job
            log.exception("download %s failed unexpectedly", rec.id)
            await asyncio.shield(self._failed(entry, DownloadError(
                f"Unexpected error: {type(exc).__name__}: {redact_text(str(exc))[:300]}",
                hint="This is a bug; the log has the details.")))
        finally:
            entry.transfer = None
            entry.settled.set()

    async def _stopped(self, entry: _Entry) -> None:
        rec = entry.rec
        reason = entry.stop
        if reason == "pause":
            rec.state, rec.detail = "paused", None
        elif reason == "shutdown":
            rec.state = "queued" if rec.state in _ACTIVE else rec.state
            rec.detail = None
        elif reason == "cancel":
            return  # cancel() records the outcome
        else:  # cancelled from outside (event loop shutting down)
            rec.state = "queued" if rec.state in _ACTIVE else rec.state
        await self._save(rec)
        if reason != "shutdown":
            self._publish(entry, force=True)

    async def _failed(self, entry: _Entry, exc: ResolverError) -> None:
        rec = entry.rec
        rec.state, rec.detail = "failed", None
        err = exc.to_dict()
        err["message"] = redact_text(err.get("message") or "")
        rec.error = err
        if rec.path and not rec.done:  # nothing worth resuming: leave no empty part file behind
            await asyncio.to_thread(_remove_quietly, rec.path + PART_SUFFIX)
        if rec.path and self._by_path.get(rec.path) == rec.id:
            del self._by_path[rec.path]
        await self._save(rec)
        self._publish(entry, force=True)
        log.info("download %s failed: %s", redact_url(rec.url), err["message"])

    async def _name_job(self, entry: _Entry) -> None:
        """Ask the server for the file name (Content-Disposition, else the last segment of the final
        URL), then fix the target path."""
        rec = entry.rec
        rec.detail = "asking the server for the file name"
        self._publish(entry, force=True)
        assert self._session is not None
        async with self._slots.slot(lambda: rec.priority):
            info = await self._with_retries(entry, lambda: probe(self._session, rec.url, self._settings,
                                                                  tokens="auto" if rec.tokens else "none"))
        name = content_disposition_filename(info.content_disposition) or filename_from_url(info.url) \
            or filename_from_url(rec.url)
        if not name:
            raise UnsafePath(f"The server does not name the file at {redact_url(rec.url)}.",
                             hint="Give a file name (--filename / \"filename\").")
        self._check_format(name)
        if is_pickle_file(name):
            self._warn_pickle(rec, name)
        path = await asyncio.to_thread(target_path, self.layout, rec.folder, name)
        rec.filename, rec.path, rec.detail = name, path, None
        other = self._live_for_path(path)
        if other is not None and other is not entry:
            rec.detail = f"same file as job {other.rec.id[:8]}; waiting for it"
            self._publish(entry, force=True)
            await other.settled.wait()
            rec.detail = None
        self._by_path[path] = rec.id
        await self._save(rec)

    async def _with_retries(self, entry: _Entry, call: Callable[[], Any]) -> Any:
        failures = 0
        while True:
            try:
                return await call()
            except Retryable as e:
                failures += 1
                if failures > self._settings.download_retries or (
                        e.retry_after is not None and e.retry_after > self.retry.max_retry_after):
                    raise e.error from None
                delay = self.retry.delay(failures, e.retry_after)
                entry.rec.detail = f"{e.error.message} — retry {failures} in {delay:.1f} s"
                self._publish(entry, force=True)
                await asyncio.sleep(delay)

    async def _make_lock(self, rec: JobRecord) -> PathLock:
        assert rec.path is not None
        try:  # sub-folders of the name ("SD1.5/x.safetensors") are created here, inside the folder
            await asyncio.to_thread(os.makedirs, os.path.dirname(rec.path), exist_ok=True)
        except OSError as exc:
            raise DownloadError(f"Cannot create the folder {os.path.dirname(rec.path)}: {exc.strerror or exc}.",
                                hint="Check that the models folder is writable.") from None
        url = self._settings.redis_url
        if not url:
            return FileLock(rec.path + LOCK_SUFFIX, rec.id)
        if self._redis is None:
            try:
                import redis.asyncio as redis_asyncio
            except ImportError:
                raise ConfigError("CMR_REDIS_URL is set but the 'redis' package is not installed.",
                                  hint="pip install 'comfyui-model-resolver[redis]' or unset CMR_REDIS_URL.") from None
            self._redis = redis_asyncio.from_url(url, decode_responses=True, socket_timeout=10)
        return RedisLock(self._redis, rec.path, rec.id)

    async def _acquire(self, entry: _Entry, lock: PathLock) -> None:
        rec = entry.rec
        announced = None
        while True:
            try:
                got = await lock.try_acquire()
            except OSError as exc:
                raise DownloadError(f"Cannot create the lock file next to {rec.path}: {exc.strerror or exc}.",
                                    hint="Check that the models folder is writable.") from None
            except Exception as exc:  # noqa: BLE001 - Redis client errors
                if isinstance(exc, ResolverError):
                    raise
                raise DownloadError(f"Cannot reach Redis for the download lock "
                                    f"({redact_url(self._settings.redis_url or '')}): {type(exc).__name__}.",
                                    hint="Check CMR_REDIS_URL, or unset it to use file locks.") from None
            if got:
                break
            owner = await lock.owner()
            text = f"already downloading in {owner_text(owner)}; waiting for it"
            if text != announced:
                announced = text
                rec.detail = text
                self._publish(entry, force=True)
            await asyncio.sleep(LOCK_POLL_SECONDS)
        if announced:
            rec.detail = None

    async def _download_holding(self, entry: _Entry, lock: PathLock) -> bool:
        """Download while holding the target's lock. Returns True if the lock was lost meanwhile."""
        work = asyncio.get_running_loop().create_task(self._download(entry))
        lost = asyncio.get_running_loop().create_task(lock.lost.wait())
        try:
            await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            lost.cancel()
            await asyncio.gather(work, lost, return_exceptions=True)
            raise
        if work.done():
            lost.cancel()
            await asyncio.gather(lost, return_exceptions=True)
            work.result()
            return False
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)
        entry.rec.state = "queued"
        return True

    async def _download(self, entry: _Entry) -> None:
        rec = entry.rec
        assert rec.path is not None and self._session is not None and self._executor is not None
        final = rec.path
        rec.state, rec.error = "running", None
        self._publish(entry, force=True)
        await self._save(rec)
        if await asyncio.to_thread(os.path.lexists, final):
            await self._existing(entry)
            return
        transfer = Transfer(rec, final + PART_SUFFIX, session=self._session, settings=lambda: self._settings,
                            executor=self._executor, retry=self.retry, save=self._save,
                            on_progress=lambda: self._publish(entry),
                            on_detail=lambda d: self._set_detail(entry, d))
        entry.transfer = transfer
        result = await transfer.run()
        rec.state, rec.detail = "verifying", None
        self._publish(entry, force=True)
        await self._place(entry, result)

    def _set_detail(self, entry: _Entry, detail: str | None) -> None:
        if detail == "verifying":
            entry.rec.state = "verifying"
            detail = None
        entry.rec.detail = detail
        self._publish(entry, force=True)

    async def _place(self, entry: _Entry, result: TransferResult) -> None:
        """Verify the part file; rename it into place, or quarantine it and fail."""
        rec = entry.rec
        assert rec.path is not None
        part = rec.path + PART_SUFFIX
        name = rec.filename or os.path.basename(rec.path)
        try:
            if rec.expected_size is not None and result.size != rec.expected_size:
                raise IntegrityError(f"{name}: received {result.size} bytes, expected {rec.expected_size}.",
                                     hint="The server sent a different or truncated file.")
            if rec.expected_sha256 and result.sha256 != rec.expected_sha256:
                raise IntegrityError(f"{name}: SHA-256 mismatch: got {result.sha256}, expected {rec.expected_sha256}.",
                                     hint="The download is corrupt or the source changed the file.")
            if rec.path.lower().endswith(".safetensors"):
                await asyncio.get_running_loop().run_in_executor(self._executor, check_safetensors, part, name)
        except IntegrityError as exc:
            moved = await asyncio.to_thread(quarantine, part, os.path.join(self.data_dir, "quarantine"), rec.id, name)
            rec.done, rec.total = [], None
            where = f" It was moved to {moved}." if moved else " It was deleted."
            raise IntegrityError(exc.message + where, hint=exc.hint) from None
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, partial(finalize, part, rec.path, durable=self._settings.download_fsync))
        except OSError as exc:
            raise DownloadError(f"Cannot move the verified file into place at {rec.path}: {exc.strerror or exc}.",
                                hint="Check permissions of the models folder; the part file is kept.") from None
        await self._completed(entry, result.sha256, result.size)

    async def _completed(self, entry: _Entry, sha256: str, size: int, detail: str | None = None) -> None:
        rec = entry.rec
        rec.state, rec.sha256, rec.total, rec.detail, rec.error = "completed", sha256, size, detail, None
        rec.done = [[0, size]] if size else []
        if rec.path and self._by_path.get(rec.path) == rec.id:
            del self._by_path[rec.path]
        await self._save(rec)
        self._publish(entry, force=True)
        if self.on_complete is not None:
            try:
                out = self.on_complete(self._snapshot(entry))
                if asyncio.iscoroutine(out):
                    await out
            except Exception:  # noqa: BLE001 - a listener must not fail the download
                log.exception("on_complete listener failed")

    async def _existing(self, entry: _Entry) -> None:
        """The target already exists (a finished earlier run, another process, or a user's file)."""
        rec = entry.rec
        assert rec.path is not None and self._session is not None
        final = rec.path
        size = await asyncio.to_thread(os.path.getsize, final)
        want_sha, want_size = rec.expected_sha256, rec.expected_size
        if not want_sha:
            rec.detail = "the file exists; asking the server for its hash to compare"
            self._publish(entry, force=True)
            opened = await self._with_retries(entry, lambda: open_bounded(
                self._session, rec.url, self._settings, start=0, tokens="auto" if rec.tokens else "none",
                stop_at_linked=True))
            try:
                want_sha = opened.linked_sha256
                if opened.status in (206, 416):
                    server_size = parse_content_range(opened.resp.headers.get("Content-Range"))[2]
                elif opened.status == 200:
                    server_size = opened.resp.content_length
                else:
                    server_size = opened.linked_size
                want_size = want_size if want_size is not None else server_size
            finally:
                opened.close()
            if want_sha:
                rec.server_sha256 = rec.expected_sha256 = want_sha
        if want_size is not None and size != want_size:
            raise TargetExists(f"{final} already exists with {size} bytes, but the download has {want_size}.",
                               hint="Move or delete that file, or choose another file name.")
        if want_sha:
            rec.detail = "the file exists; verifying its SHA-256"
            self._publish(entry, force=True)
            got = await asyncio.get_running_loop().run_in_executor(self._executor, sha256_file, final)
            if got != want_sha:
                raise TargetExists(f"{final} already exists but its SHA-256 ({got}) is not the expected {want_sha}.",
                                   hint="Move or delete that file, or choose another file name.")
            await self._completed(entry, got, size, detail="already present (SHA-256 verified)")
            return
        if want_size is None:
            raise TargetExists(f"{final} already exists and the server gives no size or hash to compare it with.",
                               hint="Delete it to download it again, or choose another file name.")
        rec.warnings.append("The file was already present with the expected size; no hash was available to verify it.")
        await self._completed(entry, None, size, detail="already present (same size; no hash to compare)")  # type: ignore[arg-type]

    # ---- persistence and events ------------------------------------------------------------
    async def _save(self, rec: JobRecord) -> None:
        if self._store is None or self._db_lock is None:
            return
        async with self._db_lock:  # in order: a stale checkpoint never overwrites a newer state
            rec.updated = time.time()
            row = rec.to_json()
            try:
                await asyncio.to_thread(self._store.save_row, rec.id, rec.path, rec.state, rec.updated, row)
            except Exception as exc:  # noqa: BLE001 - a full disk must not turn into a crash
                log.warning("cannot save download job %s: %s", rec.id, exc)

    def _publish(self, entry: _Entry, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - entry.last_publish < PUBLISH_INTERVAL:
            return
        entry.last_publish = now
        self.events.publish(self._snapshot(entry).event())


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
