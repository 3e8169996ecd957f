"""A single-machine pandas + scikit-learn baseline of the Spark pipeline, for benchmarks.

Why it exists: to say whether Spark pays off, a benchmark needs the *same* work done without it,
on the same input files — same cleaning, same features, same customer-grouped split, same two
models — so that time, memory and quality can be compared side by side. Everything here is
driven by the same dataset spec (``conf/datasets/*.yaml``) and the same ``TrainSettings``; the
feature names come from :func:`credit_spark.features.feature_catalog`. Importing this module
does not start Spark (``credit_spark.features`` only builds column expressions when called).

Stages (each timed by :func:`run_baseline`):

1. ``read``      — every CSV file under the input paths as strings (:func:`read_raw`), then the
   ingest contract (:func:`ingest_rows`): rows that ``credit-spark ingest`` would quarantine are
   dropped, one copy of a duplicated record id is kept, values are trimmed;
2. ``features``  — :func:`build_features`, a pandas transcription of ``features.build_features``;
3. ``split``     — labelled rows, split by the same seeded ``xxhash64`` customer buckets as
   ``splits.split_by_customer`` (:func:`customer_bucket` reproduces Spark's hash bit for bit);
4. ``train:<algorithm>`` — median imputation, one-hot encoding, scaling and the classifier, as
   in ``models.build_pipeline``, with the configured (untuned) settings;
5. ``evaluate``  — accuracy, macro-F1 and AUC on the test split.

Known differences from the Spark pipeline (none of them affect the features of well-formed input):

* CSV lines with too many fields are skipped; lines with too few fields are read with the
  missing trailing cells empty. Spark quarantines both as ``malformed_row``. pandas' C parser
  cannot flag short lines, and the generated data has neither.
* Floating point NaN stands for SQL null throughout; Spark keeps NaN and null apart (NaN only
  arises from ``inf`` arithmetic, which the cleaned, range-checked columns never produce).
* Regular expressions of the spec (``splits.*.pattern``) run on Python's ``re`` with ``re.ASCII``
  (Java's default character classes); a pattern must mean the same in both engines.
* ``year_month`` / ``date`` periods are read with strict ``YYYY-MM`` / ``YYYY-MM-DD`` patterns.
* Models: scikit-learn's lbfgs (``tol=1e-4``) and CART forest (exact thresholds) instead of MLlib's
  L-BFGS (``tol=1e-6``) and binned forest (``maxBins=32``); the median is the exact median
  (MLlib's ``percentile_approx`` returns an observed value, the lower middle for an even count);
  ``StandardScaler`` divides by the population, not the sample, standard deviation; a missing
  category is its own one-hot level (MLlib: an all-zero block, which with an intercept is the
  same model); no grid search and no probability calibration.
* Metrics are exact (scikit-learn); Spark's come from a 1000-bucket histogram (AUC to ~1e-3).
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import re
import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import xxhash

from credit_spark.config import GENERATED_RECORD_ID, MONTH_NAMES, DatasetSpec, NumericRule, PeriodSpec, TrainSettings
from credit_spark.errors import MissingColumnError, NoRecordsError
from credit_spark.features import (CUSTOMER_ID, LABEL, NUMBER_PATTERN, PERIOD, RECORD_ID, categorical_features,
                                   list_item_column, numeric_features)

SPLIT_BUCKETS = 10_000            # credit_spark.splits.SPLIT_BUCKETS (not imported: that module imports Spark)
SPARK_HASH_SEED = 42              # Spark's xxhash64() starts from seed 42
ALGORITHMS = ("logistic_regression", "random_forest")
MISSING_CATEGORY = "__missing__"
EXIT_MEMORY_ERROR = 3
#: BLAS threads while fitting. The logistic regression's matrices are ~100 columns wide, too
#: small for threaded BLAS to pay; and OpenBLAS threads spin-wait, so with another busy process on
#: the machine its 2-thread fit took 40-60 s instead of 2 s (measured on 2 cores, 60k rows).
#: The random forest's parallelism (``n_jobs=-1``) is unaffected.
BLAS_THREADS = 1

_NUMBER = re.compile(NUMBER_PATTERN)
_EDGE_UNDERSCORES = re.compile(r"^_+|_+$")
_YEARS = r"([0-9]+)\s*Years?"
_MONTHS = r"([0-9]+)\s*Months?"
_PERIOD_PATTERNS = {"year_month": r"^([0-9]{4})-([0-9]{2})$", "date": r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$"}


# --------------------------------------------------------------------------- read and ingest
def _csv_files(path: str) -> list[str]:
    """The CSV files under ``path`` in a stable order, skipping names Spark's file index hides
    (``_SUCCESS``, ``.crc`` files and folders starting with ``_`` or ``.``)."""
    p = Path(path)
    if p.is_file():
        return [str(p)]
    if not p.is_dir():
        raise FileNotFoundError(f"cannot read input {path}: no such file or folder")
    files = []
    for root, dirs, names in os.walk(p):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        files += [os.path.join(root, n) for n in sorted(names)
                  if n.endswith(".csv") and not n.startswith(("_", "."))]
    return sorted(files)


def read_raw(paths: Sequence[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Every CSV file under each path, all values as strings (an empty cell is ``""``).

    Like ``ingest.read_raw``, columns are matched by each file's header, not by position, so files
    with the same columns in another order line up. ``columns`` (e.g. ``spec.all_columns()``)
    reads only those columns that a file has, which keeps memory down; the spec check is
    :func:`ingest_rows`' job.
    """
    files = [f for path in paths for f in _csv_files(path)]
    if not files:
        raise NoRecordsError(f"no *.csv files found at {', '.join(paths)}")
    wanted = set(columns) if columns is not None else None
    frames = []
    for file in files:
        usecols = (lambda c: c in wanted) if wanted is not None else None
        frames.append(pd.read_csv(file, dtype=str, keep_default_na=False, na_filter=False, usecols=usecols,
                                  on_bad_lines="skip", encoding="utf-8"))
    out = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
    return out


def _strip(series: pd.Series) -> pd.Series:
    """Spark's ``trim``: leading and trailing *spaces* only (not tabs or newlines)."""
    return series.str.strip(" ")


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | (_strip(series.fillna("")) == "")


def row_hashes(raw: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """``ingest.row_hash``: SHA-256 of ``to_json(struct(columns))`` with the untrimmed values.

    Spark reads an empty CSV cell (quoted or not) as null and ``to_json`` leaves null fields out,
    so empty strings are left out here too. Python's ``json`` escapes like Jackson for quotes,
    backslashes and control characters."""
    records = raw[list(columns)].to_numpy(dtype=object)
    out = []
    for row in records:
        doc = {c: v for c, v in zip(columns, row) if isinstance(v, str) and v != ""}
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        out.append(hashlib.sha256(text.encode("utf-8")).hexdigest())
    return pd.Series(out, index=raw.index, dtype=object)


def ingest_rows(raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """What ``credit-spark ingest`` would store in ``raw_records`` from these rows.

    Stops on a missing required column; drops the rows it would quarantine (blank record or
    customer id, unreadable period, a label outside the classes) and all but one copy of a record
    id seen twice (the copy with the smallest row hash, as ingest picks); trims every value.
    """
    missing = [c for c in spec.required_columns() if c not in raw.columns]
    if missing:
        raise MissingColumnError(f"input is missing required column(s): {', '.join(missing)} "
                                 f"(dataset spec '{spec.name}')")
    columns = spec.all_columns()
    df = raw.reindex(columns=columns)        # an unlabelled file has no label column: all null
    if not spec.record_id:
        df[GENERATED_RECORD_ID] = row_hashes(df, columns).str[:20]
    ok = pd.Series(True, index=df.index)
    if spec.record_id:
        ok &= ~_blank(df[spec.record_id])
    if spec.customer_id:
        ok &= ~_blank(df[spec.customer_id])
    if spec.period:
        ok &= period_index(df[spec.period.column], spec.period).notna()
    label = _strip(df[spec.label.column].fillna(""))
    ok &= (label == "") | label.isin(spec.label.classes)
    df = df[ok]
    rid = _strip(df[spec.record_key])
    duplicated = rid.duplicated(keep=False)
    if duplicated.any():
        hashes = row_hashes(df[duplicated], columns)
        order = pd.DataFrame({"rid": rid[duplicated], "hash": hashes}).sort_values(["rid", "hash"], kind="mergesort")
        drop = order.index[order["rid"].duplicated(keep="first")]
        df = df.drop(index=drop)
    keep = ([] if spec.record_id else [GENERATED_RECORD_ID]) + columns
    out = pd.DataFrame({c: _strip(df[c]) if df[c].dtype == object else df[c] for c in keep})
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- column cleaning
def clean_text(series: pd.Series, placeholders: Sequence[str]) -> pd.Series:
    """``features.clean_text``: trimmed text; empty strings and placeholders become null (None)."""
    text = _strip(series.astype(object).fillna(""))
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
    text = _strip(series.fillna(""))
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


# --------------------------------------------------------------------------- derived expressions
class ExpressionError(ValueError):
    """A derived expression the baseline cannot evaluate (the message names the key and the text)."""


def _try_divide(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a / b).where(b != 0)


def _coalesce(*args: pd.Series) -> pd.Series:
    out = args[0]
    for arg in args[1:]:
        out = out.where(out.notna(), arg)
    return out


def _greatest(*args: pd.Series) -> pd.Series:
    out = args[0]
    for arg in args[1:]:
        out = pd.Series(np.fmax(out.to_numpy(), arg.to_numpy()), index=out.index)   # NaN (null) ignored
    return out


def _least(*args: pd.Series) -> pd.Series:
    out = args[0]
    for arg in args[1:]:
        out = pd.Series(np.fmin(out.to_numpy(), arg.to_numpy()), index=out.index)
    return out


#: Spark SQL function -> (implementation, minimum and maximum argument count)
FUNCTIONS: dict[str, tuple[Callable[..., pd.Series], int, int]] = {
    "try_divide": (_try_divide, 2, 2),
    "coalesce": (_coalesce, 1, 99),
    "greatest": (_greatest, 2, 99),
    "least": (_least, 2, 99),
    "abs": (lambda a: a.abs(), 1, 1),
}


def evaluate_expression(expr: str, frame: pd.DataFrame, key: str = "expression") -> pd.Series:
    """The value of a derived feature's Spark SQL expression over ``frame``'s columns, as float.

    Supports exactly what the shipped specs use: column names, numeric literals, ``+ - * /``,
    unary minus, parentheses and ``try_divide``, ``coalesce``, ``greatest``, ``least``, ``abs``.
    Semantics follow Spark 4 with ANSI mode on (its default): arithmetic with a null is null,
    ``greatest``/``least`` skip nulls, ``try_divide`` by zero is null, and ``/`` by zero is an
    error (Spark raises ``DIVIDE_BY_ZERO``). Anything else raises :class:`ExpressionError` naming
    ``key`` and the expression, so an unsupported spec fails loudly instead of differing silently.
    """
    def fail(why: str) -> ExpressionError:
        return ExpressionError(f"{key}: '{expr}': {why}")

    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise fail(f"not an expression the baseline can evaluate ({exc.msg})") from None
    lower = {}
    for c in frame.columns:
        lower.setdefault(str(c).lower(), []).append(c)

    def column(name: str) -> pd.Series:
        if name in frame.columns:
            return frame[name].astype(float)
        matches = lower.get(name.lower(), [])      # Spark resolves column names case-insensitively
        if len(matches) == 1:
            return frame[matches[0]].astype(float)
        raise fail(f"unknown column '{name}'")

    def ev(node: ast.AST) -> pd.Series | float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name):
            return column(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            divisor = right if isinstance(right, pd.Series) else pd.Series(right, index=frame.index)
            if bool((divisor == 0).any()):
                raise fail("division by zero (Spark 4 raises DIVIDE_BY_ZERO in ANSI mode; use try_divide)")
            return left / right
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            name = node.func.id.lower()
            if name not in FUNCTIONS:
                raise fail(f"unsupported function '{node.func.id}' (supported: {', '.join(FUNCTIONS)})")
            fn, low, high = FUNCTIONS[name]
            if not low <= len(node.args) <= high:
                raise fail(f"{name} takes {low}..{high} argument(s), got {len(node.args)}")
            args = [ev(a) for a in node.args]
            return fn(*[a if isinstance(a, pd.Series) else pd.Series(a, index=frame.index, dtype=float)
                        for a in args])
        raise fail(f"unsupported syntax {type(node).__name__}")

    value = ev(tree)
    if not isinstance(value, pd.Series):
        value = pd.Series(value, index=frame.index, dtype=float)
    return value.astype(float)


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


# --------------------------------------------------------------------------- split
def customer_bucket(customer_id: str | None, seed: int) -> int:
    """``splits.customer_bucket``: ``pmod(xxhash64(customer_id, lit(seed)), 10000)`` in Spark.

    Spark folds its arguments into one XXH64 chain starting from seed 42: the string's UTF-8
    bytes, then ``seed`` as a 4-byte little-endian int (8 bytes if it does not fit an int), each
    hashed with the previous hash as its seed; a null argument leaves the hash unchanged. The
    result is a signed long, and ``pmod`` makes it non-negative.
    """
    h = SPARK_HASH_SEED
    if customer_id is not None:
        h = xxhash.xxh64_intdigest(customer_id.encode("utf-8"), seed=h)
    if -2**31 <= seed < 2**31:
        h = xxhash.xxh64_intdigest(int(seed).to_bytes(4, "little", signed=True), seed=h)
    else:
        h = xxhash.xxh64_intdigest(int(seed).to_bytes(8, "little", signed=True), seed=h)
    signed = h - (1 << 64) if h >= (1 << 63) else h
    return signed % SPLIT_BUCKETS             # Python's % with a positive modulus is Spark's pmod


def customer_buckets(customers: pd.Series, seed: int) -> pd.Series:
    """:func:`customer_bucket` for a column, hashing each distinct customer once."""
    distinct = {c: customer_bucket(c, seed) for c in customers.dropna().unique()}
    null_bucket = customer_bucket(None, seed)
    return customers.map(lambda c: distinct.get(c, null_bucket)).astype(int)


def split_by_customer(features: pd.DataFrame, test_fraction: float, validation_fraction: float,
                      seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test): disjoint sets of customers, by the same hash buckets as Spark."""
    bucket = customer_buckets(features[CUSTOMER_ID], seed)
    test_end = int(round(test_fraction * SPLIT_BUCKETS))
    validation_end = test_end + int(round(validation_fraction * SPLIT_BUCKETS))
    return (features[bucket >= validation_end],
            features[(bucket >= test_end) & (bucket < validation_end)],
            features[bucket < test_end])


# --------------------------------------------------------------------------- models
def _fill_missing_category(x):
    """Missing categories as their own level (module-level so a fitted pipeline pickles)."""
    frame = pd.DataFrame(x).astype(object)
    return frame.where(frame.notna(), MISSING_CATEGORY)


def preprocessing(spec: DatasetSpec, scale: bool):
    """``models.preprocessing_stages`` in scikit-learn: median imputation (an all-null column
    gets 0.0, MedianImputer's fallback), one-hot categories, and for linear models scaling to
    unit variance without centring (MLlib's ``StandardScaler(withMean=False)``)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    parts = [("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric_features(spec))]
    categorical = categorical_features(spec)
    if categorical:
        parts.append(("categorical", Pipeline([
            ("missing", FunctionTransformer(_fill_missing_category, feature_names_out="one-to-one")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]), categorical))
    steps = [("columns", ColumnTransformer(parts, remainder="drop"))]
    if scale:
        steps.append(("scale", StandardScaler(with_mean=False)))
    return steps


def classifier(algorithm: str, settings: TrainSettings, n_train: int):
    """The scikit-learn counterpart of ``models.classifier`` with the configured settings.

    MLlib's logistic regression minimises mean (weighted) log-loss + ``reg_param`` x penalty;
    scikit-learn minimises C x summed log-loss + penalty, so ``C = 1 / (reg_param * n_train)``
    (balanced class weights sum to ``n_train``). Multinomial for more than two classes is
    scikit-learn's default with lbfgs.
    """
    balanced = "balanced" if settings.class_weight == "balanced" else None
    if algorithm == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        s = settings.logistic_regression
        c = 1.0 / (s.reg_param * n_train) if s.reg_param > 0 else float("inf")
        if s.elastic_net_param > 0:
            # an L1 share needs saga; before scikit-learn 1.8 the penalty must be named
            extra = {"solver": "saga", "l1_ratio": s.elastic_net_param}
            if _penalty_required():
                extra["penalty"] = "elasticnet"
            return LogisticRegression(C=c, max_iter=s.max_iter, class_weight=balanced, **extra)
        return LogisticRegression(C=c, max_iter=s.max_iter, class_weight=balanced, solver="lbfgs")
    if algorithm == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        s = settings.random_forest
        return RandomForestClassifier(n_estimators=s.num_trees, max_depth=s.max_depth,
                                      min_samples_leaf=s.min_instances_per_node, max_features="sqrt",
                                      class_weight=balanced, n_jobs=-1, random_state=s.seed)
    raise ValueError(f"the baseline has no {algorithm!r}; choose from {list(ALGORITHMS)}")


def _penalty_required() -> bool:
    import inspect

    from sklearn.linear_model import LogisticRegression
    return inspect.signature(LogisticRegression).parameters["penalty"].default != "deprecated"


def label_index(labels: pd.Series, spec: DatasetSpec) -> np.ndarray:
    """Label text -> 0-based index in the spec's class order (``train.with_label_index``)."""
    mapping = {c: i for i, c in enumerate(spec.label.classes)}
    return labels.map(mapping).to_numpy(dtype=int)


def fit_models(train: pd.DataFrame, spec: DatasetSpec, settings: TrainSettings,
               algorithms: Iterable[str] = ALGORITHMS) -> dict:
    """One fitted scikit-learn ``Pipeline`` per algorithm, trained on the labelled rows of ``train``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits   # a scikit-learn dependency

    labelled = train[train[LABEL].notna()]
    if labelled.empty:
        raise NoRecordsError("the training split has no labelled rows")
    y = label_index(labelled[LABEL], spec)
    models = {}
    for algorithm in algorithms:
        pipeline = Pipeline([*preprocessing(spec, scale=algorithm == "logistic_regression"),
                             ("model", classifier(algorithm, settings, len(labelled)))])
        with warnings.catch_warnings(), threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)   # MLlib also stops at max_iter silently
            pipeline.fit(labelled, y)
        models[algorithm] = pipeline
    return models


def evaluate(models: dict, test: pd.DataFrame, spec: DatasetSpec) -> dict[str, dict[str, float]]:
    """Accuracy, macro-F1 and AUC on the labelled test rows, per model.

    ``auc`` is the one-vs-rest AUC of the adverse (last) class; ``auc_mean_ovr`` is the mean of
    every class's one-vs-rest AUC, which is what ``credit_spark.metrics`` reports as ``auc`` for
    more than two classes (for two classes both are the adverse class's AUC).
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    labelled = test[test[LABEL].notna()]
    if labelled.empty:
        raise NoRecordsError("the test split has no labelled rows")
    k = len(spec.label.classes)
    y = label_index(labelled[LABEL], spec)
    out = {}
    for name, model in models.items():
        proba = np.zeros((len(labelled), k))
        proba[:, model.classes_] = model.predict_proba(labelled)
        predicted = proba.argmax(axis=1)

        def auc(c: int) -> float:
            truth = y == c
            return float(roc_auc_score(truth, proba[:, c])) if 0 < truth.sum() < len(y) else float("nan")

        aucs = [auc(c) for c in range(k)]
        out[name] = {"accuracy": float(accuracy_score(y, predicted)),
                     "macro_f1": float(f1_score(y, predicted, labels=list(range(k)), average="macro",
                                                zero_division=0)),
                     "auc": aucs[-1],
                     "auc_mean_ovr": aucs[-1] if k == 2 else float(np.mean(aucs)),
                     "test_rows": int(len(labelled))}
    return out


# --------------------------------------------------------------------------- the whole run
class StageMemoryError(MemoryError):
    """A MemoryError that remembers in which stage it happened."""

    def __init__(self, stage: str):
        super().__init__(f"out of memory in stage '{stage}'")
        self.stage = stage


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``: KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_baseline(paths: Sequence[str], spec: DatasetSpec, settings: TrainSettings,
                 stages_timer: Callable[[str, float], None] | None = None,
                 algorithms: Iterable[str] = ALGORITHMS) -> dict:
    """Read, build features, split, train and evaluate, timing every stage.

    Returns ``{"seconds": {stage: s, ..., "total": s}, "metrics": {algorithm: {...}}, "rows": rows
    read, "rows_ingested", "rows_labelled", "split_rows": {...}, "peak_rss_mb"}``. ``stages_timer``
    is called with ``(stage, seconds)`` as each stage ends (progress output). Run it in its own
    process for a clean ``peak_rss_mb``: the peak covers the whole process's life. A MemoryError
    is re-raised as :class:`StageMemoryError` naming the stage.
    """
    if settings.split != "customer":
        raise ValueError(f"the baseline mirrors train.split 'customer' only, got {settings.split!r}")
    seconds: dict[str, float] = {}

    def stage(name: str, fn: Callable[[], object]):
        start = time.perf_counter()
        try:
            result = fn()
        except MemoryError as exc:
            raise StageMemoryError(name) from exc
        seconds[name] = time.perf_counter() - start
        if stages_timer is not None:
            stages_timer(name, seconds[name])
        return result

    started = time.perf_counter()
    counts = {}

    def read() -> pd.DataFrame:
        raw = read_raw(paths, columns=spec.all_columns())
        counts["rows"] = len(raw)
        return ingest_rows(raw, spec)

    holder = {"records": stage("read", read)}
    features = stage("features", lambda: build_features(holder.pop("records"), spec))   # frees the strings

    def split():
        labelled = features[features[LABEL].notna()]
        return split_by_customer(labelled, settings.test_fraction, settings.validation_fraction, settings.seed)

    train, validation, test = stage("split", split)
    models = {}
    for algorithm in algorithms:
        models.update(stage(f"train:{algorithm}", lambda a=algorithm: fit_models(train, spec, settings, [a])))
    metrics = stage("evaluate", lambda: evaluate(models, test, spec))
    seconds["total"] = time.perf_counter() - started
    return {"seconds": seconds, "metrics": metrics, "rows": counts["rows"], "rows_ingested": len(features),
            "rows_labelled": len(train) + len(validation) + len(test),
            "split_rows": {"train": len(train), "validation": len(validation), "test": len(test)},
            "peak_rss_mb": peak_rss_mb()}


def _json_safe(value):
    """NaN/inf -> null, so the result file is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m credit_spark_bench.baseline --input DIR [--input DIR ...] --out result.json``.

    Writes run_baseline's dict as JSON (stdout without ``--out``). Exit 0 on success; on a
    MemoryError writes ``{"error": "MemoryError", "stage": ...}`` and exits 3, so a benchmark
    can tell "did not fit in memory" from a crash.
    """
    from credit_spark.config import load_config, load_dataset_spec

    parser = argparse.ArgumentParser(prog="python -m credit_spark_bench.baseline",
                                     description="pandas + scikit-learn baseline of the Spark pipeline")
    parser.add_argument("--input", action="append", required=True, metavar="PATH",
                        help="a CSV file or a folder of them (repeatable)")
    parser.add_argument("--dataset", default=None, help="dataset spec (default: the config's, credit_score)")
    parser.add_argument("--env", default="local", help="config environment for the train settings")
    parser.add_argument("--out", default=None, metavar="FILE", help="result JSON (default: stdout)")
    args = parser.parse_args(argv)

    cfg = load_config(env=args.env)
    spec = load_dataset_spec(args.dataset) if args.dataset else cfg.spec
    status = 0
    try:
        result = run_baseline(args.input, spec, cfg.train,
                              stages_timer=lambda s, t: print(f"{s:<28} {t:9.2f} s", file=sys.stderr))
    except MemoryError as exc:
        result = {"error": "MemoryError", "stage": getattr(exc, "stage", None), "peak_rss_mb": peak_rss_mb()}
        status = EXIT_MEMORY_ERROR
    result = {"dataset": spec.name, "inputs": list(args.input), **_json_safe(result)}
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
