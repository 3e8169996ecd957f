"""Data-quality records for every ingest and features run, in the Delta table ``data_quality``.

Long format, one row per (run, column, metric), so new metrics need no schema change:
``run_id, stage, source_version, table_version, column_name, metric, value, recorded_at``.
Metrics per declared column: ``rows``, ``null_before`` (empty cells in the raw text),
``placeholders`` (placeholder tokens replaced), ``unparseable`` (text that is not a number),
``out_of_range`` (values outside the spec's range, nulled or capped), ``null_after`` (missing in
``features``, after cleaning and repair, before the model's imputation). Ingest runs record
``rows_read``, ``rows_ingested`` and ``quarantined:<reason>``. Each is one aggregation pass.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from credit_spark.config.loader import Config, DatasetSpec
from credit_spark.lake.tables import DATA_QUALITY, append
from credit_spark.transforms.features import clean_text, out_of_range, parse_number

logger = logging.getLogger(__name__)

SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("stage", T.StringType(), False),
    T.StructField("source_version", T.LongType(), True),
    T.StructField("table_version", T.LongType(), True),
    T.StructField("column_name", T.StringType(), False),
    T.StructField("metric", T.StringType(), False),
    T.StructField("value", T.DoubleType(), False),
])


@dataclass(frozen=True)
class ColumnQuality:
    column: str
    rows: int
    null_before: int
    placeholders: int
    unparseable: int
    out_of_range: int
    null_after: int


def _count(cond: Column) -> Column:
    return F.sum(F.when(cond, 1).otherwise(0))


def _raw_metrics(spec: DatasetSpec) -> dict[tuple[str, str], Column]:
    """(column, metric) -> aggregate over ``raw_records`` for every cleaned column."""
    ph = spec.placeholders
    metrics: dict[tuple[str, str], Column] = {}
    text_columns = [*spec.numeric, *spec.duration_months, *spec.lists, *spec.splits, *spec.categorical]
    for name in text_columns:
        raw = F.col(name)
        trimmed = F.trim(raw)
        metrics[(name, "null_before")] = _count(raw.isNull() | (trimmed == ""))
        metrics[(name, "placeholders")] = _count(trimmed.isin(*ph)) if ph else F.lit(0)
    for name, rule in spec.numeric.items():
        present = clean_text(F.col(name), ph)
        parsed = parse_number(F.col(name), ph)
        metrics[(name, "unparseable")] = _count(present.isNotNull() & parsed.isNull())
        metrics[(name, "out_of_range")] = _count(out_of_range(parsed, rule))
    return metrics


def _after_columns(spec: DatasetSpec) -> dict[str, str]:
    """Raw column -> the features column that carries its cleaned value."""
    out = {name: name for name in [*spec.numeric, *spec.duration_months, *spec.categorical]}
    out.update({name: f"{name}_count" for name in spec.lists})
    out.update({name: rule.parts[0] for name, rule in spec.splits.items()})
    return out


def column_quality(raw: DataFrame, features: DataFrame, spec: DatasetSpec) -> list[ColumnQuality]:
    """Before/after counts per column: two aggregation passes, a few numbers to the driver."""
    before_exprs = _raw_metrics(spec)
    keys = list(before_exprs)
    before_row = raw.agg(F.count(F.lit(1)).alias("rows"),
                         *[e.alias(f"m{i}") for i, e in enumerate(before_exprs.values())]).first()
    before = {key: int(before_row[f"m{i}"] or 0) for i, key in enumerate(keys)}
    after_cols = _after_columns(spec)
    after_row = features.agg(*[_count(F.col(c).isNull()).alias(f"a{i}")
                               for i, c in enumerate(after_cols.values())]).first()
    after = {name: int(after_row[f"a{i}"] or 0) for i, name in enumerate(after_cols)}
    return [ColumnQuality(column=name, rows=int(before_row["rows"]),
                          null_before=before.get((name, "null_before"), 0),
                          placeholders=before.get((name, "placeholders"), 0),
                          unparseable=before.get((name, "unparseable"), 0),
                          out_of_range=before.get((name, "out_of_range"), 0),
                          null_after=after[name])
            for name in after_cols]


def _write(spark: SparkSession, cfg: Config, stage: str, source_version: int | None,
           table_version: int | None, rows: list[tuple[str, str, float]]) -> str:
    run_id = uuid.uuid4().hex[:12]
    data = [(run_id, stage, source_version, table_version, column, metric, float(value))
            for column, metric, value in rows]
    frame = spark.createDataFrame(data, SCHEMA).withColumn("recorded_at", F.current_timestamp())
    append(frame, cfg.table_path(DATA_QUALITY))
    return run_id


def record_feature_quality(spark: SparkSession, cfg: Config, raw: DataFrame, features: DataFrame,
                           raw_version: int, features_version: int) -> list[ColumnQuality]:
    quality = column_quality(raw, features, cfg.spec)
    rows = [(q.column, metric, getattr(q, metric)) for q in quality
            for metric in ("rows", "null_before", "placeholders", "unparseable", "out_of_range", "null_after")]
    _write(spark, cfg, "features", raw_version, features_version, rows)
    return quality


def record_ingest_quality(spark: SparkSession, cfg: Config, batch_id: str, raw_version: int,
                          rows_read: int, rows_ingested: int, reasons: dict[str, int], rows_erased: int = 0) -> None:
    """rows_read = rows_ingested + the quarantined rows by reason + rows_erased (left out: their
    customer has an erasure request)."""
    rows = [("*", "rows_read", rows_read), ("*", "rows_ingested", rows_ingested), ("*", "rows_erased", rows_erased)]
    rows += [("*", f"quarantined:{reason}", n) for reason, n in reasons.items()]
    _write(spark, cfg, f"ingest:{batch_id}", None, raw_version, rows)


def format_quality(quality: list[ColumnQuality]) -> str:
    """A short text table for the end of a run."""
    header = f"{'column':<26}{'null% before':>13}{'placeholders':>13}{'unparseable':>12}{'out of range':>13}{'null% after':>12}"
    lines = [header]
    for q in quality:
        pct = (lambda n: 100.0 * n / q.rows) if q.rows else (lambda n: 0.0)
        lines.append(f"{q.column:<26}{pct(q.null_before):>12.1f}%{q.placeholders:>13,}{q.unparseable:>12,}"
                     f"{q.out_of_range:>13,}{pct(q.null_after):>11.1f}%")
    return "\n".join(lines)
