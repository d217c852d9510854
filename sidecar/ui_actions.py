"""The Gradio UI's actions: each takes the values of its input components and returns plain values
for its outputs. All work is the shared routes through a `Backend`; the tables are `ui_tables`.

Outputs that carry the routes' JSON return it as JSON *text*: `gradio_client` treats any dict with a
`path` key as a file to fetch, and resolve results and jobs have `path` keys (a file inside a repo,
where a download lands).
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from comfyui_model_resolver.adapters.routes import ApiResponse
from comfyui_model_resolver.errors import WorkflowTooLarge, too_large

from . import ui_tables as t
from .backend import Backend

_LOG_LINES = 500
_VERBS = {"analyze": "Analyzed", "resolve": "Found sources for"}
_CONTROLS = {"cancel_download": ("Cancel", "Cancelled"), "pause_download": ("Pause", "Paused"),
             "resume_download": ("Resume", "Resumed")}
_FINISHED_WORDS = {"completed": "Finished", "failed": "Failed", "cancelled": "Cancelled"}
NO_SELECTION = "No download selected: click a row of the downloads table."


def details_text(value: Any) -> str:
    """The JSON the routes answered, as text (see the module note)."""
    return json.dumps(value, indent=1, ensure_ascii=False)


def error_text(body: Any, status: int) -> str:
    err = body.get("error", {}) if isinstance(body, dict) else {}
    text = err.get("message") or f"the server answered {status}"
    return text + (f" ({err['hint']})" if err.get("hint") else "")


def _read(path: str, limit: int) -> bytes:
    """A file Gradio stored from an upload, refused (the one "too large" error) over `limit` bytes."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise too_large("workflow", len(data), limit, "CMR_MAX_WORKFLOW_BYTES", at_least=True)
    return data


def _paths(files: Any) -> list[str]:
    """Gradio gives one path, a list of paths, or file dicts; always a list of paths."""
    if not files:
        return []
    items = files if isinstance(files, (list, tuple)) else [files]
    return [f if isinstance(f, str) else getattr(f, "name", None) or f.get("path") for f in items]


def for_download(models: list[dict]) -> list[dict]:
    """Merged rows back to the route's model shape (without the UI's own keys)."""
    return [{k: v for k, v in m.items() if k not in ("workflows", "nodes")} for m in models]


class ResolverUI:
    """The UI's actions. `batch` (a gr.State) is {"workflows": [[name, result], ...], "models": merged}."""

    def __init__(self, backend: Backend, max_workflow_bytes: int) -> None:
        self.backend = backend
        self.max_workflow_bytes = max_workflow_bytes

    @staticmethod
    def log(lines: list[str] | None, message: str) -> list[str]:
        lines = list(lines or [])
        lines.append(f"{time.strftime('%H:%M:%S')} {message}")
        return lines[-_LOG_LINES:]

    # ---- workflows -----------------------------------------------------------------------
    async def _one(self, route: str, path: str) -> tuple[str, dict, bool]:
        name = os.path.basename(path)
        try:
            data = await asyncio.to_thread(_read, path, self.max_workflow_bytes)
        except WorkflowTooLarge as exc:
            return name, {"error": exc.to_dict()}, False
        except OSError:
            return name, {"error": {"message": "The uploaded file could not be read; upload it again."}}, False
        resp: ApiResponse = await self.backend.call(route, upload=data, upload_name=name)
        ok = resp.status < 400 and isinstance(resp.body, dict)
        return name, resp.body if isinstance(resp.body, dict) else {"error": {"message": str(resp.body)}}, ok

    def tables(self, batch: dict | None) -> tuple[dict, dict, dict]:
        """The models table, the per-workflow table and the download ticks for `batch`."""
        batch = batch or {"workflows": [], "models": []}
        size = len(batch["workflows"])
        # certain models are ticked; candidates of ambiguous models and folders of folder-unknown ones are offered
        return (t.table(t.MODEL_HEADERS, t.model_rows(batch["models"], size)),
                t.table(t.WORKFLOW_HEADERS, t.workflow_rows(batch["workflows"])),
                {"__type__": "update", "choices": t.download_choices(batch["models"]),
                 "value": t.downloadable(batch["models"])})

    async def _workflows(self, route: str, files: Any, lines: list[str] | None):
        paths = _paths(files)
        if not paths:
            lines = self.log(lines, "Choose one or more workflows (.json), or images (.png/.webp) saved by ComfyUI.")
            return (*self.tables(None), details_text([]), "\n".join(lines), None, lines)
        done = await asyncio.gather(*(self._one(route, p) for p in paths))
        workflows = [[name, result] for name, result, _ in done]
        models = t.merge((name, result) for name, result, ok in done if ok)
        batch = {"workflows": workflows, "models": models}
        for name, result, ok in done:
            if not ok:
                lines = self.log(lines, f"Could not read {name}: {error_text(result, 400)}")
                continue
            found = result.get("models", [])
            lines = self.log(lines, f"{_VERBS[route]} {name}: {len(found)} models ({t.summary(found)})")
            for e in result.get("errors", []):
                lines = self.log(lines, f"  note on {name}: {e.get('message')}")
        if len(paths) > 1:
            lines = self.log(lines, f"{len(paths)} workflows use {len(models)} different model files "
                                    f"({t.summary(models)})")
        details = [result for _, result, _ in done]
        return (*self.tables(batch), details_text(details[0] if len(details) == 1 else details),
                "\n".join(lines), batch, lines)

    async def analyze(self, files, lines):
        return await self._workflows("analyze", files, lines)

    async def resolve(self, files, lines):
        return await self._workflows("resolve", files, lines)

    # ---- downloads -----------------------------------------------------------------------
    async def jobs_table(self) -> tuple[dict, list[str], list[dict]]:
        resp = await self.backend.call("list_downloads")
        jobs = resp.body.get("jobs", []) if resp.status < 400 and isinstance(resp.body, dict) else []
        return t.table(t.JOB_HEADERS, t.job_rows(jobs)), [t.job_id(j) for j in jobs], jobs

    async def _submit(self, body: dict, lines):
        resp, lines = await self._post(body, lines)
        table, ids, _ = await self.jobs_table()
        return table, details_text(resp.body), "\n".join(lines), lines, ids

    async def _post(self, body: dict, lines):
        resp = await self.backend.call("create_download", body=body)
        answer = resp.body if isinstance(resp.body, dict) else {}
        if resp.status >= 400:
            lines = self.log(lines, f"Could not start the download: {error_text(resp.body, resp.status)}")
        else:
            jobs = answer.get("jobs", [answer]) if "jobs" in answer or "id" in answer else []
            names = ", ".join(t.job_name(j) for j in jobs)
            lines = self.log(lines, f"Queued {len(jobs)} download{'s' if len(jobs) != 1 else ''}"
                                    + (f": {names}" if names else ""))
            for s in answer.get("skipped") or []:
                lines = self.log(lines, f"  not queued {s.get('folder')}/{s.get('filename')}: {s.get('reason')}")
            for e in answer.get("errors") or []:
                message = (e.get("error") or {}).get("message")
                lines = self.log(lines, f"  could not start {e.get('folder')}/{e.get('filename')}: {message}")
        return resp, lines

    async def _nothing(self, lines, message: str):
        lines = self.log(lines, message)
        table, ids, _ = await self.jobs_table()
        return table, details_text({}), "\n".join(lines), lines, ids

    async def download_selected(self, selected, batch, lines):
        selected = set(selected or [])
        if not batch or not selected:
            return await self._nothing(lines, "Nothing selected: find sources first, then tick the models to download.")
        models = [m for m in batch["models"] if t.model_key(m) in selected]
        picks = sorted(v for v in selected if v.startswith("{"))  # a candidate / folder the user ticked
        if not picks:
            return await self._submit({"models": for_download(models)}, lines)
        answers = []
        if models:
            resp, lines = await self._post({"models": for_download(models)}, lines)
            answers.append(resp.body)
        for value in picks:
            body = t.pick_body(batch["models"], value)
            if body is None:
                lines = self.log(lines, "A ticked choice no longer matches the list: find sources again.")
                continue
            resp, lines = await self._post(body, lines)
            answers.append(resp.body)
        table, ids, _ = await self.jobs_table()
        return table, details_text(answers[0] if len(answers) == 1 else answers), "\n".join(lines), lines, ids

    async def download_all(self, batch, lines):
        if not batch or not t.downloadable(batch["models"]):
            return await self._nothing(lines, "Nothing to download: find sources for workflows with missing models first.")
        return await self._submit({"models": for_download(batch["models"])}, lines)

    async def download_url(self, url, folder, filename, sha256, lines):
        body = {"url": (url or "").strip(), "folder": (folder or "").strip()}
        if (filename or "").strip():
            body["filename"] = filename.strip()
        if (sha256 or "").strip():
            body["sha256"] = sha256.strip()
        return await self._submit(body, lines)

    def _transitions(self, jobs: list[dict], seen: dict, lines):
        seen = dict(seen or {})
        finished = []
        for j in jobs:
            jid, state = t.job_id(j), t.job_state(j)
            if jid and seen.get(jid) != state:
                if state in t.FINISHED:  # pauses and resumes are logged by whoever asked for them
                    error = j.get("error") if isinstance(j.get("error"), dict) else {}
                    lines = self.log(lines, f"{_FINISHED_WORDS[state]} {t.job_name(j)}"
                                            + (f": {error.get('message')}" if error.get("message") else ""))
                if state == "completed" and seen.get(jid) != state:
                    finished.append(j)
                seen[jid] = state
        return seen, lines, finished

    async def jobs(self, seen, lines):
        """The downloads table and the log (the named endpoint /jobs)."""
        table, _, jobs = await self.jobs_table()
        _, lines, _ = self._transitions(jobs, seen, lines)
        return table, "\n".join(lines or [])

    async def poll(self, seen, batch, lines):
        """The timer: the downloads table, and models that finished downloading become `downloaded`."""
        import gradio as gr

        table, ids, jobs = await self.jobs_table()
        seen, lines, finished = self._transitions(jobs, seen, lines)
        changed = bool(batch) and any([t.mark_downloaded(batch["models"], j) for j in finished])
        if changed:
            for _, result in batch["workflows"]:
                for j in finished:
                    t.mark_downloaded(result.get("models", []), j)
            models, per_workflow, choices = self.tables(batch)
        else:
            models = per_workflow = choices = gr.skip()
        return (table, "\n".join(lines or []), seen, lines, ids, models, per_workflow, choices,
                batch if changed else gr.skip())

    @staticmethod
    def select_job(ids: list[str] | None, table: Any, index: Any) -> tuple[str, str]:
        """A clicked row of the downloads table: its job id and a line saying which download it is."""
        row = index[0] if isinstance(index, (list, tuple)) else index
        ids = ids or []
        if not isinstance(row, int) or not 0 <= row < len(ids):
            return "", NO_SELECTION
        data = table.get("data") if isinstance(table, dict) else getattr(table, "values", None)
        cells = list(data[row]) if data is not None and row < len(data) else []
        what = cells[1] if len(cells) > 1 else ids[row][:8]
        return ids[row], f"Selected: **{what}**"

    async def _control(self, route: str, wanted, lines):
        verb, done = _CONTROLS[route]
        table, ids, jobs = await self.jobs_table()
        job = t.find_job(jobs, wanted or "")
        if job is None:
            lines = self.log(lines, f"{verb}: click a download in the table first." if not (wanted or "").strip()
                             else f"{verb}: no download {wanted.strip()!r} (it may have been removed).")
            return table, details_text({}), "\n".join(lines), lines, ids
        resp = await self.backend.call(route, params={"job_id": t.job_id(job)})
        if resp.status >= 400:
            lines = self.log(lines, f"{verb} {t.job_name(job)}: {error_text(resp.body, resp.status)}")
        else:
            lines = self.log(lines, f"{done} {t.job_name(job)}")
        table, ids, _ = await self.jobs_table()
        return table, details_text(resp.body), "\n".join(lines), lines, ids

    async def cancel(self, job_id, lines):
        return await self._control("cancel_download", job_id, lines)

    async def pause(self, job_id, lines):
        return await self._control("pause_download", job_id, lines)

    async def resume(self, job_id, lines):
        return await self._control("resume_download", job_id, lines)
