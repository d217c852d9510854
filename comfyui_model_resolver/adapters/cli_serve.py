"""`cmr serve`: the sidecar API (port 5002) and, when enabled and installed, the Gradio UI (5001).
`cmr ui --api-url URL`: the Gradio UI alone, against a running sidecar.

An entry point: it builds Settings once and hands them to `sidecar.server.serve`. The sidecar package
(fastapi, uvicorn, gradio) is imported only when one of these commands runs.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

from .cli import EXIT_USAGE, add_install_options, command, settings_from_args


def _server_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for arg, field in (("host", "api_host"), ("port", "api_port"), ("gradio_host", "gradio_host"),
                       ("gradio_port", "gradio_port"), ("log_level", "log_level")):
        value = getattr(args, arg, None)
        if value is not None:
            overrides[field] = value
    if getattr(args, "ui", None) is not None:
        overrides["enable_ui"] = args.ui
    return overrides


def _prepare(args: argparse.Namespace):
    from ..settings import set_process_default

    set_process_default("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry from a headless server
    settings = settings_from_args(args, **_server_overrides(args))
    from sidecar.logs import configure_logging

    configure_logging(settings.log_level, fmt=args.log_format)
    return settings


async def _run_serve(args: argparse.Namespace) -> int:
    from ..errors import ConfigError

    settings = _prepare(args)
    if args.check:
        from sidecar.main import check_bind

        check_bind(settings)
        if settings.enable_ui:
            check_bind(settings, settings.gradio_host)
        print("configuration OK")
        return 0
    from sidecar.server import serve

    try:
        from ..settings import process_environ

        return await serve(settings, ui=settings.enable_ui, environ=process_environ())
    except ConfigError:
        raise
    except OSError as exc:
        import logging

        logging.getLogger("cmr.serve").error("cannot serve: %s", exc)
        return EXIT_USAGE


def _add_common(p: argparse.ArgumentParser) -> None:
    add_install_options(p)
    p.add_argument("--gradio-host", metavar="HOST", help="UI address (default 127.0.0.1); CMR_GRADIO_HOST")
    p.add_argument("--gradio-port", metavar="PORT", type=int, help="UI port (default 5001); CMR_GRADIO_PORT")
    p.add_argument("--log-format", choices=("json", "text"), default="json",
                   help="json (default): one JSON object per line; text: for people")


@command("serve", "run the HTTP sidecar (and the Gradio UI when enabled)")
def _configure_serve(p: argparse.ArgumentParser) -> Callable[..., Any]:
    p.add_argument("--host", metavar="HOST", help="API address (default 127.0.0.1); CMR_API_HOST. Beyond "
                   "loopback CMR_API_KEY is required")
    p.add_argument("--port", metavar="PORT", type=int, help="API port (default 5002); CMR_API_PORT")
    p.add_argument("--ui", dest="ui", action="store_true", default=None, help="serve the Gradio UI too (default: "
                   "CMR_ENABLE_UI, on)")
    p.add_argument("--no-ui", dest="ui", action="store_false", help="serve the API only")
    p.add_argument("--check", action="store_true", help="check the configuration and exit")
    _add_common(p)
    return _run_serve


async def _run_ui(args: argparse.Namespace) -> int:
    settings = _prepare(args)
    from sidecar.gradio_ui import gradio_available
    from sidecar.server import serve

    if not gradio_available():
        import sys

        print("cmr ui: gradio is not installed: pip install 'comfyui-model-resolver[ui]'", file=sys.stderr)
        return EXIT_USAGE
    from ..settings import process_environ

    return await serve(settings, ui=True, environ=process_environ(), api_url=args.api_url)


@command("ui", "run the Gradio UI alone, against a running sidecar")
def _configure_ui(p: argparse.ArgumentParser) -> Callable[..., Any]:
    p.add_argument("--api-url", metavar="URL", default="http://127.0.0.1:5002",
                   help="the sidecar to use (default http://127.0.0.1:5002); CMR_API_KEY is sent to it")
    _add_common(p)
    return _run_ui
