"""What a server checks and prepares before it listens: the ComfyUI install it serves, and an API key.

* `check_install(settings)`: a missing, mistyped or unwritable ComfyUI root stops the start with a
  plain message (ConfigError) instead of a server that only says so in `/health`.
* `ensure_api_key(settings, data_dir)`: no CMR_API_KEY? Make one on first start, keep it (mode 0600) in
  the data dir, and say it once with the URLs, as Jupyter does with its token. Later starts reuse it
  quietly; setting CMR_API_KEY always wins.
"""
from __future__ import annotations

import logging
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from comfyui_model_resolver.errors import ConfigError
from comfyui_model_resolver.settings import Settings

log = logging.getLogger("cmr.startup")

#: The file in the data dir that keeps a generated API key.
KEY_FILE = "api_key"


def check_install(settings: Settings) -> None:
    """Refuse to start without a usable models folder: unset, missing, not ComfyUI, or not writable."""
    root, models = settings.comfyui_root, settings.models_root
    if root is None and models is None:
        raise ConfigError("No ComfyUI install is configured, so there is nowhere to look for models or put them.",
                          hint="Set CMR_COMFYUI_ROOT to your ComfyUI folder (the one holding main.py and models/), "
                               "or CMR_MODELS_ROOT to a models folder; `cmr serve --comfyui-root DIR` works too.")
    if models is None:
        assert root is not None
        if not root.is_dir():
            raise ConfigError(f"CMR_COMFYUI_ROOT={root} does not exist or is not a folder.",
                              hint="Check the path (and, in a container, that the volume is mounted there).")
        if not (root / "models").is_dir() and not (root / "main.py").is_file():
            raise ConfigError(f"CMR_COMFYUI_ROOT={root} does not look like a ComfyUI install: it has neither "
                              "main.py nor a models folder.",
                              hint="Point it at the folder that holds ComfyUI's main.py and models/ "
                                   "(or set CMR_MODELS_ROOT to the models folder itself).")
        models = root / "models"
        if not models.is_dir():
            _make_models_dir(models)
    elif not models.is_dir():
        raise ConfigError(f"CMR_MODELS_ROOT={models} does not exist or is not a folder.",
                          hint="Check the path (and, in a container, that the volume is mounted there).")
    problem = _not_writable(models)
    if problem:
        raise ConfigError(f"The models folder {models} is not writable by this process (uid {_uid()}): {problem}.",
                          hint="Give this user write access (e.g. chown -R it), or run the server as the folder's "
                               "owner (docker run --user UID:GID).")


def _make_models_dir(models: Path) -> None:
    try:
        models.mkdir()
    except OSError as exc:
        raise ConfigError(f"Cannot create the models folder {models}: {exc.strerror or exc}.",
                          hint="Create it, or set CMR_MODELS_ROOT to an existing models folder.") from None


def _uid() -> str:
    return str(os.getuid()) if hasattr(os, "getuid") else "?"


def _not_writable(path: Path) -> str | None:
    try:  # os.access lies for root and on some network filesystems: really create a file
        with tempfile.NamedTemporaryFile(dir=path, prefix=".cmr-startup-", delete=True):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def ensure_api_key(settings: Settings, *, urls: list[str] | tuple[str, ...] = (),
                   out: TextIO | None = None) -> Settings:
    """`settings` with an API key: CMR_API_KEY if set, else the kept one, else a new one (kept 0600 in
    the data dir and printed once to `out`, default stderr, with `urls`)."""
    if settings.api_key is not None and settings.api_key.get_secret_value():
        return settings
    path = settings.effective_data_dir / KEY_FILE
    key = _read_key(path)
    if key:
        log.info("using the API key kept in %s", path)
        return settings.with_overrides(api_key=key)
    kept = _keep_key(path, secrets.token_urlsafe(32))
    if kept is not None and kept[1] is False:  # another process made one a moment ago: use it
        return settings.with_overrides(api_key=kept[0])
    key = kept[0] if kept else secrets.token_urlsafe(32)
    lines = ["", "ComfyUI Model Resolver: no CMR_API_KEY was set, so one was generated"
             + (f" and saved to {path} (readable by this user only)." if kept else
                " for this run only (the data dir is not writable)."),
             "Send it as 'Authorization: Bearer <key>' to change anything from another machine; "
             "the UI asks for it as the password (any user name).", ""]
    for url in urls:
        lines.append(f"    {url}")
    lines += [f"    API key: {key}", "", "Set CMR_API_KEY to choose your own.", ""]
    print("\n".join(lines), file=out or sys.stderr, flush=True)
    return settings.with_overrides(api_key=key)


def _read_key(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def _keep_key(path: Path, key: str) -> tuple[str, bool] | None:
    """Write the key readable by its owner only (0600 from the start, never briefly wider).
    (key, True) when written, (their key, False) when another process wrote one first, None when the
    data dir is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        theirs = _read_key(path)
        return (theirs, False) if theirs else None
    except OSError as exc:
        log.warning("cannot keep the API key in %s: %s", path, exc.strerror or exc)
        return None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return key, True
