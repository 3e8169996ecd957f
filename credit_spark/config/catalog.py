"""The feature catalog: every model input a dataset spec produces, with its type and a one-line
description. A pure function of the spec (no Spark), so config validation, the features job, the
models and the docs all read the same list; it imports only the spec.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from credit_spark.config.spec import DatasetSpec
from credit_spark.errors import ConfigError

#: name suffixes of the per-customer history features built from a temporal column
HISTORY_SUFFIXES = ("__prev", "__delta", "__mean3", "__max3", "__history")


@dataclass(frozen=True)
class FeatureInfo:
    """One line of the feature catalog."""

    name: str
    kind: str          # "numeric" or "categorical"
    description: str



def slug(text: str) -> str:
    """"Home Equity Loan" -> home_equity_loan (for generated column names)."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


def list_item_column(column: str, item: str) -> str:
    return f"{column}__{slug(item)}"


def feature_catalog(spec: DatasetSpec) -> list[FeatureInfo]:
    """Every model input the spec produces, with its type and a one-line description.

    The single source of truth for the features table's columns and the model's inputs.
    """
    out: list[FeatureInfo] = []
    for name, rule in spec.numeric.items():
        desc = rule.description or f"{name} as a number"
        bounds = f" (valid {rule.min}..{rule.max}, else {'capped' if rule.out_of_range == 'cap' else 'null'})"
        out.append(FeatureInfo(name, "numeric", desc + bounds))
    for name in spec.duration_months:
        out.append(FeatureInfo(name, "numeric", f"{name} in months (from 'N Years and M Months')"))
    for name, rule in spec.lists.items():
        out.append(FeatureInfo(f"{name}_count", "numeric", rule.description or f"number of items in {name}"))
        for item in rule.items:
            out.append(FeatureInfo(list_item_column(name, item), "numeric", f"times '{item}' appears in {name}"))
    for name, rule in spec.derived.items():
        out.append(FeatureInfo(name, "numeric", f"{rule.description} [{rule.expr}]"))
    k = spec.temporal.window
    for name in spec.temporal.columns:
        out += [
            FeatureInfo(f"{name}__prev", "numeric", f"{name} in the customer's previous period"),
            FeatureInfo(f"{name}__delta", "numeric", f"change of {name} since the previous period"),
            FeatureInfo(f"{name}__mean{k}", "numeric", f"mean of {name} over the customer's {k} earlier periods"),
            FeatureInfo(f"{name}__max{k}", "numeric", f"max of {name} over the customer's {k} earlier periods"),
            FeatureInfo(f"{name}__history", "numeric", f"number of known {name} values in the {k} earlier periods"),
        ]
    for name in spec.categorical:
        out.append(FeatureInfo(name, "categorical", f"{name} (placeholders -> missing)"))
    for name, rule in spec.splits.items():
        for part in rule.parts:
            out.append(FeatureInfo(part, "categorical", f"part of {name} matched by /{rule.pattern}/"))
    names = [f.name for f in out]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigError(f"dataset spec '{spec.name}': feature name(s) produced twice: {duplicated}")
    return out


def numeric_features(spec: DatasetSpec) -> list[str]:
    return [f.name for f in feature_catalog(spec) if f.kind == "numeric"]


def categorical_features(spec: DatasetSpec) -> list[str]:
    return [f.name for f in feature_catalog(spec) if f.kind == "categorical"]


def catalog_markdown(spec: DatasetSpec) -> str:
    lines = ["| feature | type | description |", "|---|---|---|"]
    lines += [f"| `{f.name}` | {f.kind} | {f.description.replace('|', '/')} |" for f in feature_catalog(spec)]
    return "\n".join(lines)
