"""Erasure requests (``credit-spark forget``): a customer's rows leave every table, on record.

Banks must honour erasure requests (GDPR art. 17, CCPA). ``forget`` deletes every row of the
given customers from each table that holds rows per record (``raw_records`` by the spec's
customer column, ``quarantine`` by that column inside its ``raw`` fields, ``features`` and
``scores`` by ``customer_id``) and appends one row per customer to ``erasure_requests`` (when,
rows deleted per table, purged or not): the audit trail. A Delta DELETE is one commit per table,
so an interrupted run leaves each table whole, and a rerun finishes the work (deleting nothing
twice). The aggregate tables (``monitoring``, ``data_quality``, ``scorecard``) hold no customer.

A DELETE keeps the removed files for time travel until ``maintain`` vacuums them past the
table's retention (25 months for ``scores``). ``--purge`` vacuums the touched tables at once
with no retention, so the files are physically gone; the price: no table touched can be read
as of a version before the purge any more (docs/operations.md, "Erasure requests").
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from credit_spark.config.loader import Config
from credit_spark.errors import ConfigError
from credit_spark.lake.session import session_setting
from credit_spark.lake.sqltext import sql_string
from credit_spark.lake.tables import (ERASURE_REQUESTS, FEATURES, QUARANTINE, RAW_RECORDS, SCORES, append, current_version,
                                 delete_where, last_operation_metrics, table_exists, vacuum)
from credit_spark.transforms.features import CUSTOMER_ID

logger = logging.getLogger(__name__)

ERASURE_COLUMNS = "request_id string, customer_id string, rows_deleted map<string, bigint>, purged boolean"
#: the session setting that lets VACUUM go below a table's retention (set for a purge only)
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"


@dataclass(frozen=True)
class ErasureResult:
    request_id: str
    customers: list[str]
    rows_deleted: dict[str, int]
    purged: bool


def customer_predicates(cfg: Config, customers: list[str]) -> dict[str, str]:
    """Per table, the SQL predicate that selects the customers' rows."""
    spec = cfg.spec
    if not spec.customer_id:
        raise ConfigError(f"dataset spec '{spec.name}' has no customer_id column: records are not tied to a "
                          f"customer, so `forget` cannot find a customer's rows")
    ids = ", ".join(sql_string(c) for c in customers)
    raw_key = sql_string(f"$.{spec.customer_id}")
    return {
        RAW_RECORDS: f"trim(`{spec.customer_id}`) IN ({ids})",
        QUARANTINE: f"trim(get_json_object(raw, {raw_key})) IN ({ids})",
        FEATURES: f"`{CUSTOMER_ID}` IN ({ids})",
        SCORES: f"`{CUSTOMER_ID}` IN ({ids})",
    }


def delete_rows(spark: SparkSession, ref: str, predicate: str) -> int:
    """Rows deleted by one Delta DELETE (a DELETE that matches nothing commits nothing)."""
    before = current_version(spark, ref)
    delete_where(spark, ref, predicate)
    if current_version(spark, ref) == before:
        return 0
    return int(last_operation_metrics(spark, ref).get("numDeletedRows", 0))


def purge(spark: SparkSession, ref: str) -> None:
    """VACUUM with no retention: files of removed rows (and change-data files) are deleted now."""
    with session_setting(spark, RETENTION_CHECK, "false", "true"):
        vacuum(spark, ref, 0)


def forget(spark: SparkSession, cfg: Config, customers: list[str], purge_files: bool = False) -> ErasureResult:
    """Delete the customers' rows from every table, record the request; see the module docstring."""
    customers = sorted({c.strip() for c in customers if c and c.strip()})
    if not customers:
        raise ConfigError("forget: name at least one customer (--customer ID)")
    request_id = uuid.uuid4().hex
    deleted: dict[str, int] = {}
    for table, predicate in customer_predicates(cfg, customers).items():
        ref = cfg.table_path(table)
        if not table_exists(spark, ref):
            continue
        deleted[table] = delete_rows(spark, ref, predicate)
        if purge_files:
            purge(spark, ref)
        logger.info("erasure %s: %s: %d row(s) deleted%s", request_id, table, deleted[table],
                    "; files purged" if purge_files else "")
    audit = (spark.createDataFrame([(request_id, c, deleted, purge_files) for c in customers], ERASURE_COLUMNS)
             .select("request_id", "customer_id", F.current_timestamp().alias("requested_at"), "rows_deleted",
                     "purged"))
    append(audit, cfg.table_path(ERASURE_REQUESTS))
    return ErasureResult(request_id=request_id, customers=customers, rows_deleted=deleted, purged=purge_files)
