"""The features job: rebuild the ``features`` table from the current ``raw_records`` and record
its data quality. Orchestration only (read, transform, write); the transforms are
:mod:`credit_spark.transforms.features`, the quality checks :mod:`credit_spark.transforms.quality`."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from credit_spark.config.loader import Config
from credit_spark.errors import NoRecordsError
from credit_spark.lake.tables import (FEATURES, RAW_RECORDS, current_version, overwrite_table, read_snapshot,
                                 read_table, rows_written)
from credit_spark.transforms.features import PERIOD, build_features
from credit_spark.transforms.quality import record_feature_quality

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeaturesResult:
    rows: int
    raw_version: int
    features_version: int
    quality: list = field(default_factory=list)   # list[quality.ColumnQuality]


def run_features(spark: SparkSession, cfg: Config) -> FeaturesResult:
    """Rebuild ``features`` from the current ``raw_records`` in one atomic overwrite (idempotent)."""
    raw, raw_version = read_snapshot(spark, cfg, RAW_RECORDS)
    if raw.isEmpty():
        raise NoRecordsError(f"raw_records at version {raw_version} holds no rows to build features from")
    features = build_features(raw, cfg.spec)
    path = cfg.table_path(FEATURES)
    overwrite_table(features, path, partition_by=[PERIOD])
    rows = rows_written(spark, path)
    version = current_version(spark, path)
    quality = record_feature_quality(spark, cfg, raw, read_table(spark, cfg, FEATURES, version=version),
                                     raw_version, version)
    logger.info("features: %d rows written (raw_records v%d -> features v%d)", rows, raw_version, version)
    return FeaturesResult(rows=rows, raw_version=raw_version, features_version=version, quality=quality)
