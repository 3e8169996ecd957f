"""Clean ``raw_records`` into the model-ready ``features`` table, driven only by the dataset spec.

Every transform here is a pure ``DataFrame -> DataFrame`` function of Spark built-ins (no Python
UDFs), so the same code runs for training and for scoring. Personal identifiers never leave the
raw zone: :func:`select_features` is the schema contract and names no PII column.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from credit_spark.config import MONTH_NAMES, Config, DatasetSpec, NumericRule
from credit_spark.errors import NoRecordsError
from credit_spark.tables import (FEATURES, RAW_RECORDS, current_version, last_operation_metrics,
                                 overwrite_table, read_table, require_table)

logger = logging.getLogger(__name__)

Transform = Callable[[DataFrame], DataFrame]

#: canonical key columns of the features table (the spec maps the dataset's own names onto them)
RECORD_ID, CUSTOMER_ID, PERIOD, LABEL = "record_id", "customer_id", "period", "label"

NUMBER_PATTERN = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"


@dataclass(frozen=True)
class FeaturesResult:
    rows: int
    raw_version: int
    features_version: int


# --------------------------------------------------------------------------- column expressions
def clean_text(col: Column, placeholders: list[str]) -> Column:
    """Trimmed text; empty strings and placeholder tokens become null."""
    trimmed = F.trim(col)
    is_missing = (trimmed == "") | trimmed.isin(*placeholders) if placeholders else (trimmed == "")
    return F.when(~is_missing, trimmed)


def parse_number(col: Column, placeholders: list[str]) -> Column:
    """Text to double: stray underscores around a number are stripped ("52312.68_" -> 52312.68),
    placeholders and anything else that is not a number become null."""
    text = F.regexp_replace(clean_text(col, placeholders), r"^_+|_+$", "")
    return F.when(text.rlike(NUMBER_PATTERN), text.cast("double"))


def apply_range(col: Column, rule: NumericRule) -> Column:
    """Values outside [min, max] become null, or are clipped when the rule says ``cap``."""
    out = col
    if rule.out_of_range == "cap":
        if rule.min is not None:
            out = F.when(out < rule.min, F.lit(float(rule.min))).otherwise(out)
        if rule.max is not None:
            out = F.when(out > rule.max, F.lit(float(rule.max))).otherwise(out)
        return out
    ok = F.lit(True)
    if rule.min is not None:
        ok = ok & (col >= rule.min)
    if rule.max is not None:
        ok = ok & (col <= rule.max)
    return F.when(ok, col)


def duration_months(col: Column) -> Column:
    """"22 Years and 9 Months" -> 273; text without a year or month count -> null."""
    years = F.regexp_extract(col, r"(\d+)\s*Years?", 1)
    months = F.regexp_extract(col, r"(\d+)\s*Months?", 1)
    has_any = (years != "") | (months != "")
    total = (F.coalesce(F.nullif(years, F.lit("")).cast("int"), F.lit(0)) * 12
             + F.coalesce(F.nullif(months, F.lit("")).cast("int"), F.lit(0)))
    return F.when(col.isNotNull() & has_any, total.cast("double"))


def list_count(col: Column, separator: str, placeholders: list[str]) -> Column:
    """Number of items in "A, B, and C" text; an empty cell means no items (0)."""
    text = clean_text(col, placeholders)
    return F.when(text.isNull(), F.lit(0.0)).otherwise(F.size(F.split(text, F.lit(separator))).cast("double"))


def period_index(col: Column, fmt: str) -> Column:
    """The period as an integer: month 1..12 for ``month_name``."""
    if fmt == "month_name":
        position = F.array_position(F.array(*[F.lit(m) for m in MONTH_NAMES]), F.trim(col))
        return F.nullif(position, F.lit(0)).cast("int")   # 0 = not a month name
    raise ValueError(f"unsupported period format {fmt!r}")  # pragma: no cover - spec validation stops it


# --------------------------------------------------------------------------- transforms
def clean_columns(spec: DatasetSpec) -> Transform:
    """Type and clean every column the spec declares (numeric, duration, list, categorical)."""
    def transform(df: DataFrame) -> DataFrame:
        ph = spec.placeholders
        exprs = {}
        for name, rule in spec.numeric.items():
            exprs[name] = apply_range(parse_number(F.col(name), ph), rule)
        for name in spec.duration_months:
            exprs[name] = duration_months(clean_text(F.col(name), ph))
        for name, rule in spec.lists.items():
            exprs[f"{name}_count"] = list_count(F.col(name), rule.separator, ph)
        for name in spec.categorical:
            exprs[name] = clean_text(F.col(name), ph)
        return df.withColumns(exprs)
    return transform


def with_keys(spec: DatasetSpec) -> Transform:
    """Map the dataset's id, period and label columns onto the canonical key names."""
    def transform(df: DataFrame) -> DataFrame:
        label = clean_text(F.col(spec.label.column), spec.placeholders)
        return df.withColumns({
            RECORD_ID: F.col(spec.record_id),
            CUSTOMER_ID: F.col(spec.customer_id),
            PERIOD: period_index(F.col(spec.period.column), spec.period.format),
            LABEL: F.when(label.isin(*spec.label.classes), label),
        })
    return transform


def select_features(spec: DatasetSpec) -> Transform:
    """The ``features`` table contract: keys, typed model inputs, label. No personal identifiers."""
    def transform(df: DataFrame) -> DataFrame:
        return df.select(RECORD_ID, CUSTOMER_ID, PERIOD,
                         *[F.col(c).cast("double").alias(c) for c in spec.feature_columns()],
                         *[F.col(c).cast("string").alias(c) for c in spec.categorical],
                         LABEL)
    return transform


def build_features(raw: DataFrame, spec: DatasetSpec) -> DataFrame:
    """raw_records -> features, as one composition of small transforms."""
    return (raw.transform(clean_columns(spec))
               .transform(with_keys(spec))
               .transform(select_features(spec)))


# --------------------------------------------------------------------------- job
def run_features(spark: SparkSession, cfg: Config) -> FeaturesResult:
    """Rebuild ``features`` from the current ``raw_records`` in one atomic overwrite (idempotent)."""
    raw_version = current_version(spark, require_table(spark, cfg, RAW_RECORDS))
    raw = read_table(spark, cfg, RAW_RECORDS, version=raw_version)
    features = build_features(raw, cfg.spec)
    path = cfg.table_path(FEATURES)
    overwrite_table(features, path, partition_by=[PERIOD])
    rows = int(last_operation_metrics(spark, path).get("numOutputRows", -1))
    if rows == 0:
        raise NoRecordsError(f"raw_records at version {raw_version} holds no rows to build features from")
    version = current_version(spark, path)
    logger.info("features: %d rows written (raw_records v%d -> features v%d)", rows, raw_version, version)
    return FeaturesResult(rows=rows, raw_version=raw_version, features_version=version)
