"""In-process fake of the Hugging Face Hub (``http://127.0.0.1:P1``) and its CDN (``http://localhost:P2``).

Faithful to ``shared/api-contracts.md`` section A (model repos only):

* ``GET /api/models`` — search (substring of repo id), ``author``, repeated ``filter``,
  ``pipeline_tag``, ``sort`` (always descending unless ``direction`` ≠ -1), ``limit``,
  ``full``/``config``/``cardData``/``expand``; absolute ``Link: <…>; rel="next"`` pages.
* ``GET /api/models/{ns}/{name}[/revision/{rev}]`` — model info; ``blobs=true`` adds sibling
  ``size``/``blobId``/``lfs{sha256,size,pointerSize}``.
* ``GET /api/models/{ns}/{name}/tree/{rev}[/{path}]`` — ``recursive``/``expand``, ``%2F``
  accepted in revision and path, paginated by ``Link``.
* ``HEAD``/``GET /{ns}/{name}/resolve/{rev}/{path}`` — LFS files: absolute 302 to the CDN with
  ``X-Repo-Commit``, ``X-Linked-Etag``, ``X-Linked-Size``, ``ETag``; plain-git files: bytes from the
  Hub (ETag = git blob sha1), or with ``small_file_redirect`` a relative 307 to ``/api/resolve-cache/…``.
  Renamed repos answer a relative 307.
* Errors always carry ``X-Error-Code``/``X-Error-Message`` as the real Hub does: ``GatedRepo``
  (401 anonymous, 403 token not approved), ``RepoNotFound`` (401 anonymous, 404 with a token),
  ``RevisionNotFound``, ``EntryNotFound`` (+ ``X-Repo-Commit``), disabled repos 403. An unknown
  token gets 401 "Invalid credentials in Authorization header" (no code, as on the Hub) unless
  ``reject_unknown_tokens=False``.
* ``GET /api/whoami-v2``.
* CDN: ``GET``/``HEAD /blobs/<sha256>?…&sig=…`` — authorised by the URL signature only (403
  otherwise, or once ``Expires`` passed); its own ETag (not the sha256); ``Content-Disposition``.
* No Xet headers, links or ``xetHash`` fields, ever.

Switch targets (``hub.switch(target, ...)``): ``None`` (everything), a repo id ``"org/name"``,
a file ``"org/name/path/in/repo"``, a blob sha256 (CDN), or a route name ``"search"``,
``"info"``, ``"tree"``, ``"resolve"``, ``"cdn"``. ``on="hub"``/``on="cdn"`` restricts the server.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote

from aiohttp import web

from . import switches as sw
from .blobs import FakeFile
from .byteserve import effective_etag, retry_headers, serve_bytes
from .reqlog import note_faults
from .server import FakeService, UrlSigner

__all__ = ["FakeHub", "FakeRepo"]

_BASE_TIME = datetime(2025, 1, 1, tzinfo=timezone.utc)
_TRUE = {"true", "True", "TRUE", "1"}
_SORT_KEYS = {
    "downloads": "downloads",
    "likes": "likes",
    "lastModified": "lastModified",
    "last_modified": "lastModified",
    "createdAt": "createdAt",
    "created_at": "createdAt",
    "trendingScore": "trendingScore",
    "trending_score": "trendingScore",
    "downloadsAllTime": "downloadsAllTime",
    "id": "id",
}
_LISTING_FIELDS = ("_id", "id", "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag",
                   "library_name", "createdAt", "modelId")
_FULL_FIELDS = ("author", "gated", "disabled", "lastModified", "sha", "siblings")
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def _iso(value: datetime | str | None, default: datetime) -> str:
    if isinstance(value, str):
        return value
    dt = (value or default).astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _truthy(value: str | None) -> bool:
    return value in _TRUE


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        return max(0, int(raw.removeprefix("o:")))
    except (ValueError, UnicodeDecodeError):
        return 0


@dataclass
class FakeRepo:
    """A model repository. ``revisions`` maps ref names (``main``, ``refs/pr/1``…) to commits;
    ``snapshots`` maps each commit to its files."""

    repo_id: str
    gated: bool | str = False
    private: bool = False
    disabled: bool = False
    downloads: int = 0
    downloads_all_time: int | None = None
    likes: int = 0
    trending_score: int = 0
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    library_name: str | None = None
    created_at: str = ""
    last_modified: str = ""
    card_data: dict | None = None
    config: dict | None = None
    revisions: dict[str, str] = field(default_factory=dict)
    snapshots: dict[str, dict[str, FakeFile]] = field(default_factory=dict)
    approved: set[str] = field(default_factory=set)

    @property
    def author(self) -> str:
        return self.repo_id.split("/", 1)[0]

    @property
    def sha(self) -> str:
        return self.revisions["main"]

    @property
    def files(self) -> dict[str, FakeFile]:
        """Files at ``main``."""
        return self.snapshots[self.sha]

    @property
    def gated_value(self) -> bool | str:
        return "auto" if self.gated is True else self.gated

    def find_commit(self, rev: str) -> str | None:
        if rev in self.revisions:
            return self.revisions[rev]
        return rev if rev in self.snapshots else None


class FakeHub(FakeService):
    """Fake Hugging Face Hub + CDN. See the module docstring for routes and switch targets.

    Knobs (constructor keywords, also plain attributes you may change at runtime):
        page_size: max items per ``/api/models`` page (``limit`` smaller wins).
        link_with_limit: keep sending ``Link`` when the caller gave ``limit`` (the client caps itself).
        tree_page_size / tree_expand_page_size: tree page sizes (Hub: 1000 / 50 with ``expand``).
        reject_unknown_tokens: unknown bearer tokens → 401 "Invalid credentials…" (else anonymous).
        gated_metadata: ``"open"`` (current Hub: info/tree of gated repos readable anonymously) or
            ``"401"`` (older Hub: 401/403 ``GatedRepo`` on info/tree too).
        small_file_redirect: plain-git files answer a relative 307 to ``/api/resolve-cache/…``.
        cdn_url_ttl: seconds a signed CDN URL stays valid.
        cdn_rejects_authorization: CDN answers 400 to requests carrying ``Authorization``
            (like S3 with a pre-signed URL); off by default — the log shows leaks either way.
    """

    SERVERS = (("hub", "127.0.0.1"), ("cdn", "localhost"))

    def __init__(
        self,
        *,
        page_size: int = 100,
        link_with_limit: bool = True,
        tree_page_size: int = 1000,
        tree_expand_page_size: int = 50,
        reject_unknown_tokens: bool = True,
        gated_metadata: str = "open",
        small_file_redirect: bool = False,
        cdn_url_ttl: int = 3600,
        cdn_rejects_authorization: bool = False,
    ) -> None:
        super().__init__()
        if gated_metadata not in ("open", "401"):
            raise ValueError("gated_metadata must be 'open' or '401'")
        self.page_size = page_size
        self.link_with_limit = link_with_limit
        self.tree_page_size = tree_page_size
        self.tree_expand_page_size = tree_expand_page_size
        self.reject_unknown_tokens = reject_unknown_tokens
        self.gated_metadata = gated_metadata
        self.small_file_redirect = small_file_redirect
        self.cdn_url_ttl = cdn_url_ttl
        self.cdn_rejects_authorization = cdn_rejects_authorization
        self._repos: dict[str, FakeRepo] = {}
        self._renames: dict[str, str] = {}
        self._tokens: dict[str, str] = {}  # token -> user name
        self._blobs: dict[str, FakeFile] = {}  # sha256 -> content, for the CDN
        self._signer = UrlSigner("sig")

    @property
    def url(self) -> str:
        """Hub base URL (``http://127.0.0.1:P1``)."""
        return self.urls["hub"]

    @property
    def cdn_url(self) -> str:
        """CDN base URL (``http://localhost:P2``)."""
        return self.urls["cdn"]

    # -- data API ---------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: list[FakeFile] = (),
        *,
        gated: bool | str = False,
        private: bool = False,
        disabled: bool = False,
        downloads: int = 0,
        downloads_all_time: int | None = None,
        likes: int = 0,
        trending_score: int = 0,
        tags: list[str] = (),
        pipeline_tag: str | None = None,
        library_name: str | None = None,
        created_at: datetime | str | None = None,
        last_modified: datetime | str | None = None,
        card_data: dict | None = None,
        config: dict | None = None,
    ) -> FakeRepo:
        """Create (or replace) a repo whose ``main`` holds ``files``. Digests are computed here, once."""
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise ValueError(f"repo id must be 'namespace/name', got {repo_id!r}")
        if gated not in (False, True, "auto", "manual"):
            raise ValueError("gated must be False, True, 'auto' or 'manual'")
        with self._lock:
            created = _BASE_TIME + timedelta(days=len(self._repos))
            repo = FakeRepo(
                repo_id=repo_id, gated=gated, private=private, disabled=disabled, downloads=downloads,
                downloads_all_time=downloads_all_time, likes=likes, trending_score=trending_score,
                tags=list(tags), pipeline_tag=pipeline_tag, library_name=library_name,
                created_at=_iso(created_at, created), last_modified=_iso(last_modified, created + timedelta(days=30)),
                card_data=card_data, config=config,
            )
            self._repos[repo_id] = repo
            self._renames.pop(repo_id, None)
        self.add_revision(repo_id, "main", files)
        return repo

    def add_revision(self, repo_id: str, revision: str, files: list[FakeFile] | None = None) -> str:
        """Point ``revision`` (a branch/tag/``refs/pr/N``; ``main`` too) at a new commit of ``files``
        (``None``: same files as ``main``). Returns the 40-hex commit id."""
        files = list(self.repo(repo_id).files.values()) if files is None else list(files)
        snapshot = {}
        for f in files:
            if f.path in snapshot:
                raise ValueError(f"duplicate path {f.path!r}")
            snapshot[f.path] = f
            if f.lfs:
                _ = f.sha256  # precompute once, outside the event loop when called from a test thread
            _ = f.blob_id
        h = hashlib.sha1(f"{repo_id}\0{revision}".encode())
        for path in sorted(snapshot):
            h.update(f"\0{path}\0{snapshot[path].fingerprint}".encode())
        commit = h.hexdigest()
        with self._lock:
            repo = self._repos[repo_id]
            repo.snapshots[commit] = snapshot
            repo.revisions[revision] = commit
            for f in files:
                if f.lfs:
                    self._blobs[f.sha256] = f
        return commit

    def repo(self, repo_id: str) -> FakeRepo:
        with self._lock:
            return self._repos[repo_id]

    def rename_repo(self, old: str, new: str) -> None:
        """Move a repo; requests for ``old`` get a relative 307 to ``new``."""
        with self._lock:
            repo = self._repos.pop(old)
            repo.repo_id = new
            self._repos[new] = repo
            self._renames[old] = new

    def add_token(self, token: str, user: str = "user") -> None:
        """Register a valid token (it reads public repos; gated/private ones need :meth:`approve_token`)."""
        with self._lock:
            self._tokens[token] = user

    def approve_token(self, repo_id: str, token: str) -> None:
        """Grant ``token`` access to a gated or private repo (registers the token if needed)."""
        with self._lock:
            self._tokens.setdefault(token, "user")
            self._repos[repo_id].approved.add(token)

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str | None, message: str, headers: dict | None = None) -> web.Response:
        h = {"X-Error-Message": message, **(headers or {})}
        if code:
            h["X-Error-Code"] = code
        return web.json_response({"error": message}, status=status, headers=h)

    def _status_response(self, request: web.Request, knobs: sw.Knobs) -> web.Response:
        note_faults(request, knobs.applied)
        status = knobs.status
        if status == 429:
            msg = "You have exceeded our hourly quotas for action 'resolve'. We invite you to retry later."
        else:
            msg = f"Fake Hub error {status}"
        return web.json_response({"error": msg}, status=status, headers=retry_headers(knobs))

    def _token(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        """The bearer token of the request (None if anonymous), or an error for an unknown token."""
        header = request.headers.get("Authorization")
        if not header:
            return None, None
        scheme, _, value = header.partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else header.strip()
        with self._lock:
            known = token in self._tokens
        if known:
            return token, None
        if self.reject_unknown_tokens:
            return None, self._error(401, None, INVALID_CREDENTIALS)
        return None, None

    def _renamed(self, request: web.Request, repo_id: str) -> web.Response | None:
        with self._lock:
            new = self._renames.get(repo_id)
        if new is None:
            return None
        path, sep, query = request.raw_path.partition("?")
        if path.endswith(f"/{repo_id}"):
            path = path[: -len(repo_id)] + new
        else:
            path = path.replace(f"/{repo_id}/", f"/{new}/", 1)
        location = path + sep + query
        return web.Response(status=307, headers={"Location": location}, text=f"Temporary Redirect. Redirecting to {location}")

    def _access(self, request: web.Request, repo_id: str, *, content: bool) -> tuple[FakeRepo | None, str | None, web.Response | None]:
        """Authorise access to a repo: ``content`` (file bytes) is what gating protects."""
        redirect = self._renamed(request, repo_id)
        if redirect is not None:
            return None, None, redirect
        token, err = self._token(request)
        if err is not None:
            return None, None, err
        with self._lock:
            repo = self._repos.get(repo_id)
            allowed = repo is not None and (not repo.private or token in repo.approved)
        if not allowed:
            return None, token, self._error(401 if token is None else 404, "RepoNotFound", "Repository not found")
        if repo.disabled:
            return None, token, self._error(403, None, "Access to this resource is disabled.")
        if repo.gated and (content or self.gated_metadata == "401") and token not in repo.approved:
            if token is None:
                msg = (f"Access to model {repo_id} is restricted. You must have access to it and be "
                       "authenticated to access it. Please log in.")
                return None, token, self._error(401, "GatedRepo", msg)
            msg = (f"Access to model {repo_id} is restricted and you are not in the authorized list. "
                   f"Visit https://huggingface.co/{repo_id} to ask for access.")
            return None, token, self._error(403, "GatedRepo", msg)
        return repo, token, None

    @staticmethod
    def _split_rev(repo: FakeRepo, raw_tail: str) -> tuple[str | None, str, str]:
        """Split ``{rev}[/{path}]`` from the raw (still %-encoded) URL tail.

        Returns ``(commit or None, revision as given, path)``. Handles ``refs%2Fpr%2F1`` and the
        unencoded ``refs/pr/1`` form by matching known revision names.
        """
        raw_segments = raw_tail.split("/") if raw_tail else [""]
        first = unquote(raw_segments[0])
        commit = repo.find_commit(first)
        if commit is not None:
            return commit, first, "/".join(unquote(s) for s in raw_segments[1:])
        decoded = [unquote(s) for s in raw_segments]
        for i in range(len(decoded), 1, -1):
            candidate = "/".join(decoded[:i])
            commit = repo.find_commit(candidate)
            if commit is not None:
                return commit, candidate, "/".join(decoded[i:])
        return None, first, ""

    def _page_link(self, request: web.Request, next_offset: int) -> str:
        params = [(k, v) for k, v in request.query.items() if k != "cursor"]
        params.append(("cursor", _cursor(next_offset)))
        return f'<{request.url.with_query(params)}>; rel="next"'

    # -- JSON shapes ------------------------------------------------------------------

    def _siblings(self, files: dict[str, FakeFile], blobs: bool) -> list[dict]:
        out = []
        for path in sorted(files):
            f = files[path]
            item: dict = {"rfilename": path}
            if blobs:
                item["size"] = f.size
                item["blobId"] = f.blob_id
                if f.lfs:
                    item["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": len(f.pointer)}
            out.append(item)
        return out

    def _model_json(self, repo: FakeRepo, commit: str, *, blobs: bool = False) -> dict:
        """Every field the fake knows; listings pick from it."""
        files = repo.snapshots[commit]
        data = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.author,
            "sha": commit,
            "lastModified": repo.last_modified,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": repo.gated_value,
            "disabled": repo.disabled,
            "downloads": repo.downloads,
            "downloadsAllTime": repo.downloads_all_time if repo.downloads_all_time is not None else repo.downloads,
            "likes": repo.likes,
            "trendingScore": repo.trending_score,
            "tags": list(repo.tags),
            "pipeline_tag": repo.pipeline_tag,
            "library_name": repo.library_name,
            "siblings": self._siblings(files, blobs),
            "spaces": [],
            "usedStorage": sum(f.size for f in files.values()),
        }
        if repo.card_data is not None:
            data["cardData"] = repo.card_data
        if repo.config is not None:
            data["config"] = repo.config
        return {k: v for k, v in data.items() if v is not None}

    # -- routes -----------------------------------------------------------------------

    def _routes(self, server: str, app: web.Application) -> None:
        r = app.router
        if server == "hub":
            r.add_get("/api/models", self._search)
            r.add_get("/api/whoami-v2", self._whoami)
            r.add_get("/api/models/{ns}/{name}", self._info)
            r.add_get("/api/models/{ns}/{name}/revision/{rev:.+}", self._info)
            r.add_get("/api/models/{ns}/{name}/tree/{tail:.*}", self._tree)
            r.add_get("/api/resolve-cache/models/{ns}/{name}/{commit}/{path:.+}", self._resolve_cache)
            r.add_get("/{ns}/{name}/resolve/{tail:.+}", self._resolve)  # add_get also routes HEAD
        else:
            r.add_get("/blobs/{sha}", self._cdn)

    async def _whoami(self, request: web.Request) -> web.Response:
        token, err = self._token(request)
        if err is not None:
            return err
        if token is None:
            return self._error(401, None, "Invalid username or password.")
        with self._lock:
            user = self._tokens[token]
        return web.json_response({"type": "user", "name": user, "auth": {"type": "access_token",
                                  "accessToken": {"displayName": "fake", "role": "read"}}})

    async def _search(self, request: web.Request) -> web.Response:
        token, err = self._token(request)
        if err is not None:
            return err
        q = request.query
        sort = q.get("sort")
        if sort is not None and sort not in _SORT_KEYS:
            return self._error(400, None, f"Invalid sort parameter: {sort}")
        try:
            limit = int(q["limit"]) if "limit" in q else None
        except ValueError:
            return self._error(400, None, "limit must be an integer")
        knobs = self._take(request, {"api", "search"}, sw.API)
        if knobs.status:
            return self._status_response(request, knobs)

        search = (q.get("search") or "").lower()
        author = q.get("author")
        wanted_tags = q.getall("filter", [])
        pipeline = q.get("pipeline_tag")
        with self._lock:
            repos = [r for r in self._repos.values() if not r.private or token in r.approved]
            items = [self._model_json(r, r.sha) for r in repos]
        items = [
            m for m in items
            if search in m["id"].lower()
            and (author is None or m["author"] == author)
            and (pipeline is None or m.get("pipeline_tag") == pipeline)
            and all(t in {*m["tags"], m.get("pipeline_tag"), m.get("library_name")} for t in wanted_tags)
        ]
        if sort is not None:
            key = _SORT_KEYS[sort]
            ascending = q.get("direction") not in (None, "-1")
            items.sort(key=lambda m: m.get(key) or 0, reverse=not ascending)

        expand = q.getall("expand", [])
        if expand:
            keep = {"_id", "id", *expand}
        else:
            keep = set(_LISTING_FIELDS)
            if _truthy(q.get("full")):
                keep |= set(_FULL_FIELDS)
            if _truthy(q.get("config")):
                keep.add("config")
            if _truthy(q.get("cardData")):
                keep.add("cardData")
        offset = _offset(q.get("cursor"))
        page_len = min(limit, self.page_size) if limit else self.page_size
        page = [{k: v for k, v in m.items() if k in keep} for m in items[offset : offset + page_len]]
        headers = {}
        if offset + page_len < len(items) and (limit is None or self.link_with_limit):
            headers["Link"] = self._page_link(request, offset + page_len)
        return web.json_response(page, headers=headers)

    async def _info(self, request: web.Request) -> web.Response:
        repo_id = f"{request.match_info['ns']}/{request.match_info['name']}"
        repo, _token, err = self._access(request, repo_id, content=False)
        if err is not None:
            return err
        rev = "main"
        if "rev" in request.match_info:
            raw_rev = request.raw_path.split("/revision/", 1)[1].split("?", 1)[0]
            commit, rev, _ = self._split_rev(repo, raw_rev)
        else:
            commit = repo.sha
        if commit is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        knobs = self._take(request, {"api", "info", repo_id}, sw.API)
        if knobs.status:
            return self._status_response(request, knobs)
        q = request.query
        with self._lock:
            data = self._model_json(repo, commit, blobs=_truthy(q.get("blobs")))
        expand = q.getall("expand", [])
        if expand:
            data = {k: v for k, v in data.items() if k in {"_id", "id", *expand}}
        return web.json_response(data)

    async def _tree(self, request: web.Request) -> web.Response:
        repo_id = f"{request.match_info['ns']}/{request.match_info['name']}"
        repo, _token, err = self._access(request, repo_id, content=False)
        if err is not None:
            return err
        raw_tail = request.raw_path.split("/tree/", 1)[1].split("?", 1)[0]
        commit, rev, subpath = self._split_rev(repo, raw_tail)
        if commit is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        subpath = subpath.strip("/")
        with self._lock:
            files = dict(repo.snapshots[commit])
            last_modified = repo.last_modified
        dirs = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        if subpath and subpath not in dirs:
            return self._error(404, "EntryNotFound", f"{subpath} does not exist on \"{rev}\"",
                               {"X-Repo-Commit": commit})
        knobs = self._take(request, {"api", "tree", repo_id}, sw.API)
        if knobs.status:
            return self._status_response(request, knobs)
        recursive = _truthy(request.query.get("recursive"))
        expand = _truthy(request.query.get("expand"))
        prefix = subpath + "/" if subpath else ""

        def wanted(path: str) -> bool:
            if not path.startswith(prefix):
                return False
            return recursive or "/" not in path[len(prefix):]

        entries = []
        for d in sorted(x for x in dirs if wanted(x)):
            entry = {"type": "directory", "oid": hashlib.sha1(f"tree:{commit}:{d}".encode()).hexdigest(),
                     "size": 0, "path": d}
            if expand:
                entry["lastCommit"] = {"id": commit, "title": "Upload folder", "date": last_modified}
            entries.append(entry)
        for p in sorted(x for x in files if wanted(x)):
            f = files[p]
            entry = {"type": "file", "oid": f.blob_id, "size": f.size, "path": p}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": len(f.pointer)}
            if expand:
                entry["lastCommit"] = {"id": commit, "title": "Upload model", "date": last_modified}
                entry["securityFileStatus"] = {"status": "safe", "avScan": {"virusFound": False},
                                               "pickleImportScan": {"highestSafetyLevel": "innocuous", "imports": []}}
            entries.append(entry)
        entries.sort(key=lambda e: e["path"])
        size = self.tree_expand_page_size if expand else self.tree_page_size
        offset = _offset(request.query.get("cursor"))
        headers = {}
        if offset + size < len(entries):
            headers["Link"] = self._page_link(request, offset + size)
        return web.json_response(entries[offset : offset + size], headers=headers)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        repo_id = f"{request.match_info['ns']}/{request.match_info['name']}"
        repo, _token, err = self._access(request, repo_id, content=True)
        if err is not None:
            return err
        raw_tail = request.raw_path.split("/resolve/", 1)[1].split("?", 1)[0]
        commit, rev, path = self._split_rev(repo, raw_tail)
        if commit is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        with self._lock:
            f = repo.snapshots[commit].get(path)
        if f is None:
            return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
        keys = {"resolve", repo_id, f"{repo_id}/{path}"}
        if f.lfs:
            knobs = self._take(request, keys, sw.REDIRECT)
            if knobs.status:
                return self._status_response(request, knobs)
            return self._lfs_redirect(request, repo_id, commit, f, knobs)
        if self.small_file_redirect:
            location = (f"/api/resolve-cache/models/{repo_id}/{commit}/{quote(path)}"
                        f"?download=true&etag=%22{f.blob_id}%22")
            return web.Response(status=307, headers={"Location": location, "X-Repo-Commit": commit},
                                text=f"Temporary Redirect. Redirecting to {location}")
        return await self._serve_small(request, keys, commit, f)

    async def _resolve_cache(self, request: web.Request) -> web.StreamResponse:
        repo_id = f"{request.match_info['ns']}/{request.match_info['name']}"
        repo, _token, err = self._access(request, repo_id, content=True)
        if err is not None:
            return err
        commit, path = request.match_info["commit"], request.match_info["path"]
        with self._lock:
            f = repo.snapshots.get(commit, {}).get(path)
        if f is None:
            return self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
        return await self._serve_small(request, {"resolve", repo_id, f"{repo_id}/{path}"}, commit, f)

    async def _serve_small(self, request: web.Request, keys: set[str], commit: str, f: FakeFile) -> web.StreamResponse:
        knobs = self._take(request, keys, sw.BYTES_HEAD if request.method == "HEAD" else sw.BYTES_GET)
        if knobs.status:
            return self._status_response(request, knobs)
        headers = {} if knobs.no_commit else {"X-Repo-Commit": commit}
        return await serve_bytes(request, f, knobs, etag=f'"{f.blob_id}"', headers=headers,
                                 content_type="text/plain; charset=utf-8")

    def _lfs_redirect(self, request: web.Request, repo_id: str, commit: str, f: FakeFile, knobs: sw.Knobs) -> web.Response:
        note_faults(request, knobs.applied)
        sha = f.sha256
        name = f.name
        params = [
            ("response-content-disposition", f"attachment; filename*=UTF-8''{quote(name)}; filename=\"{name}\";"),
            ("repo", repo_id),
            ("path", f.path),
            ("Expires", str(int(time.time()) + self.cdn_url_ttl)),
        ]
        location = f"{self.cdn_url}/blobs/{sha}?{self._signer.sign(f'/blobs/{sha}', params)}"
        etag = effective_etag(f'"{sha}"', knobs)
        headers = {"Location": location, "Accept-Ranges": "bytes", "Vary": "Origin, Accept"}
        if not knobs.no_commit:
            headers["X-Repo-Commit"] = commit
        if etag is not None:
            headers["ETag"] = etag
            headers["X-Linked-Etag"] = etag
        if not knobs.no_size:
            headers["X-Linked-Size"] = str(f.size)
        return web.Response(status=302, headers=headers, text=f"Found. Redirecting to {location}")

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        sha = request.match_info["sha"]
        items = list(request.query.items())
        expires = request.query.get("Expires", "")
        if not self._signer.verify(request.path, items) or not expires.isdigit() or int(expires) < time.time():
            return web.Response(status=403, content_type="application/xml",
                                text="<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
                                     "<Message>Access denied</Message></Error>")
        if self.cdn_rejects_authorization and "Authorization" in request.headers:
            return web.Response(status=400, content_type="application/xml",
                                text="<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism "
                                     "allowed</Message></Error>")
        with self._lock:
            f = self._blobs.get(sha)
        if f is None:
            return web.Response(status=404, content_type="application/xml",
                                text="<Error><Code>NoSuchKey</Code></Error>")
        repo_id, path = request.query.get("repo", ""), request.query.get("path", "")
        keys = {"cdn", sha, repo_id, f"{repo_id}/{path}"}
        knobs = self._take(request, keys, sw.BYTES_HEAD if request.method == "HEAD" else sw.BYTES_GET)
        if knobs.status:
            note_faults(request, knobs.applied)
            return web.Response(status=knobs.status, text=f"Fake CDN error {knobs.status}",
                                headers=retry_headers(knobs))
        headers = {
            "Content-Disposition": request.query.get("response-content-disposition", "attachment"),
            "Cache-Control": "public, max-age=604800, immutable, s-maxage=604800",
            "X-Cache": "Hit from cloudfront",
        }
        cdn_etag = '"' + hashlib.md5(sha.encode()).hexdigest() + '"'
        return await serve_bytes(request, f, knobs, etag=cdn_etag, headers=headers)
