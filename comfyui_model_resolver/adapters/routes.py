"""The one HTTP contract, shared by the ComfyUI routes and the sidecar.

Routes are data: `ROUTES` lists (method, relative path, handler, request model, …). Each adapter
binds them under its own prefix (ComfyUI: `/cmr/v1`, also served by ComfyUI under `/api/cmr/v1`;
sidecar: `/api/v1`). Handlers are framework-free use cases: they take the Resolver and an
`ApiRequest` and return an `ApiResponse`. Errors map to HTTP statuses in `ERROR_STATUS`, and
every error body has one shape: `{"error": {"type", "code", "message", "hint"}}`.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from ..errors import (
    AuthRequired, ConfigError, DownloadCancelled, DownloadError, HostNotAllowed, InsufficientSpace,
    IntegrityError, JobNotFound, LocalIndexError, NotFound, RateLimited, RequestTooLarge, ResolverError, SourceError,
    SourceUnavailable, TargetExists, UnsafeFormat, UnsafePath, WorkflowError, WorkflowTooLarge, too_large,
)
from ..hosts import secret_values
from ..text import json_bytes
from ..types import DownloadRequest
from ..workflow.decode import parse_json_text
from ..workflow.relink import RelinkChange, apply_relinks
from .guard import API_CHANGE, API_READ, API_UPLOAD, RouteGuard
from .seam import ApiRequest, ApiResponse, ResolverPort, error_body

log = logging.getLogger(__name__)

COMFYUI_PREFIX = "/cmr/v1"
SIDECAR_PREFIX = "/api/v1"
#: Name of the progress event pushed through ComfyUI's websocket (`api.addEventListener`).
COMFYUI_EVENT = "cmr.progress"

# Most specific first: the first matching class wins.
ERROR_STATUS: tuple[tuple[type[ResolverError], int], ...] = (
    (WorkflowTooLarge, 413),
    (RequestTooLarge, 413),
    (WorkflowError, 400),
    (ConfigError, 400),
    (JobNotFound, 404),
    (UnsafePath, 400),
    (HostNotAllowed, 400),
    (InsufficientSpace, 507),
    (IntegrityError, 502),
    (UnsafeFormat, 400),
    (TargetExists, 409),
    (DownloadCancelled, 409),
    (DownloadError, 502),
    (AuthRequired, 424),  # an upstream wants a token: not our own authentication
    (RateLimited, 429),
    (NotFound, 404),
    (SourceUnavailable, 502),
    (SourceError, 502),
    (LocalIndexError, 500),
    (ResolverError, 400),
)


def error_response(exc: BaseException) -> ApiResponse:
    """Map any exception to the one error shape. Unknown exceptions never leak details."""
    if isinstance(exc, ResolverError):
        status = next(s for cls, s in ERROR_STATUS if isinstance(exc, cls))
        d = exc.to_dict()
        headers = {}
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
        return ApiResponse({"error": d}, status, headers)
    if isinstance(exc, RecursionError):  # a value nested thousands deep: the input's fault
        return ApiResponse(error_body("WorkflowError", "The request is nested too deeply to be handled.",
                                      "A ComfyUI workflow is never nested this deeply.", code="workflow_error"), 400)
    if isinstance(exc, ValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:10])
        return ApiResponse(error_body("ValidationError", f"Invalid request: {problems}", code="invalid_request"), 422)
    log.exception("unexpected error in a route", exc_info=exc)
    return ApiResponse(error_body("InternalError", "Internal error; see the server log.", code="internal"), 500)


# ---- request models (also documented in the sidecar's OpenAPI) -------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DownloadCreate(_Strict):
    """Create a download from a URL. The folder is a ComfyUI model folder name; one ComfyUI does not
    know (a typo) is refused unless `create_folder` is true. The fields of `types.DownloadRequest`,
    checked here where the input enters."""

    url: str
    folder: str
    filename: str | None = None  # may include a subfolder, e.g. "SD1.5/x.safetensors"
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    size: int | None = Field(None, ge=0)
    priority: int = 0
    source: str | None = None
    keep_partial: bool = False
    create_folder: bool = False


class DownloadFromResolution(_Strict):
    """Create downloads for the chosen candidates of a resolve result (missing models only)."""

    models: list[dict] = Field(..., max_length=1000)
    include_inactive: bool = False
    include_optional: bool = False


class RelinkRequest(_Strict):
    workflow: Any
    changes: list[RelinkChange] = Field(..., min_length=1, max_length=10_000)


class MoveRequest(_Strict):
    """Move a model found in another folder (`path`, as analyze reported it) into `folder` under
    `filename`, the name its loader's widget holds."""

    path: str = Field(..., min_length=1, max_length=4096)
    folder: str = Field(..., min_length=1, max_length=255)
    filename: str = Field(..., min_length=1, max_length=1024)


class ConfigPatch(_Strict):
    """Settings that may change at run time. Secrets are write-only: GET shows only whether set."""

    hf_token: str | None = Field(None, max_length=4096)
    civitai_api_key: str | None = Field(None, max_length=4096)
    max_concurrent_downloads: int | None = Field(None, ge=1, le=64)
    safetensors_only: bool | None = None
    allowed_hosts: list[str] | None = Field(None, max_length=200)


class DownloadBody(RootModel[DownloadCreate | DownloadFromResolution]):
    """The body of POST /downloads: one URL, or the `models` of a resolve result."""


class EnsureBody(_Strict):
    """POST /ensure: workflows (API or UI JSON) whose models must be on this host's models volume."""

    workflows: list[dict | list] = Field(min_length=1, max_length=64)
    names: list[str] | None = None  # one per workflow, for the report
    wait: bool = False  # answer once the queued downloads have ended
    timeout: float | None = Field(None, gt=0, le=86400)  # with wait: give up waiting after this


#: File types analyze/resolve accept as an upload (the content is sniffed, not the name).
UPLOAD_TYPES = (".json", ".png", ".webp")


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _multipart_file(content_type: str, raw: bytes) -> tuple[bytes, str | None]:
    """The first file of a multipart/form-data body (RFC 7578). One copy of the file's bytes and
    nothing else: the body may be as large as the workflow limit, and any web page may send one."""
    from .multipart import first_file

    found = first_file(content_type, raw)
    if found is None:
        raise WorkflowError("The multipart upload holds no file.",
                            hint="Send the workflow as the multipart field 'file' (.json, .png or .webp).")
    return found


def decode_request(route: Route, method: str, content_type: str | None, raw: bytes,
                   query: Mapping[str, str], params: Mapping[str, str], *, max_workflow_bytes: int) -> ApiRequest:
    """The one request decoder every binding uses (after reading at most `body_limit` bytes):
    workflow uploads (multipart, raw .png/.webp, or JSON) and JSON bodies."""
    req = ApiRequest(query=dict(query), params=dict(params))
    if method not in ("POST", "PATCH", "PUT") or not raw:
        return req
    ctype = _media_type(content_type)
    if route.accepts_upload and ctype == "multipart/form-data":
        req.upload, req.upload_name = _multipart_file(content_type or "", raw)
        req.upload_name = query.get("name") or req.upload_name or "upload"
    elif route.accepts_upload and not (ctype == "application/json" or ctype.endswith("+json")):
        req.upload, req.upload_name = raw, query.get("name") or "upload"  # the core sniffs the format
    elif route.accepts_upload:  # a JSON workflow: decoded by the core, under its input gate
        req.upload, req.upload_name = raw, query.get("name") or "workflow"
    else:
        req.body = decode_json_body(raw)
        return req
    if len(req.upload) > max_workflow_bytes:
        raise too_large("workflow", len(req.upload), max_workflow_bytes, "CMR_MAX_WORKFLOW_BYTES")
    return req


def decode_json_body(raw: bytes) -> Any:
    """Request body bytes -> JSON value (None when empty). Every binding decodes bodies with this,
    so a bad body gives the same 400 on every door."""
    if not raw.strip():
        return None
    return parse_json_text(raw, what="request body", many=True)


def _workflow_input(req: ApiRequest) -> tuple[Any, str]:
    if req.upload is not None:
        return req.upload, req.upload_name or "upload"
    if req.body is None:
        raise WorkflowError("Send the workflow as the JSON body, or upload a .json/.png/.webp file.")
    return req.body, req.query.get("name") or "workflow"


def _truthy(v: str | None) -> bool:
    return (v or "").lower() in {"1", "true", "yes", "on"}


# ---- handlers ------------------------------------------------------------------------------
Handler = Callable[[ResolverPort, ApiRequest], Awaitable[ApiResponse]]


async def analyze(resolver, req: ApiRequest) -> ApiResponse:
    data, name = _workflow_input(req)
    analysis = await resolver.analyze(data, name)
    return ApiResponse(analysis.model_dump(mode="json"))


async def resolve(resolver, req: ApiRequest) -> ApiResponse:
    data, name = _workflow_input(req)
    resolution = await resolver.resolve(data, name)
    return ApiResponse(resolution.model_dump(mode="json"))


async def search(resolver, req: ApiRequest) -> ApiResponse:
    q = (req.query.get("q") or "").strip()
    if not q:
        raise WorkflowError("Give a search text: ?q=<file or model name>.")
    if len(q) > 256:
        raise WorkflowError("The search text is longer than 256 characters.")
    result = await resolver.search(q, req.query.get("folder") or None)
    return ApiResponse(result.model_dump(mode="json"))  # {query, folder, candidates, providers}


async def create_download(resolver, req: ApiRequest) -> ApiResponse:
    body = req.body if isinstance(req.body, dict) else None
    if body is None:
        raise WorkflowError('Send {"url", "folder", "filename"?, "sha256"?} or a resolve result {"models": [...]}.')
    if "models" in body:
        request = DownloadFromResolution.model_validate(body)
        jobs, skipped, errors = await resolver.download_resolution(
            request.models, include_inactive=request.include_inactive, include_optional=request.include_optional)
        return ApiResponse({"jobs": [j.model_dump(mode="json") for j in jobs], "skipped": skipped,
                            "errors": errors}, 202)
    create = DownloadCreate.model_validate(body)
    job = await resolver.download_url(DownloadRequest.model_validate(create.model_dump(exclude={"keep_partial", "create_folder"})),
                                      create_folder=create.create_folder)
    return ApiResponse(job.model_dump(mode="json"), 202)


async def list_downloads(resolver, req: ApiRequest) -> ApiResponse:
    return ApiResponse({"jobs": [j.model_dump(mode="json") for j in resolver.downloads.jobs()]})


async def get_download(resolver, req: ApiRequest) -> ApiResponse:
    return ApiResponse(resolver.downloads.job(req.params["job_id"]).model_dump(mode="json"))


async def cancel_download(resolver, req: ApiRequest) -> ApiResponse:
    job = await resolver.downloads.cancel(req.params["job_id"], keep_partial=_truthy(req.query.get("keep_partial")))
    return ApiResponse(job.model_dump(mode="json"))


async def pause_download(resolver, req: ApiRequest) -> ApiResponse:
    return ApiResponse((await resolver.downloads.pause(req.params["job_id"])).model_dump(mode="json"))


async def resume_download(resolver, req: ApiRequest) -> ApiResponse:
    return ApiResponse((await resolver.downloads.resume(req.params["job_id"])).model_dump(mode="json"))


async def ensure(resolver, req: ApiRequest) -> ApiResponse:
    body = EnsureBody.model_validate(req.body if req.body is not None else {})
    names = body.names or []
    workflows = [(wf, names[i] if i < len(names) else f"workflow-{i + 1}") for i, wf in enumerate(body.workflows)]
    return ApiResponse((await resolver.ensure(workflows, wait=body.wait, timeout=body.timeout)).to_dict())


async def relink(resolver, req: ApiRequest) -> ApiResponse:
    request = RelinkRequest.model_validate(req.body)
    workflow, applied = apply_relinks(request.workflow, request.changes)
    return ApiResponse({"workflow": workflow, "applied": applied})


async def move_model(resolver, req: ApiRequest) -> ApiResponse:
    request = MoveRequest.model_validate(req.body if req.body is not None else {})
    return ApiResponse(await resolver.move_model(request.path, request.folder, request.filename))


async def get_config(resolver, req: ApiRequest) -> ApiResponse:
    return ApiResponse(resolver.public_config())


async def patch_config(resolver, req: ApiRequest) -> ApiResponse:
    patch = ConfigPatch.model_validate(req.body if req.body is not None else {})
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise ConfigError("Nothing to change: send one or more of " + ", ".join(ConfigPatch.model_fields) + ".")
    await resolver.update_settings(**changes)
    return ApiResponse(resolver.public_config())


async def list_models(resolver, req: ApiRequest) -> ApiResponse:
    await resolver.refresh_index()
    return ApiResponse(resolver.local_models(folder=req.query.get("folder") or None))


@dataclass(frozen=True)
class QueryParam:
    """A documented query parameter. Handlers read `ApiRequest.query`; bindings use this for docs."""

    name: str
    description: str
    type: Literal["string", "boolean"] = "string"
    required: bool = False
    max_length: int | None = None


@dataclass(frozen=True)
class Route:
    method: Literal["GET", "POST", "PATCH", "DELETE"]
    path: str  # relative to the adapter's prefix; `{name}` path parameters
    name: str
    summary: str
    handler: Handler | None  # None: the adapter streams it (server-sent events)
    guard: RouteGuard = API_READ  # the request guard's checks for this route (adapters/guard.py)
    body: type[BaseModel] | None = None  # documents the JSON body
    status: int = 200
    query: tuple[QueryParam, ...] = ()

    @property
    def mutating(self) -> bool:
        """It changes state: beyond loopback it needs the API key."""
        return self.guard.auth == "key"

    @property
    def accepts_upload(self) -> bool:
        """It takes a workflow (JSON, or a .json/.png/.webp upload) under the workflow size limit."""
        return self.guard.body == "upload"


ROUTES: tuple[Route, ...] = (
    Route("POST", "/analyze", "analyze", "List the models a workflow needs and which are present.", analyze,
          guard=API_UPLOAD, query=(QueryParam("name", "Name to report for a JSON body (uploads use the file name).", max_length=1024),)),
    Route("POST", "/resolve", "resolve", "Analyze, then find a ranked, explained download source for each missing model.",
          resolve, guard=API_UPLOAD, query=(QueryParam("name", "Name to report for a JSON body (uploads use the file name).", max_length=1024),)),
    Route("GET", "/search", "search", "Search the sources for a model file (?q=, ?folder=).", search,
          query=(QueryParam("q", "File or model name to look for.", required=True, max_length=256),
                 QueryParam("folder", "ComfyUI model folder, e.g. checkpoints or loras."))),
    Route("POST", "/downloads", "create_download", "Start a download (from a URL or a resolve result).",
          create_download, guard=API_CHANGE, body=DownloadBody, status=202),
    Route("GET", "/downloads", "list_downloads", "All download jobs.", list_downloads),
    Route("GET", "/downloads/events", "download_events", "Download progress as server-sent events.", None),
    Route("GET", "/downloads/{job_id}", "get_download", "One download job.", get_download),
    Route("DELETE", "/downloads/{job_id}", "cancel_download", "Cancel a download (?keep_partial=true keeps the part file).",
          cancel_download, guard=API_CHANGE,
          query=(QueryParam("keep_partial", "Keep the part file so a later download can resume it.", "boolean"),)),
    Route("POST", "/downloads/{job_id}/pause", "pause_download", "Pause a download.", pause_download, guard=API_CHANGE),
    Route("POST", "/downloads/{job_id}/resume", "resume_download", "Resume a paused or failed download.",
          resume_download, guard=API_CHANGE),
    Route("POST", "/ensure", "ensure", "Make sure every model of these workflows is on this host's models volume: "
          "queue the missing ones with a confident source; says what could not be ensured and why.", ensure,
          guard=RouteGuard(body="json", limit="workflow", auth="key"), body=EnsureBody),
    Route("POST", "/relink", "relink", "Rewrite widget values to point at relocated files; returns the workflow.",
          relink, guard=RouteGuard(body="json"), body=RelinkRequest),
    Route("POST", "/move", "move_model", "Move a model file found in the wrong folder into the folder its loader reads.",
          move_model, guard=API_CHANGE, body=MoveRequest),
    Route("GET", "/config", "get_config", "Current settings; secrets are shown only as set/unset.", get_config),
    Route("PATCH", "/config", "patch_config", "Change run-time settings (tokens are write-only).", patch_config,
          guard=API_CHANGE, body=ConfigPatch),
    Route("GET", "/models", "list_models", "The local model index (?folder=).", list_models,
          query=(QueryParam("folder", "Only this ComfyUI model folder."),)),
)


#: Seconds between keep-alive comments on the event stream (proxies drop idle connections).
SSE_HEARTBEAT = 15.0


def event_payload(event: Any) -> Any:
    """A bus event (ProgressEvent, Job snapshot or plain dict) as JSON-ready data."""
    dump = getattr(event, "model_dump", None)
    return dump(mode="json") if callable(dump) else event


def format_sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + json_bytes(data, separators=(",", ":")) + b"\n\n"


async def download_event_stream(resolver, *, heartbeat: float = SSE_HEARTBEAT) -> AsyncIterator[bytes]:
    """The body of `GET /downloads/events` (text/event-stream), the same for every adapter.

    `retry: 3000`, then one `event: snapshot` with `{"jobs": [...]}` (every job known now), then one
    `event: progress` per bus event (the ProgressEvent JSON, as pushed to ComfyUI as `cmr.progress`),
    and a `: keep-alive` comment after `heartbeat` quiet seconds.
    """
    sub = resolver.events.subscribe()
    try:
        yield b"retry: 3000\n\n"
        downloads = getattr(resolver, "downloads", None)
        if downloads is not None:
            yield format_sse("snapshot", {"jobs": [event_payload(j) for j in downloads.jobs()]})
        while True:
            try:
                event = await sub.get(timeout=heartbeat)
            except asyncio.TimeoutError:
                yield b": keep-alive\n\n"
                continue
            except StopAsyncIteration:
                return
            yield format_sse("progress", event_payload(event))
    finally:
        sub.close()


async def dispatch(route: Route, resolver, req: ApiRequest) -> ApiResponse:
    """Run a handler and turn any exception into the one error shape. No response ever carries a
    configured secret: one that got into a message (an upstream quoting our token) is replaced."""
    assert route.handler is not None
    try:
        resp = await route.handler(resolver, req)
    except Exception as exc:  # noqa: BLE001 - every error becomes a response
        resp = error_response(exc)
    if resp.status < 400 and route.name in _LOCAL_ONLY:  # no upstream text in these: skip the scan
        return resp
    settings = getattr(resolver, "settings", None)
    secrets = secret_values(settings) if settings is not None else ()
    if secrets and any(v in json.dumps(resp.body, ensure_ascii=False, default=str) for v in secrets):
        log.warning("a response to %s quoted a configured secret; it was replaced by ***", route.name)
        resp.body = _without(resp.body, secrets)
    return resp


#: Routes whose success bodies hold only local data (a workflow, settings already reduced to set/unset).
_LOCAL_ONLY = frozenset({"analyze", "relink", "move_model", "get_config", "patch_config", "list_models"})


def _without(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for v in secrets:
            value = value.replace(v, "***")
        return value
    if isinstance(value, dict):
        return {_without(k, secrets): _without(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without(v, secrets) for v in value]
    return value
