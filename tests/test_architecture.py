"""Layers point one way; the core never imports web frameworks or ComfyUI."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "comfyui_model_resolver"
FORBIDDEN_IN_CORE = {"fastapi", "gradio", "server", "folder_paths", "starlette", "uvicorn", "httpx", "requests"}
# Layer order (lower may not import higher).
LAYERS = {"types": 0, "errors": 0, "settings": 0, "events": 0, "hosts": 0, "records": 0, "upstream": 0.5,
          "workflow": 1, "index": 1, "sources": 1,
          "downloads": 1, "service": 2, "adapters": 3}


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


# ---- the upstream policy: one way out ----------------------------------------------------------
UPSTREAM = PKG / "upstream"
#: HTTP client libraries: the product talks HTTP with aiohttp, and only inside upstream/.
HTTP_CLIENTS = {"huggingface_hub", "httpx", "requests", "urllib3", "http.client", "urllib.request"}
#: Calls that open a connection or a session.
CONNECTING = {"ClientSession", "TCPConnector", "open_connection", "create_connection", "urlopen"}
#: Methods of an aiohttp session that send a request.
SENDING = {"get", "head", "post", "put", "patch", "delete", "request", "options", "ws_connect"}
#: Not upstream traffic, and why.
NOT_UPSTREAM = {
    ROOT / "sidecar" / "backend.py": {"httpx"},  # the standalone UI calling our own sidecar's API (`cmr ui`)
}


def _receiver_is_a_session(node: ast.AST) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return "session" in name.lower()


def _outbound(path: Path):
    """(line, what) for each HTTP client import, session/connection construction or session call."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed = NOT_UPSTREAM.get(path, set())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for mod in names:
                if any(mod == c or mod.startswith(c + ".") for c in HTTP_CLIENTS) and mod.split(".")[0] not in allowed:
                    yield node.lineno, f"imports {mod}"
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in CONNECTING:
                yield node.lineno, f"calls {name}"
            elif isinstance(func, ast.Attribute) and name in SENDING and _receiver_is_a_session(func.value):
                yield node.lineno, f"sends with a session ({name})"


def test_every_outbound_request_goes_through_the_upstream_module():
    """One way out (issue 12, hole 2): no module outside upstream/ builds an HTTP client or session, or
    sends with one; huggingface_hub (whose client follows redirects anywhere) is not used at all."""
    offenders = [f"{p.relative_to(ROOT)}:{line} {what}" for p in _product_files()
                 if UPSTREAM not in p.parents for line, what in _outbound(p)]
    assert offenders == []
    inside = [what for p in UPSTREAM.rglob("*.py") for _, what in _outbound(p)]
    assert "calls ClientSession" in inside and "sends with a session (request)" in inside, \
        "the check must see the transport's own session and sends"
    # and the transport is what the sources and the downloader use
    for user in (PKG / "sources" / "http.py", PKG / "downloads" / "http.py"):
        imported = {a.name for node in ast.walk(ast.parse(user.read_text(encoding="utf-8")))
                    if isinstance(node, ast.ImportFrom) and node.level == 2 and node.module == "upstream"
                    for a in node.names}
        assert "send" in imported, f"{user.relative_to(ROOT)} does not send through upstream.send"
