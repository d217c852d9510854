"""The `cmr` command line. An adapter: parses arguments, builds Settings and the Resolver once,
calls it, and prints. No resolver logic lives here.

Exit codes (a stable contract): 0 the command ran (even if models are missing),
2 unusable input or configuration, 1 an operation failed (e.g. a download), 130 interrupted.
`cmr resolve` adds 3: a source could not be asked (offline: a model is `unavailable`) and 4: a model
no source has (`not_found`). Output cut short by a closed pipe (`| head`) ends quietly with 141.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, NoReturn, Sequence

from ..errors import ConfigError, ResolverError, WorkflowError
from .row_words import origin_notes

if TYPE_CHECKING:  # pragma: no cover
    from ..settings import Settings
    from ..types import Analysis

# Start-up matters (`cmr --help` must not take longer than a few Python start-ups): this module
# and the command modules import only argparse and the error types at the top. Each command's
# runner imports what it uses (settings, value types, asyncio, aiohttp) when it runs.

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_UNAVAILABLE, EXIT_NOT_FOUND = 3, 4
#: 128 + SIGPIPE, what a shell reports for a program whose reader went away.
EXIT_BROKEN_PIPE = 141
_PRECEDENCE = (EXIT_USAGE, EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_NOT_FOUND, EXIT_OK)


def worst_exit(*codes: int) -> int:
    """The exit code that says most: bad usage, then a failure, then offline, then not found."""
    return min(codes, key=lambda c: _PRECEDENCE.index(c) if c in _PRECEDENCE else -1)

#: name -> (help, configure). `configure(parser)` adds arguments and returns the async runner.
#: Other modules (cli_resolve, cli_download, sidecar.cli_serve) add commands with `@command(...)`.
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Callable[..., Any]]]] = {}


class Preload(NamedTuple):
    """What a command loads as it starts (see `_preload`)."""

    modules: tuple[str, ...]  # imported in a background thread
    lead: str | None  # the module that thread should reach before the command goes on
    downloads: bool  # the command downloads: the thread also sets the heap up (`heap_tuning`)
    meanwhile: tuple[str, ...]  # imported by the command itself while the thread is past `lead`


#: name -> what the command loads as it starts.
_PRELOADS: dict[str, Preload] = {}


def command(name: str, help: str, *, preload: Sequence[str] = (), preload_lead: str | None = None,
            preload_meanwhile: Sequence[str] = (), downloads: bool = False):
    """Register a command. `preload`: modules its runner will need, imported in a background thread
    from the moment the command line names the command (see `_preload`). `preload_meanwhile`: modules
    the runner needs that do not import the preloaded ones, imported while that thread is busy.
    `downloads`: the command may download files; that thread also sets the heap up for it."""
    def deco(configure: Callable[[argparse.ArgumentParser], Callable[..., Any]]):
        _COMMANDS[name] = (help, configure)
        if preload or downloads:
            _PRELOADS[name] = Preload(tuple(preload), preload_lead, downloads, tuple(preload_meanwhile))
        return configure
    return deco


def add_install_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--comfyui-root", metavar="DIR", help="ComfyUI install (models are in DIR/models); CMR_COMFYUI_ROOT")
    p.add_argument("--models-root", metavar="DIR", help="models folder, if not DIR/models; CMR_MODELS_ROOT")
    p.add_argument("--extra-model-paths", metavar="YAML", action="append",
                   help="an extra_model_paths.yaml (repeatable); default: COMFYUI_ROOT/extra_model_paths.yaml")
    p.add_argument("--object-info", metavar="FILE|URL",
                   help="node schemas: a saved object_info.json or a running ComfyUI URL; CMR_OBJECT_INFO / CMR_COMFYUI_URL")
    p.add_argument("--config", metavar="YAML", help="settings file; CMR_CONFIG")


def settings_from_args(args: argparse.Namespace, **extra: Any) -> "Settings":
    from ..settings import Settings

    overrides: dict[str, Any] = dict(extra)
    if getattr(args, "comfyui_root", None):
        overrides["comfyui_root"] = args.comfyui_root
    if getattr(args, "models_root", None):
        overrides["models_root"] = args.models_root
    if getattr(args, "extra_model_paths", None):
        overrides["extra_model_paths"] = tuple(args.extra_model_paths)
    oi = getattr(args, "object_info", None)
    if oi:
        if oi.startswith(("http://", "https://")):
            overrides["comfyui_url"] = oi
            overrides["object_info"] = None
        else:
            overrides["object_info"] = oi
    return Settings.load(yaml_file=getattr(args, "config", None), **overrides)


# ---- analyze ---------------------------------------------------------------------------------
def report_workflow_error(path: str, exc: ResolverError, *, as_json: bool) -> None:
    """One unreadable workflow among many: a JSON line of the analysis shape, or a line on stderr."""
    if as_json:
        import json

        from ..types import Analysis

        line = Analysis(workflow=path, format=None, models=(), errors=(exc.to_dict(),)).model_dump(mode="json")
        print(json.dumps(line), flush=True)
    else:
        print(f"{path}: error: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""), file=sys.stderr)


_PUBLIC_FIELDS = ("filename", "folder", "node_id", "node_type", "input", "active", "status", "local_path",
                  "url", "hash", "hash_type", "confidence")


def analysis_json(analysis: "Analysis") -> dict:
    """The `cmr analyze --json` object: the contract fields first, then the extra detail."""
    data = analysis.model_dump(mode="json")
    models = []
    for m in data["models"]:
        ordered = {k: m[k] for k in _PUBLIC_FIELDS}
        ordered.update({k: v for k, v in m.items() if k not in ordered})
        models.append(ordered)
    data["models"] = models
    return data


def _table(analysis: "Analysis", out=sys.stdout) -> None:
    print(f"{analysis.workflow}  [{analysis.format}]", file=out)
    if not analysis.models:
        print("  (no model files referenced)", file=out)
    rows = [("STATUS", "FOLDER", "FILE", "NODE", "NOTE")]
    for m in analysis.models:
        node = f"#{'/'.join([*m.subgraph_path, m.node_id])} {m.node_type}" if m.node_id else "(workflow models)"
        notes = []
        if not m.active:
            notes.append("inactive")
        if m.relink_value:
            notes.append(f"relink -> {m.relink_value}")
        elif m.status == "relocated" and m.local_path:
            notes.append(f"found at {m.local_path}")
        if m.hash_verified is False:
            notes.append("SHA-256 differs from the workflow's")
        if m.folder_source == "generic":
            notes.append("folder guessed")
        if m.pickle:
            notes.append("pickle format: loading it can run code")
        for c in m.conflicts:
            notes.append(f"{c.source} says {c.folder}")
        notes += origin_notes(m)  # implied by a preset, the node pack, folder unknown with its candidates
        rows.append((m.status, m.folder or "?", m.filename, node, ", ".join(notes)))
    if analysis.models:
        widths = [min(max(len(r[i]) for r in rows), 60) for i in range(4)]
        for r in rows:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + ("  " + r[4] if r[4] else ""),
                  file=out)
    for e in analysis.errors:
        print(f"  {e.get('type', 'error')}: {e.get('message')}", file=out)
    counts = {s: sum(1 for m in analysis.models if m.status == s) for s in ("present", "relocated", "missing")}
    print(f"  {len(analysis.models)} models: {counts['present']} present, {counts['relocated']} relocated, "
          f"{counts['missing']} missing", file=out)


async def _run_analyze(args: argparse.Namespace) -> int:
    import json

    from ..service import build_resolver

    settings = settings_from_args(args)
    from ..settings import process_environ

    resolver = await build_resolver(settings, environ=process_environ())
    status = EXIT_OK
    try:
        for path in args.paths:
            try:
                analysis = await resolver.analyze_path(path, match_hashes=args.match_hashes)
            except WorkflowError as exc:
                status = EXIT_USAGE
                report_workflow_error(path, exc, as_json=args.json)
                continue
            if args.json:
                print(json.dumps(analysis_json(analysis)), flush=True)
            else:
                _table(analysis)
    finally:
        await resolver.close()
    return status


@command("analyze", "list the models a workflow needs and which are present")
def _configure_analyze(p: argparse.ArgumentParser) -> Callable[..., Any]:
    p.add_argument("paths", nargs="+", metavar="PATH", help="workflow .json, or .png/.webp saved by ComfyUI")
    add_install_options(p)
    p.add_argument("--json", action="store_true", help="one JSON object per input file, one per line")
    p.add_argument("--match-hashes", action="store_true",
                   help="verify present files against embedded SHA-256 and find missing ones saved under another "
                        "name (reads whole files the first time; cached by path, size and mtime)")
    return _run_analyze


# ---- entry point -----------------------------------------------------------------------------
def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The `cmr` parser. With `only` (the command the command line names), only that command's
    arguments are set up; the others are listed by name and help (what `cmr --help` shows)."""
    _load_command_modules()
    parser = argparse.ArgumentParser(prog="cmr", description="ComfyUI Model Resolver: find, resolve and "
                                     "download the models a ComfyUI workflow needs.")
    parser.add_argument("--log-level", help="CRITICAL, ERROR, WARNING, INFO or DEBUG; CMR_LOG_LEVEL")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or name == only:
            p.set_defaults(_runner=configure(p))
    return parser


class _Refused(Exception):
    pass


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Refused(message)


def _named_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names, read as the full parser will read it (global options and their
    abbreviations first); None when it names none (then the full parser explains)."""
    pre = _QuietParser(add_help=False)
    pre.add_argument("--log-level")
    pre.add_argument("command", nargs="?")
    pre.add_argument("rest", nargs=argparse.REMAINDER)
    try:
        name = pre.parse_known_args(list(argv))[0].command
    except _Refused:
        return None
    return name if name in _COMMANDS else None


#: Modules that register further commands, by name: the sidecar's (`serve`, `ui`) belong to that door,
#: which the core never imports; it is found here when installed.
COMMAND_MODULES = (f"{__package__}.cli_resolve", f"{__package__}.cli_download", f"{__package__}.cli_ensure",
                   "sidecar.cli_serve")


def _load_command_modules() -> None:
    """Import modules that register further commands (resolve, download, ensure, serve)."""
    import importlib

    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in (name, name.split(".")[0]):  # a command module that is not installed
                raise
    # Run as `python -m …adapters.cli`, this module is __main__ while the command modules register
    # with the importable `…adapters.cli`: take their commands over.
    canonical = sys.modules.get(f"{__package__}.cli")
    if canonical is not None and canonical is not sys.modules.get(__name__):
        for name, entry in canonical._COMMANDS.items():
            _COMMANDS.setdefault(name, entry)
        for name, preload in canonical._PRELOADS.items():
            _PRELOADS.setdefault(name, preload)


def _preload(modules: Sequence[str], *, lead: str | None = None, lead_seconds: float = 1.0,
             downloads: bool = False, meanwhile: Sequence[str] = ()) -> None:
    """Import `modules` in a background thread while the command imports the rest.

    aiohttp builds two TLS contexts when imported, loading the system CA certificates each time:
    about a quarter of `cmr download`'s start-up, spent in OpenSSL, which releases the GIL. That
    only overlaps with our own imports if the thread gets there first: imports are Python code
    and take turns on the GIL, so a thread that starts together with the command's own imports
    reaches the certificates when the command has nothing left to do but wait for it. So with
    `lead`, this waits (sleeping, the GIL free) until the thread starts importing `lead` (the
    module that loads the certificates), at most `lead_seconds`, and then imports `meanwhile`:
    the command's own modules that do not need aiohttp, loaded while OpenSSL reads the
    certificates rather than after aiohttp (the command would otherwise block on aiohttp at its
    first module that imports it, and load the rest later). With `downloads`, the thread then sets
    this process's heap up for downloading (`heap_tuning`)."""
    if not modules and not downloads:
        return
    import importlib
    import threading
    import time

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the command's own import reports it
                pass
        if downloads:  # after the imports, which are on the way to the first request (ctypes is not)
            from .heap_tuning import tune_heap_for_downloads

            tune_heap_for_downloads()

    # Not a daemon: a command that stops early (a usage error) must not exit the process while the
    # thread is inside OpenSSL reading certificates; OpenSSL's exit handler frees what that read
    # uses, and the process dies of SIGSEGV instead of exiting 2. The interpreter waits for it.
    thread = threading.Thread(target=load, name="cmr-preload", daemon=False)
    thread.start()
    if lead is not None:
        deadline = time.monotonic() + lead_seconds
        while lead not in sys.modules and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
    for name in meanwhile:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the command's own import reports it
            pass


class _StartupCollector:
    """Garbage collection during a command's start-up (this process only: `main()` without argv).

    Importing the stack allocates tens of thousands of long-lived objects (modules, classes,
    functions), and the collector walks all of them again and again while they load; at exit the
    interpreter collects them once more. Both are ~15 % of a small command. So: no collections
    while the command loads; once its event loop first waits (the imports are done), what exists
    is frozen (never scanned again, the interpreter's own policy for long-lived objects) and the
    collector runs as usual for everything the command allocates from then on. At the end,
    everything is frozen so the interpreter's shutdown does not walk it once more."""

    def __init__(self, enabled: bool) -> None:
        import gc

        self.gc, self.enabled = gc, enabled and gc.isenabled()
        if self.enabled:
            gc.disable()

    def loaded(self) -> None:
        """The command's modules are loaded: freeze them, collect the rest as usual."""
        if self.enabled and not self.gc.isenabled():
            self.gc.freeze()
            self.gc.enable()

    def finish(self) -> None:
        if self.enabled:
            self.gc.freeze()
            self.gc.enable()


async def _run_command(args: argparse.Namespace, collector: _StartupCollector) -> int:
    import asyncio

    asyncio.get_running_loop().call_soon(collector.loaded)  # runs when the command first waits
    return await args._runner(args)


def main(argv: Sequence[str] | None = None) -> int:
    collector = _StartupCollector(enabled=argv is None)
    try:
        return _main(argv, collector)
    finally:
        collector.finish()


def _main(argv: Sequence[str] | None, collector: _StartupCollector) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    _load_command_modules()
    name = _named_command(words)
    if name in _PRELOADS and not {"-h", "--help"} & set(words):
        pre = _PRELOADS[name]
        # the heap is tuned only in a `cmr` process (main() without argv), never in a host that embeds us
        _preload(pre.modules, lead=pre.lead, downloads=pre.downloads and argv is None, meanwhile=pre.meanwhile)
    args = build_parser(name).parse_args(words)
    import asyncio
    import logging

    from ..settings import process_environ

    level = (args.log_level or process_environ().get("CMR_LOG_LEVEL") or "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code = asyncio.run(_run_command(args, collector))
        sys.stdout.flush()  # buffered table output meets a closed pipe here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _reader_went_away()
    except ConfigError as exc:
        print(f"cmr: configuration error: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""),
              file=sys.stderr)
        return EXIT_USAGE
    except ResolverError as exc:
        print(f"cmr: {exc.message}" + (f"\n  hint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("cmr: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _reader_went_away() -> int:
    """`cmr analyze --json … | head`: the reader closed the pipe. Stop quietly, as `cat` would; point
    stdout at /dev/null so the interpreter's final flush does not print a second traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (captured in a test)
        pass
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
