"""`cmr serve`: the sidecar API (port 5002) and, when enabled and installed, the Gradio UI (5001).
`cmr ui --api-url URL`: the Gradio UI alone, against a running sidecar.

An entry point of the sidecar door: it builds Settings once and hands them to `sidecar.server.serve`.
It lives in the sidecar package (the core never imports a door); `cmr` finds it by name among its
command modules (`adapters.cli.COMMAND_MODULES`). fastapi, uvicorn and gradio are imported only when
one of these commands runs.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

from comfyui_model_resolver.adapters.cli import EXIT_USAGE, add_install_options, command, settings_from_args


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
    from comfyui_model_resolver.settings import set_process_default

    set_process_default("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry from a headless server
    settings = settings_from_args(args, **_server_overrides(args))
    from .logs import configure_logging

    configure_logging(settings.log_level, fmt=args.log_format)
    return settings


def _public_hosts(settings) -> list[str]:
    from .security import is_loopback

    hosts = [settings.api_host] + ([settings.gradio_host] if settings.enable_ui else [])
    return [h for h in hosts if not is_loopback(h)]


def _urls(settings) -> list[str]:
    def url(host: str, port: int, what: str) -> str:
        shown = "<this host>" if host in ("0.0.0.0", "::", "") else host
        return f"{what}: http://{shown}:{port}/"
    out = [url(settings.api_host, settings.api_port, "API")]
    if settings.enable_ui:
        out.append(url(settings.gradio_host, settings.gradio_port, "UI "))
    return out


async def _run_serve(args: argparse.Namespace) -> int:
    from comfyui_model_resolver.errors import ConfigError

    from .startup import check_install, ensure_api_key

    settings = _prepare(args)
    check_install(settings)  # a wrong or unset ComfyUI root stops here, with the reason (exit 2)
    if args.check:
        if _public_hosts(settings) and settings.api_key is None:
            print(f"note: listening on {', '.join(_public_hosts(settings))} without CMR_API_KEY: a key will be "
                  f"generated on first start and kept in {settings.effective_data_dir}")
        from comfyui_model_resolver.index.layout import build_layout
        from comfyui_model_resolver.settings import process_environ

        from .health import linked_folder_lines, write_roots_report

        layout = build_layout(settings.effective_models_root, settings.effective_extra_model_paths,
                              process_environ(), write_roots=settings.write_roots)
        for line in linked_folder_lines(write_roots_report(layout)):
            print(line)
        print(f"configuration OK: models in {settings.effective_models_root}")
        return 0
    if _public_hosts(settings):  # beyond loopback: changes need a key; make one rather than refuse to start
        settings = ensure_api_key(settings, urls=_urls(settings))
    from .server import serve

    try:
        from comfyui_model_resolver.settings import process_environ

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
    from .gradio_ui import gradio_available
    from .server import serve

    if not gradio_available():
        import sys

        print("cmr ui: gradio is not installed: pip install 'comfyui-model-resolver[ui]'", file=sys.stderr)
        return EXIT_USAGE
    from comfyui_model_resolver.settings import process_environ

    return await serve(settings, ui=True, environ=process_environ(), api_url=args.api_url)


@command("ui", "run the Gradio UI alone, against a running sidecar")
def _configure_ui(p: argparse.ArgumentParser) -> Callable[..., Any]:
    p.add_argument("--api-url", metavar="URL", default="http://127.0.0.1:5002",
                   help="the sidecar to use (default http://127.0.0.1:5002); CMR_API_KEY is sent to it")
    _add_common(p)
    return _run_ui
