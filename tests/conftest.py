"""Shared test setup: `tests/` is on sys.path so tests import helpers as `support.*` and `fakes.*`;
the fakes' fixtures (hub, civitai, …) are loaded as a plugin."""
from __future__ import annotations

import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

REPO = TESTS.parent
FIXTURES = REPO / "tests" / "fixtures"
# Never let a developer's real tokens or endpoints leak into tests.
for var in list(os.environ):
    if var.startswith("CMR_") or var in ("HF_TOKEN", "HF_ENDPOINT", "CIVITAI_API_KEY"):
        os.environ.pop(var, None)
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")

pytest_plugins = ["fakes.plugin"]
