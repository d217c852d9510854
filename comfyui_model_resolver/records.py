"""`Record`: the base of the frozen value types (types.py, the download `Job`).

A subclass is a frozen, keyword-only dataclass, with the few pydantic-style methods the code and
the adapters use: ``model_dump(mode="json")`` for the public JSON, ``model_dump_json()``,
``model_copy(update=…)`` and ``model_validate(dict)``. Fields declared as ``tuple[...]`` accept
lists and store tuples.

Why not pydantic: these types are built by every command, `cmr analyze` included, and importing
pydantic and building its validators costs several times a whole Python start-up. Our own code
builds these values; input from outside is validated where it enters (the routes' request
schemas, `Settings`), so the values need no second validation.
"""
from __future__ import annotations

import dataclasses
import json
import reprlib
import sys
import typing
from datetime import datetime
from enum import Enum
from pathlib import PurePath
from typing import Any, ClassVar, Mapping

__all__ = ["Record", "to_jsonable"]


_PLAIN = frozenset({str, int, float, bool, type(None)})
_MISSING = dataclasses.MISSING


def to_jsonable(value: Any) -> Any:
    """Records, enums, paths, datetimes and tuples as plain JSON values (like pydantic's mode="json")."""
    if type(value) in _PLAIN:  # most values: answered before any isinstance (str enums are not plain)
        return value
    if isinstance(value, Record):
        return {f: to_jsonable(getattr(value, f)) for f in value.model_fields}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k.value if isinstance(k, Enum) else k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, PurePath):
        return str(value)
    return value


def _to_python(value: Any) -> Any:
    if isinstance(value, Record):
        return {f: _to_python(getattr(value, f)) for f in value.model_fields}
    if isinstance(value, tuple):
        return tuple(_to_python(v) for v in value)
    if isinstance(value, list):
        return [_to_python(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_python(v) for k, v in value.items()}
    return value


class Record:
    """Base class: subclasses become frozen keyword-only dataclasses (see the module docstring)."""

    __slots__ = ()
    model_fields: ClassVar[dict[str, dataclasses.Field]]
    _tuple_fields: ClassVar[tuple[str, ...]]
    _hints: ClassVar[dict[str, Any] | None]
    _init_names: ClassVar[frozenset[str]]
    _defaults: ClassVar[dict[str, Any]]
    _factories: ClassVar[tuple[tuple[str, Any], ...]]
    _post_init: ClassVar[bool]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # No method is generated per class: __init__, __setattr__, __eq__, __hash__ and __repr__ are
        # the base's (below). Every command defines these classes at start-up, and the dataclass
        # decorator compiles code for each method it generates: for these ~20 classes that was a
        # third of our own import time in `cmr download` (21 ms of 75 ms, -X importtime).
        dataclasses.dataclass(init=False, eq=False, repr=False, kw_only=True)(cls)
        fields = dataclasses.fields(cls)
        cls.model_fields = {f.name: f for f in fields}
        cls._tuple_fields = tuple(f.name for f in fields if str(f.type).startswith("tuple["))
        init = [f for f in fields if f.init]
        cls._init_names = frozenset(f.name for f in init)
        cls._defaults = {f.name: f.default for f in init if f.default is not _MISSING}
        cls._factories = tuple((f.name, f.default_factory) for f in init if f.default_factory is not _MISSING)
        cls._post_init = bool(cls._tuple_fields) or cls.__post_init__ is not Record.__post_init__
        cls._hints = None

    def __init__(self, **values: Any) -> None:
        """Keyword-only, as a frozen dataclass's: every field without a default must be given."""
        if not values.keys() <= self._init_names:
            unknown = next(k for k in values if k not in self._init_names)
            raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword argument {unknown!r}")
        state = self.__dict__
        state.update(self._defaults)
        for name, factory in self._factories:
            if name not in values:
                state[name] = factory()
        state.update(values)
        if len(state) < len(self._init_names):
            missing = next(n for n in self.model_fields if n not in state)
            raise TypeError(f"{type(self).__name__}.__init__() missing required keyword argument: {missing!r}")
        if self._post_init:
            self.__post_init__()

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def _values(self) -> tuple[Any, ...]:
        return tuple([getattr(self, f) for f in self.model_fields])

    def __eq__(self, other: object) -> bool:
        """As a dataclass's: the same class and equal fields."""
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        return f"{type(self).__qualname__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self.model_fields)})"

    def __post_init__(self) -> None:
        state = self.__dict__
        for name in self._tuple_fields:
            value = state[name]
            if isinstance(value, list):
                state[name] = tuple(value)

    # ---- the pydantic-style API ----------------------------------------------------------
    def model_dump(self, *, mode: str = "python", exclude: set[str] | None = None) -> dict[str, Any]:
        """The fields as a dict; nested records become dicts. mode="json": JSON values only."""
        convert = to_jsonable if mode == "json" else _to_python
        return {f: convert(getattr(self, f)) for f in self.model_fields if not exclude or f not in exclude}

    def model_dump_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Any:
        return dataclasses.replace(self, **update) if update else self

    @classmethod
    def model_validate(cls, data: Any) -> Any:
        """Build from a dict (e.g. a `model_dump`): nested dicts become records, strings enums."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__} needs a mapping, not {type(data).__name__}")
        hints = cls._type_hints()
        return cls(**{k: _convert(hints.get(k), v) for k, v in data.items()})

    @classmethod
    def _type_hints(cls) -> dict[str, Any]:
        if cls.__dict__.get("_hints") is None:
            hints: dict[str, Any] = {}
            for klass in reversed(cls.__mro__):
                if not issubclass(klass, Record) or klass is Record:
                    continue
                namespace = vars(sys.modules[klass.__module__])
                for name, ann in klass.__dict__.get("__annotations__", {}).items():
                    if name in cls.model_fields:
                        hints[name] = eval(ann, namespace) if isinstance(ann, str) else ann  # noqa: S307
            cls._hints = hints
        return cls._hints  # type: ignore[return-value]


def _convert(hint: Any, value: Any) -> Any:
    """`value` shaped by the type `hint`: records and enums from plain data, tuples from lists."""
    if hint is None or value is None:
        return value
    origin = typing.get_origin(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        for arg in typing.get_args(hint):
            if arg is not type(None) and _accepts(arg, value):
                return _convert(arg, value)
        return value
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        item = args[0] if args else None
        return tuple(_convert(item, v) for v in value)
    if origin is dict and isinstance(value, Mapping):
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else None
        return {k: _convert(item, v) for k, v in value.items()}
    if isinstance(hint, type):
        if issubclass(hint, Record) and isinstance(value, Mapping):
            return hint.model_validate(value)
        if issubclass(hint, Enum) and not isinstance(value, hint):
            return hint(value)
    return value


def _accepts(hint: Any, value: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    if origin is tuple:
        return isinstance(value, (list, tuple))
    if isinstance(origin, type):
        if issubclass(origin, Record):
            return isinstance(value, (origin, Mapping))
        if issubclass(origin, Enum):
            return True
        return isinstance(value, origin)
    return True
