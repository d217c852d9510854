"""Test-suite root: makes ``<repo>/tests`` importable (for ``fakes``) and loads the fakes' fixtures."""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

pytest_plugins = ["fakes.plugin"]
