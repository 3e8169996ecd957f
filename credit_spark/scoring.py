"""Batch scoring: the records of one run date, scored by the registered model, into ``scores``.

Run date -> records: a run date scores the records of its calendar month. For the public schema,
whose period is a month name without a year, ``--run-date 2026-09-30`` scores the September
records; for ``year_month``/``date`` periods it scores yyyymm = 202609; a dataset without a
period has all its records scored. The ``scores`` table is partitioned by ``run_date``; a rerun for the same date
replaces exactly that date's rows in one atomic Delta commit, and other dates are untouched.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credit_spark import registry
from credit_spark.config import Config
from credit_spark.errors import NoRecordsError
from credit_spark.features import CUSTOMER_ID, PERIOD, RECORD_ID, Transform, period_for_run_date, slug
from credit_spark.tables import (FEATURES, SCORES, current_version, read_snapshot, replace_where, rows_written,
                                 sql_literal)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResult:
    run_date: date
    rows: int
    model_name: str
    model_version: int
    features_version: int
    scores_version: int


def probability_column(label_class: str) -> str:
    """``prob_<class>`` in snake case: "Standard" -> prob_standard."""
    return "prob_" + slug(label_class)


def to_scores(classes: list[str], model: registry.ModelRecord, run_date: date,
              features_version: int) -> Transform:
    """The ``scores`` contract from model predictions: one probability column per class."""
    def transform(predictions: DataFrame) -> DataFrame:
        probs = vector_to_array(F.col("probability"))
        return predictions.select(
            CUSTOMER_ID, RECORD_ID,
            F.lit(run_date).cast("date").alias("run_date"),
            F.lit(model.model_name).alias("model_name"),
            F.lit(model.model_version).alias("model_version"),
            F.element_at(F.array(*[F.lit(c) for c in classes]), F.col("prediction").cast("int") + 1)
             .alias("predicted_class"),
            *[probs[i].alias(probability_column(c)) for i, c in enumerate(classes)],
            F.lit(features_version).cast("long").alias("features_version"),
            F.current_timestamp().alias("scored_at"),
        )
    return transform


def score_run_date(spark: SparkSession, cfg: Config, run_date: date) -> ScoreResult:
    """Score the run date's records and replace that date's partition of ``scores``."""
    record = registry.resolve(cfg, cfg.score.model)      # fail before reading or writing
    model = registry.load_model(cfg, record)
    records, features_version = read_snapshot(spark, cfg, FEATURES)
    period = period_for_run_date(cfg.spec.period, run_date)
    if period is not None:
        records = records.where(F.col(PERIOD) == period)
    if records.isEmpty():
        raise NoRecordsError(f"no records for run date {run_date} (period {period}) in "
                             f"features v{features_version}: nothing was written")
    scored = model.transform(records).transform(to_scores(record.classes, record, run_date, features_version))
    path = cfg.table_path(SCORES)
    replace_where(scored, path, f"run_date = {sql_literal(run_date.isoformat())}", partition_by=["run_date"])
    rows = rows_written(spark, path)
    version = current_version(spark, path)
    logger.info("scored %d records for %s with %s v%d (features v%d) -> scores v%d", rows, run_date,
                record.model_name, record.model_version, features_version, version)
    return ScoreResult(run_date=run_date, rows=rows, model_name=record.model_name,
                       model_version=record.model_version, features_version=features_version,
                       scores_version=version)
