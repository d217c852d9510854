"""The Gradio UI: upload a workflow or image, see its models with status and chosen source, download
the selected ones or all with live progress, and read a log.

Every action is a named API endpoint, so `gradio_client` drives it headless:

    from gradio_client import Client, handle_file
    c = Client("http://127.0.0.1:5001/")            # or http://host:5002/gradio/
    table, choices, details, log = c.predict(handle_file("wf.png"), api_name="/resolve")
    c.predict(api_name="/download_all")
    jobs, log = c.predict(api_name="/jobs")

The UI only formats; all work is the shared routes through a `Backend` (in-process or HTTP).
"""
from __future__ import annotations

import asyncio
import hmac
import importlib.util
import inspect
import logging
import os
import time
from typing import Any

from comfyui_model_resolver.adapters.guard import UI
from comfyui_model_resolver.adapters.routes import ApiResponse
from comfyui_model_resolver.errors import WorkflowTooLarge, too_large
from comfyui_model_resolver.settings import Settings

from .backend import Backend, InProcessBackend
from .security import is_loopback

log = logging.getLogger("cmr.ui")

MODEL_HEADERS = ["Status", "Folder", "File", "Node", "Active", "Chosen source", "Location / URL", "Confidence"]
JOB_HEADERS = ["Job", "File", "Folder", "State", "Progress", "Speed", "ETA", "Host", "Message"]
_LOG_LINES = 500
_DONE = {"present", "relocated"}


def gradio_available() -> bool:
    return importlib.util.find_spec("gradio") is not None


# ---- formatting (pure) -----------------------------------------------------------------------
def model_key(model: dict) -> str:
    return f"{model.get('folder') or '?'}/{model.get('filename')}"


def _chosen(model: dict) -> dict | None:
    candidates = model.get("candidates") or []
    return candidates[0] if candidates else None


def model_rows(result: dict | None) -> list[list]:
    rows = []
    for m in (result or {}).get("models", []):
        chosen = _chosen(m)
        source = ""
        if chosen:
            source = chosen.get("source", "")
            if chosen.get("repo"):
                source += f" ({chosen['repo']})"
        where = m.get("local_path") or (chosen or {}).get("url") or m.get("url") or m.get("message") or ""
        node = f"#{'/'.join([*m.get('subgraph_path', []), str(m.get('node_id', ''))])} {m.get('node_type', '')}".strip()
        confidence = (chosen or {}).get("confidence", m.get("confidence"))
        rows.append([m.get("status", ""), m.get("folder") or "?", m.get("filename", ""), node,
                     "yes" if m.get("active", True) else "no", source, where,
                     "" if confidence is None else f"{confidence:.2f}"])
    return rows


def downloadable(result: dict | None) -> list[str]:
    keys: list[str] = []
    for m in (result or {}).get("models", []):
        if m.get("status") not in _DONE and _chosen(m) and model_key(m) not in keys:
            keys.append(model_key(m))
    return keys


def _bytes(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


def _state(job: dict) -> str:
    state = str(job.get("state", ""))
    return "waiting for lease" if state == "queued" and job.get("lease") == "waiting" else state


def job_rows(jobs: list[dict]) -> list[list]:
    rows = []
    for j in jobs:
        done, total = j.get("bytes_done") or 0, j.get("total") or j.get("size")
        progress = f"{_bytes(done)} / {_bytes(total)}" + (f" ({100 * done / total:.0f}%)" if total else "")
        eta = j.get("eta")
        error = j.get("error") or {}
        rows.append([j.get("job_id") or j.get("id") or "", j.get("filename", ""), j.get("folder", ""), _state(j),
                     progress, f"{_bytes(j.get('speed') or 0)}/s" if _state(j) == "running" else "",
                     f"{eta:.0f} s" if isinstance(eta, (int, float)) else "", j.get("host") or "",
                     error.get("message", "") if isinstance(error, dict) else str(error)])
    return rows


def _table(headers: list[str], rows: list[list]) -> dict:
    return {"headers": headers, "data": rows}


def _error_text(resp: ApiResponse) -> str:
    err = resp.body.get("error", {}) if isinstance(resp.body, dict) else {}
    text = err.get("message") or f"HTTP {resp.status}"
    return text + (f" ({err['hint']})" if err.get("hint") else "")


# ---- actions ---------------------------------------------------------------------------------
class ResolverUI:
    """The UI's actions. Each returns plain values for the Gradio components it updates."""

    def __init__(self, backend: Backend, max_workflow_bytes: int) -> None:
        self.backend = backend
        self.max_workflow_bytes = max_workflow_bytes

    @staticmethod
    def _log(lines: list[str] | None, message: str) -> list[str]:
        lines = list(lines or [])
        lines.append(f"{time.strftime('%H:%M:%S')} {message}")
        return lines[-_LOG_LINES:]

    async def _workflow(self, route: str, path: str | None, lines: list[str] | None):
        import gradio as gr

        if not path:
            lines = self._log(lines, "Choose a workflow .json, or a .png/.webp saved by ComfyUI.")
            return _table(MODEL_HEADERS, []), gr.update(choices=[], value=[]), {}, "\n".join(lines), None, lines
        name = os.path.basename(path)
        try:
            data = await asyncio.to_thread(_read, path, self.max_workflow_bytes)
        except WorkflowTooLarge as exc:
            resp = ApiResponse({"error": exc.to_dict()}, 413)
        else:
            resp = await self.backend.call(route, upload=data, upload_name=name)
        if resp.status >= 400:
            lines = self._log(lines, f"{route} {name}: {_error_text(resp)}")
            return _table(MODEL_HEADERS, []), gr.update(choices=[], value=[]), resp.body, "\n".join(lines), None, lines
        result = resp.body
        models = result.get("models", [])
        counts: dict[str, int] = {}
        for m in models:
            counts[m.get("status", "?")] = counts.get(m.get("status", "?"), 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no model files"
        lines = self._log(lines, f"{route} {name}: {len(models)} models ({summary})")
        for e in result.get("errors", []):
            lines = self._log(lines, f"  {e.get('type', 'note')}: {e.get('message')}")
        choices = downloadable(result)
        return (_table(MODEL_HEADERS, model_rows(result)), gr.update(choices=choices, value=choices), result,
                "\n".join(lines), result, lines)

    async def analyze(self, path, lines):
        return await self._workflow("analyze", path, lines)

    async def resolve(self, path, lines):
        return await self._workflow("resolve", path, lines)

    async def _submit(self, body: dict, lines, what: str):
        resp = await self.backend.call("create_download", body=body)
        if resp.status >= 400:
            lines = self._log(lines, f"download {what}: {_error_text(resp)}")
        else:
            jobs = resp.body.get("jobs", [resp.body]) if isinstance(resp.body, dict) else []
            lines = self._log(lines, f"download {what}: {len(jobs)} job(s) queued")
            for j in jobs:
                lines = self._log(lines, f"  {j.get('folder')}/{j.get('filename')} [{_state(j)}]")
            body = resp.body if isinstance(resp.body, dict) else {}
            for s in body.get("skipped") or []:
                lines = self._log(lines, f"  skipped {s.get('folder')}/{s.get('filename')}: {s.get('reason')}")
            for e in body.get("errors") or []:
                message = (e.get("error") or {}).get("message")
                lines = self._log(lines, f"  not started {e.get('folder')}/{e.get('filename')}: {message}")
        table, _ = await self._jobs_table()
        return table, resp.body, "\n".join(lines), lines

    async def download_selected(self, selected, result, lines):
        selected = set(selected or [])
        if not result or not selected:
            lines = self._log(lines, "Nothing selected: find sources first, then tick the models to download.")
            table, _ = await self._jobs_table()
            return table, {}, "\n".join(lines), lines
        models = [m for m in result.get("models", []) if model_key(m) in selected]
        return await self._submit({"models": models}, lines, f"{len(selected)} selected")

    async def download_all(self, result, lines):
        if not result or not downloadable(result):
            lines = self._log(lines, "Nothing to download: find sources for a workflow with missing models first.")
            table, _ = await self._jobs_table()
            return table, {}, "\n".join(lines), lines
        return await self._submit({"models": list(result.get("models", []))}, lines, "all missing")

    async def download_url(self, url, folder, filename, sha256, lines):
        body = {"url": (url or "").strip(), "folder": (folder or "").strip()}
        if (filename or "").strip():
            body["filename"] = filename.strip()
        if (sha256 or "").strip():
            body["sha256"] = sha256.strip()
        return await self._submit(body, lines, body["url"] or "(no URL)")

    async def _jobs_table(self) -> tuple[dict, list[dict]]:
        resp = await self.backend.call("list_downloads")
        jobs = resp.body.get("jobs", []) if resp.status < 400 and isinstance(resp.body, dict) else []
        return _table(JOB_HEADERS, job_rows(jobs)), jobs

    async def jobs(self, seen, lines):
        table, jobs = await self._jobs_table()
        seen = dict(seen or {})
        for j in jobs:
            jid, state = j.get("job_id") or j.get("id"), _state(j)
            if jid and seen.get(jid) != state:
                if jid in seen or state in ("completed", "failed", "cancelled"):
                    extra = ""
                    if state == "failed" and isinstance(j.get("error"), dict):
                        extra = f": {j['error'].get('message')}"
                    lines = self._log(lines, f"{j.get('folder')}/{j.get('filename')} {state}{extra}")
                seen[jid] = state
        return table, "\n".join(lines or []), seen, lines

    async def _control(self, route: str, job_id, lines):
        job_id = (job_id or "").strip()
        if not job_id:
            lines = self._log(lines, f"{route}: give a job id (first column of the downloads table).")
            table, _ = await self._jobs_table()
            return table, {}, "\n".join(lines), lines
        resp = await self.backend.call(route, params={"job_id": job_id})
        verb = route.split("_")[0]
        lines = self._log(lines, f"{verb} {job_id}: " + (_error_text(resp) if resp.status >= 400 else _state(resp.body)))
        table, _ = await self._jobs_table()
        return table, resp.body, "\n".join(lines), lines

    async def cancel(self, job_id, lines):
        return await self._control("cancel_download", job_id, lines)

    async def pause(self, job_id, lines):
        return await self._control("pause_download", job_id, lines)

    async def resume(self, job_id, lines):
        return await self._control("resume_download", job_id, lines)


def _read(path: str, limit: int) -> bytes:
    """A file Gradio stored from an upload, refused (the one "too large" error) over `limit` bytes."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise too_large("workflow", len(data), limit, "CMR_MAX_WORKFLOW_BYTES", at_least=True)
    return data


def _private() -> dict[str, Any]:
    """Keyword that keeps an event out of the API page (gradio 6: api_visibility; 5: show_api)."""
    import gradio as gr

    params = inspect.signature(gr.Button.click).parameters
    return {"api_visibility": "private"} if "api_visibility" in params else {"show_api": False}


def build_ui(backend: Backend, *, poll_seconds: float = 1.0, max_workflow_bytes: int = Settings.model_fields["max_workflow_bytes"].default):
    """The Gradio Blocks for `backend`. Named endpoints: analyze, resolve, download_selected,
    download_all, download_url, jobs, cancel, pause, resume."""
    import gradio as gr

    ui = ResolverUI(backend, max_workflow_bytes)
    with gr.Blocks(title="ComfyUI Model Resolver", analytics_enabled=False) as blocks:
        gr.Markdown("## ComfyUI Model Resolver\nUpload a workflow `.json`, or a `.png`/`.webp` saved by ComfyUI. "
                    "**Analyze** lists its models and what you already have; **Find sources** picks a download "
                    f"source for each missing one. Core: {backend.where}.")
        result_state = gr.State(None)
        log_state = gr.State([])
        seen_state = gr.State({})
        with gr.Row():
            upload = gr.File(label="Workflow or image", file_types=[".json", ".png", ".webp"], type="filepath")
            with gr.Column():
                analyze_btn = gr.Button("Analyze")
                resolve_btn = gr.Button("Find sources", variant="primary")
        models = gr.Dataframe(value=_table(MODEL_HEADERS, []), headers=MODEL_HEADERS, label="Models",
                              interactive=False, wrap=True)
        selection = gr.CheckboxGroup(label="Missing models to download", choices=[])
        with gr.Row():
            dl_selected = gr.Button("Download selected", variant="primary")
            dl_all = gr.Button("Download all missing")
        with gr.Accordion("Download from a URL", open=False):
            with gr.Row():
                url = gr.Textbox(label="URL")
                folder = gr.Textbox(label="Folder", placeholder="checkpoints")
                filename = gr.Textbox(label="File name (optional)")
                sha256 = gr.Textbox(label="SHA-256 (optional)")
            dl_url = gr.Button("Download URL")
        jobs = gr.Dataframe(value=_table(JOB_HEADERS, []), headers=JOB_HEADERS, label="Downloads", interactive=False)
        with gr.Row():
            job_id = gr.Textbox(label="Job id", scale=3)
            refresh = gr.Button("Refresh")
            pause = gr.Button("Pause")
            resume = gr.Button("Resume")
            cancel = gr.Button("Cancel", variant="stop")
        log_box = gr.Textbox(label="Log", lines=10, max_lines=20, interactive=False, autoscroll=True)
        with gr.Accordion("Details (JSON of the last action)", open=False):
            details = gr.JSON(label="Details")

        wf_out = [models, selection, details, log_box, result_state, log_state]
        analyze_btn.click(ui.analyze, [upload, log_state], wf_out, api_name="analyze")
        upload.upload(ui.analyze, [upload, log_state], wf_out, **_private())
        resolve_btn.click(ui.resolve, [upload, log_state], wf_out, api_name="resolve")
        dl_out = [jobs, details, log_box, log_state]
        dl_selected.click(ui.download_selected, [selection, result_state, log_state], dl_out, api_name="download_selected")
        dl_all.click(ui.download_all, [result_state, log_state], dl_out, api_name="download_all")
        dl_url.click(ui.download_url, [url, folder, filename, sha256, log_state], dl_out, api_name="download_url")
        jobs_out = [jobs, log_box, seen_state, log_state]
        refresh.click(ui.jobs, [seen_state, log_state], jobs_out, api_name="jobs")
        timer = gr.Timer(poll_seconds)
        timer.tick(ui.jobs, [seen_state, log_state], jobs_out, show_progress="hidden", **_private())
        cancel.click(ui.cancel, [job_id, log_state], dl_out, api_name="cancel")
        pause.click(ui.pause, [job_id, log_state], dl_out, api_name="pause")
        resume.click(ui.resume, [job_id, log_state], dl_out, api_name="resume")
    return blocks


# ---- serving ---------------------------------------------------------------------------------
def ui_auth(settings: Settings, host: str):
    """Beyond loopback the UI asks for a login: any user name, the API key as password."""
    if is_loopback(host):
        return None
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if not key:
        return None  # the guard below refuses such requests; `cmr serve` refuses to start

    def check(username: str, password: str) -> bool:
        return hmac.compare_digest((password or "").encode(), key.encode())
    return check


def _mount(app, blocks, path: str, auth) -> None:
    import gradio as gr

    kwargs: dict[str, Any] = {"auth": auth, "show_error": True}
    params = inspect.signature(gr.mount_gradio_app).parameters
    if "ssr_mode" in params:
        kwargs["ssr_mode"] = False
    gr.mount_gradio_app(app, blocks, path=path, **kwargs)


def mount_ui(app, settings: Settings, path: str) -> bool:
    """Mount the UI on the sidecar `app` at `path`, calling the app's own Resolver in-process. Returns
    whether it asks for a login (the sidecar's request guard refuses it beyond loopback otherwise)."""
    backend = InProcessBackend(lambda: app.state.resolver, observe=lambda *a: app.state.metrics.observe(*a))
    auth = ui_auth(settings, settings.api_host)
    _mount(app, build_ui(backend, max_workflow_bytes=settings.max_workflow_bytes), path, auth)
    return auth is not None


def create_ui_app(settings: Settings, backend: Backend, *, host: str | None = None):
    """A FastAPI app serving only the UI at / (port CMR_GRADIO_PORT)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            await backend.close()

    from .security import GuardMiddleware, sidecar_policy

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    bind = settings.gradio_host if host is None else host
    auth = ui_auth(settings, bind)
    _mount(app, build_ui(backend, max_workflow_bytes=settings.max_workflow_bytes), "/", auth)
    # every path of this app is the UI: the one request guard with the UI's checks (host, origin, login)
    app.add_middleware(GuardMiddleware, policy=sidecar_policy(settings, ui_login=auth is not None, bind=bind),
                       guard_for=lambda method, path: (UI, path))
    return app
