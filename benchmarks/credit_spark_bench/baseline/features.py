"""The pandas transcription of :mod:`credit_spark.transforms.features`: the column cleaning (one function per
``features`` column expression, over a pandas Series) and the transforms that build the ``features``
table's rows, in the same order and from the same dataset spec.

Floating point NaN stands for SQL null; regular expressions run on Python's ``re`` with
``re.ASCII`` (Java's default character classes). The derived expressions (Spark SQL text) are
evaluated by :mod:`credit_spark_bench.baseline.sql`.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from credit_spark.config.loader import MONTH_NAMES, DatasetSpec, NumericRule, PeriodSpec
from credit_spark.transforms.features import (CUSTOMER_ID, LABEL, NUMBER_PATTERN, PERIOD, RECORD_ID, categorical_features,
                                   list_item_column, numeric_features)
from credit_spark_bench.baseline.sql import evaluate_expression

_NUMBER = re.compile(NUMBER_PATTERN)
_EDGE_UNDERSCORES = re.compile(r"^_+|_+$")
_YEARS = r"([0-9]+)\s*Years?"
_MONTHS = r"([0-9]+)\s*Months?"
_PERIOD_PATTERNS = {"year_month": r"^([0-9]{4})-([0-9]{2})$", "date": r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$"}


# --------------------------------------------------------------------------- column cleaning
def trim(series: pd.Series) -> pd.Series:
    """Spark's ``trim``: leading and trailing *spaces* only (not tabs or newlines)."""
    return series.str.strip(" ")


def clean_text(series: pd.Series, placeholders: Sequence[str]) -> pd.Series:
    """``features.clean_text``: trimmed text; empty strings and placeholders become null (None)."""
    text = trim(series.astype(object).fillna(""))
    missing = (text == "") | text.isin(list(placeholders))
    return text.where(~missing, None)


def parse_number(series: pd.Series, placeholders: Sequence[str]) -> pd.Series:
    """``features.parse_number``: stray underscores stripped, anything not a number -> NaN."""
    text = clean_text(series, placeholders)
    present = text.notna()
    values = np.full(len(text), np.nan)
    if present.any():
        stripped = text[present].map(lambda s: _EDGE_UNDERSCORES.sub("", s))
        number = stripped.map(lambda s: _NUMBER.search(s) is not None).to_numpy(dtype=bool)
        idx = np.flatnonzero(present.to_numpy())[number]
        values[idx] = [float(s) for s in stripped.to_numpy()[number]]
    return pd.Series(values, index=series.index)


def apply_range(values: pd.Series, rule: NumericRule) -> pd.Series:
    """``features.apply_range``: out-of-range values become NaN, or are clipped for ``cap``."""
    if rule.out_of_range == "cap":
        return values.clip(lower=rule.min, upper=rule.max)
    bad = pd.Series(False, index=values.index)
    if rule.min is not None:
        bad |= values < rule.min
    if rule.max is not None:
        bad |= values > rule.max
    return values.where(~bad)


def duration_months(text: pd.Series) -> pd.Series:
    """``features.duration_months``: "22 Years and 9 Months" -> 273.0; no count -> NaN."""
    years = text.str.extract(_YEARS, flags=re.ASCII, expand=False).astype(float)
    months = text.str.extract(_MONTHS, flags=re.ASCII, expand=False).astype(float)
    total = years.fillna(0.0) * 12 + months.fillna(0.0)
    return total.where(years.notna() | months.notna())


def list_items(text: str | None, separator: str) -> list[str]:
    """``features.list_items`` for one cleaned cell: "A, B, and C" -> [A, B, C]; null -> []."""
    if text is None:
        return []
    sep = re.escape(separator)
    normalised = re.sub(sep + r"\s*and\s+", lambda _: separator, text, flags=re.ASCII)
    normalised = re.sub(r"\s+and\s+", lambda _: separator, normalised, flags=re.ASCII)
    return [item for item in (x.strip(" ") for x in re.split(sep, normalised)) if item != ""]


def period_index(series: pd.Series, spec: PeriodSpec) -> pd.Series:
    """``features.period_index``: month 1..12 for ``month_name``, yyyymm for dates; else null."""
    text = trim(series.fillna(""))
    if spec.format == "month_name":
        out = text.map({m: i for i, m in enumerate(MONTH_NAMES, start=1)})
        return out.astype("Int64")
    parts = text.str.extract(_PERIOD_PATTERNS[spec.format], flags=re.ASCII).astype(float)
    year, month = parts[0], parts[1]
    valid = month.between(1, 12)
    if spec.format == "date":
        day = parts[2]
        stamp = pd.to_datetime(text.where(valid & day.notna(), None), format="%Y-%m-%d", errors="coerce")
        valid &= stamp.notna()
    return (year * 100 + month).where(valid).astype("Int64")


def period_ordinal(period: pd.Series, spec: PeriodSpec | None) -> pd.Series:
    """``features.period_ordinal``: consecutive periods as consecutive numbers (float, NaN = none)."""
    p = period.astype("Float64").astype(float)
    if spec is None or spec.format == "month_name":
        return p
    return np.floor(p / 100) * 12 + p % 100


# --------------------------------------------------------------------------- feature transforms
def clean_columns(raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """``features.clean_columns``: every output is computed from the raw columns (like ``withColumns``)."""
    ph = spec.placeholders
    out: dict[str, pd.Series] = {}
    for name, rule in spec.numeric.items():
        out[name] = apply_range(parse_number(raw[name], ph), rule)
    for name in spec.duration_months:
        out[name] = duration_months(clean_text(raw[name], ph))
    for name, rule in spec.lists.items():
        text = clean_text(raw[name], ph)
        # parse each distinct cell once: list columns repeat a handful of texts many times
        distinct = {t: list_items(t, rule.separator) for t in text.dropna().unique()}
        items = text.map(lambda t: distinct.get(t, []) if t is not None else [])
        out[f"{name}_count"] = items.map(len).astype(float)
        for item in rule.items:
            out[list_item_column(name, item)] = items.map(lambda xs, item=item: xs.count(item)).astype(float)
    for name, rule in spec.splits.items():
        text = clean_text(raw[name], ph)
        pattern = re.compile(rule.pattern, re.ASCII)
        matches = {t: pattern.search(t) for t in text.dropna().unique()}
        for group, part in enumerate(rule.parts, start=1):
            # regexp_extract gives "" for no match or an unmatched group; nullif("") -> null
            groups = {t: (m.group(group) or None) if m is not None else None for t, m in matches.items()}
            values = text.map(lambda t, g=groups: g.get(t) if t is not None else None)
            out[part] = values.astype(object).where(values.notna(), None)
    for name in spec.categorical:
        out[name] = clean_text(raw[name], ph)
    # keep only what later steps read (the raw key columns), not the raw text of every column:
    # the features table drops the rest anyway, and memory is part of what is benchmarked
    keys = [c for c in (spec.record_key, spec.customer_id, spec.period and spec.period.column,
                        spec.label.column) if c and c in raw.columns and c not in out]
    return pd.DataFrame({**{c: raw[c] for c in dict.fromkeys(keys)}, **out}, index=raw.index)


def with_keys(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """``features.with_keys``: canonical record id, customer id, period and label columns."""
    label = clean_text(df[spec.label.column], spec.placeholders) if spec.label.column in df else \
        pd.Series(None, index=df.index, dtype=object)
    record = df[spec.record_key]
    df = df.copy()
    df[RECORD_ID] = record
    df[CUSTOMER_ID] = df[spec.customer_id] if spec.customer_id else record
    df[PERIOD] = period_index(df[spec.period.column], spec.period) if spec.period else \
        pd.Series(0, index=df.index, dtype="Int64")
    df[LABEL] = label.where(label.isin(spec.label.classes), None)
    return df


def _best(counts: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Spark's ``mode(col, deterministic=True)``: the most frequent value, the lowest on a tie."""
    ordered = counts.sort_values([*keys, "n", "v"], ascending=[True] * len(keys) + [False, True], kind="mergesort")
    return ordered.drop_duplicates(keys)[[*keys, "v"]]


def customer_mode(customer: pd.Series, values: pd.Series, ordinal: pd.Series | None = None) -> pd.Series:
    """Per-record mode of ``values`` over the customer's records (nulls ignored).

    With ``ordinal`` (past_periods), only records of the customer up to the record's own period
    count — Spark's ``rangeBetween(unboundedPreceding, currentRow)`` over period ordinals.
    """
    df = pd.DataFrame({"c": customer.to_numpy(), "v": values.to_numpy()})
    if ordinal is None:
        counts = df.dropna(subset=["v"]).groupby(["c", "v"], sort=False).size().reset_index(name="n")
        best = _best(counts, ["c"])
        result = df[["c"]].merge(best, on="c", how="left")["v"]
        return pd.Series(result.to_numpy(), index=values.index)
    df["o"] = ordinal.to_numpy()
    counts = df.dropna(subset=["v"]).groupby(["c", "o", "v"], sort=False).size().reset_index(name="n")
    periods = df[["c", "o"]].dropna().drop_duplicates()
    grid = periods.merge(counts[["c", "v"]].drop_duplicates(), on="c")
    grid = grid.merge(counts, on=["c", "o", "v"], how="left").fillna({"n": 0})
    grid = grid.sort_values(["c", "v", "o"], kind="mergesort")
    grid["n"] = grid.groupby(["c", "v"], sort=False)["n"].cumsum()
    best = _best(grid[grid["n"] > 0], ["c", "o"])
    result = df[["c", "o"]].merge(best, on=["c", "o"], how="left")["v"]
    return pd.Series(result.to_numpy(), index=values.index)


def repair_stable(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """``features.repair_stable``: stable attributes repaired from the customer's other periods."""
    if not spec.stable:
        return df
    ordinal = period_ordinal(df[PERIOD], spec.period) if spec.repair_scope == "past_periods" else None
    repaired = {}
    for name, rule in spec.stable.items():      # every mode from the unrepaired values, like withColumns
        mode = customer_mode(df[CUSTOMER_ID], df[name], ordinal)
        col = df[name]
        if rule.method == "mode":
            repaired[name] = mode.where(mode.notna(), col)           # coalesce(mode, col)
        else:
            near = (col - mode.astype(float)).abs() <= rule.tolerance
            repaired[name] = col.where(col.notna() & near, mode.astype(float))
    df = df.copy()
    for name, values in repaired.items():
        df[name] = values.astype(float) if name not in spec.categorical else values.astype(object)
    return df


def with_derived(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """``features.with_derived``: the spec's expressions in order (a later one may use an earlier)."""
    df = df.copy()
    for name, rule in spec.derived.items():
        df[name] = evaluate_expression(rule.expr, df, key=f"dataset spec '{spec.name}': derived.{name}.expr")
    return df


def with_history(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """``features.with_history``: previous value, change, mean/max/count over the customer's
    ``window`` earlier periods by period number (a missing month is a gap; the same period is
    never seen). Sums run in ascending period order, as Spark's sliding frame adds them."""
    if not spec.temporal.columns:
        return df
    k = spec.temporal.window
    ordinal = period_ordinal(df[PERIOD], spec.period)
    keys = pd.DataFrame({"c": df[CUSTOMER_ID].to_numpy(), "o": ordinal.to_numpy()})
    out = {}
    for name in spec.temporal.columns:
        v = df[name].astype(float).to_numpy()
        frame = keys.assign(v=v)
        stats = frame.groupby(["c", "o"], sort=False)["v"].agg(["sum", "count", "max"])
        lookups = []
        for d in range(k, 0, -1):                     # oldest first
            idx = pd.MultiIndex.from_arrays([keys["c"], keys["o"] - d])
            lookups.append(stats.reindex(idx))
        total = np.zeros(len(df))
        count = np.zeros(len(df))
        best = np.full(len(df), np.nan)
        for found in lookups:
            total = total + found["sum"].fillna(0.0).to_numpy()
            count = count + found["count"].fillna(0).to_numpy()
            best = np.fmax(best, found["max"].to_numpy())
        prev = lookups[-1]["max"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)
        out[f"{name}__prev"] = prev
        out[f"{name}__delta"] = v - prev
        out[f"{name}__mean{k}"] = mean
        out[f"{name}__max{k}"] = best
        out[f"{name}__history"] = count.astype(float)
    df = df.copy()
    for name, values in out.items():
        df[name] = pd.Series(values, index=df.index, dtype=float)
    return df


def select_features(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """``features.select_features``: keys, numeric inputs (float), categorical inputs, label."""
    cols = {RECORD_ID: df[RECORD_ID].astype(object), CUSTOMER_ID: df[CUSTOMER_ID].astype(object),
            PERIOD: df[PERIOD].astype("Int64")}
    for c in numeric_features(spec):
        cols[c] = df[c].astype(float)
    for c in categorical_features(spec):
        cols[c] = df[c].astype(object).where(df[c].notna(), None)
    cols[LABEL] = df[LABEL].astype(object)
    return pd.DataFrame(cols, index=df.index)


def build_features(raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """raw records (strings; ``""``, None or NaN = empty) -> the ``features`` table's columns."""
    raw = raw.reset_index(drop=True)
    df = clean_columns(raw, spec)
    df = with_keys(df, spec)
    df = repair_stable(df, spec)
    df = with_derived(df, spec)
    df = with_history(df, spec)
    return select_features(df, spec)
