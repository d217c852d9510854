"""`ensure`: make sure every model some workflows need is on this host's models volume.

    report = await ensure(resolver, [(workflow_bytes, "flux.json")], wait=True)
    report.ok            # every needed model is here (present, or downloaded and verified)
    report.to_dict()     # per model: state and, when it could not be ensured, why in plain words

Meant for container start-up (`cmr ensure WORKFLOW... --wait`, `POST /api/v1/ensure`). For each
workflow: resolve, then queue a download for every needed model that is missing and has a
confident source (`plan_downloads`: resolved, with a chosen candidate); nothing else is
downloaded. Idempotent: a model already here is only reported; one already being downloaded (by
this host or, in a fleet, any host of the volume) is waited for, not fetched again.

Models the workflow does not need now are reported but do not make it fail: nodes that are
bypassed or muted, optional preset variants, files a node downloads itself.
"""
from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from .downloads.plan import plan_downloads
from .errors import ResolverError

__all__ = ["EnsureItem", "EnsureReport", "ensure"]

#: States of a model in the report. The first two are success.
OK_STATES = ("present", "downloaded")
#: Not a failure: the workflow does not need the file now.
NOT_NEEDED = "not_needed"


@dataclass
class EnsureItem:
    workflow: str
    filename: str
    folder: str | None
    state: str  # present | downloaded | queued | not_needed | missing | failed
    reason: str | None = None  # why it is not here, in words
    job_id: str | None = None
    path: str | None = None
    host: str | None = None  # in a fleet: the host that runs (or ran) its download

    @property
    def blocking(self) -> bool:
        return self.state not in (*OK_STATES, NOT_NEEDED)


@dataclass
class EnsureReport:
    items: list[EnsureItem]
    waited: bool
    errors: list[dict]  # workflows that could not be read or resolved

    @property
    def ok(self) -> bool:
        return not self.errors and not any(i.blocking for i in self.items)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in self.items:
            out[i.state] = out.get(i.state, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "waited": self.waited, "counts": self.counts(),
                "models": [asdict(i) for i in self.items], "errors": self.errors}


def _not_needed(model: Any) -> str | None:
    if not model.active:
        return "its node is bypassed or muted"
    if model.optional:
        return "optional: needed only for another model family"
    if model.auto_download:
        return "the node downloads it itself on first use"
    return None


async def ensure(resolver: Any, workflows: Sequence[tuple[Any, str]], *, wait: bool = False,
                 timeout: float | None = None) -> EnsureReport:
    """`workflows`: (bytes / JSON, name) pairs. With `wait`, returns once every queued download has
    ended (or `timeout` seconds passed: what is still running is reported as queued)."""
    items: list[EnsureItem] = []
    errors: list[dict] = []
    jobs: dict[str, list[EnsureItem]] = {}
    for data, name in workflows:
        try:
            res = await resolver.resolve(data, name)
        except ResolverError as exc:
            errors.append({"workflow": name, "error": exc.to_dict()})
            continue
        requests, skipped = plan_downloads(res.models, include_inactive=False)
        why_skipped = {(s.folder, s.filename): s.reason for s in skipped}
        planned = {(r.folder, r.filename) for r in requests}
        for m in res.models:
            if not m.filename:
                continue
            item = EnsureItem(res.workflow, m.filename, m.folder, "missing")
            if m.status in ("present", "relocated"):
                item.state, item.path = "present", m.local_path
            elif (reason := _not_needed(m)) is not None:
                item.state, item.reason = NOT_NEEDED, reason
            elif (m.folder, m.filename.replace("\\", "/").lstrip("/")) in planned:
                continue  # reported with its download below
            else:
                item.reason = why_skipped.get((m.folder, m.filename)) or m.message or f"not resolved ({m.status})"
            items.append(item)
        for req in requests:
            item = EnsureItem(res.workflow, req.filename or "", req.folder, "queued")
            items.append(item)
            try:
                job = await resolver.downloads.submit(req)
            except ResolverError as exc:
                item.state, item.reason = "failed", _words(exc.to_dict())
                continue
            item.job_id, item.path, item.host = job.id, job.path, job.host
            _apply(item, job)
            jobs.setdefault(job.id, []).append(item)
    if wait and jobs:
        async def settle(job_id: str) -> None:
            try:
                job = await resolver.downloads.wait(job_id, timeout)
            except asyncio.TimeoutError:
                return
            for item in jobs[job_id]:
                _apply(item, job)
        await asyncio.gather(*(settle(j) for j in jobs))
    return EnsureReport(items, wait, errors)


def _apply(item: EnsureItem, job: Any) -> None:
    state = job.state.value
    item.host = job.host or item.host
    if state == "completed":
        item.state, item.reason, item.path = "downloaded", None, job.path
    elif state in ("failed", "cancelled", "paused"):
        item.state = "failed"
        item.reason = _words(job.error) if job.error else f"its download is {state}"
    else:
        item.state, item.reason = "queued", job.detail


def _words(err: dict | None) -> str:
    if not err:
        return "unknown error"
    return str(err.get("message") or "unknown error") + (f" ({err['hint']})" if err.get("hint") else "")
