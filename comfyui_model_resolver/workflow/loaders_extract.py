"""Find a node pack's model loaders in its Python code, for data/loaders.json. Pure: source text in, facts out.

Used by `loaders_build` on packs fetched from GitHub. Read with `ast`, never imported or run:

* node types: `NODE_CLASS_MAPPINGS = {"Type": Class}` literals (any `*CLASS_MAPPINGS` dict, and
  `MAPPINGS["Type"] = Class` assignments) and V3 `io.Schema(node_id="Type", inputs=[...])`;
* widgets: the frontend's `widgets_values` order (required, then optional inputs that are
  INT/FLOAT/STRING/BOOLEAN/COMBO without `forceInput`; `<name>.control_after_generate` after
  `seed`/`noise_seed` or where asked; `<name>.upload` after an upload combo);
* model inputs: combos whose options come from `folder_paths.get_filename_list("<folder>")`
  (directly, through a variable, a list expression or a helper function of the same file), or
  from `os.listdir(os.path.join(folder_paths.models_dir, "<dir>"))` (a literal directory);
* registrations: `folder_paths.add_model_folder_path("<key>", <path>)` and
  `folder_paths.folder_names_and_paths["<key>"] = ...`, with the path when it is a literal
  `models_dir` join.

Anything the extractor cannot read for certain (an input type held in a variable it cannot
follow, a non-literal section) marks the node `uncertain`, with the reason.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from .folders import has_model_extension
from .implied_extract import Implied, PackCode, implied_models
from .pack_ast import Registration, Scope, bindings, call_name, const_str, models_path
from .pack_ast import mappings as node_mappings
from .pack_ast import registrations as folder_registrations

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
V3_TYPES = {"Int": "INT", "Float": "FLOAT", "String": "STRING", "Boolean": "BOOLEAN", "Combo": "COMBO"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "upload", "animated_image_upload", "model_upload")
_FOLDER_KEY = re.compile(r"^[A-Za-z0-9][\w.+-]{0,63}$")
_MAX_DEPTH = 6


@dataclass
class Loader:
    """One node type that reads model files from a folder."""

    node_type: str
    cls: str
    widgets: list[str]
    models: dict[str, dict]  # input -> {"folder": [...]} | {"listdir": "<dir>"}
    file: str
    line: int
    uncertain: list[str] = field(default_factory=list)
    named: dict[str, list[str]] = field(default_factory=dict)  # combo -> literal model file names it offers
    implied: list[Implied] = field(default_factory=list)  # models the node loads without a widget naming them


def _folders_in(node: ast.AST, scope: Scope, depth: int = 0, seen: set | None = None) -> tuple[list[str], list[str]]:
    """(folder keys of get_filename_list calls, models_dir sub-paths of os.listdir calls) in an expression,
    following variables and same-file helper functions."""
    seen = seen if seen is not None else set()
    keys: list[str] = []
    dirs: list[str] = []
    if depth > _MAX_DEPTH or node is None:
        return keys, dirs
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            name = call_name(sub)
            if name in ("get_filename_list", "get_filename_list_") and sub.args:
                key = const_str(sub.args[0])
                if key is None and isinstance(sub.args[0], ast.Name):
                    key = const_str(scope.lookup(sub.args[0].id))
                if key and _FOLDER_KEY.match(key):
                    keys.append(key)
            elif name in ("listdir", "scandir") and sub.args:
                path = models_path(sub.args[0], scope)
                if path:
                    dirs.append(path)
            elif isinstance(sub.func, ast.Name) and sub.func.id in scope.funcs and sub.func.id not in seen:
                seen.add(sub.func.id)
                func = scope.funcs[sub.func.id]
                k, d = _folders_in(func, scope.child(func), depth + 1, seen)
                keys += k
                dirs += d
            elif isinstance(sub.func, ast.Attribute) and (key := _method_key(sub.func, scope)) and key not in seen:
                seen.add(key)  # UI.CHECKPOINTS() of another file, Loader.get_names(), cls.get_names()
                func = scope.funcs[key]
                k, d = _folders_in(func, scope.child(func), depth + 1, seen)
                keys += k
                dirs += d
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and sub.id not in seen:
            bound = scope.lookup(sub.id)
            if bound is not None and bound is not node:
                seen.add(sub.id)
                k, d = _folders_in(bound, scope, depth + 1, seen)
                keys += k
                dirs += d
    return list(dict.fromkeys(keys)), list(dict.fromkeys(dirs))


def _method_key(func: ast.Attribute, scope: Scope) -> str | None:
    """The helper method a call names: `Class.method` of any file of the pack, else a method of that
    name in this file (`cls.method`), when there is one."""
    if isinstance(func.value, ast.Name) and f"{func.value.id}.{func.attr}" in scope.funcs:
        return f"{func.value.id}.{func.attr}"
    return f"*.{func.attr}" if f"*.{func.attr}" in scope.funcs else None


def _input_type(node: ast.AST, scope: Scope, depth: int = 0) -> tuple[str | None, bool]:
    """(widget type or None for a socket, certain?) of an input spec's first element."""
    if depth > _MAX_DEPTH:
        return None, False
    s = const_str(node)
    if s is not None:
        return (s if s in WIDGET_TYPES else None), True
    if isinstance(node, (ast.List, ast.ListComp, ast.Tuple, ast.BinOp, ast.IfExp)):
        return "COMBO", True
    if isinstance(node, ast.Attribute):
        if node.attr in WIDGET_TYPES:
            return node.attr, True
        return None, node.attr.isupper() or node.attr in ("any", "any_type")
    if isinstance(node, ast.Call):
        name = call_name(node)
        if name in ("get_filename_list", "listdir", "sorted", "list", "keys", "glob", "get_model_list"):
            return "COMBO", True
        keys, dirs = _folders_in(node, scope)
        if keys or dirs:  # a helper that lists a models folder (UI.CHECKPOINTS()) is a combo for certain
            return "COMBO", True
        if name[:1].isupper():  # AnyType("*"), a type object: a socket
            return None, True
        return "COMBO", False
    if isinstance(node, ast.Name):
        bound = scope.lookup(node.id)
        if bound is None:
            return None, False
        return _input_type(bound, scope, depth + 1)
    if isinstance(node, ast.Subscript):
        return "COMBO", False
    return None, False


def _dict_of(node: ast.AST | None, scope: Scope, depth: int = 0) -> ast.Dict | None:
    if isinstance(node, ast.Dict):
        return node
    if isinstance(node, ast.Name) and depth < _MAX_DEPTH:
        return _dict_of(scope.lookup(node.id), scope, depth + 1)
    return None


def _opts(spec: ast.AST) -> dict:
    """Literal keys of an input's options dict: forceInput, control_after_generate, upload flags."""
    if not isinstance(spec, (ast.Tuple, ast.List)) or len(spec.elts) < 2 or not isinstance(spec.elts[1], ast.Dict):
        return {}
    out = {}
    for k, v in zip(spec.elts[1].keys, spec.elts[1].values):
        key = const_str(k)
        if key and isinstance(v, ast.Constant):
            out[key] = v.value
    return out


def _v2_inputs(func: ast.FunctionDef, scope: Scope, loader: Loader) -> None:
    fscope = scope.child(func)
    ret = next((n.value for n in ast.walk(func) if isinstance(n, ast.Return) and n.value is not None), None)
    top = _dict_of(ret, fscope)
    if top is None:
        loader.uncertain.append("INPUT_TYPES does not return a literal dict")
        return
    sections = {const_str(k): v for k, v in zip(top.keys, top.values)}
    for section in ("required", "optional"):
        if section not in sections:
            continue
        body = _dict_of(sections[section], fscope)
        if body is None:
            loader.uncertain.append(f"{section} inputs are not a literal dict")
            continue
        for k, spec in zip(body.keys, body.values):
            name = const_str(k)
            if name is None:
                loader.uncertain.append(f"{section} inputs spread from another dict")
                continue
            if not isinstance(spec, (ast.Tuple, ast.List)) or not spec.elts:
                loader.uncertain.append(f"input {name!r} is not a literal tuple")
                continue
            typ, certain = _input_type(spec.elts[0], fscope)
            if not certain:
                loader.uncertain.append(f"type of input {name!r} not literal")
            opts = _opts(spec)
            _add_input(loader, name, typ, opts.get("forceInput"), opts.get("control_after_generate"),
                       any(opts.get(f) for f in UPLOAD_FLAGS), spec.elts[0], fscope)


def _add_input(loader: Loader, name: str, typ: str | None, force: object, cag: object, upload: bool,
               options: ast.AST | None, scope: Scope) -> None:
    if typ is None or force:
        return
    if name in loader.widgets:
        loader.uncertain.append(f"input {name!r} appears twice")
        return
    loader.widgets.append(name)
    if typ == "COMBO" and options is not None:
        keys, dirs = _folders_in(options, scope)
        if keys:
            loader.models[name] = {"folder": keys}
        elif dirs:
            loader.models[name] = {"listdir": dirs[0]}
        else:
            names = _literal_names(options, scope)
            if names:
                loader.named[name] = names
    if upload:
        loader.widgets.append(f"{name}.upload")
    if cag or (cag is None and typ == "INT" and name in ("seed", "noise_seed")):
        loader.widgets.append(f"{name}.control_after_generate")


def _literal_names(node: ast.AST, scope: Scope, depth: int = 0) -> list[str]:
    """The model file names of a literal option list (through variables), when most options are such."""
    if isinstance(node, ast.Name) and depth < _MAX_DEPTH:
        bound = scope.lookup(node.id)
        return _literal_names(bound, scope, depth + 1) if bound is not None else []
    if isinstance(node, ast.BinOp):
        return _literal_names(node.left, scope, depth + 1) + _literal_names(node.right, scope, depth + 1)
    if not isinstance(node, (ast.List, ast.Tuple)):
        return []
    values = [const_str(e) for e in node.elts]
    files = [v for v in values if v and has_model_extension(v)]
    return files if files and len(files) * 2 > len(values) else []


def class_hints(cdef: ast.ClassDef, scope: Scope) -> tuple[set[str], set[str]]:
    """Folder keys (`get_full_path("<key>", …)`, `get_folder_paths("<key>")`) and literal model
    directories (`os.path.join(models_dir, "<dir>")`, also through module constants) a class's code uses."""
    keys: set[str] = set()
    dirs: set[str] = set()
    for node in ast.walk(cdef):
        if isinstance(node, ast.Call):
            name = call_name(node)
            if name in ("get_full_path", "get_full_path_or_raise", "get_folder_paths") and node.args:
                key = const_str(node.args[0])
                if key and _FOLDER_KEY.match(key):
                    keys.add(key)
            elif name == "join":
                path = models_path(node, scope)
                if path:
                    dirs.add(path)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            bound = scope.module.get(node.id)
            path = models_path(bound, scope) if bound is not None else None
            if path:
                dirs.add(path)
    return keys, dirs


def _v3_schema(func: ast.FunctionDef, scope: Scope) -> tuple[str | None, list[ast.Call]]:
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and call_name(node) == "Schema":
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            node_id = const_str(kw.get("node_id"))
            inputs = kw.get("inputs")
            if isinstance(inputs, ast.Name):
                inputs = scope.child(func).lookup(inputs.id)
            items = [e for e in inputs.elts if isinstance(e, ast.Call)] if isinstance(inputs, (ast.List, ast.Tuple)) else []
            return node_id, items
    return None, []


def _v3_inputs(func: ast.FunctionDef, scope: Scope, items: list[ast.Call], loader: Loader) -> None:
    fscope = scope.child(func)
    required, optional = [], []
    for call in items:
        f = call.func
        kind = f.value.attr if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Attribute) else None
        name = const_str(call.args[0]) if call.args else const_str(next((k.value for k in call.keywords if k.arg == "id"), None))
        if not name:
            loader.uncertain.append("a V3 input without a literal name")
            continue
        kw = {k.arg: k.value for k in call.keywords if k.arg}
        if len(call.args) > 1:
            kw["_options"] = call.args[1]
        opt = isinstance(kw.get("optional"), ast.Constant) and kw["optional"].value is True
        (optional if opt else required).append((name, kind, kw))
    for name, kind, kw in required + optional:
        flags = {k: v.value for k, v in kw.items() if isinstance(v, ast.Constant)}
        _add_input(loader, name, V3_TYPES.get(kind or ""), flags.get("force_input"), flags.get("control_after_generate"),
                   bool(flags.get("upload")), kw.get("options") or kw.get("_options"), fscope)


def extract_pack(files: dict[str, str]) -> tuple[list[Loader], list[Registration], list[str]]:
    """(loaders, registrations, problems) of a pack whose Python files are `files` (path -> text)."""
    problems: list[str] = []
    parsed: dict[str, ast.Module] = {}
    for path, text in files.items():
        try:
            parsed[path] = ast.parse(text)
        except (SyntaxError, ValueError) as exc:
            problems.append(f"{path}: not parsed ({exc.__class__.__name__})")
    mappings: dict[str, str] = {}
    classes: dict[str, tuple[str, ast.ClassDef, Scope]] = {}
    registrations: list[Registration] = []
    code = PackCode(classes, {}, {})
    pack_methods: dict[str, ast.FunctionDef] = {}  # "Class.method" of every file: helpers INPUT_TYPES calls
    for tree in parsed.values():
        for cdef in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for f in cdef.body:
                if isinstance(f, ast.FunctionDef):
                    pack_methods.setdefault(f"{cdef.name}.{f.name}", f)
    for path, tree in parsed.items():
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        for fname, func in funcs.items():
            code.funcs.setdefault(fname, []).append((path, func, Scope(bindings(tree.body), funcs)))
        methods: dict[str, list[ast.FunctionDef]] = {}
        for cdef in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for f in cdef.body:
                if isinstance(f, ast.FunctionDef) and f.name not in ("INPUT_TYPES", "__init__"):
                    methods.setdefault(f.name, []).append(f)
        # helper methods (`Loader.get_names()` in INPUT_TYPES), when the file has one of that name
        funcs.update({f"*.{name}": fs[0] for name, fs in methods.items() if len(fs) == 1})
        funcs.update(pack_methods)
        scope = Scope(bindings(tree.body), funcs)
        for cname, bound in scope.module.items():
            code.constants.setdefault(cname, (bound, scope))
        for k, v in node_mappings(tree).items():
            mappings.setdefault(k, v)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, (path, node, scope))
        registrations += folder_registrations(path, tree, scope)
    loaders: list[Loader] = []
    v3_done: set[str] = set()
    for cls_name, (path, cdef, scope) in classes.items():  # V3 nodes name themselves
        schema = next((f for f in cdef.body if isinstance(f, ast.FunctionDef) and f.name == "define_schema"), None)
        if schema is None:
            continue
        node_id, items = _v3_schema(schema, scope)
        if node_id:
            loader = Loader(node_id, cls_name, [], {}, path, cdef.lineno)
            _v3_inputs(schema, scope, items, loader)
            v3_done.add(cls_name)
            if loader.models:
                loaders.append(loader)
    for node_type, cls_name in mappings.items():
        if cls_name in v3_done:
            continue
        found = _input_types_of(cls_name, classes)
        if found is None:
            continue
        path, cdef, func, scope = found
        loader = Loader(node_type, cls_name, [], {}, path, cdef.lineno)
        _v2_inputs(func, scope, loader)
        _auto_download(loader, cdef, scope, problems)
        loader.implied, why = implied_models(code, cls_name, loader.widgets)
        problems += [f"{node_type}: {w}" for w in why]
        for imp in loader.implied:
            if imp.widget and imp.widget not in loader.models:
                loader.models[imp.widget] = {"dir": imp.folder, "call": imp.call, "file": imp.file, "line": imp.line}
        if loader.models or any(i.filename for i in loader.implied):
            loaders.append(loader)
    return loaders, registrations, problems


def _auto_download(loader: Loader, cdef: ast.ClassDef, scope: Scope, problems: list[str]) -> None:
    """A combo of literal model file names is a file the node downloads itself into the one
    folder its code names; with no folder or several, it is left out (and said so)."""
    if not loader.named:
        return
    keys, dirs = class_hints(cdef, scope)
    for name, files in loader.named.items():
        if len(keys) + len(dirs) != 1:
            problems.append(f"{loader.node_type}.{name}: offers {files[:3]} but its folder is "
                            f"{'not named' if not keys and not dirs else 'one of ' + str(sorted(keys | dirs))}")
            continue
        if keys:
            loader.models[name] = {"folder": sorted(keys), "auto_download": True}
        else:
            loader.models[name] = {"listdir": min(dirs), "auto_download": True}


def _input_types_of(cls_name: str, classes: dict, depth: int = 0):
    """(path, class, INPUT_TYPES function, module scope) of a class or its nearest base that has one."""
    entry = classes.get(cls_name)
    if entry is None or depth > _MAX_DEPTH:
        return None
    path, cdef, scope = entry
    func = next((f for f in cdef.body if isinstance(f, ast.FunctionDef) and f.name == "INPUT_TYPES"), None)
    if func is not None:
        return path, cdef, func, scope
    for base in cdef.bases:
        name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else None
        if name and name != cls_name:
            found = _input_types_of(name, classes, depth + 1)
            if found is not None:
                return path, cdef, found[2], found[3]
    return None
