"""The Resolver: the one object every adapter (ComfyUI routes, sidecar, Gradio, CLI) calls.

It wires the pure layers (workflow parsing, matching) to the I/O edges (index scans, hashing)
and owns their lifetimes. Build it with `build_resolver(settings, …)`, once per entry point.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import ResolverError, WorkflowError
from .events import EventBus
from .index.layout import FolderLayout, build_layout
from .settings import Settings, persist_runtime_settings
from .types import Analysis, DownloadRequest, ModelReport, ParsedWorkflow, Resolution, SearchResult
from .workflow.limits import InputGate

if TYPE_CHECKING:  # pragma: no cover
    from .downloads import DownloadManager
    from .index.hashing import HashCache
    from .index.scan import ModelIndex, ScanStats
    from .workflow.knowledge import Knowledge

log = logging.getLogger(__name__)

#: Inputs larger than this are parsed in a worker thread so the event loop stays responsive.
_THREAD_PARSE_BYTES = 256 * 1024
#: An index refresh younger than this is reused instead of stat()ing the tree again.
_INDEX_FRESH_SECONDS = 1.0


def _is_big(data: Any) -> bool:
    """Bytes worth parsing in a worker thread (so the event loop stays responsive)."""
    return isinstance(data, (bytes, bytearray, memoryview)) and len(data) > _THREAD_PARSE_BYTES


class Resolver:
    def __init__(self, settings: Settings, *, layout: FolderLayout, knowledge: "Knowledge | None" = None,
                 index: "ModelIndex | None" = None, hashes: "HashCache | None" = None,
                 events: EventBus | None = None, cache_dir: str | os.PathLike | None = None,
                 object_info: Mapping[str, Any] | None = None,
                 input_folders: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """`knowledge`, `index` and `hashes` not given are built on first use (`cmr download` needs none
        of them): from `object_info` / `input_folders` (node schemas), caches in `cache_dir` (None: memory)."""
        self.settings = settings
        self.layout = layout
        self._knowledge, self._index, self._hashes = knowledge, index, hashes
        self._cache_dir = cache_dir
        self._schemas = (object_info, input_folders)
        self.events = events or EventBus()
        self._index_lock = asyncio.Lock()
        self._index_at = 0.0
        self.input_gate = InputGate()  # one big workflow at a time: the memory budget of a request
        self._closers: list[Any] = []
        self._settings_listeners: list[Any] = []
        # Built on first use: `cmr analyze` needs neither the download stack nor the Hub client,
        # and importing them (aiohttp, huggingface_hub) costs more than the analysis itself.
        self._downloads: DownloadManager | None = None
        self._sources: Any = None
        self._sources_factory: Callable[[Settings], Any] | None = None

    @property
    def knowledge(self) -> "Knowledge":
        """What we know about node types (schemas, the loader table), built on first use."""
        if self._knowledge is None:
            from .workflow.knowledge import Knowledge

            object_info, input_folders = self._schemas
            self._knowledge = Knowledge(object_info=object_info, input_folders=input_folders)
        return self._knowledge

    @property
    def index(self) -> "ModelIndex":
        """The local model index (its cache in the data dir), built on first use."""
        if self._index is None:
            from .index.scan import ModelIndex

            self._index = ModelIndex(self.layout, self._cache_dir)
        return self._index

    @property
    def hashes(self) -> "HashCache":
        """SHA-256 of local files, cached by path, size and mtime; opened on first use."""
        if self._hashes is None:
            import sqlite3

            from .index.hashing import HashCache

            try:
                self._hashes = HashCache(None if self._cache_dir is None else Path(self._cache_dir) / "hashes.sqlite")
            except (OSError, sqlite3.Error) as exc:
                log.warning("the hash cache in %s cannot be opened (%s); hashes are cached in memory", self._cache_dir,
                            exc)
                self._hashes = HashCache(None)
        return self._hashes

    # ---- local index ---------------------------------------------------------------------
    async def refresh_index(self, *, force: bool = False) -> "ScanStats | None":
        async with self._index_lock:
            if not force and time.monotonic() - self._index_at < _INDEX_FRESH_SECONDS:
                return self.index.last_stats
            stats = await asyncio.to_thread(self.index.refresh)
            self._index_at = time.monotonic()
            return stats

    def invalidate_index(self) -> None:
        self._index_at = 0.0

    # ---- analysis ------------------------------------------------------------------------
    def _report(self, name: str, parsed: ParsedWorkflow) -> Analysis:
        from .index.match import match_ref
        from .workflow.folders import is_pickle_file

        models = tuple(ModelReport.from_ref(ref, match_ref(ref, self.index), pickle=is_pickle_file(ref.filename))
                       for ref in parsed.refs)
        warnings = tuple({"type": "warning", "message": w} for w in parsed.warnings)
        return Analysis(workflow=name, format=parsed.format, models=models, errors=warnings)

    def _decode_and_report(self, data: bytes | Mapping[str, Any] | list, name: str) -> tuple[Any, Analysis]:
        """(the decoded workflow, its Analysis): bytes of a .json/.png/.webp, or a parsed JSON value."""
        from .workflow.decode import decode_object, decode_workflow
        from .workflow.parse import refs_from_decoded

        if isinstance(data, (bytes, bytearray, memoryview)):
            decoded = decode_workflow(data, max_bytes=self.settings.max_workflow_bytes)
        else:
            decoded = decode_object(data)
        return decoded, self._report(name, refs_from_decoded(decoded, self.knowledge))

    def _analyze_sync(self, data: bytes | Mapping[str, Any] | list, name: str) -> Analysis:
        return self._decode_and_report(data, name)[1]

    async def analyze(self, data: bytes | Mapping[str, Any] | list, name: str = "workflow", *,
                      match_hashes: bool = False) -> Analysis:
        """Which models does this workflow need, and which are already here?

        `data` is file bytes (.json/.png/.webp) or an already parsed JSON value.
        With `match_hashes`, references that carry a SHA-256 are verified against present files
        and looked up among same-folder files under other names (slow once; cached).
        Raises WorkflowError for unusable input.
        """
        await self.refresh_index()
        if _is_big(data):
            async with self.input_gate.hold(len(data)):  # type: ignore[arg-type]
                analysis = await asyncio.to_thread(self._analyze_sync, data, name)
        else:
            analysis = self._analyze_sync(data, name)
        if match_hashes:
            from .index.hashing import match_by_hash

            models = tuple([await match_by_hash(m, self.hashes, self.index) for m in analysis.models])
            analysis = analysis.model_copy(update={"models": models})
        return analysis

    async def _read_workflow_file(self, path: str | os.PathLike) -> tuple[bytes, str]:
        name = os.fspath(path)
        try:
            size = os.path.getsize(name)
            if size > self.settings.max_workflow_bytes:
                from .workflow.decode import size_error

                raise size_error(size, self.settings.max_workflow_bytes)
            return await asyncio.to_thread(_read_bytes, name), name
        except OSError as exc:
            raise WorkflowError(f"Cannot read {name}: {exc.strerror or exc}") from None

    async def analyze_path(self, path: str | os.PathLike, *, match_hashes: bool = False) -> Analysis:
        """`analyze` for a file on disk; WorkflowError when it cannot be read or used."""
        data, name = await self._read_workflow_file(path)
        return await self.analyze(data, name, match_hashes=match_hashes)

    def local_models(self, folder: str | None = None) -> dict[str, Any]:
        """The local index as JSON: {folder: [{"name", "path"}]} (name as a widget would hold it)."""
        folders: dict[str, list[dict[str, str]]] = {}
        for f, base, rel in self.index.iter_files():
            if folder is None or f == folder:
                folders.setdefault(f, []).append({"name": rel, "path": os.path.join(base, *rel.split("/"))})
        for items in folders.values():
            items.sort(key=lambda i: i["name"].lower())
        stats = self.index.last_stats
        return {"models_root": self.layout.models_root, "layout": self.layout.to_dict()["folders"],
                "folders": folders, "files": sum(len(v) for v in folders.values()),
                "scan": None if stats is None else {"directories": stats.directories, "files": stats.files,
                                                     "seconds": round(stats.seconds, 4)}}

    # ---- settings ------------------------------------------------------------------------
    def public_config(self) -> dict[str, Any]:
        return self.settings.public_dict()

    async def update_settings(self, **changes: Any) -> Settings:
        """Apply run-time changes (tokens, limits) and persist them in the data dir."""
        new = self.settings.with_overrides(**changes)
        await asyncio.to_thread(persist_runtime_settings, new, changes)
        self.settings = new
        for listener in self._settings_listeners:
            listener(new)
        return new

    def on_settings_change(self, listener: Any) -> None:
        self._settings_listeners.append(listener)

    # ---- resolution: where to download each missing model (sources/) ----------------------
    def provide_sources(self, factory: Callable[[Settings], Any]) -> None:
        """Build the providers with `factory(settings)` on first use (build_resolver does this), and
        again with the new settings when run-time settings (tokens) change after that."""
        self._sources_factory = factory

    @property
    def sources(self) -> Any:
        if self._sources is None and self._sources_factory is not None:
            self.attach_sources(self._sources_factory(self.settings), rebuild=self._sources_factory)
        return self._sources

    @sources.setter
    def sources(self, value: Any) -> None:
        self._sources = value

    def attach_sources(self, sources: Any, rebuild: Any = None) -> None:
        """Give the Resolver its providers; they are closed with it.
        `rebuild(settings)` makes new ones when run-time settings (tokens) change."""
        self.sources = sources
        self.on_close(lambda: self.sources.close())
        if rebuild is not None:
            def _swap(new_settings: Settings) -> None:
                old, self.sources = self.sources, rebuild(new_settings)
                asyncio.ensure_future(old.close())
            self.on_settings_change(_swap)

    def _parse_for_resolve(self, data: bytes | Mapping[str, Any] | list, name: str) -> tuple[Analysis, tuple[str, ...]]:
        from .workflow.notes import note_urls

        decoded, analysis = self._decode_and_report(data, name)
        links = note_urls(decoded.graph) if decoded.kind == "ui" else ()
        return analysis, links

    async def resolve(self, data: bytes | Mapping[str, Any] | list | Analysis, name: str = "workflow", *,
                      include_present: bool = False, preflight: bool = True) -> Resolution:
        """Where to get each missing model: status, ranked candidates with reasons, provider states,
        pre-flight of the chosen files and the disk check.

        `data` is workflow bytes / JSON, or an Analysis from `analyze` (then note links are not
        known). `include_present` also looks up files that are here (their local sha256 is used),
        which `--write-back` needs to give every loader a download link.
        """
        sources = getattr(self, "sources", None)
        if sources is None:
            raise ResolverError("No download sources are configured.", hint="Build the Resolver with build_resolver().")
        if isinstance(data, Analysis):
            analysis, links = data, ()
        else:
            await self.refresh_index()
            if _is_big(data):
                async with self.input_gate.hold(len(data)):  # type: ignore[arg-type]
                    analysis, links = await asyncio.to_thread(self._parse_for_resolve, data, name)
            else:
                analysis, links = self._parse_for_resolve(data, name)
        local: dict[int, str] = {}
        if include_present:
            for i, m in enumerate(analysis.models):
                if m.local_path and m.status in ("present", "relocated") and m.kind == "file":
                    try:
                        local[i] = await self.hashes.sha256(m.local_path)
                    except OSError:
                        pass
        models, providers = await sources.resolve(analysis.models, note_links=links, local_sha256=local,
                                                  include_present=include_present, run_preflight=preflight)
        from .sources.preflight import disk_checks

        planned = [(m.folder, self.layout.download_dir(m.folder), m.candidates[0].size)
                   for m in models if m.status == "resolved" and m.folder and m.candidates]
        return Resolution(workflow=analysis.workflow, format=analysis.format, models=tuple(models),
                          errors=analysis.errors, providers=providers,
                          disk=await asyncio.to_thread(disk_checks, planned),
                          requests=sum(m.requests for m in models))

    async def resolve_path(self, path: str | os.PathLike, **kwargs: Any) -> Resolution:
        """`resolve` for a file on disk; WorkflowError when it cannot be read or used."""
        data, name = await self._read_workflow_file(path)
        return await self.resolve(data, name, **kwargs)

    async def search(self, query: str, folder: str | None = None) -> SearchResult:
        """Free-text search over every provider (catalog, Hub, Civitai), best first."""
        sources = getattr(self, "sources", None)
        if sources is None:
            raise ResolverError("No download sources are configured.")
        query = query.strip()
        if not query:
            raise WorkflowError("The search query is empty.")
        candidates, providers = await sources.search(query, folder)
        return SearchResult(query=query, folder=folder, candidates=tuple(candidates), providers=providers)

    # ---- downloads -----------------------------------------------------------------------
    @property
    def downloads(self) -> "DownloadManager":
        """The download manager, built on first use."""
        if self._downloads is None:
            self._downloads = self._build_downloads()
        return self._downloads

    @property
    def built_downloads(self) -> "DownloadManager | None":
        """The download manager if it is built already (a health check need not import it)."""
        return self._downloads

    def _build_downloads(self) -> "DownloadManager":
        """The download manager: shares the event bus, follows settings changes, refreshes the index."""
        from .downloads import DownloadManager

        manager = DownloadManager(self.settings, self.layout, self.events,
                                  on_complete=lambda job: self.invalidate_index())
        self.on_close(manager.close)
        self.on_settings_change(manager.update_settings)
        return manager

    def check_download_folder(self, folder: str, *, create: bool = False) -> None:
        """Refuse a folder a user typed that ComfyUI would never look in (`lorass`), unless `create`
        says to make it (downloads/paths.check_download_folder)."""
        from .downloads.paths import check_download_folder

        check_download_folder(self.layout, folder, create=create)

    async def download_url(self, request: DownloadRequest, *, create_folder: bool = False) -> Any:
        """Start one download from a URL into `request.folder` (see check_download_folder)."""
        self.check_download_folder(request.folder, create=create_folder)
        return await self.downloads.submit(request)

    async def download_resolution(self, models: Any, *, include_inactive: bool = False,
                                  include_optional: bool = False) -> tuple[list[Any], list[dict], list[dict]]:
        """Start the downloads a resolve result asks for: (jobs, skipped, errors)."""
        from .downloads.plan import plan_downloads

        requests, skipped = plan_downloads(models, include_inactive=include_inactive,
                                           include_optional=include_optional)
        jobs, errors = [], []
        for req in requests:
            try:
                jobs.append(await self.downloads.submit(req))
            except ResolverError as exc:
                errors.append({"filename": req.filename, "folder": req.folder, "error": exc.to_dict()})
        return jobs, [s.to_dict() for s in skipped], errors

    async def ensure(self, workflows: Any, *, wait: bool = False, timeout: float | None = None) -> Any:
        """Make sure every model these (data, name) workflows need is on this host's models volume,
        queueing the missing ones with a confident source (ensure.py); an EnsureReport."""
        from .ensure import ensure

        return await ensure(self, workflows, wait=wait, timeout=timeout)

    async def ensure_paths(self, paths: Any, *, wait: bool = False, timeout: float | None = None) -> Any:
        """`ensure` for workflow files; one that cannot be read is reported in `errors`."""
        workflows, unread = [], []
        for path in paths:
            try:
                workflows.append(await self._read_workflow_file(path))
            except WorkflowError as exc:
                unread.append({"workflow": str(path), "error": exc.to_dict()})
        report = await self.ensure(workflows, wait=wait, timeout=timeout)
        report.errors[:0] = unread
        return report

    async def move_model(self, path: str, folder: str, filename: str) -> dict[str, Any]:
        """Move a model file found in the wrong folder into `folder` under `filename` (the name its
        loader's widget holds): atomic, never overwriting, never from or to outside the model folders
        (downloads/move.py). Returns {"from", "to", "folder", "filename", "size"}."""
        from .downloads.move import move_model_file

        self.check_download_folder(folder)  # a folder ComfyUI reads; never a path
        await self.refresh_index(force=True)
        path = os.path.abspath(path)
        moved = await asyncio.to_thread(move_model_file, self.layout, self.index.locate(path), path, folder, filename)
        log.info("moved %s to %s", moved.source, moved.target)
        self.invalidate_index()
        return moved.to_dict()

    async def start_downloads(self) -> None:
        """Open the job database and resume unfinished downloads (servers call this at startup;
        otherwise the first `downloads.submit` starts the manager)."""
        await self.downloads.start()

    # ---- lifecycle -----------------------------------------------------------------------
    def on_close(self, closer: Any) -> None:
        self._closers.append(closer)

    async def close(self) -> None:
        for closer in reversed(self._closers):
            try:
                result = closer()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # pragma: no cover - best effort shutdown
                log.exception("error while closing")
        self.events.close()
        if self._hashes is not None:
            self._hashes.close()


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def build_resolver(
    settings: Settings,
    *,
    object_info: Mapping[str, Any] | None = None,
    input_folders: Mapping[str, Mapping[str, Any]] | None = None,
    folder_dirs: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Resolver:
    """Wire a Resolver from settings.

    object_info / input_folders / folder_dirs are given by the ComfyUI adapter (live schemas and
    folder_paths); headless, object_info comes from CMR_OBJECT_INFO or CMR_COMFYUI_URL.
    """
    if object_info is None:
        source = settings.object_info or settings.comfyui_url
        if source:
            from .workflow.object_info import load_object_info

            object_info = await load_object_info(source)
    layout = build_layout(settings.effective_models_root, settings.effective_extra_model_paths,
                          environ if environ is not None else {}, explicit=folder_dirs,
                          write_roots=settings.write_roots)
    data_dir = settings.effective_data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        cache_dir = data_dir
    except OSError as exc:
        log.warning("data dir %s is not writable (%s); caches stay in memory", data_dir, exc.strerror)
        cache_dir = None
    resolver = Resolver(settings, layout=layout, cache_dir=cache_dir, object_info=object_info,
                        input_folders=input_folders)
    if object_info is not None:
        resolver.knowledge  # schemas given: a schema the Knowledge refuses stops the start, not the first analysis

    def sources(new: Settings) -> Any:
        from .sources import build_sources

        return build_sources(new, data_dir=cache_dir)

    resolver.provide_sources(sources)
    return resolver


__all__ = ["Resolver", "build_resolver", "ResolverError"]
