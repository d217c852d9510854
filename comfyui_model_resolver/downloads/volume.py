"""The identity of a models volume: which hosts and processes share one set of model files.

Jobs belong to a volume. Two instances with different models roots never see or run each
other's jobs, and hosts of a fleet (CMR_REDIS_URL) share a queue only when they write to the same
files: a shared NFS/EFS volume, or a PVC mounted by many pods.

The identity is a random id kept in ``<models root>/.cmr-volume`` (a dot file: ComfyUI and our
scanner skip it). The first instance that finds no marker creates it with a hard link, which is
atomic on local file systems and on NFS, so two hosts starting at once agree. Hosts that mount one
shared volume read the same id; a host with its own disk creates its own, so it gets its own copy
of each file even when every host mounts its disk at the same path.

`CMR_VOLUME_ID` sets the id explicitly. When the models root cannot hold the marker (read-only, or
the marker is a link), the id is derived from this host's name and the root's real path: the
volume is then private to this host.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import time
import uuid
from typing import Callable, Iterable

__all__ = ["MARKER", "layout_owns", "volume_id"]

log = logging.getLogger(__name__)

MARKER = ".cmr-volume"
_VALID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def volume_id(models_root: str | None, explicit: str | None = None) -> str:
    """The volume's id (blocking: call it off the event loop)."""
    if explicit:
        return explicit
    if not models_root:
        return "no-models-root"
    marker = os.path.join(models_root, MARKER)
    try:
        return _read(marker) or _create(marker)
    except OSError as exc:
        fallback = "host-" + hashlib.sha256(
            f"{socket.gethostname()}\0{os.path.realpath(models_root)}".encode()).hexdigest()[:24]
        log.warning("cannot create the volume marker %s (%s); jobs of this models root stay private to this host "
                    "(set CMR_VOLUME_ID to share them)", marker, exc.strerror or exc)
        return fallback


def _read(marker: str) -> str | None:
    """The id in the marker; None when there is no marker. OSError when there is one we cannot use
    (a link, unreadable, or not ours): then nothing is shared through it. The marker is written in
    full before it is linked under its name, so a reader never sees it half-written."""
    try:
        fd = os.open(marker, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    try:
        raw = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        vid = json.loads(raw.decode("utf-8")).get("volume")
    except (ValueError, AttributeError, UnicodeDecodeError):
        vid = None
    if isinstance(vid, str) and _VALID.match(vid):
        return vid
    raise OSError(0, "not a volume marker of ours")


def _create(marker: str) -> str:
    vid = uuid.uuid4().hex
    tmp = f"{marker}.{vid}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"volume": vid, "created": time.time(), "host": socket.gethostname()}, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, marker)  # atomic: exactly one creator wins, the others read its id
            return vid
        except FileExistsError:
            found = _read(marker)
            if found:
                return found
            raise
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def layout_owns(models_root: str | None, dirs: Iterable[str]) -> Callable[[str | None], bool]:
    """For migrating job rows written before volumes: does a target path lie under this models
    root or one of its folders (extra_model_paths)? A job not named yet (None) is taken too."""
    roots = tuple(os.path.join(os.path.abspath(d), "") for d in (models_root, *dirs) if d)

    def owns(path: str | None) -> bool:
        return path is None or os.path.abspath(path).startswith(roots)
    return owns
