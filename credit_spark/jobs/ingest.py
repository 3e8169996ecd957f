"""Ingest raw files into ``raw_records``; rows that cannot be ingested go to ``quarantine``.

Contract:
* columns are matched by name (the file's header, trimmed and ignoring case, or the header text
  that the spec's ``source_columns`` maps to a column), never by position; a file missing any
  column the dataset spec requires stops before anything is written, naming the missing columns;
* CSV may be compressed (``.csv.gz``, ``.csv.bz2``, ``.csv.deflate``: Spark's codecs decompress
  them by extension), one file or a folder of files, mixed compression allowed;
* a quoted field may hold line breaks: CSV is parsed record by record (``multiLine``), so such a
  record is one row, not fragments. The price: each file is read by one task (as a gzip file
  always is), so a large extract parallelises by being delivered as several files;
* every row read ends up in exactly one place: ``rows_read = rows_ingested + rows_quarantined +
  rows_erased``; a row of a customer with an erasure request (``erasure_requests``, written by
  ``credit-spark forget``) is stored nowhere, so a re-sent extract cannot bring an erased customer
  back; only its count is kept;
* the spec's ``pii`` columns reach ``raw_records`` as null or as keyed hashes (``privacy.pii``,
  :mod:`credit_spark.lake.privacy`), never in clear;
* re-ingesting the same file changes nothing: ``raw_records`` is merged on the record id, and a
  batch's quarantine rows are replaced, not appended.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from credit_spark.config.loader import GENERATED_RECORD_ID, Config, DatasetSpec
from credit_spark.errors import CreditSparkError, MissingColumnError, NoRecordsError
from credit_spark.lake.privacy import masked_pii, pii_key
from credit_spark.lake.tables import (ERASURE_REQUESTS, QUARANTINE, RAW_RECORDS, current_version, merge_into,
                                 enable_change_feed, last_operation_metrics, overwrite_table, read_delta,
                                 table_exists)
from credit_spark.transforms.features import Transform, period_index
from credit_spark.transforms.quality import record_ingest_quality

logger = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
FORMATS = ("csv", "parquet")
#: file endings read per format (Hadoop's codecs decompress CSV by its extension)
EXTENSIONS = {"csv": (".csv", ".csv.gz", ".csv.bz2", ".csv.deflate"), "parquet": (".parquet",)}

# quarantine reasons (a stable vocabulary that analysts can group by)
MALFORMED = "malformed_row"
MISSING_RECORD_ID = "missing_record_id"
MISSING_CUSTOMER_ID = "missing_customer_id"
INVALID_PERIOD = "invalid_period"
INVALID_LABEL = "invalid_label"
DUPLICATE_RECORD_ID = "duplicate_record_id_in_batch"
#: not a quarantine reason: the row's customer asked to be erased, so the row is stored nowhere
ERASED = "erased_customer"



@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    files: int
    rows_read: int
    rows_ingested: int
    rows_quarantined: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_erased: int = 0


# --------------------------------------------------------------------------- extract
def list_input_files(spark: SparkSession, path: str, fmt: str | None) -> tuple[str, list[tuple[str, int, int]]]:
    """The input format and the (path, size, mtime) of each data file under ``path``.

    One small row per file is read (no content). Without an explicit ``fmt`` the format is taken
    from the files' extensions (.csv or .parquet); a folder holding both must name one.
    """
    if fmt is not None and fmt not in FORMATS:
        raise CreditSparkError(f"--format must be one of {list(FORMATS)}, got {fmt!r}")
    try:
        listing = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(path)
                   .select("path", "length", F.col("modificationTime").cast("long")))
        found = sorted((r[0], int(r[1]), int(r[2])) for r in listing.collect())
    except AnalysisException as exc:
        raise CreditSparkError(f"cannot read input {path}: {str(exc).splitlines()[0]}") from exc
    by_format = {f: [x for x in found if x[0].lower().endswith(EXTENSIONS[f])] for f in FORMATS}
    if fmt is None:
        present = [f for f, files in by_format.items() if files]
        if len(present) > 1:
            raise CreditSparkError(f"{path} holds both {' and '.join(present)} files: pass --format")
        fmt = present[0] if present else "csv"
    if not by_format[fmt]:
        empty = empty_local_files(path, EXTENSIONS[fmt])
        if empty:       # Spark lists no empty file: say what is there rather than "no files"
            more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
            raise NoRecordsError(f"{empty[0]} is empty (0 bytes){more}: nothing to ingest")
        raise NoRecordsError(f"no {' / '.join('*' + e for e in EXTENSIONS[fmt])} files found at {path}")
    return fmt, by_format[fmt]


def empty_local_files(path: str, extensions: tuple[str, ...]) -> list[str]:
    """Zero-byte data files at a local ``path`` (a file or a folder); remote paths: none known."""
    import os

    local = path.removeprefix("file://").removeprefix("file:")
    if "://" in local:
        return []
    if os.path.isfile(local):
        candidates = [local]
    else:
        candidates = [os.path.join(root, f) for root, _, files in os.walk(local) for f in files]
    return sorted(p for p in candidates if p.lower().endswith(extensions) and os.path.getsize(p) == 0)


def batch_id_for(files: list[tuple[str, int, int]]) -> str:
    """A batch id that is the same whenever the same files are ingested again."""
    digest = hashlib.sha256("\n".join(f"{p}|{n}|{t}" for p, n, t in files).encode()).hexdigest()
    return digest[:16]


def _header(spark: SparkSession, path: str, fmt: str) -> list[str]:
    if fmt == "csv":
        return spark.read.option("header", True).option("inferSchema", False).csv(path).columns
    return spark.read.parquet(path).columns


def header_key(name: str) -> str:
    """How a header name is compared with the spec's: trimmed, ignoring case."""
    return name.strip().lower()


def match_header(header: tuple[str, ...], spec: DatasetSpec) -> dict[str, str]:
    """Spec column -> the file's header name for it, for the spec columns this header has:
    through ``source_columns`` where the spec maps the column, else by its own name."""
    found = {header_key(h): h for h in header}
    wanted = {c: spec.source_columns.get(c, c) for c in spec.all_columns()}
    return {c: found[header_key(w)] for c, w in wanted.items() if header_key(w) in found}


def _shown(header: tuple[str, ...], most: int = 8) -> str:
    names = [repr(h[:60]) for h in header[:most]]
    return "[" + ", ".join(names) + (f", ... {len(header) - most} more" if len(header) > most else "") + "]"


def _header_hint(header: tuple[str, ...]) -> str:
    """Why a header matches nothing, when it can be told: another delimiter, or not a text file."""
    if len(header) == 1:
        for delimiter, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if delimiter in header[0]:
                return f" (one column holding {name}: the file is not comma-separated; convert it to commas)"
        if any(not ch.isprintable() for ch in header[0]):
            return " (unprintable characters: is it a text CSV file?)"
    return " (is it the right file, or does the spec need source_columns for these headers?)"


def _quoted(name: str) -> Column:
    """A column by its exact name, whatever characters it holds (dots, spaces)."""
    return F.col("`" + name.replace("`", "``") + "`")


def read_raw(spark: SparkSession, files: list[str], fmt: str, spec: DatasetSpec) -> DataFrame:
    """Read exactly the listed files as all-string columns matched by each file's own header names.

    Files are grouped by header (so files with the same columns in another order still line
    up by name); a file missing a column the spec requires stops everything before any write,
    naming the file and the columns. Every file's header is read once (a small job per file).
    """
    groups: dict[tuple[str, ...], list[str]] = {}
    for path in files:
        groups.setdefault(tuple(_header(spark, path, fmt)), []).append(path)
    frames = []
    for header, paths in groups.items():
        columns = match_header(header, spec)
        missing = [c for c in spec.required_columns() if c not in columns]
        if missing and len(missing) == len(spec.required_columns()):
            raise MissingColumnError(f"{paths[0]} has none of the {len(missing)} columns dataset spec '{spec.name}' "
                                     f"requires; its header reads {_shown(header)}{_header_hint(header)}")
        if missing:
            named = [f"{c} (header '{spec.source_columns[c]}')" if c in spec.source_columns else c for c in missing]
            raise MissingColumnError(f"{paths[0]} is missing required column(s): {', '.join(named)} "
                                     f"(dataset spec '{spec.name}')")
        extra = [c for c in header if c not in columns.values()]
        if extra:
            logger.warning("ignoring %d column(s) not in dataset spec '%s': %s", len(extra), spec.name, extra)
        if fmt == "csv":
            schema = T.StructType([T.StructField(c, T.StringType(), True) for c in header]
                                  + [T.StructField(CORRUPT, T.StringType(), True)])
            df = (spark.read.schema(schema)
                  .option("header", True).option("enforceSchema", False)
                  .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
                  .option("multiLine", True).option("escape", '"')
                  .csv(paths))
        else:
            df = spark.read.parquet(*paths).withColumn(CORRUPT, F.lit(None).cast("string"))
        label = (_quoted(columns[spec.label.column]) if spec.label.column in columns
                 else F.lit(None))    # an unlabelled file
        frames.append(df.select(*[_quoted(columns[c]).cast("string").alias(c) for c in spec.required_columns()],
                                label.cast("string").alias(spec.label.column), CORRUPT,
                                F.col("_metadata.file_path").alias("source_file")))
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


# --------------------------------------------------------------------------- transform
def _blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")


def row_hash(spec: DatasetSpec) -> Column:
    """SHA-256 of a row's data columns: detects changed records and names content-keyed records."""
    return F.sha2(F.to_json(F.struct(*spec.all_columns())), 256)


def with_record_key(spec: DatasetSpec) -> Transform:
    """Datasets without a record id get one: a hash of the row's content (stable across re-ingests)."""
    def transform(df: DataFrame) -> DataFrame:
        if spec.record_id:
            return df
        return df.withColumn(GENERATED_RECORD_ID, F.substring(row_hash(spec), 1, 20))
    return transform


def with_quarantine_reason(spec: DatasetSpec) -> Transform:
    """Add ``reason``/``detail`` columns: null for a row that can be ingested, else why not."""
    def transform(df: DataFrame) -> DataFrame:
        label = F.trim(F.col(spec.label.column))
        reason = F.when(F.col(CORRUPT).isNotNull(), F.lit(MALFORMED))
        detail = F.when(F.col(CORRUPT).isNotNull(),
                        F.lit("the line does not split into the header's columns; no field of it is kept "
                              "(row_sha256 finds it in the source file)"))
        if spec.record_id:
            reason = reason.when(_blank(F.col(spec.record_id)), F.lit(MISSING_RECORD_ID))
        if spec.customer_id:
            reason = reason.when(_blank(F.col(spec.customer_id)), F.lit(MISSING_CUSTOMER_ID))
        if spec.period:
            period_text = F.trim(F.col(spec.period.column))
            reason = reason.when(period_index(F.col(spec.period.column), spec.period).isNull(),
                                 F.lit(INVALID_PERIOD))
            detail = detail.when(reason == INVALID_PERIOD, F.concat(
                F.lit(f"{spec.period.column}="), F.coalesce(period_text, F.lit("<empty>"))))
        reason = reason.when(~_blank(F.col(spec.label.column)) & ~label.isin(*spec.label.classes),
                             F.lit(INVALID_LABEL))
        detail = detail.when(reason == INVALID_LABEL, F.concat(F.lit(f"{spec.label.column}="), label))
        return df.withColumn("reason", reason).withColumn("detail", detail)
    return transform


def with_duplicates_marked(spec: DatasetSpec) -> Transform:
    """A record id seen twice in one batch: keep one, quarantine the others (a deterministic pick).
    Only rows without a reason yet are ranked: a bad copy, or an erased customer's row (run
    :func:`without_erased` first), never pushes a good one out."""
    def transform(df: DataFrame) -> DataFrame:
        rid = F.trim(F.col(spec.record_key))
        out = df.withColumn("row_hash", row_hash(spec))
        w = Window.partitionBy(rid, F.col("reason").isNull()).orderBy("row_hash", "source_file")
        rank = F.when(F.col("reason").isNull(), F.row_number().over(w))
        return (out.withColumn("_rank", rank)
                .withColumn("detail", F.when(F.col("_rank") > 1, F.concat(F.lit(f"{spec.record_key}="), rid))
                            .otherwise(F.col("detail")))
                .withColumn("reason", F.when(F.col("_rank") > 1, F.lit(DUPLICATE_RECORD_ID))
                            .otherwise(F.col("reason")))
                .drop("_rank"))
    return transform


def erased_customers(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """The customer ids of ``erasure_requests`` (one column, ``_erased_id``), or None without any."""
    path = cfg.table_path(ERASURE_REQUESTS)
    if not cfg.spec.customer_id or not table_exists(spark, path):
        return None
    return read_delta(spark, path).select(F.trim(F.col("customer_id")).alias("_erased_id")).distinct()


def without_erased(erased: DataFrame | None, spec: DatasetSpec) -> Transform:
    """Mark the rows of erased customers with reason ``ERASED`` (above any quarantine reason): they
    go neither to ``raw_records`` nor to ``quarantine``."""
    def transform(df: DataFrame) -> DataFrame:
        if erased is None:
            return df
        marked = df.join(erased, F.trim(F.col(spec.customer_id)) == F.col("_erased_id"), "left")
        return (marked.withColumn("reason", F.when(F.col("_erased_id").isNotNull(), F.lit(ERASED))
                                  .otherwise(F.col("reason")))
                .drop("_erased_id"))
    return transform


def raw_columns(spec: DatasetSpec) -> list[str]:
    """The data columns of ``raw_records``: the generated record id (if any) and the spec's columns."""
    return ([] if spec.record_id else [GENERATED_RECORD_ID]) + spec.all_columns()


def to_raw_records(df: DataFrame, spec: DatasetSpec, batch_id: str, ingested_at: Column,
                   pii_key: bytes | None = None) -> DataFrame:
    """The ``raw_records`` contract: the spec's columns as trimmed strings plus lineage columns;
    the ``pii`` columns null, or their keyed hashes under ``pii_key`` (:mod:`credit_spark.lake.privacy`)."""
    return df.where(F.col("reason").isNull()).select(
        *[(masked_pii(F.col(c), pii_key) if c in spec.pii else F.trim(F.col(c))).alias(c)
          for c in raw_columns(spec)],
        F.lit(batch_id).alias("batch_id"), "source_file", ingested_at.alias("ingested_at"), "row_hash")


def to_quarantine(df: DataFrame, spec: DatasetSpec, batch_id: str, ingested_at: Column) -> DataFrame:
    """The ``quarantine`` contract. ``raw`` holds the row's fields as JSON *without* personal
    identifiers. A malformed line keeps no field at all (``record_id`` and ``raw`` are null): its
    fields did not split into the header's columns, so a name or SSN may sit under any column's
    name. Every row, malformed or not, is kept as a SHA-256 (``row_sha256``) of its original text
    to trace it back to the source file."""
    kept = [c for c in spec.all_columns() if c not in spec.pii]
    malformed = F.col(CORRUPT).isNotNull()
    original = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*spec.all_columns())))
    return df.where(F.col("reason").isNotNull() & (F.col("reason") != ERASED)).select(
        F.lit(batch_id).alias("batch_id"), "source_file",
        F.when(~malformed, F.col(spec.record_key)).alias("record_id"),
        "reason", "detail", F.when(~malformed, F.to_json(F.struct(*kept))).alias("raw"),
        F.sha2(original, 256).alias("row_sha256"), ingested_at.alias("ingested_at"))


# --------------------------------------------------------------------------- load
def merge_raw_records(spark: SparkSession, records: DataFrame, path: str, record_id: str) -> tuple[int, int]:
    """Upsert on the record id: new ids are inserted, changed rows updated, identical rows untouched.
    The table's change data feed is on, so ``features`` rebuilds only the periods that changed."""
    if not table_exists(spark, path):
        overwrite_table(records, path)
        metrics = last_operation_metrics(spark, path)
        enable_change_feed(spark, path)
        return int(metrics.get("numOutputRows", 0)), 0
    enable_change_feed(spark, path)   # a lake from before the feed: on from this batch
    merge_into(spark, path, records, f"t.`{record_id}` = s.`{record_id}`", update_when="t.row_hash <> s.row_hash")
    metrics = last_operation_metrics(spark, path)
    return int(metrics.get("numTargetRowsInserted", 0)), int(metrics.get("numTargetRowsUpdated", 0))


def merge_quarantine(spark: SparkSession, rows: DataFrame, path: str) -> None:
    """Insert quarantined rows not already there (same line, same reason): re-ingesting a file,
    even a copy with a new name or timestamp, adds nothing."""
    if not table_exists(spark, path):
        overwrite_table(rows, path)
        return
    merge_into(spark, path, rows.dropDuplicates(["row_sha256", "reason"]),
               "t.row_sha256 = s.row_sha256 AND t.reason = s.reason")


def ingest(spark: SparkSession, cfg: Config, input_path: str, fmt: str | None = None) -> IngestResult:
    """Ingest one file or folder of files into the lake (idempotent per set of files)."""
    spec = cfg.spec
    key = pii_key(cfg.privacy)        # a missing key stops before any read
    fmt, files = list_input_files(spark, input_path, fmt)
    batch_id = batch_id_for(files)
    logger.info("ingesting %d %s file(s) from %s as batch %s", len(files), fmt, input_path, batch_id)

    classified = (read_raw(spark, [f[0] for f in files], fmt, spec)
                  .transform(with_record_key(spec))
                  .transform(with_quarantine_reason(spec))
                  .transform(without_erased(erased_customers(spark, cfg), spec))
                  .transform(with_duplicates_marked(spec)))
    # read once, used up to three times; on local disk, not in the heap: a batch is the whole input
    # (10M rows), and blocks spilled from MEMORY_AND_DISK are read back into the heap whole, which
    # ran a 4 GB driver out of memory during the merge that needs that heap
    classified = classified.persist(StorageLevel.DISK_ONLY)
    try:
        counts = {(r["reason"] or ""): int(r["n"])
                  for r in classified.groupBy("reason").agg(F.count(F.lit(1)).alias("n")).collect()}
        rows_read = sum(counts.values())
        if rows_read == 0:
            raise NoRecordsError(f"{input_path} holds no data rows")
        erased = counts.pop(ERASED, 0)
        reasons = {k: v for k, v in sorted(counts.items()) if k}
        ingested_at = F.current_timestamp()

        quarantine_path = cfg.table_path(QUARANTINE)
        if reasons or not table_exists(spark, quarantine_path):   # a clean batch needs no merge (a full pass)
            merge_quarantine(spark, to_quarantine(classified, spec, batch_id, ingested_at), quarantine_path)

        inserted, updated = merge_raw_records(spark, to_raw_records(classified, spec, batch_id, ingested_at, key),
                                              cfg.table_path(RAW_RECORDS), spec.record_key)
    finally:
        classified.unpersist()
    record_ingest_quality(spark, cfg, batch_id, current_version(spark, cfg.table_path(RAW_RECORDS)),
                          rows_read, counts.get("", 0), reasons, erased)

    result = IngestResult(batch_id=batch_id, files=len(files), rows_read=rows_read,
                          rows_ingested=counts.get("", 0), rows_quarantined=sum(reasons.values()),
                          quarantine_reasons=reasons, rows_inserted=inserted, rows_updated=updated,
                          rows_erased=erased)
    logger.info("batch %s: read %d, ingested %d (%d new, %d updated), quarantined %d %s, erased customers' "
                "rows left out %d", batch_id, result.rows_read, result.rows_ingested, inserted, updated,
                result.rows_quarantined, reasons, erased)
    return result
