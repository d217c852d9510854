"""Frozen value types shared by every layer. They serialise to the public JSON contract
(``model_dump(mode="json")``); see records.py for why they are dataclasses, not pydantic models."""
from __future__ import annotations

import re
from dataclasses import field
from enum import Enum
from typing import Literal

from .records import Record

WorkflowFormat = Literal["ui", "api", "png", "webp"]

#: Where a reference's folder came from, most trusted first.
FolderSource = Literal["schema", "table", "embedded", "generic"]

#: Confidence in the folder, by where it came from.
FOLDER_CONFIDENCE: dict[str, float] = {"schema": 1.0, "table": 0.95, "embedded": 0.8, "generic": 0.3}


class _Frozen(Record):
    """Frozen, keyword-only; unknown fields are a TypeError."""


class FolderConflict(_Frozen):
    """A less trusted source named another folder than the one chosen."""

    folder: str
    source: FolderSource


class ModelRef(_Frozen):
    """One (node, input) that names a model file. Pure data from the workflow."""

    filename: str  # exactly as written in the workflow
    #: Canonical ComfyUI folder. None means "folder unknown" (nothing describes the node): `alt_folders`
    #: then holds the candidate folders, most likely first, and `note` says so ("folder unknown: … one of a, b").
    folder: str | None
    node_id: str
    node_type: str
    input: str
    subgraph_path: tuple[str, ...] = ()  # ids of the subgraph instances (or "def:<id>") that contain the node
    subgraph_id: str | None = None  # id of the subgraph definition holding the node (None: root graph)
    active: bool = True
    url: str | None = None
    hash: str | None = None
    hash_type: str | None = None
    folder_source: FolderSource | None = None
    confidence: float = 0.0  # confidence in `folder`
    kind: Literal["file", "directory"] = "file"
    conflicts: tuple[FolderConflict, ...] = ()
    note: str | None = None  # e.g. "preset PLUS (high strength)" or "embedding in prompt text"
    widget_index: int | None = None  # position in the node's widgets_values list, when it has one
    widget_key: str | None = None  # key inside a dict widget value (rgthree) or dict widgets_values
    alt_folders: tuple[str, ...] = ()  # other folders the node also reads the file from
    optional: bool = False  # needed only for one model family (preset variants) or only if absent
    variant: str | None = None  # the model family a preset file serves (sd15, sdxl, flux, …)
    auto_download: bool = False  # the node fetches the file itself on first use
    match: Literal["exact", "fuzzy", "substring"] = "exact"  # how the node finds the file by this name
    pack: str | None = None  # the custom-node pack of the node (loader table), None for core or unknown
    implied: bool = False  # not named by a widget: a preset or the node itself implies it (IP-adapter unified, antelopev2)
    #: Why, in plain words, for an implied model: "implied by IPAdapterUnifiedLoader's preset 'PLUS (high
    #: strength)'" or "implied by PhotoMakerInsightFaceLoader: its pack's code loads it (insightface_package.py:45)".
    implied_by: str | None = None


class LocalStatus(str, Enum):
    present = "present"
    relocated = "relocated"
    missing = "missing"


class LocalMatch(_Frozen):
    """How a reference relates to the files on disk."""

    status: LocalStatus
    local_path: str | None = None  # absolute path of the file found
    relink_value: str | None = None  # widget value that would point at the file (relocated only)
    sha256: str | None = None


class ModelReport(ModelRef):
    """A reference with its local status: one row of `cmr analyze --json`."""

    status: str = "missing"
    local_path: str | None = None
    relink_value: str | None = None
    local_sha256: str | None = None  # computed only on request (analyze with hash matching)
    hash_verified: bool | None = None  # local file's SHA-256 equals the embedded hash
    #: A pickle format (.ckpt .pt .pt2 .pth .bin .pkl): loading it can run code. Adapters warn about
    #: it; CMR_SAFETENSORS_ONLY refuses to download it.
    pickle: bool = False

    @classmethod
    def from_ref(cls, ref: ModelRef, match: LocalMatch, *, pickle: bool = False) -> "ModelReport":
        data = {name: getattr(ref, name) for name in ModelRef.model_fields}
        data.update(status=match.status.value, local_path=match.local_path, relink_value=match.relink_value,
                    pickle=pickle)
        return cls(**data)


class Analysis(_Frozen):
    """The result of analysing one workflow: one line of `cmr analyze --json`."""

    workflow: str
    format: WorkflowFormat | None = None
    models: tuple[ModelReport, ...] = ()
    errors: tuple[dict, ...] = ()


class ParsedWorkflow(_Frozen):
    """What the parser returns before local matching."""

    format: WorkflowFormat
    refs: tuple[ModelRef, ...]
    warnings: tuple[str, ...] = ()


class CandidateFile(_Frozen):
    """One file of a multi-file candidate (a sharded model: its shards, index and config)."""

    path: str  # path inside the repo
    url: str
    size: int | None = None
    sha256: str | None = None


class Candidate(_Frozen):
    """One place a missing model could be downloaded from."""

    url: str
    source: str  # embedded | catalog | huggingface | civitai | manager
    confidence: float
    filename: str | None = None  # name the file is served under
    size: int | None = None
    sha256: str | None = None
    repo: str | None = None  # HF repo id or Civitai model/version
    path: str | None = None  # path inside the repo
    reasons: tuple[str, ...] = ()
    gated: bool = False
    requires_auth: bool = False
    token_env: str | None = None
    # Facts the provider saw, used by ranking (sources/rank.py) and shown to the user.
    folder: str | None = None  # the folder the source files it under (catalog, embedded, repo path, Civitai type)
    publisher: str | None = None  # HF namespace / Civitai creator
    downloads: int | None = None  # popularity, when the source reports it
    via: str | None = None  # how it was found: workflow, note, catalog, manager, listing, search, hash
    hash_match: bool = False  # the source found it by the model's own hash
    early_access: bool = False
    published: str | None = None  # ISO date the repo / version was created
    model_name: str | None = None  # Civitai: the name of the model the version belongs to
    likes: int | None = None
    base_model: str | None = None  # what the repo's model card says it derives from (cardData.base_model)
    #: A model that is several files downloaded as one unit (`model-00001-of-00005.safetensors`, the
    #: other shards and the index beside it): every file, the named one first. Empty for one file.
    files: tuple[CandidateFile, ...] = ()


class DownloadState(str, Enum):
    queued = "queued"
    running = "running"
    paused = "paused"
    verifying = "verifying"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class ProgressEvent(_Frozen):
    """Published on the event bus for every change of a download job."""

    job_id: str
    state: DownloadState
    filename: str
    folder: str
    bytes_done: int = 0
    total: int | None = None
    speed: float = 0.0  # bytes per second
    eta: float | None = None  # seconds
    error: dict | None = None
    path: str | None = None
    sha256: str | None = None
    detail: str | None = None  # what the job is doing or waiting for ("retrying in 4 s: …")
    host: str | None = None  # fleet mode: the host running (or that ran) the job
    lease: Literal["held", "waiting"] | None = None  # fleet mode: "waiting" = queued until a host takes it


class DownloadRequest(_Frozen):
    """What to download. Built from user input (CLI, routes): the checks below raise ValueError."""

    url: str
    folder: str
    filename: str | None = None  # may include a subfolder, e.g. "SD1.5/x.safetensors"
    sha256: str | None = None  # 64 hex digits
    size: int | None = None  # >= 0
    priority: int = 0
    source: str | None = None
    group: str | None = None  # the files of one multi-file model (a sharded checkpoint) share a group id

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = [f"{name}: should be a string" for name in ("url", "folder")
                    if not isinstance(getattr(self, name), str)]
        if self.sha256 is not None and not (isinstance(self.sha256, str) and _SHA256.fullmatch(self.sha256)):
            problems.append("sha256: should be 64 hexadecimal digits")
        if self.size is not None and (not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0):
            problems.append("size: should be a whole number of bytes, at least 0")
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            problems.append("priority: should be an integer")
        if problems:
            raise ValueError("; ".join(problems))


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


# ---- resolution (sources) ----------------------------------------------------------------------
#: How a provider fared during one resolve run.
ProviderState = Literal["ok", "unavailable", "rate_limited", "auth_required", "disabled"]

#: The answer for one model: `present`/`relocated` come from the local index, the rest from sources.
#: `not_found`: every source was asked and none has it; `unavailable`: nothing was found but a source
#: that could have it could not be asked (offline, proxy, the service down or rate limiting us).
ResolutionStatus = Literal["present", "relocated", "resolved", "ambiguous", "not_found", "unavailable",
                           "auth_required"]


class ProviderStatus(_Frozen):
    """One provider's state over a run, with the queries it tried and what they cost."""

    name: str
    state: ProviderState = "ok"
    message: str | None = None  # in plain words ("can't reach huggingface.co"), safe to show anyone
    host: str | None = None  # the host this provider talks to
    detail: str | None = None  # the upstream error as met (for logs and `--json` readers)
    retry_after: float | None = None  # rate_limited: seconds to wait, when the upstream said
    token_env: str | None = None  # auth_required: which variable to set
    queries: tuple[str, ...] = ()
    requests: int = 0  # upstream HTTP requests made (cache hits excluded)
    cache_hits: int = 0


class Preflight(_Frozen):
    """A HEAD check of the chosen candidate just before download."""

    url: str
    state: Literal["ok", "gated", "login_required", "early_access", "no_access", "not_found", "unavailable",
                   "rate_limited", "not_allowed"] = "ok"
    http_status: int | None = None
    size: int | None = None  # bytes, from the HEAD (X-Linked-Size, Content-Length, Content-Range)
    sha256: str | None = None  # from X-Linked-Etag when the Hub sends it
    filename: str | None = None  # from Content-Disposition, when served under another name
    message: str | None = None
    token_env: str | None = None


class DiskCheck(_Frozen):
    """Planned download bytes against the free space where they will land."""

    folder: str
    directory: str | None
    needed: int  # bytes, of the candidates whose size is known
    free: int | None  # bytes free on that filesystem, None when unknown
    unknown_sizes: int = 0  # files whose size no source gave
    enough: bool | None = None  # None when `free` is unknown


class ResolvedModel(ModelReport):
    """A model of `cmr resolve --json`: the analyze row, the resolution status and the candidates."""

    local_status: str = "missing"  # the analyze status (present / relocated / missing)
    candidates: tuple[Candidate, ...] = ()
    chosen: Candidate | None = None  # the confident answer (also for present files, with include_present)
    queries: dict[str, tuple[str, ...]] = field(default_factory=dict)  # provider -> queries tried
    preflight: Preflight | None = None
    requests: int = 0  # upstream requests this model cost
    message: str | None = None  # why not resolved, in words


class Resolution(Analysis):
    """`cmr resolve --json`: the analysis with a status and candidates per model, provider states,
    the disk check of the chosen downloads, and what the run cost."""

    models: tuple[ResolvedModel, ...] = ()  # type: ignore[assignment]
    providers: tuple[ProviderStatus, ...] = ()
    disk: tuple[DiskCheck, ...] = ()
    requests: int = 0


class SearchResult(_Frozen):
    """`Resolver.search`: candidates for a free-text query, best first, and how each provider fared."""

    query: str
    folder: str | None = None
    candidates: tuple[Candidate, ...] = ()
    providers: tuple[ProviderStatus, ...] = ()
