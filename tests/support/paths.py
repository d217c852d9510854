"""Where test data lives."""
from __future__ import annotations

from pathlib import Path

# The official template workflows (PyPI comfyui-workflow-templates-json, pinned in pyproject): the
# catalog builder's own locator, so the tests and the builder read the same files.
from comfyui_model_resolver.sources.catalog_build import templates_dir  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
FRONTEND_FIXTURES = FIXTURES / "comfyui-frontend"
OBJECT_INFO = FIXTURES / "object_info"
