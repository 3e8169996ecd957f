"""The lake: Delta tables, their names (a contract) and safe writes.

A table is addressed by a *reference*: a path under ``lake.root`` (the default: a folder, or an
``s3://``/``abfss://``/``dbfs:`` URI), or — when ``lake.schema`` is set, e.g. on Databricks with
Unity Catalog — a metastore name ``[catalog.]schema.table``. Every read and write goes through
the helpers here, which pick ``load``/``save``/``delta.`path``` or ``table``/``saveAsTable``/a name.

Delta's operations beyond reading and writing (MERGE, DELETE, history, VACUUM, creating a table)
are issued as Delta SQL, not through the Python ``DeltaTable`` API: SQL needs nothing but Delta's
SQL extension on the server, so the same code runs on a classic session and on a Spark Connect
client whose server lacks Delta Connect's plugins (which Maven Central does not serve for 4.0).
"""
from __future__ import annotations

import logging
import os
import random
import time
import uuid
from typing import Callable, TypeVar

from delta.exceptions import DeltaConcurrentModificationException
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from credit_spark.config.loader import Config
from credit_spark.errors import TableNotFoundError
from credit_spark.lake.session import session_setting
from credit_spark.lake.sqltext import sql_string

logger = logging.getLogger(__name__)

RAW_RECORDS = "raw_records"
QUARANTINE = "quarantine"
FEATURES = "features"
SCORES = "scores"
DATA_QUALITY = "data_quality"
SCORECARD = "scorecard"
MONITORING = "monitoring"
RUNS = "runs"
ERASURE_REQUESTS = "erasure_requests"

#: every table of the lake, with the command that writes it (used in "run X first" messages)
TABLES = {
    RAW_RECORDS: "ingest",
    QUARANTINE: "ingest",
    FEATURES: "features",
    DATA_QUALITY: "features",
    SCORECARD: "train",
    SCORES: "score",
    MONITORING: "score",
    RUNS: "score",
    ERASURE_REQUESTS: "forget",
}

R = TypeVar("R")

#: rows per data file of every table this package writes: files large enough to avoid a small-file
#: problem (~30 MB of features), small enough that one read task's share fits an executor's heap
#: (optimized writes otherwise make one file per partition value, i.e. millions of rows per task)
MAX_RECORDS_PER_FILE = 250_000


def is_path(ref: str) -> bool:
    """A path or URI (has a slash or a scheme) rather than a metastore name."""
    return "/" in ref or ":" in ref


def sql_ref(ref: str) -> str:
    """The reference as Spark SQL names a Delta table."""
    return f"delta.`{ref}`" if is_path(ref) else ref


def history(spark: SparkSession, ref: str, limit: int) -> DataFrame:
    """The table's latest ``limit`` commits, newest first (version, operation, userMetadata,
    operationMetrics ...): read from its log, no scan of the data."""
    return spark.sql(f"DESCRIBE HISTORY {sql_ref(ref)} LIMIT {int(limit)}")


def latest_commit(spark: SparkSession, ref: str, depth: int, condition: str, *columns: str) -> Row | None:
    """``columns`` of the newest of the table's last ``depth`` commits that meet the SQL
    ``condition`` (on its history: version, userMetadata, ...), or None."""
    return history(spark, ref, depth).where(condition).orderBy(F.col("version").desc()).select(*columns).first()


def delete_where(spark: SparkSession, ref: str, predicate: str) -> None:
    """Delete the rows matching a SQL ``predicate``, in one commit."""
    spark.sql(f"DELETE FROM {sql_ref(ref)} WHERE {predicate}")


def merge_into(spark: SparkSession, ref: str, source: DataFrame, on: str, *,
               update_when: str | None = None) -> None:
    """Delta MERGE of ``source`` (aliased ``s``) into the table (``t``) on ``on``: unmatched rows
    are inserted; matched rows are updated where ``update_when`` holds (never without it). The
    source is a temporary view of ``spark``'s session for the statement's duration."""
    view = f"credit_spark_merge_source_{uuid.uuid4().hex}"
    source.createOrReplaceTempView(view)
    update = f"WHEN MATCHED AND ({update_when}) THEN UPDATE SET * " if update_when else ""
    try:
        spark.sql(f"MERGE INTO {sql_ref(ref)} AS t USING {view} AS s ON {on} "
                  f"{update}WHEN NOT MATCHED THEN INSERT *")
    finally:
        spark.catalog.dropTempView(view)


def read_delta(spark: SparkSession, ref: str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(ref) if is_path(ref) else reader.table(ref)


def read_changes(spark: SparkSession, ref: str, first: int, last: int) -> DataFrame:
    """The table's change data feed from version ``first`` to ``last``: the rows inserted, updated
    (pre- and post-image) and deleted. Through Delta's SQL functions: the reader options
    (``readChangeFeed``) make Delta log three warnings per read about keys it duplicates itself."""
    function = "table_changes_by_path" if is_path(ref) else "table_changes"
    return spark.sql(f"SELECT * FROM {function}({sql_string(ref)}, {int(first)}, {int(last)})")


def _save(writer, ref: str) -> None:
    if is_path(ref):
        writer.save(ref)
    else:
        writer.saveAsTable(ref)


def ensure_schema(spark: SparkSession, cfg: Config) -> None:
    """Create the metastore schema of a catalog-addressed lake (nothing to do for a path lake)."""
    if cfg.lake.schema:
        name = ".".join(p for p in (cfg.lake.catalog, cfg.lake.schema) if p)
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {name}")


#: what Delta answers a history request for a folder that holds no Delta table
NOT_A_DELTA_TABLE = {"DELTA_TABLE_ONLY_OPERATION", "DELTA_MISSING_DELTA_TABLE", "DELTA_PATH_DOES_NOT_EXIST",
                     "PATH_NOT_FOUND"}


def table_exists(spark: SparkSession, ref: str) -> bool:
    if is_path(ref):
        try:
            history(spark, ref, 1)
        except AnalysisException as exc:
            if exc.getCondition() in NOT_A_DELTA_TABLE:
                return False
            raise
        return True
    return spark.catalog.tableExists(ref)


def require_table(spark: SparkSession, cfg: Config, name: str) -> str:
    """The path of a lake table that must exist; a missing one says which command writes it."""
    path = cfg.table_path(name)
    if not table_exists(spark, path):
        raise TableNotFoundError(
            f"table '{name}' does not exist at {path}: run `credit-spark {TABLES.get(name, '?')}` first")
    return path


def read_table(spark: SparkSession, cfg: Config, name: str, version: int | None = None) -> DataFrame:
    """Read a lake table, optionally as of a Delta version (time travel, for reproducibility)."""
    return read_delta(spark, require_table(spark, cfg, name), version)


def read_snapshot(spark: SparkSession, cfg: Config, name: str) -> tuple[DataFrame, int]:
    """A lake table pinned to its current Delta version, and that version (recorded for lineage)."""
    version = current_version(spark, require_table(spark, cfg, name))
    return read_table(spark, cfg, name, version=version), version


def rows_written(spark: SparkSession, path: str) -> int:
    """Rows written by the table's last commit (Delta's ``numOutputRows``), without a scan."""
    return int(last_operation_metrics(spark, path).get("numOutputRows", -1))


def current_version(spark: SparkSession, path: str) -> int:
    """The latest Delta version of a table (a one-row read of its log)."""
    return int(history(spark, path, 1).select("version").first()[0])


def last_operation_metrics(spark: SparkSession, path: str) -> dict[str, str]:
    """Delta's metrics of the last commit (rows written, inserted, updated ...): no extra scan."""
    row = history(spark, path, 1).select("operationMetrics").first()
    return dict(row[0] or {})


def overwrite_table(df: DataFrame, path: str, partition_by: list[str] | None = None,
                    user_metadata: str | None = None) -> None:
    """Replace a whole table in one atomic Delta commit (readers see the old or the new version);
    ``user_metadata`` tags the commit (see :func:`replace_where`)."""
    writer = (df.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
              .option("maxRecordsPerFile", MAX_RECORDS_PER_FILE))
    if user_metadata:
        writer = writer.option("userMetadata", user_metadata)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    _save(writer, path)


def replace_where(df: DataFrame, path: str, predicate: str, partition_by: list[str] | None = None,
                  user_metadata: str | None = None, optimize_write: bool | None = None) -> None:
    """Atomically replace exactly the rows matching ``predicate`` (e.g. one run date) with ``df``.

    One Delta commit: a rerun replaces instead of duplicating, and a job killed before the
    commit leaves the table at its previous version. ``user_metadata`` tags the commit (a run id),
    so the run can find its own commit even when other runs commit right after it.
    ``optimize_write=False`` skips Delta's optimized write (a shuffle of every row into few
    files) where the input partitions already make well-sized files.
    """
    writer = (df.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
              .option("maxRecordsPerFile", MAX_RECORDS_PER_FILE))
    if user_metadata:
        writer = writer.option("userMetadata", user_metadata)
    if optimize_write is not None:
        writer = writer.option("optimizeWrite", str(optimize_write).lower())
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    _save(writer, path)


CHANGE_FEED = "delta.enableChangeDataFeed"


def set_properties(spark: SparkSession, ref: str, properties: dict[str, str]) -> None:
    """Set the table properties that differ, in one commit (none when all hold already)."""
    have = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {sql_ref(ref)}").collect()}
    changed = {k: v for k, v in properties.items() if have.get(k) != v}
    if changed:
        assignments = ", ".join(f"'{k}' = '{v}'" for k, v in changed.items())
        spark.sql(f"ALTER TABLE {sql_ref(ref)} SET TBLPROPERTIES ({assignments})")


def enable_change_feed(spark: SparkSession, ref: str) -> None:
    """Turn on the table's change data feed (a commit only when it is off): later commits then
    record which rows they changed, for consumers that update incrementally."""
    set_properties(spark, ref, {CHANGE_FEED: "true"})


def with_retries(action: Callable[[], R], what: str, retries: int) -> R:
    """Run ``action``, retrying when a concurrent Delta commit wins the race.

    Runs for different dates touch disjoint partitions, so Delta rarely conflicts; when it does
    (e.g. two first runs creating the table, or metadata changes), the losing commit wrote
    nothing and can simply be tried again after a short jittered back-off.
    """
    for attempt in range(retries + 1):
        try:
            return action()
        except Exception as exc:   # the Delta exception classes, or the same raised through Py4J
            concurrent = isinstance(exc, DeltaConcurrentModificationException) or "Concurrent" in type(exc).__name__ \
                or "DELTA_CONCURRENT" in str(exc) or "ConcurrentAppendException" in str(exc)
            if not concurrent or attempt == retries:
                raise
            delay = min(8.0, 0.5 * 2 ** attempt) * (0.5 + random.random())
            logger.warning("%s lost a race with a concurrent commit (%s); retry %d/%d in %.1fs", what,
                           type(exc).__name__, attempt + 1, retries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def ensure_table(spark: SparkSession, path: str, schema: T.StructType, partition_by: list[str],
                 comment: str, properties: dict[str, str]) -> None:
    """Create the table with its schema, column comments (from the fields' ``comment`` metadata),
    table comment and properties if it does not exist; on an existing table, (re)set the
    properties (e.g. a changed retention) without touching data."""
    if is_path(path) and "://" not in path and not path.startswith(("dbfs:", "file:")):
        path = os.path.abspath(path)      # the builder's location must not be relative
    columns = ", ".join(column_ddl(field) for field in schema.fields)
    partitioned = f" PARTITIONED BY ({', '.join(f'`{c}`' for c in partition_by)})" if partition_by else ""
    props = f" TBLPROPERTIES ({', '.join(f'{sql_string(k)} = {sql_string(v)}' for k, v in properties.items())})" \
        if properties else ""
    spark.sql(f"CREATE TABLE IF NOT EXISTS {sql_ref(path)} ({columns}) USING DELTA{partitioned} "
              f"COMMENT {sql_string(comment)}{props}")
    set_properties(spark, path, properties)


def column_ddl(field: T.StructField) -> str:
    """A column of CREATE TABLE: name, type, NOT NULL where the schema says so, its comment."""
    comment = field.metadata.get("comment")
    return (f"`{field.name}` {field.dataType.simpleString()}{'' if field.nullable else ' NOT NULL'}"
            f"{f' COMMENT {sql_string(comment)}' if comment else ''}")


def commit_tagged(spark: SparkSession, path: str, user_metadata: str) -> tuple[int, dict[str, str]]:
    """(version, operation metrics) of the latest commit tagged with ``user_metadata``."""
    row = latest_commit(spark, path, 50, f"userMetadata = {sql_string(user_metadata)}", "version", "operationMetrics")
    if row is None:
        raise TableNotFoundError(f"no commit tagged {user_metadata} in the last 50 versions of {path}")
    return int(row[0]), dict(row[1] or {})


#: Spark's default parallelism for listing a table's folders (VACUUM lists every one): 10,000
#: tasks, about 30 s of scheduling on a small table in local mode
LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
SPARK_DEFAULT_LISTING_PARALLELISM = "10000"
#: the tables' folders are partition values (run dates, periods): hundreds at most, listed in
#: this many tasks
VACUUM_LISTING_PARALLELISM = 32


def vacuum(spark: SparkSession, ref: str, retention_hours: float | None = None) -> None:
    """VACUUM a table (past its ``delta.deletedFileRetentionDuration``, or ``retention_hours``),
    listing its folders in :data:`VACUUM_LISTING_PARALLELISM` tasks unless the session sets the
    listing parallelism itself: 30 s -> 5 s on a small local table."""
    current = spark.conf.get(LISTING_PARALLELISM, SPARK_DEFAULT_LISTING_PARALLELISM)
    parallelism = str(VACUUM_LISTING_PARALLELISM) if current == SPARK_DEFAULT_LISTING_PARALLELISM else current
    with session_setting(spark, LISTING_PARALLELISM, parallelism, SPARK_DEFAULT_LISTING_PARALLELISM):
        spark.sql(f"VACUUM {sql_ref(ref)}" + ("" if retention_hours is None else f" RETAIN {float(retention_hours)} HOURS"))


def append(df: DataFrame, path: str) -> None:
    _save(df.write.format("delta").mode("append"), path)


def register_views(spark: SparkSession, cfg: Config) -> list[str]:
    """Make every existing lake table queryable in SQL by its short name (``FROM scores``), and,
    once the scorer has run, the shipped downstream views (``conf/sql/*.sql``)."""
    from credit_spark.lake.views import register_sql_views, sources_ready

    registered = []
    for name in TABLES:
        path = cfg.table_path(name)
        if table_exists(spark, path):
            read_delta(spark, path).createOrReplaceTempView(name)
            registered.append(name)
        else:   # a view left by another lake in this session must not answer for this one
            spark.catalog.dropTempView(name)
    if sources_ready(registered):
        registered += register_sql_views(spark, cfg.spec.label.classes)
    return registered
