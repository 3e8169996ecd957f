"""The lake: Delta tables under one root folder, their names (a contract) and safe writes."""
from __future__ import annotations

import logging
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from credit_spark.config import Config
from credit_spark.errors import TableNotFoundError

logger = logging.getLogger(__name__)

RAW_RECORDS = "raw_records"
QUARANTINE = "quarantine"
FEATURES = "features"
SCORES = "scores"
DATA_QUALITY = "data_quality"
SCORECARD = "scorecard"

#: every table of the lake, with the command that writes it (used in "run X first" messages)
TABLES = {
    RAW_RECORDS: "ingest",
    QUARANTINE: "ingest",
    FEATURES: "features",
    DATA_QUALITY: "features",
    SCORECARD: "train",
    SCORES: "score",
}


def table_exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def require_table(spark: SparkSession, cfg: Config, name: str) -> str:
    """The path of a lake table that must exist; a missing one says which command writes it."""
    path = cfg.table_path(name)
    if not table_exists(spark, path):
        raise TableNotFoundError(
            f"table '{name}' does not exist at {path}: run `credit-spark {TABLES.get(name, '?')}` first")
    return path


def read_table(spark: SparkSession, cfg: Config, name: str, version: int | None = None) -> DataFrame:
    """Read a lake table, optionally as of a Delta version (time travel, for reproducibility)."""
    path = require_table(spark, cfg, name)
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def read_snapshot(spark: SparkSession, cfg: Config, name: str) -> tuple[DataFrame, int]:
    """A lake table pinned to its current Delta version, and that version (recorded for lineage)."""
    version = current_version(spark, require_table(spark, cfg, name))
    return read_table(spark, cfg, name, version=version), version


def rows_written(spark: SparkSession, path: str) -> int:
    """Rows written by the table's last commit (Delta's ``numOutputRows``), without a scan."""
    return int(last_operation_metrics(spark, path).get("numOutputRows", -1))


def current_version(spark: SparkSession, path: str) -> int:
    """The latest Delta version of a table (a one-row read of its log)."""
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def last_operation_metrics(spark: SparkSession, path: str) -> dict[str, str]:
    """Delta's metrics of the last commit (rows written, inserted, updated ...): no extra scan."""
    row = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()
    return dict(row[0] or {})


def overwrite_table(df: DataFrame, path: str, partition_by: list[str] | None = None) -> None:
    """Replace a whole table in one atomic Delta commit (readers see the old or the new version)."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def replace_where(df: DataFrame, path: str, predicate: str, partition_by: list[str] | None = None) -> None:
    """Atomically replace exactly the rows matching ``predicate`` (e.g. one run date) with ``df``.

    One Delta commit: a rerun replaces instead of duplicating, and a job killed before the
    commit leaves the table at its previous version.
    """
    writer = df.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def append(df: DataFrame, path: str) -> None:
    df.write.format("delta").mode("append").save(path)


def register_views(spark: SparkSession, cfg: Config) -> list[str]:
    """Make every existing lake table queryable in SQL by its short name (``FROM scores``)."""
    registered = []
    for name in TABLES:
        path = cfg.table_path(name)
        if table_exists(spark, path):
            spark.read.format("delta").load(path).createOrReplaceTempView(name)
            registered.append(name)
    return registered


def sql_literal(value: Any) -> str:
    """A value quoted for a Delta predicate (replaceWhere takes SQL text)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return f"'{value}'"
