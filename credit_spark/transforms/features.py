"""Clean ``raw_records`` and engineer the ``features`` table's rows, driven only by the spec: pure
column expressions and ``DataFrame -> DataFrame`` transforms (the job that reads and writes the
tables is :mod:`credit_spark.jobs.features_job`).

Order of the transforms (each a pure ``DataFrame -> DataFrame`` of Spark built-ins, no Python UDFs):

1. ``clean_columns``  — numbers from dirty text, placeholders to null, valid ranges, durations,
   lists (per-item counts and a total), composite categories split into parts;
2. ``repair_stable``  — attributes that should not change for a customer (occupation, income,
   age ±1) repaired from the customer's other periods (window functions; the spec's
   ``repair_scope`` says whether later periods may be used);
3. ``with_derived``   — engineered ratios as Spark SQL expressions declared in the spec;
4. ``with_history``   — per-customer previous value, change, rolling mean/max over *earlier*
   periods only (``rangeBetween(-k, -1)`` over period numbers), so nothing from the future
   or from the same period leaks into a record;
5. ``select_features`` — the table contract: keys, features, label. No personal identifiers.

Missing values are not filled here: imputation is learned on the training split inside the
model pipeline (``train.preprocessing_stages``), so its statistics come from training data only.
The same function builds the rows that are trained on and the rows that are scored.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Callable

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from credit_spark.config.catalog import (HISTORY_SUFFIXES, FeatureInfo, catalog_markdown,  # noqa: F401 (re-exported)
                                  categorical_features, feature_catalog, list_item_column, numeric_features, slug)
from credit_spark.config.spec import MONTH_NAMES, DatasetSpec, NumericRule, PeriodSpec
from credit_spark.errors import ConfigError, MissingColumnError
from credit_spark.transforms.columns import with_columns

Transform = Callable[[DataFrame], DataFrame]

#: canonical key columns of the features table (the spec maps the dataset's own names onto them)
RECORD_ID, CUSTOMER_ID, PERIOD, LABEL = "record_id", "customer_id", "period", "label"
NUMBER_PATTERN = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"


# --------------------------------------------------------------------------- the table contract
def require_feature_columns(features: DataFrame, spec: DatasetSpec, version: int) -> None:
    """Stop before any work when the ``features`` table lacks a column the spec's models need
    (it was built with another spec, or before the spec changed): only the schema is read."""
    needed = [RECORD_ID, CUSTOMER_ID, PERIOD, LABEL, *numeric_features(spec), *categorical_features(spec)]
    present = set(features.columns)
    missing = [c for c in needed if c not in present]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise MissingColumnError(f"features v{version} lacks column(s) {shown} that dataset spec '{spec.name}' "
                                 f"needs (built with another spec?): run `credit-spark features`")


# --------------------------------------------------------------------------- column expressions
def clean_text(col: Column, placeholders: list[str]) -> Column:
    """Trimmed text; empty strings and placeholder tokens become null."""
    trimmed = F.trim(col)
    is_missing = (trimmed == "") | trimmed.isin(*placeholders) if placeholders else (trimmed == "")
    return F.when(~is_missing, trimmed)


def number_text(col: Column, placeholders: list[str]) -> Column:
    """A number's text: cleaned, stray underscores around it stripped ("52312.68_" -> "52312.68")."""
    return F.regexp_replace(clean_text(col, placeholders), r"^_+|_+$", "")


def text_to_number(text: Column) -> Column:
    """Text that is a number as a double; anything else null."""
    return F.when(text.rlike(NUMBER_PATTERN), text.cast("double"))


def parse_number(col: Column, placeholders: list[str]) -> Column:
    """Text to double: stray underscores around a number are stripped ("52312.68_" -> 52312.68),
    placeholders and anything else that is not a number become null."""
    return text_to_number(number_text(col, placeholders))


def out_of_range(col: Column, rule: NumericRule) -> Column:
    """True where a (non-null) value lies outside the rule's [min, max]."""
    bad = F.lit(False)
    if rule.min is not None:
        bad = bad | (col < rule.min)
    if rule.max is not None:
        bad = bad | (col > rule.max)
    return col.isNotNull() & bad


def apply_range(col: Column, rule: NumericRule) -> Column:
    """Values outside [min, max] become null, or are clipped when the rule says ``cap``."""
    if rule.out_of_range == "cap":
        out = col
        if rule.min is not None:
            out = F.when(out < rule.min, F.lit(float(rule.min))).otherwise(out)
        if rule.max is not None:
            out = F.when(out > rule.max, F.lit(float(rule.max))).otherwise(out)
        return out
    return F.when(~out_of_range(col, rule), col)


def duration_months(col: Column) -> Column:
    """"22 Years and 9 Months" -> 273; text without a year or month count -> null."""
    years = F.regexp_extract(col, r"(\d+)\s*Years?", 1)
    months = F.regexp_extract(col, r"(\d+)\s*Months?", 1)
    has_any = (years != "") | (months != "")
    total = (F.coalesce(F.nullif(years, F.lit("")).cast("int"), F.lit(0)) * 12
             + F.coalesce(F.nullif(months, F.lit("")).cast("int"), F.lit(0)))
    return F.when(col.isNotNull() & has_any, total.cast("double"))


def list_items(col: Column, separator: str, placeholders: list[str]) -> Column:
    """"A, B, and C" -> [A, B, C]; an empty cell -> []."""
    text = clean_text(col, placeholders)
    sep = re.escape(separator)
    # "A, B, and C" and "A and B": a trailing "and" joins the last item like a separator
    normalised = F.regexp_replace(F.regexp_replace(text, sep + r"\s*and\s+", separator), r"\s+and\s+", separator)
    items = F.filter(F.transform(F.split(normalised, sep), lambda x: F.trim(x)),
                     lambda x: x != "")
    return F.when(text.isNull(), F.array().cast("array<string>")).otherwise(items)


def list_count(col: Column, separator: str, placeholders: list[str]) -> Column:
    """Number of items in "A, B, and C" text; an empty cell means no items (0)."""
    return F.size(list_items(col, separator, placeholders)).cast("double")


def period_index(col: Column, spec: PeriodSpec) -> Column:
    """The period as an integer: month 1..12 for ``month_name``, yyyymm for dates; null if unreadable."""
    text = F.trim(col)
    if spec.format == "month_name":
        position = F.array_position(F.array(*[F.lit(m) for m in MONTH_NAMES]), text)
        return F.nullif(position, F.lit(0)).cast("int")   # 0 = not a month name
    fmt = "yyyy-MM" if spec.format == "year_month" else "yyyy-MM-dd"
    parsed = F.try_to_timestamp(text, F.lit(fmt))
    return (F.year(parsed) * 100 + F.month(parsed)).cast("int")


def period_ordinal(period: Column, spec: PeriodSpec | None) -> Column:
    """Consecutive periods as consecutive integers (months), so windows can count periods, not rows."""
    if spec is None or spec.format == "month_name":
        return period
    return (F.floor(period / 100) * 12 + period % 100).cast("int")


def period_for_run_date(spec: PeriodSpec | None, run_date: date) -> int | None:
    """Which period a run date scores: its month (month names) or its yyyymm; None = no period."""
    if spec is None:
        return None
    if spec.format == "month_name":
        return run_date.month
    return run_date.year * 100 + run_date.month


# --------------------------------------------------------------------------- transforms
def _equals(value: str) -> Callable[[Column], Column]:
    """A one-argument predicate for ``F.filter`` (a default argument would read as the index)."""
    return lambda x: x == F.lit(value)


def clean_columns(spec: DatasetSpec) -> Transform:
    """Type and clean every column the spec declares (numeric, duration, list, split, categorical)."""
    def transform(df: DataFrame) -> DataFrame:
        ph = spec.placeholders
        # numbers in three projections (text, number, range), as parse_number and apply_range: in
        # one expression each step repeats the one before (the range check reads the number four
        # times, the number its text twice), and with a few dozen columns the generated code outgrew
        # Java's 64 KB method limit (Spark fell back, logging a 250-line error). Spark's optimiser
        # keeps projections apart whose columns the next one reads more than once.
        numeric = list(spec.numeric)
        if numeric:
            df = df.withColumns({n: number_text(F.col(n), ph) for n in numeric})
            df = df.withColumns({n: text_to_number(F.col(n)) for n in numeric})
        exprs: dict[str, Column] = {}
        for name, rule in spec.numeric.items():
            exprs[name] = apply_range(F.col(name), rule)
        for name in spec.duration_months:
            exprs[name] = duration_months(clean_text(F.col(name), ph))
        for name, rule in spec.lists.items():
            items = list_items(F.col(name), rule.separator, ph)
            exprs[f"{name}_count"] = list_count(F.col(name), rule.separator, ph)
            for item in rule.items:
                exprs[list_item_column(name, item)] = F.size(F.filter(items, _equals(item))).cast("double")
        for name, rule in spec.splits.items():
            text = clean_text(F.col(name), ph)
            for group, part in enumerate(rule.parts, start=1):
                exprs[part] = F.nullif(F.regexp_extract(text, rule.pattern, group), F.lit(""))
        for name in spec.categorical:
            exprs[name] = clean_text(F.col(name), ph)
        return with_columns(df, exprs)
    return transform


def with_keys(spec: DatasetSpec) -> Transform:
    """Map the dataset's id, period and label columns onto the canonical key names."""
    def transform(df: DataFrame) -> DataFrame:
        label = clean_text(F.col(spec.label.column), spec.placeholders)
        record = F.col(spec.record_key)
        return df.withColumns({
            RECORD_ID: record,
            CUSTOMER_ID: F.col(spec.customer_id) if spec.customer_id else record,
            PERIOD: period_index(F.col(spec.period.column), spec.period) if spec.period else F.lit(0),
            LABEL: F.when(label.isin(*spec.label.classes), label),
        })
    return transform


def repair_stable(spec: DatasetSpec) -> Transform:
    """Repair attributes that should be stable per customer from the customer's other periods.

    ``mode``: the customer's most frequent valid value (a missing or odd month is overruled by
    the others); ``near_mode``: a value within ``tolerance`` of that mode is kept (age grows by
    one within a year), anything else takes the mode. ``spec.repair_scope`` chooses the periods:
    all of the customer's (``all_periods``) or those up to the record's own (``past_periods``,
    strictly point-in-time: a record's features never change when later months arrive).
    """
    def transform(df: DataFrame) -> DataFrame:
        if not spec.stable:
            return df
        customer = Window.partitionBy(CUSTOMER_ID)
        if spec.repair_scope == "past_periods":
            customer = (customer.orderBy(period_ordinal(F.col(PERIOD), spec.period))
                        .rangeBetween(Window.unboundedPreceding, Window.currentRow))
        exprs = {}
        for name, rule in spec.stable.items():
            mode = F.mode(F.col(name), deterministic=True).over(customer)
            if rule.method == "mode":
                exprs[name] = F.coalesce(mode, F.col(name))
            else:
                near = F.abs(F.col(name) - mode) <= rule.tolerance
                exprs[name] = F.when(F.col(name).isNotNull() & near, F.col(name)).otherwise(mode)
        return with_columns(df, exprs)
    return transform


def with_derived(spec: DatasetSpec) -> Transform:
    """Engineered features from the spec's Spark SQL expressions; a bad expression names its key."""
    def transform(df: DataFrame) -> DataFrame:
        for name, rule in spec.derived.items():   # in order: a derived feature may use earlier ones
            try:
                df = df.withColumn(name, F.expr(rule.expr).cast("double"))
            except AnalysisException as exc:
                raise ConfigError(f"dataset spec '{spec.name}': derived.{name}.expr '{rule.expr}': "
                                  f"{str(exc).splitlines()[0]}") from exc
        return df
    return transform


def with_history(spec: DatasetSpec) -> Transform:
    """Previous period's value, change, rolling mean/max over the customer's ``window`` earlier
    periods. Frames are ranges of period numbers, not rows: a missing month is a gap (``__prev``
    is null), and records of the same period never see each other."""
    def transform(df: DataFrame) -> DataFrame:
        if not spec.temporal.columns:
            return df
        k = spec.temporal.window
        ordered = Window.partitionBy(CUSTOMER_ID).orderBy(period_ordinal(F.col(PERIOD), spec.period))
        previous, earlier = ordered.rangeBetween(-1, -1), ordered.rangeBetween(-k, -1)
        exprs = {}
        for name in spec.temporal.columns:
            prev = F.max(F.col(name)).over(previous)
            exprs[f"{name}__prev"] = prev
            exprs[f"{name}__delta"] = F.col(name) - prev
            exprs[f"{name}__mean{k}"] = F.avg(F.col(name)).over(earlier)
            exprs[f"{name}__max{k}"] = F.max(F.col(name)).over(earlier)
            exprs[f"{name}__history"] = F.count(F.col(name)).over(earlier).cast("double")
        return with_columns(df, exprs)
    return transform


def select_features(spec: DatasetSpec) -> Transform:
    """The ``features`` table contract: keys, typed model inputs, label. No personal identifiers."""
    def transform(df: DataFrame) -> DataFrame:
        return df.select(RECORD_ID, CUSTOMER_ID, PERIOD,
                         *[F.col(c).cast("double").alias(c) for c in numeric_features(spec)],
                         *[F.col(c).cast("string").alias(c) for c in categorical_features(spec)],
                         LABEL)
    return transform


def build_features(raw: DataFrame, spec: DatasetSpec) -> DataFrame:
    """raw_records -> features, as one composition of small transforms."""
    return (raw.transform(clean_columns(spec))
               .transform(with_keys(spec))
               .transform(repair_stable(spec))
               .transform(with_derived(spec))
               .transform(with_history(spec))
               .transform(select_features(spec)))
