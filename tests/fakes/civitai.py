"""In-process fake of the Civitai REST API (``http://127.0.0.1:P3``) and its signed storage (``http://localhost:P4``).

Faithful to ``shared/api-contracts.md`` section B:

* ``GET /api/v1/models`` — ``query``, ``types`` (repeatable, validated), ``sort``, ``period``,
  ``limit`` (0..100), ``page`` (``page*limit > 1000`` → 429; with ``query`` → 400), ``cursor``,
  ``tag``, ``username``, ``baseModels``, ``nsfw``, ``ids``, ``primaryFileOnly``,
  ``favorites``/``hidden`` (401 anonymous); ``metadata.nextCursor``/``nextPage`` (absolute, from
  the request origin). Text relevance can be made deliberately imperfect (``imperfect_relevance``).
* ``GET /api/v1/models/{id}``, ``GET /api/v1/model-versions/{id}``,
  ``GET /api/v1/model-versions/by-hash/{hash}`` (any hash kind, case-insensitive, AutoV3 full or
  12-hex; duplicates → earliest ``publishedAt`` then lowest version id).
* ``GET /api/download/models/{versionId}`` — the B.6.2 status matrix, checked in the order of
  CIV ``getFileForModelVersion``: block list 403, download counter 429, bad query 400, missing/POI
  404, archived 410, unpublished 404, downloads disabled 401, login required 401 (per version
  or ``require_auth``; restricted versions too), no grant 403, early access 403 with ``deadline``.
  Browser User-Agents get text bodies / page redirects. File choice by ``type/format/size/fp/quantType``
  or ``fileId`` (B.6.3 scoring + mismatch 404), success = 307 to a signed storage URL whose
  ``response-content-disposition`` names the *download* filename (``getDownloadFilename``).
* Storage: ``GET``/``HEAD /{modelId}/{fileId}/{uploaded name}?X-Amz-…`` — 403 on a bad or expired
  signature, bytes via :func:`fakes.byteserve.serve_bytes` with ``Content-Disposition``.

API keys: ``Authorization: <any word> <key>`` or ``?token=<key>``; an unknown key is anonymous.

Switch targets (``civ.switch(target, ...)``): ``None``; route names ``"search"``, ``"models"``,
``"model-versions"``, ``"by-hash"``, ``"download"``, ``"storage"``; entities ``"model:ID"``,
``"version:ID"``, ``"file:ID"``; ``"download:VERSIONID"``; a bare ``int`` means ``"version:ID"``.
``on="civitai"``/``on="storage"`` restricts the server.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlencode

from aiohttp import web

from . import switches as sw
from .blobs import FakeFile
from .byteserve import retry_headers, serve_bytes
from .hashes import autov3, civitai_hashes
from .reqlog import note_faults
from .server import FakeService, UrlSigner

__all__ = ["CivFile", "CivModel", "CivVersion", "FakeCivitai", "download_filename", "filenamize", "primary_file"]

MODEL_TYPES = (
    "Checkpoint", "TextualInversion", "Hypernetwork", "AestheticGradient", "LORA", "LoCon", "DoRA",
    "Controlnet", "Upscaler", "MotionModule", "VAE", "TextEncoder", "UNet", "CLIPVision", "Poses",
    "Wildcards", "Workflows", "ComfyWorkflows", "Detection", "VisionLanguage", "CLIP", "LLM", "Other",
)
FILE_TYPES = (
    "Model", "Text Encoder", "Vision Encoder", "Pruned Model", "Negative", "Training Data", "VAE",
    "Config", "Archive", "UNet", "Diffusion Model", "CLIPVision", "ControlNet", "Workflow", "Upscaler",
    "Enhancement LoRA", "Other",
)
FORMATS = ("SafeTensor", "PickleTensor", "GGUF", "Diffusers", "Core ML", "ONNX", "Other")
SIZES = ("full", "pruned")
SORTS = ("Highest Rated", "Most Downloaded", "Most Liked", "Most Discussed", "Most Collected",
         "Most Images", "Newest", "Oldest")
PERIODS = ("AllTime", "Year", "Month", "Week", "Day")
DEFAULT_PREFERENCES = {"format": "SafeTensor", "size": "pruned", "fp": "fp16", "quantType": "Q4_K_M"}
PREFERENCE_WEIGHTS = {"format": 100, "size": 10, "fp": 1, "quantType": 0.5}
PRIMARY_FILE_TYPES = {"Model", "Pruned Model", "Diffusion Model", "UNet"}
BROWSER_MARKERS = ("mozilla", "chrome", "safari", "firefox", "opera", "edge")
MAX_ID = 2147483647
_BASE_TIME = datetime(2025, 1, 1, tzinfo=timezone.utc)
_EXT_FORMATS = {".safetensors": "SafeTensor", ".sft": "SafeTensor", ".ckpt": "PickleTensor", ".pt": "PickleTensor",
                ".pth": "PickleTensor", ".bin": "PickleTensor", ".gguf": "GGUF", ".onnx": "ONNX"}
_AIR_ECOSYSTEMS = {"SD 1.4": "sd1", "SD 1.5": "sd1", "SD 2.0": "sd2", "SD 2.1": "sd2", "SDXL 1.0": "sdxl",
                   "Pony": "sdxl", "Illustrious": "sdxl", "NoobAI": "sdxl", "Flux.1 D": "flux1",
                   "Flux.1 S": "flux1", "SD 3": "sd3", "SD 3.5": "sd3"}
_AIR_TYPES = {"Checkpoint": "checkpoint", "LORA": "lora", "LoCon": "lycoris", "DoRA": "dora",
              "TextualInversion": "embedding", "Hypernetwork": "hypernet", "Controlnet": "controlnet"}
MSG_LOGIN = "The creator of this asset requires you to be logged in to download it"
MSG_DISABLED = "The creator of this asset has disabled downloads on this file"
MSG_NO_ACCESS = "You do not have access to download this file"
MSG_TOO_MANY = ("We've noticed an unusual amount of downloading from your account. "
                "Contact support@civitai.com or come back later.")
MSG_OVERLOADED = "Model search is temporarily overloaded — please retry."


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    dt = value.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse_iso(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- Civitai naming and file choice (CIV file.service.ts, model-helpers.ts, string-helpers.ts) ---------


def _camel_case(value: str) -> str:
    words = [w for w in re.split(r"[\s_-]+", value)]
    out = []
    for i, word in enumerate(words):
        if i == 0:
            out.append(word.lower())
        elif word.upper() == word:
            out.append(word)
        else:
            out.append(word[:1].upper() + word[1:].lower())
    return "".join(out)


def _truncate(value: str, length: int, separator: str = "_") -> str:
    """lodash ``truncate(value, {length, separator, omission: ''})``."""
    if len(value) <= length:
        return value
    result = value[:length]
    if value.find(separator, length) != length:
        index = result.rfind(separator)
        if index > -1:
            result = result[:index]
    return result


def filenamize(value: str, length: int = 20) -> str:
    """Civitai's ``filenamize``: strip quotes, non-alphanumerics → ``_``, truncate, camelCase."""
    value = re.sub(r"[^a-z0-9]", "_", value.replace("'", ""), flags=re.IGNORECASE)
    length += value.count("_")
    return _camel_case(_truncate(value, length))


def download_filename(model_name: str, model_type: str, version_name: str, trained_words: list[str],
                      file_name: str, file_type: str, override_name: str | None = None) -> str:
    """Civitai's ``getDownloadFilename``: the name in ``files[].name`` and ``Content-Disposition``."""
    if override_name:
        return override_name
    model = filenamize(model_name)
    version = filenamize(re.sub(re.escape(model), "", version_name, flags=re.IGNORECASE))
    if not model or model_type in ("LORA", "LoCon"):
        return file_name
    ext = file_name.rsplit(".", 1)[-1]
    if file_type not in FILE_TYPES:
        return file_name
    if file_type == "Training Data":
        return f"{model}_{version}_trainingData.zip"
    if model_type == "TextualInversion":
        suffix = "-neg" if file_type == "Negative" else ""
        return f"{trained_words[0]}{suffix}.{ext}" if trained_words else file_name
    if file_type == "VAE":
        return file_name
    suffix = ""
    lowered = file_name.lower()
    if "-inpainting" in lowered:
        version = re.sub(r"_?inpainting", "", version, count=1, flags=re.IGNORECASE)
        suffix = "-inpainting"
    elif ".instruct-pix2pix" in lowered:
        version = re.sub(r"_?instruct|-?pix2pix", "", version, flags=re.IGNORECASE)
        suffix = ".instruct-pix2pix"
    elif file_type == "Text Encoder":
        suffix = "_txt"
    return f"{model}_{version}{suffix}.{ext}"


def primary_file(files: list[CivFile], preferences: dict | None = None) -> CivFile | None:
    """Civitai's ``getPrimaryFile`` scoring (stable: the first of equal scores wins)."""
    prefs = {**DEFAULT_PREFERENCES, **(preferences or {})}

    def score(f: CivFile) -> float:
        s = 1000.0
        for key, value in f.metadata.items():
            weight = PREFERENCE_WEIGHTS.get(key)
            if weight:
                s += weight if value == prefs.get(key) else -weight
        if f.type in PRIMARY_FILE_TYPES:
            s += 1000
        return s

    best = None
    for f in files:
        if best is None or score(f) > score(best):
            best = f
    return best


# -- data model ---------------------------------------------------------------------------------


@dataclass
class CivFile:
    """A file of a model version. ``hashes=None`` computes them from the content; ``{}`` stores none
    (Civitai has such files); a dict stores exactly those (e.g. wrong ones)."""

    blob: FakeFile
    type: str = "Model"
    format: str | None = None  # default: from the file extension
    size: str | None = None  # "full" | "pruned"
    fp: str | None = None
    quant_type: str | None = None
    hashes: dict[str, str] | None = None
    override_name: str | None = None
    visibility: str = "Public"
    id: int = 0
    _index_hashes: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.format is None:
            ext = "." + self.blob.name.rsplit(".", 1)[-1].lower() if "." in self.blob.name else ""
            self.format = _EXT_FORMATS.get(ext, "Other")

    @property
    def metadata(self) -> dict:
        meta = {"format": self.format, "size": self.size, "fp": self.fp, "quantType": self.quant_type}
        return {k: v for k, v in meta.items() if v is not None}


@dataclass
class CivVersion:
    """A model version. ``early_access_deadline`` in the future ⇒ Early Access;
    ``restricted`` ⇒ only keys given :meth:`FakeCivitai.grant` may download."""

    name: str = "v1.0"
    files: list = field(default_factory=list)
    base_model: str = "SDXL 1.0"
    base_model_type: str = "Standard"
    published_at: datetime | str | None = None
    status: str = "Published"
    require_auth: bool = False
    usage_control: str = "Download"
    early_access_deadline: datetime | str | None = None
    restricted: bool = False
    trained_words: list[str] = field(default_factory=list)
    downloads: int = 0
    thumbs_up: int = 0
    nsfw_level: int = 1
    description: str | None = None
    id: int = 0
    model_id: int = 0

    @property
    def in_early_access(self) -> bool:
        deadline = _parse_iso(self.early_access_deadline)
        return deadline is not None and datetime.now(timezone.utc) < deadline

    def public_files(self) -> list[CivFile]:
        return [f for f in self.files if f.visibility == "Public"]


@dataclass
class CivModel:
    """A model (what :meth:`FakeCivitai.add_model` returns: read ``.id``, ``.versions[i].id``,
    ``.versions[i].files[j].id``)."""

    name: str
    type: str = "Checkpoint"
    versions: list[CivVersion] = field(default_factory=list)
    creator: str = "acme"
    tags: list[str] = field(default_factory=list)
    nsfw: bool = False
    poi: bool = False
    mode: str | None = None  # "Archived" | "TakenDown" | None
    status: str = "Published"
    downloads: int = 0
    thumbs_up: int = 0
    comment_count: int = 0
    description: str = "<p>fake model</p>"
    id: int = 0

    @property
    def version_ids(self) -> list[int]:
        return [v.id for v in self.versions]

    @property
    def file_ids(self) -> list[int]:
        return [f.id for v in self.versions for f in v.files]


@dataclass
class _User:
    key: str
    username: str
    file_preferences: dict = field(default_factory=dict)
    grants: set[int] = field(default_factory=set)


class FakeCivitai(FakeService):
    """Fake Civitai API + storage. See the module docstring for routes and switch targets.

    Knobs (constructor keywords, also attributes):
        require_auth: global login requirement for downloads (``!env.UNAUTHENTICATED_DOWNLOAD``).
        download_limit: successful downloads per identity before the 429 "unusual amount" answer.
        imperfect_relevance: with ``query``, put this many popular *non-matching* models first
            (reproduces "?query=Rolia&limit=1 returned Pony Diffusion").
        search_filenames: whether ``query`` also matches file names.
        storage_url_ttl: ``X-Amz-Expires`` of signed storage URLs (seconds).
        blocked: API keys (or ``"anonymous"``) answered 403 Forbidden on download.
    """

    SERVERS = (("civitai", "127.0.0.1"), ("storage", "localhost"))

    def __init__(
        self,
        *,
        require_auth: bool = False,
        download_limit: int | None = None,
        imperfect_relevance: int = 0,
        search_filenames: bool = True,
        storage_url_ttl: int = 86400,
    ) -> None:
        super().__init__()
        self.require_auth = require_auth
        self.download_limit = download_limit
        self.imperfect_relevance = imperfect_relevance
        self.search_filenames = search_filenames
        self.storage_url_ttl = storage_url_ttl
        self.blocked: set[str] = set()
        self._models: dict[int, CivModel] = {}
        self._versions: dict[int, CivVersion] = {}
        self._files: dict[int, tuple[CivFile, CivVersion]] = {}
        self._hash_index: dict[str, set[int]] = {}
        self._users: dict[str, _User] = {}
        self._download_counts: dict[str, int] = {}
        self._next = {"model": 101, "version": 2001, "file": 3001}
        self._published_seq = 0
        self._signer = UrlSigner("X-Amz-Signature")

    @property
    def url(self) -> str:
        """API base URL (``http://127.0.0.1:P3``); the REST API lives under ``/api/v1``."""
        return self.urls["civitai"]

    @property
    def storage_url(self) -> str:
        return self.urls["storage"]

    # -- data API ---------------------------------------------------------------------

    def _new_id(self, kind: str, given: int = 0) -> int:
        if given:
            self._next[kind] = max(self._next[kind], given + 1)
            return given
        value = self._next[kind]
        self._next[kind] += 1
        return value

    def add_model(self, name: str, type: str = "Checkpoint", versions: list | None = None, *,
                  files: list | None = None, **model_fields) -> CivModel:
        """Add a model. ``versions``: :class:`CivVersion` objects or dicts of their fields; or give
        ``files`` (FakeFile/CivFile) for a single ``v1.0`` version. Hashes are computed here."""
        if type not in MODEL_TYPES:
            raise ValueError(f"unknown model type {type!r}")
        if versions is None:
            versions = [CivVersion(files=list(files or []))]
        model = CivModel(name=name, type=type, **model_fields)
        with self._lock:
            model.id = self._new_id("model", model.id)
            for v in versions:
                v = v if isinstance(v, CivVersion) else CivVersion(**v)
                v.id = self._new_id("version", v.id)
                v.model_id = model.id
                if v.published_at is None:
                    v.published_at = _BASE_TIME + timedelta(hours=self._published_seq)
                    self._published_seq += 1
                v.files = [f if isinstance(f, CivFile) else CivFile(f) for f in v.files]
                for f in v.files:
                    f.id = self._new_id("file", f.id)
                    self._prepare_hashes(f)
                    self._files[f.id] = (f, v)
                    for h in f._index_hashes.values():
                        self._hash_index.setdefault(h, set()).add(v.id)
                self._versions[v.id] = v
                model.versions.append(v)
            self._models[model.id] = model
        return model

    @staticmethod
    def _prepare_hashes(f: CivFile) -> None:
        if f.hashes is None:
            f.hashes = civitai_hashes(f.blob)
            index = dict(f.hashes)
            full_v3 = autov3(f.blob, full=True)
            if full_v3:
                index["AutoV3full"] = full_v3
        else:
            f.hashes = {k: str(v).upper() for k, v in f.hashes.items()}
            index = dict(f.hashes)
            if len(index.get("AutoV3", "")) == 64:
                index["AutoV3short"] = index["AutoV3"][:12]
        f._index_hashes = {k: v.upper() for k, v in index.items()}

    def model(self, model_id: int) -> CivModel:
        with self._lock:
            return self._models[model_id]

    def version(self, version_id: int) -> CivVersion:
        with self._lock:
            return self._versions[version_id]

    def add_api_key(self, key: str, username: str = "user", file_preferences: dict | None = None) -> None:
        """Register an API key (a signed-in user, optionally with file preferences)."""
        with self._lock:
            self._users[key] = _User(key, username, dict(file_preferences or {}))

    def grant(self, key: str, version_id: int) -> None:
        """Give a key access to a restricted / early-access version (registers the key if needed)."""
        with self._lock:
            self._users.setdefault(key, _User(key, "user")).grants.add(version_id)

    def overload_search(self, times: int | None = 1) -> sw.Switch:
        """Make ``/api/v1/models`` answer Meili's 503 + ``Retry-After: 2``."""
        return self.switch("search", status=503, retry_after=2, times=times)

    def _switch_target(self, target):
        return f"version:{target}" if isinstance(target, int) else target

    # -- request helpers --------------------------------------------------------------

    def _user(self, request: web.Request) -> _User | None:
        key = None
        header = request.headers.get("Authorization", "")
        parts = header.split(" ")
        if len(parts) > 1:
            key = parts[1]
        if not key:
            key = request.query.get("token")
        with self._lock:
            return self._users.get(key) if key else None

    @staticmethod
    def _origin(request: web.Request) -> str:
        return str(request.url.origin())

    @staticmethod
    def _json(data, status: int = 200, *, user: _User | None = None, headers: dict | None = None) -> web.Response:
        h = {"Access-Control-Allow-Origin": "*"}
        if user is None and status == 200:
            h["Cache-Control"] = "public, s-maxage=300, stale-while-revalidate=150"
        h.update(headers or {})
        return web.json_response(data, status=status, headers=h)

    def _status_response(self, request: web.Request, knobs: sw.Knobs, route: str) -> web.Response:
        note_faults(request, knobs.applied)
        status = knobs.status
        headers = retry_headers(knobs, policy="api")
        if status == 503 and route == "search":
            headers.setdefault("Retry-After", "2")
            headers["Cache-Control"] = "no-store"
            body = {"error": MSG_OVERLOADED}
        elif status == 429 and route == "download":
            body = {"error": MSG_TOO_MANY}
        elif status == 404 and route == "download":
            headers["Cache-Control"] = "private, no-store"
            body = {"error": "File not found"}
        elif status == 429:
            body = {"error": "Too Many Requests"}
        else:
            body = {"error": f"Fake Civitai error {status}"}
        return self._json(body, status, headers=headers)

    # -- JSON shapes ------------------------------------------------------------------

    def _download_url(self, origin: str, v: CivVersion, f: CivFile, primary: bool) -> str:
        url = f"{origin}/api/download/models/{v.id}"
        if primary:
            return url
        params = {"type": f.type, "format": None if f.type == "Training Data" else f.format,
                  "size": f.size, "fp": f.fp, "quantType": f.quant_type}
        query = urlencode({k: val for k, val in params.items() if val is not None})
        return f"{url}?{query}" if query else url

    def _file_json(self, m: CivModel, v: CivVersion, f: CivFile, origin: str, primary: CivFile | None,
                   *, detail: bool) -> dict:
        is_primary = f is primary
        meta = f.metadata
        if detail:
            meta = {k: val for k, val in meta.items() if k in ("format", "size", "fp")}
        data = {
            "id": f.id,
            "sizeKB": f.blob.size / 1024,
            "name": download_filename(m.name, m.type, v.name, v.trained_words, f.blob.name, f.type, f.override_name),
            "type": f.type,
            "pickleScanResult": "Success",
            "pickleScanMessage": "No Pickle imports",
            "virusScanResult": "Success",
            "virusScanMessage": None,
            "scannedAt": _iso(v.published_at),
            "metadata": meta,
            "hashes": dict(f.hashes or {}),
            "downloadUrl": self._download_url(origin, v, f, is_primary),
        }
        if detail:
            data["primary"] = is_primary
        elif is_primary:
            data["primary"] = True
        return data

    def _files_json(self, m: CivModel, v: CivVersion, origin: str, user: _User | None, *, detail: bool,
                    primary_only: bool = False) -> list[dict]:
        if m.mode == "Archived":
            return []
        files = v.public_files()
        primary = primary_file(files, user.file_preferences if user else None)
        if primary_only:
            files = [primary] if primary else []
        return [self._file_json(m, v, f, origin, primary, detail=detail) for f in files]

    def _version_stats(self, v: CivVersion) -> dict:
        return {"downloadCount": v.downloads, "thumbsUpCount": v.thumbs_up, "thumbsDownCount": 0}

    def _version_in_model(self, m: CivModel, v: CivVersion, index: int, origin: str, user: _User | None,
                          primary_only: bool) -> dict:
        data = {
            "id": v.id, "index": index, "modelId": m.id, "name": v.name, "baseModel": v.base_model,
            "baseModelType": v.base_model_type, "createdAt": _iso(v.published_at),
            "publishedAt": _iso(v.published_at), "status": v.status,
            "availability": "EarlyAccess" if v.in_early_access else "Public",
            "nsfwLevel": v.nsfw_level, "trainedWords": list(v.trained_words), "description": v.description,
            "stats": self._version_stats(v),
            "files": self._files_json(m, v, origin, user, detail=False, primary_only=primary_only),
            "images": [],
        }
        if v.in_early_access:
            data["earlyAccessDeadline"] = _iso(_parse_iso(v.early_access_deadline))
        if m.mode != "Archived":
            data["downloadUrl"] = f"{origin}/api/download/models/{v.id}"
        return data

    def _model_json(self, m: CivModel, versions: list[CivVersion], origin: str, user: _User | None,
                    primary_only: bool = False) -> dict:
        data = {
            "id": m.id, "name": m.name, "description": m.description, "type": m.type, "poi": m.poi,
            "nsfw": m.nsfw, "nsfwLevel": 4 if m.nsfw else 1, "allowNoCredit": True,
            "allowCommercialUse": ["Image"], "allowDerivatives": True, "allowDifferentLicense": True,
            "supportsGeneration": False,
            "stats": {"downloadCount": m.downloads or sum(v.downloads for v in m.versions),
                      "thumbsUpCount": m.thumbs_up, "thumbsDownCount": 0, "commentCount": m.comment_count,
                      "tippedAmountCount": 0},
            "creator": {"username": m.creator, "image": None},
            "tags": list(m.tags),
            "modelVersions": [self._version_in_model(m, v, i, origin, user, primary_only)
                              for i, v in enumerate(versions)],
        }
        if m.mode:
            data["mode"] = m.mode
        return data

    def _version_detail(self, m: CivModel, v: CivVersion, origin: str, user: _User | None) -> dict:
        eco = _AIR_ECOSYSTEMS.get(v.base_model, "other")
        air_type = _AIR_TYPES.get(m.type, m.type.lower())
        data = {
            "id": v.id, "modelId": m.id, "name": v.name, "baseModel": v.base_model,
            "baseModelType": v.base_model_type, "status": v.status, "createdAt": _iso(v.published_at),
            "publishedAt": _iso(v.published_at), "trainedWords": list(v.trained_words),
            "nsfwLevel": v.nsfw_level, "uploadType": "Created", "usageControl": v.usage_control,
            "air": f"urn:air:{eco}:{air_type}:civitai:{m.id}@{v.id}",
            "availability": "EarlyAccess" if v.in_early_access else "Public",
            "description": v.description, "stats": self._version_stats(v),
            "model": {"name": m.name, "type": m.type, "nsfw": m.nsfw, "poi": m.poi},
            "files": self._files_json(m, v, origin, user, detail=True),
            "images": [],
            "downloadUrl": f"{origin}/api/download/models/{v.id}",
        }
        if m.mode:
            data["model"]["mode"] = m.mode
        if v.in_early_access:
            data["earlyAccessDeadline"] = _iso(_parse_iso(v.early_access_deadline))
        return data

    @staticmethod
    def _published(m: CivModel, v: CivVersion | None = None) -> bool:
        return m.status == "Published" and (v is None or v.status == "Published")

    # -- routes -----------------------------------------------------------------------

    def _routes(self, server: str, app: web.Application) -> None:
        r = app.router
        if server == "civitai":
            r.add_route("*", "/api/v1/models", self._search)
            r.add_get("/api/v1/models/{id}", self._model_route)
            r.add_get("/api/v1/model-versions/by-hash/{hash}", self._by_hash)
            r.add_route("*", "/api/v1/model-versions/{id}", self._version_route)
            r.add_get("/api/download/models/{id}", self._download)
        else:
            r.add_get("/{model_id}/{file_id}/{name}", self._storage)

    async def _search(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return self._json({"error": "Method not allowed"}, 405)
        user = self._user(request)
        q = request.query
        error = self._validate_search(q)
        if error:
            return self._json({"error": error}, 400)
        limit = int(q.get("limit", "100"))
        page = int(q["page"]) if "page" in q else None
        if page is not None and page * limit > 1000:
            return self._json({"error": "You've requested too many pages, please use cursors instead"}, 429)
        if user is None and any(q.get(k) == "true" for k in ("favorites", "hidden")):
            return self._json({"error": "Unauthorized"}, 401)
        knobs = self._take(request, {"search"}, sw.API)
        if knobs.status:
            return self._status_response(request, knobs, "search")

        with self._lock:
            models = self._filter_models(q, user)
        query = q.get("query")
        if query:
            models = self._rank(models, query, q.get("sort"))
        else:
            models = self._sort(models, q.get("sort") or "Highest Rated")

        cursor = q.get("cursor")
        if page is not None:
            offset = (page - 1) * limit
        elif cursor:
            offset = int(cursor.rsplit("|", 1)[-1])
        else:
            offset = 0
        chosen = models[offset : offset + limit]
        origin = self._origin(request)
        primary_only = q.get("primaryFileOnly") == "true"
        base_models = set(q.getall("baseModels", []))
        with self._lock:
            items = [self._model_json(m, self._visible_versions(m, base_models), origin, user, primary_only)
                     for m in chosen]
        metadata: dict = {}
        next_offset = offset + limit
        if limit and next_offset < len(models):
            last = chosen[-1]
            next_cursor = str(next_offset) if query else f"{last.id}|{last.downloads}|{next_offset}"
            params = [(k, v) for k, v in q.items() if k not in ("cursor", "page")] + [("cursor", next_cursor)]
            metadata["nextCursor"] = next_cursor
            metadata["nextPage"] = f"{origin}{request.path}?{urlencode(params)}"
        if page is not None:
            metadata["currentPage"] = page
            metadata["pageSize"] = limit
        return self._json({"items": items, "metadata": metadata}, user=user)

    @staticmethod
    def _validate_search(q) -> str | None:
        def as_int(name: str, lo: int, hi: int | None = None) -> str | None:
            if name not in q:
                return None
            try:
                value = int(q[name])
            except ValueError:
                return f"{name}: Expected number, received string"
            if value < lo or (hi is not None and value > hi):
                return f"{name}: Number must be between {lo} and {hi}" if hi else f"{name}: must be >= {lo}"
            return None

        for err in (as_int("limit", 0, 100), as_int("page", 1)):
            if err:
                return err
        if "query" in q and "page" in q:
            return "Cannot use page param with query search. Use cursor-based pagination."
        for t in q.getall("types", []):
            if t not in MODEL_TYPES:
                return f"types: Invalid enum value. Expected {' | '.join(MODEL_TYPES)}, received '{t}'"
        if q.get("sort") is not None and q["sort"] not in SORTS:
            return f"sort: Invalid enum value. Expected {' | '.join(SORTS)}, received '{q['sort']}'"
        if q.get("period") is not None and q["period"] not in PERIODS:
            return f"period: Invalid enum value, received '{q['period']}'"
        cursor = q.get("cursor")
        if cursor is not None and not cursor.rsplit("|", 1)[-1].isdigit():
            return "cursor: Invalid cursor"
        if "ids" in q and not all(x.strip().isdigit() for x in q["ids"].split(",")):
            return "ids: Expected number"
        return None

    def _visible_versions(self, m: CivModel, base_models: set[str]) -> list[CivVersion]:
        return [v for v in m.versions if v.status == "Published" and (not base_models or v.base_model in base_models)]

    def _filter_models(self, q, user: _User | None) -> list[CivModel]:
        types = set(q.getall("types", []))
        tag = (q.get("tag") or "").lower()
        username = (q.get("username") or "").lower()
        base_models = set(q.getall("baseModels", []))
        ids = {int(x) for x in q["ids"].split(",")} if "ids" in q else None
        nsfw = q.get("nsfw") == "true"
        if q.get("favorites") == "true" or q.get("hidden") == "true":
            return []  # the fake keeps no favourites
        out = []
        for m in self._models.values():
            if not self._published(m) or m.mode == "TakenDown":
                continue
            if (types and m.type not in types) or (m.nsfw and not nsfw) or (ids is not None and m.id not in ids):
                continue
            if tag and tag not in (t.lower() for t in m.tags):
                continue
            if username and m.creator.lower() != username:
                continue
            if not self._visible_versions(m, base_models):
                continue
            out.append(m)
        return out

    @staticmethod
    def _sort_value(m: CivModel, sort: str):
        published = max((_parse_iso(v.published_at) for v in m.versions), default=_BASE_TIME)
        return {
            "Highest Rated": m.thumbs_up,
            "Most Liked": m.thumbs_up,
            "Most Downloaded": m.downloads or sum(v.downloads for v in m.versions),
            "Most Discussed": m.comment_count,
            "Newest": published.timestamp(),
            "Oldest": -published.timestamp(),
        }.get(sort, 0)

    def _sort(self, models: list[CivModel], sort: str) -> list[CivModel]:
        return sorted(models, key=lambda m: (self._sort_value(m, sort), m.id), reverse=True)

    def _words(self, m: CivModel) -> list[str]:
        text = " ".join([m.name, m.creator, *m.tags])
        if self.search_filenames:
            text += " " + " ".join(f.blob.name for v in m.versions for f in v.files)
        return re.findall(r"[a-z0-9]+", text.lower())

    def _rank(self, models: list[CivModel], query: str, sort: str | None) -> list[CivModel]:
        """Meilisearch-like: every query word must prefix-match a word; better matches first."""
        tokens = re.findall(r"[a-z0-9]+", query.lower())
        scored, others = [], []
        for m in models:
            words = self._words(m)
            if tokens and all(any(w.startswith(t) for w in words) for t in tokens):
                quality = 2 if m.name.lower() == query.lower() else 1 if query.lower() in m.name.lower() else 0
                scored.append((quality, self._sort_value(m, sort or "Highest Rated"), m.id, m))
            else:
                others.append(m)
        scored.sort(key=lambda s: s[:3], reverse=True)
        ranked = [s[3] for s in scored]
        if self.imperfect_relevance and ranked:
            noise = self._sort(others, "Most Downloaded")[: self.imperfect_relevance]
            ranked = noise + ranked
        return ranked

    async def _model_route(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
            return self._json({"error": f"id: Invalid id {raw}"}, 400)
        model_id = int(raw)
        user = self._user(request)
        with self._lock:
            m = self._models.get(model_id)
        if m is None or not self._published(m):
            return self._json({"error": f"No model with id {model_id}"}, 404)
        knobs = self._take(request, {"models", f"model:{m.id}"}, sw.API)
        if knobs.status:
            return self._status_response(request, knobs, "models")
        with self._lock:
            data = self._model_json(m, self._visible_versions(m, set()), self._origin(request), user)
        return self._json(data, user=user)

    def _version_response(self, request: web.Request, v: CivVersion | None, route: str) -> web.Response:
        user = self._user(request)
        with self._lock:
            m = self._models.get(v.model_id) if v is not None else None
        if v is None or m is None or not self._published(m, v):
            return self._json({"error": "Model not found"}, 404)
        if primary_file(v.public_files()) is None:
            return self._json({"error": "Missing model file"}, 404)
        knobs = self._take(request, {route, f"version:{v.id}", f"model:{m.id}"}, sw.API)
        if knobs.status:
            return self._status_response(request, knobs, route)
        with self._lock:
            data = self._version_detail(m, v, self._origin(request), user)
        headers = {"Cache-Control": "public, s-maxage=3600"} if route == "by-hash" and user is None else None
        return self._json(data, user=user, headers=headers)

    async def _version_route(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return self._json({"error": "Method not allowed"}, 405)
        raw = request.match_info["id"]
        if not raw.isdigit():
            return self._json({"error": f"id: Expected number, received {raw}"}, 400)
        with self._lock:
            v = self._versions.get(int(raw))
        return self._version_response(request, v, "model-versions")

    async def _by_hash(self, request: web.Request) -> web.Response:
        wanted = request.match_info["hash"].strip().upper()
        with self._lock:
            candidates = []
            for vid in self._hash_index.get(wanted, ()):
                v = self._versions[vid]
                m = self._models[v.model_id]
                if self._published(m, v):
                    candidates.append((_parse_iso(v.published_at), v.id, v))
        if not candidates:
            return self._json({"error": "Model not found"}, 404)
        return self._version_response(request, min(candidates, key=lambda c: c[:2])[2], "by-hash")

    # -- download -----------------------------------------------------------------------

    @staticmethod
    def _is_browser(request: web.Request) -> bool:
        ua = request.headers.get("User-Agent", "").lower()
        return any(marker in ua for marker in BROWSER_MARKERS)

    def _dl_error(self, request: web.Request, status: int, body: dict, *, json_for_browser: bool = False,
                  headers: dict | None = None) -> web.Response:
        h = {"Cache-Control": "no-store, max-age=0", **(headers or {})}
        if self._is_browser(request) and not json_for_browser:
            return web.Response(status=status, text=body.get("message") or body["error"], headers=h)
        return self._json(body, status, headers=h)

    @staticmethod
    def _redirect(location: str) -> web.Response:
        return web.Response(status=307, headers={"Location": location, "Cache-Control": "no-store, max-age=0"})

    @staticmethod
    def _validate_download(q) -> str | None:
        checks = (("type", FILE_TYPES), ("format", FORMATS), ("size", SIZES))
        for name, allowed in checks:
            if name in q and q[name] not in allowed:
                return f"{name}: Invalid enum value. Expected {' | '.join(allowed)}, received '{q[name]}'"
        for name in ("fp", "quantType"):
            if name in q and len(q[name]) > 64:
                return f"{name}: String must contain at most 64 character(s)"
        if "fileId" in q and not q["fileId"].isdigit():
            return "fileId: Expected number, received string"
        return None

    def _choose_file(self, v: CivVersion, q, user: _User | None) -> CivFile | None:
        if "fileId" in q:
            fid = int(q["fileId"])
            return next((f for f in v.public_files() if f.id == fid), None)
        files = [f for f in v.public_files() if "type" not in q or f.type == q["type"]]
        requested = {k: q[k] for k in ("format", "size", "fp", "quantType") if k in q}
        chosen = primary_file(files, {**(user.file_preferences if user else {}), **requested})
        if chosen is None:
            return None
        if any(chosen.metadata.get(k) != value for k, value in requested.items()):
            return None  # a requested key that the best candidate does not have → 404
        return chosen

    async def _download(self, request: web.Request) -> web.Response:
        user = self._user(request)
        identity = user.key if user else f"anonymous:{request.remote}"
        if (user.key if user else "anonymous") in self.blocked:
            return self._dl_error(request, 403, {"error": "Forbidden"})
        with self._lock:
            count = self._download_counts.get(identity, 0)
        if self.download_limit is not None and count >= self.download_limit:
            return self._dl_error(request, 429, {"error": MSG_TOO_MANY})
        raw = request.match_info["id"]
        error = None if raw.isdigit() else f"modelVersionId: Expected number, received '{raw}'"
        error = error or self._validate_download(request.query)
        if error:
            return self._dl_error(request, 400, {"error": error}, json_for_browser=True)
        with self._lock:
            v = self._versions.get(int(raw))
            m = self._models.get(v.model_id) if v else None
        not_found = {"error": "File not found"}
        if v is None or m is None or m.poi or m.status == "Deleted":
            return self._dl_error(request, 404, not_found)
        if m.mode == "Archived":
            return self._dl_error(request, 410, {"error": "Model archived, not available for download"})
        if not self._published(m, v):
            return self._dl_error(request, 404, not_found)
        if v.usage_control != "Download":
            return self._dl_error(request, 401, {"error": "Unauthorized", "message": MSG_DISABLED},
                                  json_for_browser=True)
        granted = user is not None and v.id in user.grants
        if (v.require_auth or self.require_auth or v.restricted) and user is None:
            if self._is_browser(request):
                return self._redirect(f"/login?returnUrl=%2Fmodel-versions%2F{v.id}&reason=download-auth")
            return self._dl_error(request, 401, {"error": "Unauthorized", "message": MSG_LOGIN})
        if v.restricted and not granted:
            return self._dl_error(request, 403, {"error": MSG_NO_ACCESS})
        if v.in_early_access and not granted:
            if self._is_browser(request):
                return self._redirect(f"/model-versions/{v.id}")
            return self._dl_error(request, 403, {
                "error": "Early Access", "deadline": _iso(_parse_iso(v.early_access_deadline)),
                "message": "This asset is in Early Access. You can use Buzz access it now!"})
        f = self._choose_file(v, request.query, user)
        if f is None:
            return self._dl_error(request, 404, not_found)
        knobs = self._take(request, {"download", f"download:{v.id}", f"version:{v.id}", f"model:{m.id}",
                                     f"file:{f.id}"}, sw.API)
        if knobs.status:
            return self._status_response(request, knobs, "download")
        with self._lock:
            self._download_counts[identity] = count + 1
        name = download_filename(m.name, m.type, v.name, v.trained_words, f.blob.name, f.type, f.override_name)
        return web.Response(status=307, headers={"Location": self._storage_location(m, f, name),
                                                 "Cache-Control": "no-store, max-age=0"})

    def _storage_location(self, m: CivModel, f: CivFile, download_name: str) -> str:
        path = f"/{m.id}/{f.id}/{f.blob.name}"
        params = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "fakekey/20250101/auto/s3/aws4_request"),
            ("X-Amz-Date", datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")),
            ("X-Amz-Expires", str(self.storage_url_ttl)),
            ("X-Amz-SignedHeaders", "host"),
            ("response-content-disposition", f'attachment; filename="{download_name}"'),
        ]
        return f"{self.storage_url}{quote(path)}?{self._signer.sign(path, params)}"

    # -- storage ------------------------------------------------------------------------

    @staticmethod
    def _s3_error(code: str, message: str, status: int = 403) -> web.Response:
        return web.Response(status=status, content_type="application/xml",
                            text=f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                                 f"<Message>{message}</Message></Error>")

    def _expired(self, q) -> bool:
        try:
            start = datetime.strptime(q.get("X-Amz-Date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
            ttl = int(q.get("X-Amz-Expires", ""))
        except ValueError:
            return True
        return start.timestamp() + ttl < time.time()

    async def _storage(self, request: web.Request) -> web.StreamResponse:
        if not self._signer.verify(request.path, list(request.query.items())):
            return self._s3_error("SignatureDoesNotMatch", "The request signature we calculated does not match")
        if self._expired(request.query):
            return self._s3_error("AccessDenied", "Request has expired")
        fid = request.match_info["file_id"]
        with self._lock:
            entry = self._files.get(int(fid)) if fid.isdigit() else None
        if entry is None:
            return self._s3_error("NoSuchKey", "The specified key does not exist.", 404)
        f, v = entry
        keys = {"storage", f"file:{f.id}", f"version:{v.id}", f"model:{v.model_id}"}
        knobs = self._take(request, keys, sw.BYTES_HEAD if request.method == "HEAD" else sw.BYTES_GET)
        if knobs.status:
            note_faults(request, knobs.applied)
            return web.Response(status=knobs.status, text=f"Fake storage error {knobs.status}",
                                headers=retry_headers(knobs))
        etag = '"' + hashlib.md5(f.blob.fingerprint.encode()).hexdigest() + '"'
        headers = {"Content-Disposition": request.query.get("response-content-disposition", "attachment")}
        return await serve_bytes(request, f.blob, knobs, etag=etag, headers=headers)
