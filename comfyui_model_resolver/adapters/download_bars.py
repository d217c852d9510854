"""Run downloads with tqdm progress bars (speed, ETA) on a terminal: shared by `cmr download` and
`cmr resolve --download`.

    outcomes = await run_downloads(resolver.downloads, requests, stop=stop_event)

Each outcome is the final `Job` snapshot, or the error that refused the request at submit time
(HostNotAllowed, UnsafePath, …). When `stop` is set (Ctrl-C), running jobs are paused — their
partial files and state are kept, so running the same command again resumes them.
"""
from __future__ import annotations

import asyncio
import sys
from typing import IO, Sequence, Union

from ..downloads import DownloadManager, Job
from ..errors import ResolverError
from ..types import DownloadRequest, DownloadState

Outcome = Union[Job, ResolverError]
_SETTLED = {DownloadState.completed, DownloadState.failed, DownloadState.cancelled, DownloadState.paused}

__all__ = ["run_downloads", "Outcome"]


def _is_terminal(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


class _Bar:
    def __init__(self, job: Job, position: int, out: IO[str], enabled: bool | None) -> None:
        name = job.filename or job.url.rsplit("/", 1)[-1]
        self.name = name[:40]
        self.shown = job.bytes_done
        self.state: DownloadState | None = None
        self.bar = None
        if enabled is False or (enabled is None and not _is_terminal(out)):
            return  # no bar (--no-progress, or not a terminal, as tqdm would decide): tqdm not even imported
        from tqdm import tqdm

        self.bar = tqdm(total=job.total, initial=job.bytes_done, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=name[:40], position=position, file=out, leave=True, dynamic_ncols=True,
                        disable=None if enabled is None else not enabled, miniters=1)

    def update(self, job: Job) -> None:
        if self.bar is None:
            self.state = job.state
            return
        if job.filename and self.name != job.filename[:40]:
            self.name = job.filename[:40]
            self.bar.set_description_str(self.name, refresh=False)
        if job.total is not None and self.bar.total != job.total:
            self.bar.total = job.total
        if job.bytes_done != self.shown:
            if job.bytes_done < self.shown:  # started over
                self.bar.reset(total=job.total)
                self.shown = 0
            self.bar.update(job.bytes_done - self.shown)
            self.shown = job.bytes_done
        note = job.detail or (job.state.value if job.state != DownloadState.running else "")
        if job.connections > 1:
            note = f"{job.connections} conn" + (f", {note}" if note else "")
        self.bar.set_postfix_str(note[:60], refresh=True)
        self.state = job.state

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def run_downloads(manager: DownloadManager, requests: Sequence[DownloadRequest], *,
                        stop: asyncio.Event | None = None, out: IO[str] | None = None,
                        bars: bool | None = None) -> list[Outcome]:
    """Submit `requests`, show one bar per job, wait for all; pause them all if `stop` is set.

    `bars=None` shows bars only when `out` is a terminal.
    """
    out = out or sys.stderr
    sub = manager.events.subscribe()
    outcomes: list[Outcome] = []
    try:
        for req in requests:
            try:
                outcomes.append(await manager.submit(req))
            except ResolverError as exc:
                outcomes.append(exc)
        jobs = {o.id: o for o in outcomes if isinstance(o, Job)}
        order = list(dict.fromkeys(jobs))
        shown = {jid: _Bar(manager.job(jid), i, out, bars) for i, jid in enumerate(order)}
        for jid in order:
            shown[jid].update(manager.job(jid))
        waiters = {jid: asyncio.ensure_future(manager.wait(jid)) for jid in order}
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            while not all(w.done() for w in waiters.values()):
                pending = [w for w in waiters.values() if not w.done()]
                events = asyncio.ensure_future(sub.get())
                wait_on = {events, *pending} | ({stopper} if stopper else set())
                done, _ = await asyncio.wait(wait_on, return_when=asyncio.FIRST_COMPLETED)
                if events in done:
                    event = events.result()
                    if event.job_id in shown:
                        shown[event.job_id].update(manager.job(event.job_id))
                else:
                    events.cancel()
                if stopper is not None and stopper in done:
                    for jid in order:
                        await manager.pause(jid)
                    break
        finally:
            if stopper is not None:
                stopper.cancel()
            for w in waiters.values():
                w.cancel()
        for jid in order:
            shown[jid].update(manager.job(jid))
            shown[jid].close()
        final = {jid: manager.job(jid) for jid in order}
        return [final[o.id] if isinstance(o, Job) else o for o in outcomes]
    finally:
        sub.close()
