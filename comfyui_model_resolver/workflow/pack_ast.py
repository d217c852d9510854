"""Reading a node pack's Python with `ast` (never importing it): simple variable bindings, literal
`models_dir` paths, node-type mappings and folder registrations. Pure. Used by `loaders_extract`."""
from __future__ import annotations

import ast
from dataclasses import dataclass

_MAX_DEPTH = 6


@dataclass
class Registration:
    """A folder key a pack adds to ComfyUI's registry, and where it points (`models/<dir>`) when literal."""

    folder: str
    path: str | None
    file: str
    line: int


def const_str(node: ast.AST | None) -> str | None:
    """A literal string, also an f-string without placeholders (`f"SeargeModelSelector"`)."""
    if isinstance(node, ast.JoinedStr) and all(isinstance(v, ast.Constant) and isinstance(v.value, str)
                                               for v in node.values):
        return "".join(v.value for v in node.values)  # type: ignore[attr-defined]
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def call_name(node: ast.AST) -> str:
    """`folder_paths.get_filename_list` -> 'get_filename_list'; `f` -> 'f'."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def is_models_dir(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "models_dir") or \
        (isinstance(node, ast.Name) and node.id == "models_dir")


class Scope:
    """Simple `name = expr` bindings of a module, and of a function on top of it."""

    def __init__(self, module: dict[str, ast.AST], funcs: dict[str, ast.FunctionDef], local: dict | None = None):
        self.module, self.funcs, self.local = module, funcs, local or {}

    def lookup(self, name: str) -> ast.AST | None:
        return self.local.get(name) or self.module.get(name)

    def child(self, func: ast.FunctionDef) -> Scope:
        return Scope(self.module, self.funcs, bindings(func.body))


def bindings(body: list[ast.stmt]) -> dict[str, ast.AST]:
    out: dict[str, ast.AST] = {}
    for stmt in body:
        for node in ast.walk(stmt) if not isinstance(stmt, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                out.setdefault(node.targets[0].id, node.value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                out.setdefault(node.target.id, node.value)
    return out


def models_path(node: ast.AST, scope: Scope, depth: int = 0) -> str | None:
    """'a/b' for `os.path.join(folder_paths.models_dir, "a", "b")` (through variables), else None."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(node, ast.Name):
        bound = scope.lookup(node.id)
        if bound is not None and is_models_dir(bound) and depth > 0:
            return ""  # models_path = folder_paths.models_dir, then join(models_path, "x")
        return models_path(bound, scope, depth + 1) if bound is not None else None
    if isinstance(node, ast.Call) and call_name(node) == "join" and node.args:
        head, rest = node.args[0], node.args[1:]
        parts = [const_str(a) for a in rest]
        if not rest or any(p is None for p in parts):
            return None
        if is_models_dir(head):
            return "/".join(p.strip("/") for p in parts)
        base = models_path(head, scope, depth + 1)
        return "/".join(([base] if base else []) + [p.strip("/") for p in parts]) if base is not None else None
    return None


def mappings(tree: ast.Module) -> dict[str, str]:
    """Node type -> class name from `*CLASS_MAPPINGS` dict literals and item assignments."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            tgt = node.targets[0]
            tname = tgt.id if isinstance(tgt, ast.Name) else tgt.attr if isinstance(tgt, ast.Attribute) else None
            if tname and "CLASS_MAPPINGS" in tname.upper() and isinstance(node.value, ast.Dict):
                for k, v in zip(node.value.keys, node.value.values):
                    key = const_str(k)
                    if key and isinstance(v, (ast.Name, ast.Attribute)):
                        out.setdefault(key, v.id if isinstance(v, ast.Name) else v.attr)
            elif isinstance(tgt, ast.Subscript) and isinstance(tgt.value, ast.Name) and \
                    "CLASS_MAPPINGS" in tgt.value.id.upper():
                key = const_str(tgt.slice)
                if key and isinstance(node.value, (ast.Name, ast.Attribute)):
                    out.setdefault(key, node.value.id if isinstance(node.value, ast.Name) else node.value.attr)
    return out


def registrations(path: str, tree: ast.Module, scope: Scope) -> list[Registration]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node) == "add_model_folder_path" and len(node.args) >= 2:
            key = const_str(node.args[0])
            if key:
                out.append(Registration(key, models_path(node.args[1], scope), path, node.lineno))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Subscript):
            tgt = node.targets[0]
            holder = tgt.value.attr if isinstance(tgt.value, ast.Attribute) else getattr(tgt.value, "id", None)
            if holder == "folder_names_and_paths":
                key = const_str(tgt.slice)
                val = node.value
                first = val.elts[0] if isinstance(val, ast.Tuple) and val.elts else None
                if isinstance(first, ast.Name) and isinstance(scope.lookup(first.id), ast.List):
                    first = scope.lookup(first.id)  # paths = [MODELS_DIR]; (paths, exts)
                if isinstance(first, ast.List) and first.elts:
                    first = first.elts[0]
                if key:
                    out.append(Registration(key, models_path(first, scope) if first is not None else None, path, node.lineno))
    return out
