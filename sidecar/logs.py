"""Structured logs: one JSON object per line on stderr, at CMR_LOG_LEVEL.

Entry points (`cmr serve`, `sidecar.main:app`) call `configure_logging`; building an app does not
touch logging, so tests and embedding applications keep their own configuration.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from comfyui_model_resolver.text import encodable

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, http_version, status = record.args
            data.update(client=client, method=method, path=path, http_version=http_version, status=status)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in data:
                data[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return encodable(json.dumps(data, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return encodable(super().format(record))


def configure_logging(level: str, *, fmt: str = "json", stream=None) -> None:
    """Send the root, uvicorn and gradio loggers to one handler with the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "gradio", "httpx"):
        lg = logging.getLogger(name)
        if name == "uvicorn.access" and not lg.handlers and not lg.propagate:
            continue  # `uvicorn --no-access-log` turned it off: keep it off
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(logging.NOTSET)  # CMR_LOG_LEVEL decides, not uvicorn's defaults
    # Per-request lines from the HTTP client libraries are noise at INFO.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))


#: uvicorn's `log_config`: keep our configuration instead of installing its own.
UVICORN_LOG_CONFIG: dict[str, Any] = {"version": 1, "disable_existing_loggers": False}
