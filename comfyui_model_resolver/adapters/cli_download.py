"""`cmr download URL --folder F [--create-folder] [--filename NAME] [--sha256 HEX] [--json]`.

Downloads one file into a ComfyUI model folder with a progress bar on stderr (speed, ETA).
Ctrl-C pauses: the partial file and its state stay, and running the same command again resumes.

Exit codes: 0 downloaded (or already present and verified), 1 the download failed (the message
says why; a bad file is never left under the final name), 2 bad usage or configuration,
130 interrupted (paused, resumable).
With --json the last stdout line is ``{"path", "size", "sha256", "seconds"}`` on success, or
``{"error": {"type", "code", "message", "hint"}}`` on failure.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError, HostNotAllowed, ResolverError, UnsafeFormat, UnsafePath
from .cli import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, add_install_options, command,
                  settings_from_args)

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

#: Errors that mean "this request can never work as given" (exit 2), not "it failed" (exit 1).
USAGE_ERRORS = (ConfigError, HostNotAllowed, UnsafePath, UnsafeFormat)


def _print_error(exc_dict: dict, as_json: bool) -> None:
    from ..hosts import redact_text

    msg = redact_text(exc_dict.get("message") or "download failed")
    print(f"cmr download: {msg}" + (f"\n  hint: {exc_dict['hint']}" if exc_dict.get("hint") else ""), file=sys.stderr)
    if as_json:
        print(json.dumps({"error": exc_dict}), flush=True)


def _install_sigint(stop: "asyncio.Event") -> Callable[[], None]:
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        return lambda: (loop.remove_signal_handler(signal.SIGINT), loop.remove_signal_handler(signal.SIGTERM))
    except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
        return lambda: None


async def _run_download(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from ..service import build_resolver
    from ..settings import process_environ
    from ..types import DownloadRequest, DownloadState

    try:
        req = DownloadRequest(url=args.url, folder=args.folder, filename=args.filename, sha256=args.sha256,
                              priority=args.priority or 0, source="cli")
    except ValueError as exc:
        print(f"cmr download: invalid arguments: {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = settings_from_args(args)
    resolver = await build_resolver(settings, environ=process_environ())
    stop = asyncio.Event()
    restore = _install_sigint(stop)
    started = time.monotonic()
    try:
        # Up to here nothing needs aiohttp, which loads in another thread meanwhile (cli._preload).
        resolver.check_download_folder(req.folder, create=args.create_folder)
        from .download_bars import run_downloads

        manager = resolver.downloads
        manager.resume_unfinished = False  # this command runs its own job only
        outcome = (await run_downloads(manager, [req], stop=stop, bars=None if not args.no_progress else False))[0]
    except UnsafePath as exc:  # a folder that can never work (UnknownFolder, a path, a node pack's code)
        outcome = exc
    finally:
        restore()
        await resolver.close()
    seconds = round(time.monotonic() - started, 3)
    if isinstance(outcome, ResolverError):
        _print_error(outcome.to_dict(), args.json)
        return EXIT_USAGE if isinstance(outcome, USAGE_ERRORS) else EXIT_FAILED
    job = outcome
    if job.state == DownloadState.completed:
        size = job.total or 0
        if args.json:
            print(json.dumps({"path": job.path, "size": size, "sha256": job.sha256, "seconds": seconds}), flush=True)
        else:
            note = f" — {job.detail}" if job.detail else ""
            print(f"{job.path} ({size} bytes, sha256 {job.sha256 or 'unknown'}, {seconds:.1f} s){note}", flush=True)
        for w in job.warnings:
            print(f"cmr download: warning: {w}", file=sys.stderr)
        return EXIT_OK
    if job.state == DownloadState.paused:
        print(f"cmr download: paused at {job.bytes_done} of {job.total or '?'} bytes; run the same command "
              "again to resume.", file=sys.stderr)
        if args.json:
            print(json.dumps({"paused": True, "path": job.path, "bytes_done": job.bytes_done, "total": job.total}),
                  flush=True)
        return EXIT_INTERRUPTED
    err: dict[str, Any] = job.error or {"type": "DownloadError", "code": "download_error",
                                        "message": f"download ended in state {job.state.value}", "hint": None}
    _print_error(err, args.json)
    return EXIT_USAGE if err.get("type") in {c.__name__ for c in USAGE_ERRORS} else EXIT_FAILED


#: The modules `cmr download` needs that do not import aiohttp (tests/adapters/test_cli_download_startup.py
#: checks both). The command imports them while aiohttp's connector module loads the CA certificates
#: in the preload thread, a wait in OpenSSL that leaves the interpreter free.
MEANWHILE = tuple(f"comfyui_model_resolver.{name}" for name in (
    "settings", "types", "hosts", "service", "upstream.policy", "index.hashing",
    "downloads.intervals", "downloads.paths", "downloads.containment", "downloads.job", "downloads.store",
    "downloads.locks", "downloads.slots", "downloads.volume", "downloads.schedule", "downloads.partfile",
    "downloads.hashing", "downloads.verify",
)) + ("encodings.idna",)  # the resolver encodes the host name with it (socket.getaddrinfo)


# aiohttp is imported in the background as the command starts; it loads the CA certificates in
# aiohttp.connector, which the thread should reach first (see cli._preload).
@command("download", "download a model file into a ComfyUI model folder (resumable, verified)",
         preload=("aiohttp",), preload_lead="aiohttp.connector", preload_meanwhile=MEANWHILE, downloads=True)
def _configure_download(p: argparse.ArgumentParser) -> Callable[..., Any]:
    p.add_argument("url", metavar="URL", help="http(s) URL (Hugging Face /resolve/ URL, Civitai download URL, …)")
    p.add_argument("--folder", required=True, help="ComfyUI model folder: checkpoints, loras, vae, … (one ComfyUI "
                   "knows, an extra_model_paths.yaml folder, or an existing folder)")
    p.add_argument("--create-folder", action="store_true",
                   help="create --folder if ComfyUI does not know it yet (otherwise a typo is refused)")
    p.add_argument("--filename", help="file name inside the folder, may include a sub-folder "
                                      "(default: the name the server gives)")
    p.add_argument("--sha256", metavar="HEX", help="expected SHA-256; the file is verified against it")
    p.add_argument("--priority", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help='print one final JSON line {"path", "size", "sha256", "seconds"}')
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_install_options(p)
    return _run_download
