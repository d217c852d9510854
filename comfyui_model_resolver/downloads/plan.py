"""Which downloads a resolve result asks for. Pure: resolved models in, requests out.

Only confident answers are downloaded (`status == "resolved"` with a `chosen` candidate). Skipped,
with the reason said: inactive nodes (unless asked), optional preset variants, files the node
downloads itself, repository folders whose files are not known, and duplicates of a file already
planned. The target name is the widget value with `\\` turned into `/`, so the workflow finds the file
as written. A multi-file model becomes one request per file sharing a `group` id: a sharded
checkpoint's files beside the named one, a folder model's (diffusers, a repo snapshot) under
`<folder>/<name>/` with their paths in the repo.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..types import DownloadRequest


@dataclass(frozen=True, slots=True)
class Skipped:
    filename: str
    folder: str | None
    reason: str

    def to_dict(self) -> dict:
        return {"filename": self.filename, "folder": self.folder, "reason": self.reason}


def _get(model: Any, key: str, default: Any = None) -> Any:
    if isinstance(model, Mapping):
        return model.get(key, default)
    return getattr(model, key, default)


def _request(f: Any, folder: str, name: str, source: Any, group: str | None) -> DownloadRequest:
    sha = _get(f, "sha256") or None
    size = _get(f, "size")
    return DownloadRequest(url=_get(f, "url"), folder=folder, filename=name,
                           sha256=sha if isinstance(sha, str) and len(sha) == 64 else None,
                           size=size if isinstance(size, int) and size >= 0 else None, source=source, group=group)


def plan_downloads(models: Iterable[Any], *, include_inactive: bool = False,
                   include_optional: bool = False) -> tuple[list[DownloadRequest], list[Skipped]]:
    """`models`: ResolvedModel objects or their JSON (as `cmr resolve --json` / the resolve route give)."""
    requests: list[DownloadRequest] = []
    skipped: list[Skipped] = []
    planned: set[tuple[str, str]] = set()
    for m in models:
        filename, folder = _get(m, "filename"), _get(m, "folder")
        if not isinstance(filename, str) or not filename:
            continue
        status = _get(m, "status")
        chosen = _get(m, "chosen")
        url = _get(chosen, "url") if chosen is not None else None

        def skip(reason: str) -> None:
            skipped.append(Skipped(filename, folder, reason))

        if status in ("present", "relocated"):
            continue
        if status != "resolved" or not url:
            skip({"ambiguous": "several candidates and none is certain: pick one",
                  "auth_required": "needs a token (see the provider's hint)",
                  "not_found": "no source found",
                  "unavailable": "no source could be asked (offline?)"}.get(status, f"not resolved ({status})"))
            continue
        if not folder:
            skip("no model folder is known for it")
        elif not _get(m, "active", True) and not include_inactive:
            skip("its node is bypassed or muted")
        elif _get(m, "optional", False) and not include_optional:
            skip("optional: needed only for another model family")
        elif _get(m, "auto_download", False):
            skip("the node downloads it itself on first use")
        elif _get(m, "kind", "file") == "directory" and not (_get(chosen, "files") or ()):
            skip("a whole repository folder whose files are not known: let the node download it")
        elif _get(m, "kind", "file") == "directory":  # a folder model: every file under <folder>/<name>/
            target = filename.replace("\\", "/").strip("/")
            group = "unit-" + hashlib.sha256(f"{folder}\0{target}/".encode()).hexdigest()[:16]
            for f in _get(chosen, "files"):
                name = f"{target}/{str(_get(f, 'path')).lstrip('/')}"
                if (folder, name) not in planned:
                    planned.add((folder, name))
                    requests.append(_request(f, folder, name, _get(chosen, "source"), group))
        else:
            target = filename.replace("\\", "/").lstrip("/")
            if (folder, target) in planned:
                continue
            planned.add((folder, target))
            files = _get(chosen, "files") or ()
            if files:  # a sharded model: every file beside the named one, one group
                group = "unit-" + hashlib.sha256(f"{folder}\0{target}".encode()).hexdigest()[:16]
                where = target.rsplit("/", 1)[0] + "/" if "/" in target else ""
                for f in files:
                    name = where + str(_get(f, "path")).rsplit("/", 1)[-1]
                    if (folder, name) in planned and name != target:
                        continue
                    planned.add((folder, name))
                    requests.append(_request(f, folder, name, _get(chosen, "source"), group))
                continue
            requests.append(_request(chosen, folder, target, _get(chosen, "source"), None))
    return requests, skipped
