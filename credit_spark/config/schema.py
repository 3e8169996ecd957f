"""JSON Schemas of the dataset spec and of the config, generated from the validated models.

The dataclasses of :mod:`credit_spark.config.spec` and :mod:`credit_spark.config.settings` (loaded by
:mod:`credit_spark.config.loader`) are the one place each key is defined: their type
hints give the schema's types through pydantic, which validates the YAML into them
(:mod:`credit_spark.config.typed`: ``Literal`` -> ``enum``, ``X | None`` -> ``anyOf`` with null,
nested dataclasses -> objects that allow no unknown key), and the comments beside their fields
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
import re
import textwrap

from credit_spark.config.loader import Config, DatasetSpec
from credit_spark.config.typed import adapter, models

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


def _describe(schema: dict, cls: type) -> None:
    """Add what pydantic cannot know to one model's schema: the comments as descriptions, the
    defaults of ``default_factory`` fields, no generated titles or dataclass signatures."""
    schema.pop("title", None)
    doc = inspect.getdoc(cls)
    if not doc or doc.startswith(f"{cls.__name__}("):
        schema.pop("description", None)       # the signature dataclasses write when there is no docstring
    else:
        schema["description"] = " ".join(doc.split())
    comments = field_comments(cls)
    for f in dataclasses.fields(cls):
        prop = schema.get("properties", {}).get(f.name)
        if prop is None:
            continue
        prop.pop("title", None)
        if f.name in comments:
            prop["description"] = comments[f.name]
        if "default" not in prop and f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            if not dataclasses.is_dataclass(value):   # nested defaults are described in their own model
                prop["default"] = value
        # the keys in a fixed order (constraints, then default and description): stable diffs
        schema["properties"][f.name] = {k: prop[k] for k in sorted(prop, key=lambda k: (k in ("description",
                                                                                           "default"), k))}


def _schema(root: type, title: str) -> dict:
    schema = adapter(root).json_schema()
    defs = schema.pop("$defs", {})
    for name, cls in models(root).items():
        if cls is root:
            _describe(schema, cls)
        elif name in defs:
            _describe(defs[name], cls)
    return {"$schema": SCHEMA_DIALECT, "title": title, **schema, "$defs": defs}


def _referenced(schema: dict) -> dict:
    """The ``$defs`` the schema still refers to, directly or through other definitions."""
    defs, keep, todo = schema["$defs"], set(), [{k: v for k, v in schema.items() if k != "$defs"}]
    while todo:
        for name in re.findall(r'"\$ref": "#/\$defs/(\w+)"', json.dumps(todo.pop())):
            if name not in keep:
                keep.add(name)
                todo.append(defs[name])
    return {name: defs[name] for name in defs if name in keep}


def spec_schema() -> dict:
    """JSON Schema of a dataset spec file."""
    return _schema(DatasetSpec, "credit_spark dataset spec")


def config_schema() -> dict:
    """JSON Schema of a config file (base.yaml and its overlays; an overlay may leave out any key)."""
    schema = _schema(Config, "credit_spark config (base.yaml or an overlay)")
    schema["properties"].pop("spec")           # read from `dataset`, never written in a config file
    schema["$defs"] = _referenced(schema)
    schema["properties"]["dataset"]["description"] = ("a dataset spec shipped in conf/datasets/ (e.g. credit_score) "
                                                      "or a path to your own spec file")
    schema.pop("required", None)
    return schema


SCHEMAS = {"spec": spec_schema, "config": config_schema}


def schema_text(kind: str) -> str:
    return json.dumps(SCHEMAS[kind](), indent=2, sort_keys=False) + "\n"
