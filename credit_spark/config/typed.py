"""Dataclasses built from parsed YAML with every key and type checked, by pydantic: an unknown key,
a missing required key or a value of the wrong type stops with a :class:`ConfigError` naming the
dotted key (``train.test_fraction``), so a typo never silently falls back to a default.

The settings and spec models stay plain frozen dataclasses (every module reads them as such);
pydantic validates YAML data into them and generates their JSON Schema (``config.schema``). Their
fields use the scalar types below rather than ``int`` / ``float`` / ``bool`` / ``str``, which say
what a YAML author may write: numbers never come from text or booleans, and text takes a YAML number
or boolean as its string (Spark settings such as ``spark.sql.shuffle.partitions: 8`` or
``...enabled: false``).
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Annotated, Any, Literal, Mapping, TypeVar

from pydantic import BeforeValidator, ConfigDict, Strict, TypeAdapter, ValidationError, WithJsonSchema

from credit_spark.errors import ConfigError


def _yaml_scalar_text(value: Any) -> Any:
    if isinstance(value, bool):          # YAML reads `false` as a bool; Spark settings want "false"
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


#: an integer (not 8.5, not true, not "8")
Int = Annotated[int, Strict()]
#: a number: an integer or a decimal (not true, not "0.5")
Float = Annotated[float, Strict()]
#: true or false (not 1, not "yes")
Bool = Annotated[bool, Strict()]
#: text; a YAML number or boolean is taken as its text ("8", "false")
Text = Annotated[str, Strict(), BeforeValidator(_yaml_scalar_text),
                 WithJsonSchema({"type": ["string", "number", "boolean"]})]

T = TypeVar("T")
#: name -> a model, where a bare name (``income:`` with nothing after it) takes every default
Entries = dict[Text, Annotated[T, BeforeValidator(lambda value: {} if value is None else value)]]

#: every model forbids keys it does not declare; lists are lists (not tuples or sets)
MODEL_CONFIG = ConfigDict(extra="forbid")


def models(tp: Any, seen: dict[str, type] | None = None) -> dict[str, type]:
    """Every dataclass reachable from ``tp``'s type hints, by class name (the JSON Schema's
    ``$defs`` keys)."""
    seen = {} if seen is None else seen
    for arg in typing.get_args(tp):
        models(arg, seen)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type) and tp.__name__ not in seen:
        seen[tp.__name__] = tp
        for hint in typing.get_type_hints(tp, include_extras=True).values():
            models(hint, seen)
    return seen


@functools.cache
def adapter(tp: Any) -> TypeAdapter:
    """The pydantic validator (and JSON Schema source) of a type; its models forbid unknown keys."""
    for model in models(tp).values():
        if "__pydantic_config__" not in vars(model):
            model.__pydantic_config__ = MODEL_CONFIG
    return TypeAdapter(tp)


def build(cls: type, data: Any, key: str) -> Any:
    """Build dataclass ``cls`` from ``data``, checking every key and type; errors name the key."""
    if isinstance(data, cls):
        return data
    return coerce(cls, data, key)


def coerce(tp: Any, value: Any, key: str) -> Any:
    """``value`` validated as ``tp`` (a model or any type hint); a :class:`ConfigError` names the
    dotted key of the first problem, ``key`` being the dotted key of ``value`` itself."""
    try:
        return adapter(tp).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(_message(exc.errors()[0], tp, value, key)) from None


# ------------------------------------------------------------------ pydantic error -> our message
def _unwrap(tp: Any) -> Any:
    """The type under ``Annotated`` and ``X | None``."""
    while True:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is Annotated:
            tp = args[0]
        elif origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
            tp = next(a for a in args if a is not type(None))
        else:
            return tp


def _step(tp: Any, key: Any) -> Any:
    tp = _unwrap(tp)
    if dataclasses.is_dataclass(tp):
        return typing.get_type_hints(tp, include_extras=True).get(key)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict:
        return args[1]
    if origin is list:
        return args[0]
    return None


def _message(error: Mapping[str, Any], tp: Any, value: Any, key: str) -> str:
    """Walk the error's location through the data: keys and indexes that are there make the dotted
    key (``a.b[2].c``); the others are pydantic's union-member tags, except the last key of a
    missing or unknown one."""
    kind, loc, got = error["type"], error["loc"], error.get("input")
    path, node, node_type = key, value, tp
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, Mapping) and part in node or kind == "missing" and last:
            path = f"{path}.{part}" if path else str(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path = f"{path}[{part}]"
        else:
            continue
        if kind in ("unexpected_keyword_argument", "extra_forbidden") and last:
            parent = _unwrap(node_type)
            known = ", ".join(f.name for f in dataclasses.fields(parent)) if dataclasses.is_dataclass(parent) else ""
            where = path.rpartition(".")[0] if isinstance(part, str) else path
            return f"{where}: unknown key '{part}'" + (f" (known keys: {known})" if known else "")
        node = node[part] if not (kind == "missing" and last) else None
        node_type = _step(node_type, part)
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "literal_error":
        allowed = typing.get_args(_unwrap(node_type)) if typing.get_origin(_unwrap(node_type)) is Literal else ()
        choices = list(allowed) if allowed else error.get("ctx", {}).get("expected")
        return f"{path}: must be one of {choices}, got {got!r}"
    expected = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
                "list": "a list", "dict": "a mapping", "dataclass": "a mapping", "model": "a mapping"}
    for prefix, what in expected.items():
        if kind.startswith(prefix + "_"):
            shown = f"{type(got).__name__} ({got!r})" if what in ("a list", "a mapping") else repr(got)
            return f"{path}: expected {what}, got {shown}"
    return f"{path}: {error['msg']}"
