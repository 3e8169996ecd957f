"""JSON Schemas of the dataset spec and of the config, generated from the validated models.

The dataclasses of :mod:`credit_spark.config.spec` and :mod:`credit_spark.config.settings` (loaded by
:mod:`credit_spark.config.loader`) are the one place each key is defined: their type
hints give the schema's types (``Literal`` -> ``enum``, ``X | None`` -> ``anyOf`` with null,
nested dataclasses -> objects that allow no unknown key) and the comments beside their fields
(``#:`` lines above a field, or ``# ...`` after it) its descriptions. Editors that speak JSON
Schema (VS Code's YAML extension, JetBrains) complete and check spec and config files with them:
put ``# yaml-language-server: $schema=<path>/spec.schema.json`` at the top of a YAML file.

``credit-spark schema spec|config`` prints one; ``docs/*.schema.json`` are the shipped copies (a
test keeps them equal to what this module generates).
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from typing import Any, Literal

from credit_spark.config.loader import Config, DatasetSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def field_comments(cls: type) -> dict[str, str]:
    """Each field's comment in the class source: ``#:`` lines above it, else a trailing ``#``."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    out: dict[str, str] = {}
    for node in ast.parse(source).body[0].body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        above, row = [], node.lineno - 2
        while row >= 0 and lines[row].strip().startswith("#:"):
            above.insert(0, lines[row].strip()[2:].strip())
            row -= 1
        line = lines[node.end_lineno - 1]
        trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
        text = " ".join(above) or trailing
        if text:
            out[node.target.id] = text
    return out


def _type_schema(tp: Any, defs: dict[str, dict]) -> dict:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a, defs) for a in args]
        return {"anyOf": options}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is list:
        return {"type": "array", "items": _type_schema(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], defs)}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}                  # placeholder: a model may refer to itself
            defs[name] = _object_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    if tp is type(None):
        return {"type": "null"}
    if tp is str:        # the loader takes a YAML number or boolean for a string (Spark settings: 200, false)
        return {"type": ["string", "number", "boolean"]}
    simple = {int: "integer", float: "number", bool: "boolean"}
    if tp in simple:
        return {"type": simple[tp]}
    if tp is Any:
        return {}
    raise TypeError(f"no JSON Schema for {tp!r}")   # pragma: no cover - a new type in config.py


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return dataclasses.MISSING
    if dataclasses.is_dataclass(value):
        return dataclasses.MISSING           # nested defaults are described in their own model
    return value


def _object_schema(cls: type, defs: dict[str, dict], skip: tuple[str, ...] = ()) -> dict:
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    properties, required = {}, []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        prop = _type_schema(hints[f.name], defs)
        if f.name in comments:
            prop = {**prop, "description": comments[f.name]}
        default = _default(f)
        if default is not dataclasses.MISSING:
            prop = {**prop, "default": default}
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
        properties[f.name] = prop
    out = {"type": "object", "properties": properties, "additionalProperties": False}
    doc = inspect.getdoc(cls)
    if doc and not doc.startswith(f"{cls.__name__}("):
        out["description"] = " ".join(doc.split())
    if required:
        out["required"] = required
    return out


def spec_schema() -> dict:
    """JSON Schema of a dataset spec file."""
    defs: dict[str, dict] = {}
    root = _object_schema(DatasetSpec, defs)
    return {"$schema": SCHEMA_DIALECT, "title": "credit_spark dataset spec", **root, "$defs": defs}


def config_schema() -> dict:
    """JSON Schema of a config file (base.yaml and its overlays; an overlay may leave out any key)."""
    defs: dict[str, dict] = {}
    root = _object_schema(Config, defs, skip=("spec",))
    root["properties"]["dataset"]["description"] = ("a dataset spec shipped in conf/datasets/ (e.g. credit_score) "
                                                    "or a path to your own spec file")
    root.pop("required", None)
    return {"$schema": SCHEMA_DIALECT, "title": "credit_spark config (base.yaml or an overlay)", **root,
            "$defs": defs}


SCHEMAS = {"spec": spec_schema, "config": config_schema}


def schema_text(kind: str) -> str:
    return json.dumps(SCHEMAS[kind](), indent=2, sort_keys=False) + "\n"
