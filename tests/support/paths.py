"""Where test data lives."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
FRONTEND_FIXTURES = FIXTURES / "comfyui-frontend"
OBJECT_INFO = FIXTURES / "object_info"


def templates_dir() -> Path | None:
    """The official template workflows (PyPI comfyui-workflow-templates-json, pinned in pyproject)."""
    try:
        import comfyui_workflow_templates_json as pkg
    except ImportError:
        return None
    d = Path(pkg.__file__).resolve().parent / "templates"
    return d if d.is_dir() else None
