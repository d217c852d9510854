"""Models a node loads without a widget naming them, read from its pack's code. Pure: ast in, facts out.

Used by `loaders_extract` (and so by `loaders_build`) for data/loaders.json. The class of model this
reads is the insightface face-analysis pack: `FaceAnalysis(name="antelopev2", root=<dir>)` (and any
subclass or wrapper named `…FaceAnalysis…`) loads the folder `<root>/models/<name>`; without a name,
insightface loads `buffalo_l`. Identity packs (InstantID, PuLID, PhotoMaker, ReActor, IP-Adapter FaceID,
InfiniteYou …) all do this inside their loader nodes, each in its own way.

From a node type's `FUNCTION` method the calls are followed into the same class's methods, the pack's
functions (any file; imported helpers such as `insightface_loader(provider)`) and its classes'
`__init__`, with arguments bound to parameters (defaults included), up to a small depth. A name is:

* a literal: the node implies that model (`implicit` in the table, with the file and line of the call);
* one of the node's own widgets (a parameter of the FUNCTION method): the widget names the folder
  inside `<root>/models` (a `dir` spec for that input);
* anything else: left out, and said so.

A call under an `if` that tests a string constant (`if preset == "FACEID PLUS KOLORS"`, also through
a local variable) depends on a preset and is left out; one under a cache test (`if model is None`)
is not. The root must resolve to a literal path under ComfyUI's models directory.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from .pack_ast import Scope, call_name, const_str, models_path

_MAX_DEPTH = 5
#: insightface's FaceAnalysis default model (insightface/app/face_analysis.py: name=DEFAULT_MP_NAME).
INSIGHTFACE_DEFAULT = "buffalo_l"

Value = tuple[str, str]  # ("lit", text) | ("widget", input name) | ("path", models sub-path)


@dataclass
class Implied:
    """One model a node loads by itself (`filename` set) or through a widget (`widget` set)."""

    filename: str | None
    widget: str | None
    folder: str  # sub-path under the models directory: "insightface/models"
    file: str
    line: int
    call: str  # the call as read, for the table's note


@dataclass
class PackCode:
    """A pack's parsed code: classes and top-level functions by name, each with its file and scope."""

    classes: dict[str, tuple[str, ast.ClassDef, Scope]]
    funcs: dict[str, list[tuple[str, ast.FunctionDef, Scope]]]
    constants: dict[str, tuple[ast.AST, Scope]]  # module-level bindings of every file (imported constants)


def _method(cdef: ast.ClassDef, name: str, code: PackCode, depth: int = 0):
    """(class, method) for `name` in the class or its nearest pack base."""
    for f in cdef.body:
        if isinstance(f, ast.FunctionDef) and f.name == name:
            return cdef, f
    if depth < _MAX_DEPTH:
        for base in cdef.bases:
            bname = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else None
            entry = code.classes.get(bname or "")
            if entry is not None and entry[1] is not cdef:
                return _method(entry[1], name, code, depth + 1)
    return None


def _is_preset_test(test: ast.AST, scope: Scope, env: dict[str, Value], depth: int = 0) -> bool:
    """Whether an `if` test depends on a preset choice: it compares something to a string constant, or
    tests a local variable computed from a widget (`_, is_faceid, _ = get_file(preset)`). A test of a
    widget itself against a cache (`if provider != self.provider`) is not one."""
    for node in ast.walk(test):
        if isinstance(node, ast.Compare) and any(const_str(x) is not None for x in [node.left, *node.comparators]):
            return True
        if isinstance(node, ast.Call) and call_name(node) in ("startswith", "endswith") and node.args \
                and const_str(node.args[0]) is not None:
            return True
        if isinstance(node, ast.Name) and node.id in env and env[node.id][0] == "widget" and depth > 0:
            return True
        if isinstance(node, ast.Name) and node.id not in env and depth < 3:
            bound = scope.local.get(node.id)
            if bound is not None and _is_preset_test(bound, scope, env, depth + 1):
                return True
    return False


def _local_scope(func: ast.FunctionDef, scope: Scope) -> Scope:
    """The function's scope, with names bound by tuple unpacking (`a, b = f(x)`) bound to the whole value."""
    fscope = scope.child(func)
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Tuple):
            for elt in node.targets[0].elts:
                if isinstance(elt, ast.Name):
                    fscope.local.setdefault(elt.id, node.value)
    return fscope


class _Walker:
    """Follows one node's FUNCTION method and records the face-analysis models it loads."""

    def __init__(self, code: PackCode, widgets: set[str]) -> None:
        self.code = code
        self.widgets = widgets
        self.found: list[Implied] = []
        self.problems: list[str] = []
        self.stack: list[int] = []

    # -- values ---------------------------------------------------------------------------
    def value(self, node: ast.AST | None, scope: Scope, env: dict[str, Value], depth: int = 0) -> Value | None:
        if node is None or depth > _MAX_DEPTH:
            return None
        s = const_str(node)
        if s is not None:
            return ("lit", s)
        if isinstance(node, ast.Name):
            if node.id in env:
                return env[node.id]
            bound = scope.local.get(node.id)
            if bound is not None:
                return self.value(bound, scope, env, depth + 1)
            bound = scope.module.get(node.id)
            if isinstance(bound, ast.Subscript):  # INSIGHTFACE_DIR = get_folder_paths("insightface")[0]
                return self.value(bound, scope, {}, depth + 1)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Call) \
                and call_name(node.value) == "get_folder_paths" and node.value.args:
            key = const_str(node.value.args[0])  # get_folder_paths("insightface")[0]: models/<key> by convention
            return ("path", key) if key else None
        path = models_path(node, scope)
        if path is None and isinstance(node, ast.Name) and node.id not in scope.module:
            const = self.code.constants.get(node.id)  # a constant imported from another file of the pack
            if const is not None:
                path = models_path(const[0], const[1])
        if path is None and isinstance(node, ast.Call) and call_name(node) == "join" and node.args \
                and isinstance(node.args[0], ast.Name) and node.args[0].id in env:
            head = env[node.args[0].id]  # join(<a path parameter>, "x")
            parts = [const_str(a) for a in node.args[1:]]
            if head[0] == "path" and all(p is not None for p in parts):
                path = "/".join([head[1], *(p.strip("/") for p in parts)]).strip("/")  # type: ignore[union-attr]
        return ("path", path) if path is not None else None

    def bind(self, func: ast.FunctionDef, call: ast.Call, scope: Scope, env: dict[str, Value],
             skip_self: bool) -> dict[str, Value]:
        """The callee's parameters bound to the caller's arguments (evaluated in the caller), or defaults."""
        params = [a.arg for a in func.args.args]
        if skip_self and params and params[0] in ("self", "cls"):
            params = params[1:]
        out: dict[str, Value] = {}
        defaults = func.args.defaults
        for name, default in zip(params[len(params) - len(defaults):], defaults):
            v = self.value(default, scope, {})
            if v is not None:
                out[name] = v
        for name, arg in zip(params, call.args):
            v = self.value(arg, scope, env)
            out.pop(name, None)
            if v is not None:
                out[name] = v
        for kw in call.keywords:
            if kw.arg in params or kw.arg in [a.arg for a in func.args.kwonlyargs]:
                v = self.value(kw.value, scope, env)
                out.pop(kw.arg, None)
                if v is not None:
                    out[kw.arg] = v  # type: ignore[index]
        return out

    # -- walking ----------------------------------------------------------------------------
    def walk(self, path: str, func: ast.FunctionDef, scope: Scope, env: dict[str, Value],
             cdef: ast.ClassDef | None, depth: int) -> None:
        if depth > _MAX_DEPTH or id(func) in self.stack:
            return
        self.stack.append(id(func))
        fscope = _local_scope(func, scope)
        for stmt in func.body:
            self.visit(stmt, path, fscope, env, cdef, depth, False)
        self.stack.pop()

    def visit(self, node: ast.AST, path: str, scope: Scope, env: dict[str, Value], cdef: ast.ClassDef | None,
              depth: int, cond: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return  # definitions, not calls
        if isinstance(node, (ast.If, ast.IfExp)):
            self.visit(node.test, path, scope, env, cdef, depth, cond)
            inner = cond or _is_preset_test(node.test, scope, env)
            for child in (node.body if isinstance(node.body, list) else [node.body]) + \
                    (node.orelse if isinstance(node.orelse, list) else [node.orelse]):
                self.visit(child, path, scope, env, cdef, depth, inner)
            return
        if isinstance(node, ast.Call) and not cond:
            self.call(node, path, scope, env, cdef, depth)
        for child in ast.iter_child_nodes(node):
            self.visit(child, path, scope, env, cdef, depth, cond)

    def call(self, node: ast.Call, path: str, scope: Scope, env: dict[str, Value], cdef: ast.ClassDef | None,
             depth: int) -> None:
        name = call_name(node)
        if "FaceAnalysis" in name and name not in self.code.funcs:
            self.face_analysis(node, path, scope, env)
            entry = self.code.classes.get(name)  # a pack's own subclass: its __init__ may load more
            if entry is None:
                return
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in ("self", "cls") and cdef:
            found = _method(cdef, f.attr, self.code)
            if found is not None:
                self.walk(path, found[1], scope_of(self.code, found[0], scope), self.bind(found[1], node, scope, env, True),
                          found[0], depth + 1)
            return
        if not isinstance(f, ast.Name):
            return
        targets = self.code.funcs.get(f.id) or []
        local = [t for t in targets if t[0] == path]
        if len(local) == 1 or len(targets) == 1:
            fpath, func, fscope = (local or targets)[0]
            self.walk(fpath, func, fscope, self.bind(func, node, scope, env, False), None, depth + 1)
        elif f.id in self.code.classes:
            cpath, ccls, cscope = self.code.classes[f.id]
            init = _method(ccls, "__init__", self.code)
            if init is not None:
                self.walk(cpath, init[1], cscope, self.bind(init[1], node, scope, env, True), init[0], depth + 1)

    def face_analysis(self, node: ast.Call, path: str, scope: Scope, env: dict[str, Value]) -> None:
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        name_node = kw.get("name", node.args[0] if node.args else None)
        root_node = kw.get("root", node.args[1] if len(node.args) > 1 else None)
        name = self.value(name_node, scope, env) if name_node is not None else ("lit", INSIGHTFACE_DEFAULT)
        root = self.value(root_node, scope, env)
        shown = f"{call_name(node)}(name={ast.unparse(name_node) if name_node is not None else '—'}, " \
                f"root={ast.unparse(root_node) if root_node is not None else '—'})"
        where = f"{path}:{node.lineno}"
        if root is None or root[0] != "path":
            self.problems.append(f"{where}: {shown}: the root is not a literal folder under models")
            return
        folder = "/".join(p for p in (root[1], "models") if p)
        if name is not None and name[0] == "lit":
            self.found.append(Implied(name[1], None, folder, path, node.lineno, shown))
        elif name is not None and name[0] == "widget" and name[1] in self.widgets:
            self.found.append(Implied(None, name[1], folder, path, node.lineno, shown))
        else:
            self.problems.append(f"{where}: {shown}: the model name is not a literal or a widget")


def scope_of(code: PackCode, cdef: ast.ClassDef, fallback: Scope) -> Scope:
    entry = code.classes.get(cdef.name)
    return entry[2] if entry is not None and entry[1] is cdef else fallback


def implied_models(code: PackCode, cls_name: str, widgets: list[str]) -> tuple[list[Implied], list[str]]:
    """(models the node of class `cls_name` implies, problems) — see the module's docstring."""
    entry = code.classes.get(cls_name)
    if entry is None:
        return [], []
    path, cdef, scope = entry
    fname = None
    for stmt in cdef.body:
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FUNCTION" for t in stmt.targets):
            fname = const_str(stmt.value)
    found = _method(cdef, fname, code) if fname else None
    if found is None:
        return [], []
    owner, func = found
    walker = _Walker(code, set(widgets))
    params = [a.arg for a in func.args.args][1:] + [a.arg for a in func.args.kwonlyargs]
    env: dict[str, Value] = {p: ("widget", p) for p in params if p in widgets}
    walker.walk(path, func, scope_of(code, owner, scope), env, owner, 0)
    seen: set[tuple] = set()
    out = []
    for imp in walker.found:
        key = (imp.filename, imp.widget, imp.folder)
        if key not in seen:
            seen.add(key)
            out.append(imp)
    return out, list(dict.fromkeys(walker.problems))
