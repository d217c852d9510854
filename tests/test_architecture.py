"""Layers point one way; the core never imports web frameworks or ComfyUI."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "comfyui_model_resolver"
FORBIDDEN_IN_CORE = {"fastapi", "gradio", "server", "folder_paths", "starlette", "uvicorn", "httpx", "requests"}
# Layer order (lower may not import higher).
LAYERS = {"types": 0, "errors": 0, "settings": 0, "events": 0, "hosts": 0, "records": 0, "text": 0, "upstream": 0.5,
          "workflow": 1, "index": 1, "sources": 1, "fleet": 1,
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


SIDECAR = PKG.parent / "sidecar"


def _target_of(path: Path, level: int, mod: str) -> str | None:
    """The top-level part of the product an import points at: a core layer ("sources", "upstream"…),
    "sidecar", or None (the standard library, a dependency). Relative and absolute imports alike."""
    if level:
        if SIDECAR in path.parents:
            return "sidecar"
        parts = path.relative_to(PKG).with_suffix("").parts
        base = list(parts[: len(parts) - level])
        return (base + mod.split("."))[0] if mod else (base[0] if base else "")
    top, _, rest = mod.partition(".")
    if top == PKG.name:
        return rest.split(".")[0] if rest else ""
    return "sidecar" if top == "sidecar" else None


def _layer_name(path: Path) -> str:
    return "sidecar" if SIDECAR in path.parents else _layer_of(path)


def test_layers_point_inward():
    """Lower layers never import higher ones, whether the import is relative or absolute
    (`from comfyui_model_resolver.sources import …` counts too), the sidecar included."""
    layers = {**LAYERS, "fleet": 1, "sidecar": 4}
    checked = 0
    for path in [*PKG.rglob("*.py"), *SIDECAR.rglob("*.py")]:
        mine = _layer_name(path)
        if mine not in layers:
            continue
        for level, mod in _imports(path):
            target = _target_of(path, level, mod)
            if target in layers and target != mine:
                checked += 1
                assert layers[target] <= layers[mine], f"{path.relative_to(ROOT)} ({mine}) imports {target}"
    assert checked > 150, "the check must see the imports"


def test_no_core_module_imports_a_door():
    """Nothing in comfyui_model_resolver/ imports the sidecar (statically, or by importlib with a
    literal name), and nothing below adapters/ imports adapters: doors depend on the core, never the
    reverse. The one by-name use is `cmr`'s command registry (adapters/cli.py COMMAND_MODULES), which
    finds `sidecar.cli_serve` when the sidecar is installed."""
    offenders = []
    for path in PKG.rglob("*.py"):
        below_adapters = _layer_of(path) not in ("adapters", "__main__")  # __main__: `python -m`, the CLI door
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for level, mod in _imports(path):
            target = _target_of(path, level, mod)
            if target == "sidecar" or (below_adapters and target == "adapters"):
                offenders.append(f"{path.relative_to(ROOT)} imports {mod or '.'}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and str(node.args[0].value).split(".")[0] == "sidecar":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.args[0].value}")
    assert offenders == []
    from comfyui_model_resolver.adapters.cli import COMMAND_MODULES

    assert "sidecar.cli_serve" in COMMAND_MODULES and (SIDECAR / "cli_serve.py").is_file()
    assert not (PKG / "adapters" / "cli_serve.py").exists()


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
    ROOT / "sidecar" / "backend.py": {"ClientSession"},  # the standalone UI calling our own sidecar's API (`cmr ui`)
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
            if name in CONNECTING and name not in allowed:
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


# ---- the one request guard ---------------------------------------------------------------------
def _calls(path: Path, name: str) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Call)
            and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)]


def _defines(path: Path, name: str) -> bool:
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))


def test_every_door_calls_the_one_guard():
    """One guard function (`adapters/guard.py` check_request), called by every HTTP door: the ComfyUI
    routes for each request, and the sidecar's GuardMiddleware, which both the sidecar app (API and the
    mounted Gradio UI) and the standalone Gradio app install. (The CLI takes no requests from others.)"""
    guard = PKG / "adapters" / "guard.py"
    definers = [p.relative_to(ROOT) for p in _product_files() if _defines(p, "check_request")]
    assert definers == [guard.relative_to(ROOT)]
    comfy_door, sidecar_door = PKG / "adapters" / "aiohttp_routes.py", SIDECAR / "security.py"
    assert _calls(comfy_door, "check_request") and _calls(sidecar_door, "check_request")
    assert _defines(sidecar_door, "GuardMiddleware")
    for app_module in (SIDECAR / "main.py", SIDECAR / "gradio_ui.py"):  # sidecar (+ mounted UI), standalone UI
        text = app_module.read_text(encoding="utf-8")
        assert _calls(app_module, "add_middleware") and "GuardMiddleware" in text, app_module
    # every ComfyUI route is bound through the guarded handler, and nothing adds routes around it
    comfy = PKG / "adapters" / "comfyui.py"
    assert _calls(comfy, "bind_routes")
    stray = [f"{p.relative_to(ROOT)}:{line}" for p in (comfy, comfy_door, SIDECAR / "main.py")
             for name in ("add_route", "add_get", "add_post", "add_api_route")
             for line in _calls(p, name)]
    assert stray == []
    # no other door module reads the headers the guard decides on
    doors = [*(PKG / "adapters").rglob("*.py"), *SIDECAR.rglob("*.py")]
    readers = [p.relative_to(ROOT) for p in doors if p not in (guard, sidecar_door, comfy_door)
               and any(isinstance(n, ast.Constant) and isinstance(n.value, str)
                       and n.value.lower() in ("origin", "sec-fetch-site", "x-forwarded-host")
                       for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert readers == []


def test_the_product_never_runs_aria2():
    """aria2c is the bench's baseline for capped CDNs (bench/run.py installs it); the product downloads
    with its own segmented downloader and never starts another program to fetch a file."""
    files = [*_product_files(), *sorted((ROOT / "api").glob("*.py")), ROOT / "install.py",
             ROOT / "start-production.sh", ROOT / "Dockerfile",
             *sorted((ROOT / "web" / "js").glob("*.js"))]
    assert len(files) > 50
    offenders = [str(p.relative_to(ROOT)) for p in files if "aria2" in p.read_text(encoding="utf-8").lower()]
    assert offenders == []
    assert "aria2" in (ROOT / "bench" / "run.py").read_text(encoding="utf-8")  # the check can see the word
