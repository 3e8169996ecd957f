"""Lake maintenance (``credit-spark maintain``): compaction and bounded storage.

Every night adds small files (a run date's scores and monitoring rows), and every rewrite (of
the periods of ``features`` a night changed; all of them under an ``all_periods`` repair) leaves
the previous files behind for time travel. Without maintenance the lake keeps every rewritten
copy. So, per table:

1. ``OPTIMIZE`` compacts small files (``scores`` Z-ordered by customer within each run date,
   so one customer's history reads few files);
2. the table's ``delta.deletedFileRetentionDuration`` is set to its retention, then ``VACUUM``
   deletes the files that left the table longer ago than that. ``scores`` and ``monitoring`` keep
   ``score.retention_months`` (the 25-month adverse-action record, set by the scorer); every other
   table keeps ``maintain.retention_days``;
3. data files that no retained log entry names — written by a job killed before its commit —
   are deleted once older than ``maintain.orphan_hours``, whatever the table's retention (VACUUM
   alone would keep them as long as the 25-month history).

Time travel reaches back as far as the retention: a job still reading an older version of a
table when its files are vacuumed fails, so a retention shorter than the longest job is unsafe.
"""
from __future__ import annotations

import glob
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from credit_spark.config.loader import Config
from credit_spark.errors import ConfigError
from credit_spark.lake.tables import MONITORING, SCORES, TABLES, is_path, read_delta, sql_ref, table_exists, vacuum

logger = logging.getLogger(__name__)

#: tables whose retention is ``score.retention_months`` (the scorer sets their properties)
SCORE_HISTORY_TABLES = (SCORES, MONITORING)
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class TableStorage:
    """One table's size: the current version's data files, and (local lakes) every data file in
    its folder, which includes the history that VACUUM has not deleted yet."""

    files: int
    bytes: int
    folder_files: int | None
    folder_bytes: int | None


@dataclass(frozen=True)
class TableMaintenance:
    table: str
    before: TableStorage
    after: TableStorage
    retention_hours: float
    zorder_by: list[str]
    orphans_deleted: int = 0


def logged_files(spark: SparkSession, ref: str) -> set[str]:
    """Every data file a retained log entry names (added, removed or change data, in a commit or
    a checkpoint), relative to the table folder: all that time travel to a retained version can
    read. A file of the folder named nowhere was written by a job killed before its commit."""
    log = f"{ref.rstrip('/')}/_delta_log"
    names: set[str] = set()
    for pattern, reader in ((f"{log}/*.json", spark.read.json), (f"{log}/*.checkpoint*.parquet", spark.read.parquet)):
        if not glob.glob(pattern):
            continue
        actions = reader(pattern)
        for action in ("add", "remove", "cdc"):
            if action in actions.columns:
                # file names, not data: as many rows as the table has files in its retained history
                names |= {unquote(r[0]) for r in actions.select(F.col(f"{action}.path")).dropna().distinct().collect()}
    return names


def local_folder(ref: str) -> Path | None:
    """The folder of a table on this machine's file system (a path or file: URI), else None."""
    if not is_path(ref) or ("://" in ref and not ref.startswith("file:")):
        return None
    return Path(ref.removeprefix("file://").removeprefix("file:"))


def delete_orphans(spark: SparkSession, ref: str, older_than_hours: float) -> int:
    """Delete the data files of killed writes (see :func:`logged_files`) older than the window; a
    write still running has newer files. Local lakes only; returns the number deleted."""
    root = local_folder(ref)
    if root is None:
        return 0
    logged = logged_files(spark, str(root))
    cutoff = time.time() - older_than_hours * 3600
    deleted = 0
    for path in root.rglob("*.parquet"):
        relative = path.relative_to(root).as_posix()
        if relative.startswith("_delta_log/") or relative in logged or path.stat().st_mtime > cutoff:
            continue
        path.unlink()
        deleted += 1
    if deleted:
        logger.info("%s: deleted %d file(s) of writes that never committed", ref, deleted)
    return deleted


def retention_hours(cfg: Config, table: str) -> float:
    if table in SCORE_HISTORY_TABLES:
        return cfg.score.retention_months * 365.25 / 12 * HOURS_PER_DAY
    return cfg.maintain.retention_days.get(table, cfg.maintain.default_retention_days) * HOURS_PER_DAY


def folder_storage(ref: str) -> tuple[int, int] | tuple[None, None]:
    """(files, bytes) of the data files under a local table folder (the log excluded)."""
    root = local_folder(ref)
    if root is None:
        return None, None
    files = size = 0
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "_delta_log"]
        for name in names:
            if name.endswith(".parquet"):
                files += 1
                size += os.path.getsize(os.path.join(folder, name))
    return files, size


def storage(spark: SparkSession, ref: str) -> TableStorage:
    detail = spark.sql(f"DESCRIBE DETAIL {sql_ref(ref)}").select("numFiles", "sizeInBytes").first()
    folder_files, folder_bytes = folder_storage(ref)
    return TableStorage(files=int(detail[0]), bytes=int(detail[1]), folder_files=folder_files,
                        folder_bytes=folder_bytes)


def maintain_table(spark: SparkSession, cfg: Config, table: str) -> TableMaintenance:
    """OPTIMIZE (Z-ordered where configured), then VACUUM past the table's retention."""
    ref = cfg.table_path(table)
    before = storage(spark, ref)
    zorder = list(cfg.maintain.zorder.get(table, []))
    columns = read_delta(spark, ref).columns
    absent = [c for c in zorder if c not in columns]
    if absent:
        raise ConfigError(f"maintain.zorder.{table}: no column {absent} in table {table} (columns: {', '.join(columns)})")
    optimize = f"OPTIMIZE {sql_ref(ref)}" + (f" ZORDER BY ({', '.join(f'`{c}`' for c in zorder)})" if zorder else "")
    spark.sql(optimize)
    hours = retention_hours(cfg, table)
    if table not in SCORE_HISTORY_TABLES:
        # VACUUM without RETAIN reads this property: no override of Delta's retention safety check
        interval = f"interval {round(hours * 3600)} seconds"
        spark.sql(f"ALTER TABLE {sql_ref(ref)} SET TBLPROPERTIES ('delta.deletedFileRetentionDuration' = '{interval}')")
    vacuum(spark, ref)
    orphans = delete_orphans(spark, ref, cfg.maintain.orphan_hours)
    after = storage(spark, ref)
    logger.info("%s: %d -> %d files (current version), folder %s -> %s bytes; retention %.0f h%s", table,
                before.files, after.files, before.folder_bytes, after.folder_bytes, hours,
                f"; Z-ordered by {zorder}" if zorder else "")
    return TableMaintenance(table=table, before=before, after=after, retention_hours=hours, zorder_by=zorder,
                            orphans_deleted=orphans)


def maintain(spark: SparkSession, cfg: Config) -> list[TableMaintenance]:
    """Maintain every lake table that exists (see the module docstring); tables are independent,
    and each step is a Delta commit of its own, so an interrupted run leaves consistent tables
    and a rerun finishes the work."""
    for key in ("retention_days", "zorder"):
        unknown = sorted(set(getattr(cfg.maintain, key)) - set(TABLES))
        if unknown:
            raise ConfigError(f"maintain.{key}: unknown table(s) {unknown} (tables: {', '.join(TABLES)})")
    done = []
    for table in TABLES:
        if table_exists(spark, cfg.table_path(table)):
            done.append(maintain_table(spark, cfg, table))
    return done
