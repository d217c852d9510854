"""Layers point one way; the core never imports web frameworks or ComfyUI."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "comfyui_model_resolver"
FORBIDDEN_IN_CORE = {"fastapi", "gradio", "server", "folder_paths", "starlette", "uvicorn", "httpx", "requests"}
# Layer order (lower may not import higher).
LAYERS = {"types": 0, "errors": 0, "settings": 0, "events": 0, "hosts": 0, "retry_after": 0, "workflow": 1, "index": 1, "sources": 1,
          "fleet": 1,
          "downloads": 1, "service": 2, "ensure": 2, "adapters": 3}


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield 0, a.name
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""


def _layer_of(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0].removesuffix(".py")


def test_core_imports_no_framework():
    for path in PKG.rglob("*.py"):
        if _layer_of(path) == "adapters":
            continue
        for level, mod in _imports(path):
            top = mod.split(".")[0]
            assert level or top not in FORBIDDEN_IN_CORE, f"{path.relative_to(PKG)} imports {mod}"


def test_layers_point_inward():
    for path in PKG.rglob("*.py"):
        mine = _layer_of(path)
        if mine not in LAYERS:
            continue
        for level, mod in _imports(path):
            if level == 0:
                continue
            parts = path.relative_to(PKG).with_suffix("").parts
            base = list(parts[: len(parts) - level])
            target = (base + mod.split("."))[0] if mod else (base[0] if base else "")
            if target in LAYERS and target != mine:
                assert LAYERS[target] <= LAYERS[mine], f"{'/'.join(parts)} ({mine}) imports {target}"


ROOT = PKG.parent
#: Code that runs inside the product (install.py runs under ComfyUI-Manager before our dependencies
#: exist, so it cannot use Settings; tests and benches set up environments for child processes).
PRODUCT_DIRS = (PKG, ROOT / "sidecar")


def _product_files():
    for base in PRODUCT_DIRS:
        yield from sorted(base.rglob("*.py"))
    yield ROOT / "__init__.py"


def _environ_reads(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb", "putenv"} \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            yield node.lineno, f"os.{node.attr}"
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            for a in node.names:
                if a.name in {"environ", "getenv", "environb"}:
                    yield node.lineno, f"from os import {a.name}"


def test_settings_is_the_only_reader_of_the_environment():
    settings_py = PKG / "settings.py"
    offenders = [f"{p.relative_to(ROOT)}:{line} {what}" for p in _product_files() if p != settings_py
                 for line, what in _environ_reads(p)]
    assert offenders == []
    assert list(_environ_reads(settings_py)), "the check must see settings.py's own reads"
