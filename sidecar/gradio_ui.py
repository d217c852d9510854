"""The Gradio UI: drop one or more workflows or images, see one merged list of their models with
counts per workflow, download the selected ones or all with live progress, and read a log.

Every action is a named API endpoint, so `gradio_client` drives it headless (the README's example
is run as written by tests/sidecar/test_gradio_readme.py):

    from gradio_client import Client, handle_file
    c = Client("http://127.0.0.1:5001/")            # or http://host:5002/gradio/
    models, workflows, ticks, details, log = c.predict(handle_file("wf.png"), api_name="/resolve")
    c.predict([handle_file("a.json"), handle_file("b.png")], api_name="/resolve_batch")  # one merged list
    c.predict(api_name="/download_all")
    jobs, log = c.predict(api_name="/jobs")

Endpoints return plain data: tables as {"headers", "data"}, the routes' JSON as text. The UI only
formats (`ui_tables`); the actions (`ui_actions`) call the shared routes through a `Backend`.
"""
from __future__ import annotations

import hmac
import importlib.util
import inspect
import logging
import threading
from typing import Any

from comfyui_model_resolver.adapters.guard import UI
from comfyui_model_resolver.settings import Settings

from . import ui_tables as t
from .backend import Backend, InProcessBackend
from .security import is_loopback
from .ui_actions import NO_SELECTION, ResolverUI

log = logging.getLogger("cmr.ui")
#: One build at a time: Gradio keeps the Blocks being built in process-wide state, and the UIs are
#: built in worker threads (ui_mount.LazyUI at /gradio, `cmr serve`'s UI on its own port).
_BUILDING = threading.Lock()

# Header words stay whole (a squeezed column showed its header one letter per line); long cell
# values (paths, URLs) may break anywhere. Few columns, so every table fits from 800 px on.
CSS = """
.cmr-table th, .cmr-table th * { word-break: keep-all !important; overflow-wrap: normal !important;
  hyphens: none !important; }
.cmr-table [role=gridcell], .cmr-table [role=gridcell] * { overflow-wrap: break-word; }
"""
#: Relative widths of the columns (Status, File, Used by, Source, Where) and (Job, File, State, Progress, Message).
MODEL_WIDTHS = ["16%", "24%", "15%", "21%", "24%"]
JOB_WIDTHS = ["12%", "31%", "14%", "22%", "21%"]


def gradio_available() -> bool:
    return importlib.util.find_spec("gradio") is not None


def _private() -> dict[str, Any]:
    """Keyword that keeps an event out of the API page (gradio 6: api_visibility; 5: show_api)."""
    import gradio as gr

    params = inspect.signature(gr.Button.click).parameters
    return {"api_visibility": "private"} if "api_visibility" in params else {"show_api": False}


def _blocks_kwargs() -> dict[str, Any]:
    import gradio as gr

    return {"css": CSS} if "css" in inspect.signature(gr.Blocks.__init__).parameters else {}


def _table(headers: list[str], label: str, widths: list[str] | None = None, **kw):
    import gradio as gr

    return gr.Dataframe(value=t.table(headers, []), headers=headers, label=label, interactive=False, wrap=True,
                        column_widths=widths, elem_classes=["cmr-table"], max_height=900, **kw)


def build_ui(backend: Backend, *, poll_seconds: float = 1.0,
             max_workflow_bytes: int = Settings.model_fields["max_workflow_bytes"].default):
    """The Gradio Blocks for `backend`. Named endpoints: analyze, resolve (one file), analyze_batch,
    resolve_batch (a list of files; what the page's buttons call), download_selected, download_all, download_url, jobs, cancel, pause, resume."""
    import gradio as gr

    ui = ResolverUI(backend, max_workflow_bytes)
    with _BUILDING, gr.Blocks(title="ComfyUI Model Resolver", analytics_enabled=False, **_blocks_kwargs()) as blocks:
        gr.Markdown("## ComfyUI Model Resolver\nDrop one or more workflows (`.json`) or images (`.png`/`.webp`) "
                    "saved by ComfyUI. **Analyze** lists their models and what you already have; **Find sources** "
                    f"picks a download source for each missing one. Core: {backend.where}.")
        batch_state = gr.State(None)
        log_state = gr.State([])
        seen_state = gr.State({})
        job_ids = gr.State([])
        with gr.Row(equal_height=False):
            upload = gr.File(label="Workflows or images (drop several at once)", file_count="multiple",
                             file_types=[".json", ".png", ".webp"], type="filepath", scale=3, min_width=260)
            with gr.Column(scale=1, min_width=160):
                analyze_btn = gr.Button("Analyze")
                resolve_btn = gr.Button("Find sources", variant="primary")
        workflows = _table(t.WORKFLOW_HEADERS, "Workflows")
        models = _table(t.MODEL_HEADERS, "Models (one row per file, across all workflows)", MODEL_WIDTHS)
        selection = gr.CheckboxGroup(label="Missing models to download: certain ones are ticked; for a model that is "
                                           "not certain or whose folder is unknown, tick the source and folder you choose",
                                     choices=[])
        with gr.Row():
            dl_selected = gr.Button("Download selected", variant="primary", min_width=160)
            dl_all = gr.Button("Download all missing", min_width=160)
        with gr.Accordion("Download from a URL", open=False):
            with gr.Row():
                url = gr.Textbox(label="URL", min_width=240)
                folder = gr.Textbox(label="Folder", placeholder="checkpoints", min_width=140)
                filename = gr.Textbox(label="File name (optional)", min_width=160)
                sha256 = gr.Textbox(label="SHA-256 (optional)", min_width=160)
            dl_url = gr.Button("Download URL")
        jobs = _table(t.JOB_HEADERS, "Downloads (click a row to select it)", JOB_WIDTHS)
        with gr.Row(equal_height=True):
            selected = gr.Markdown(NO_SELECTION, min_height=0)
            job_id = gr.Textbox(label="Job id", visible=False)
            refresh = gr.Button("Refresh", min_width=90, scale=0)
            pause = gr.Button("Pause", min_width=90, scale=0)
            resume = gr.Button("Resume", min_width=90, scale=0)
            cancel = gr.Button("Cancel", variant="stop", min_width=90, scale=0)
        log_box = gr.Textbox(label="Log", lines=10, max_lines=20, interactive=False, autoscroll=True)
        with gr.Accordion("Details (the JSON of the last action)", open=False):
            details = gr.Code(label="Details", language="json", interactive=False)

        wf_out = [models, workflows, selection, details, log_box, batch_state, log_state]
        analyze_btn.click(ui.analyze, [upload, log_state], wf_out, api_name="analyze_batch")
        upload.upload(ui.analyze, [upload, log_state], wf_out, api_name="dropped", **_private())
        resolve_btn.click(ui.resolve, [upload, log_state], wf_out, api_name="resolve_batch")
        # the same for one file, for API clients (`handle_file(...)` rather than a list); not shown
        one_file = gr.File(visible=False, file_types=[".json", ".png", ".webp"], type="filepath")
        analyze_one, resolve_one = gr.Button(visible=False), gr.Button(visible=False)
        analyze_one.click(ui.analyze, [one_file, log_state], wf_out, api_name="analyze")
        resolve_one.click(ui.resolve, [one_file, log_state], wf_out, api_name="resolve")
        dl_out = [jobs, details, log_box, log_state, job_ids]
        dl_selected.click(ui.download_selected, [selection, batch_state, log_state], dl_out, api_name="download_selected")
        dl_all.click(ui.download_all, [batch_state, log_state], dl_out, api_name="download_all")
        dl_url.click(ui.download_url, [url, folder, filename, sha256, log_state], dl_out, api_name="download_url")
        refresh.click(ui.jobs, [seen_state, log_state], [jobs, log_box], api_name="jobs")
        timer = gr.Timer(poll_seconds)
        timer.tick(ui.poll, [seen_state, batch_state, log_state],
                   [jobs, log_box, seen_state, log_state, job_ids, models, workflows, selection, batch_state],
                   show_progress="hidden", **_private())

        def pick(ids, table, evt):
            return ui.select_job(ids, table, evt.index)
        pick.__annotations__["evt"] = gr.SelectData  # a real class: gradio passes the click by this type
        jobs.select(pick, [job_ids, jobs], [job_id, selected], **_private())
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
    if "css" in params:  # gradio 6 takes the page's CSS here, 5 in Blocks()
        kwargs["css"] = CSS
    gr.mount_gradio_app(app, blocks, path=path, **kwargs)


def mounted_ui(app, settings: Settings, path: str):
    """The UI for the sidecar `app` at `path`, calling the app's own Resolver in-process: a holder app
    with the Gradio app mounted at `path`, started by the holder's lifespan (ui_mount.LazyUI runs it).
    Slow: imports gradio and builds the Blocks."""
    from fastapi import FastAPI

    backend = InProcessBackend(lambda: app.state.resolver, observe=lambda *a: app.state.metrics.observe(*a))
    holder = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    holder.user_middleware = app.user_middleware  # Gradio leaves CORS to its parent app when it has it
    _mount(holder, build_ui(backend, max_workflow_bytes=settings.max_workflow_bytes), path,
           ui_auth(settings, settings.api_host))
    return holder


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
