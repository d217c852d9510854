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
# A private HOME: no developer caches, tokens or runtime settings leak in, nothing leaks out.
import tempfile  # noqa: E402

_HOME = tempfile.mkdtemp(prefix="cmr-test-home-")
os.environ["HOME"] = _HOME
os.environ["XDG_CACHE_HOME"] = os.path.join(_HOME, ".cache")
os.environ["HF_HOME"] = os.path.join(_HOME, ".cache", "huggingface")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")

# Fixtures of the in-process Hugging Face Hub and Civitai fakes (tests/fakes).
pytest_plugins = ["fakes.plugin"]
