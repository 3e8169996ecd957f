"""The features job: bring the ``features`` table up to date with ``raw_records`` and record its
data quality. Orchestration only (read, transform, write); the transforms are
:mod:`credit_spark.transforms.features`, the quality checks :mod:`credit_spark.transforms.quality`.

Incremental by period: each build tags its commit with the ``raw_records`` version it read and a
fingerprint of the spec and code. The next build reads ``raw_records``' change data feed since
that version, finds the periods whose rows changed, and replaces only the periods whose features
can depend on them (:func:`affected_periods`): a nightly batch of one new month rewrites one
period, not the whole table, so storage grows by what changed. It rebuilds everything when it
cannot tell (no tagged build, another spec or release, the change feed vacuumed or not yet on),
or when ``--full`` says so; with nothing changed it writes nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field

from pyspark.errors import PySparkException
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from py4j.protocol import Py4JError

from credit_spark._version import __version__
from credit_spark.config.loader import Config
from credit_spark.config.spec import DatasetSpec
from credit_spark.errors import NoRecordsError
from credit_spark.lake.sqltext import sql_string
from credit_spark.lake.tables import (FEATURES, RAW_RECORDS, current_version, latest_commit, overwrite_table,
                                      read_changes, read_snapshot, read_table, replace_where, rows_written,
                                      table_exists)
from credit_spark.transforms.features import PERIOD, build_features, period_index
from credit_spark.transforms.quality import record_feature_quality

logger = logging.getLogger(__name__)

#: prefix of the ``userMetadata`` of every features build commit (then its JSON: raw version, fingerprint)
BUILD_TAG = "credit_spark.features "
#: commits searched back for the last build (maintenance commits may follow it)
BUILD_SEARCH_DEPTH = 100


@dataclass(frozen=True)
class FeaturesResult:
    rows: int                      # rows written by this build (0 when nothing changed)
    raw_version: int
    features_version: int
    quality: list = field(default_factory=list)   # list[quality.ColumnQuality]
    mode: str = "full"             # full | incremental | unchanged
    periods: str = "every period"  # which periods were replaced, in words
    reason: str = ""               # why this mode


def build_fingerprint(spec: DatasetSpec) -> str:
    """What the features' values depend on besides the rows: the spec and the code's release."""
    text = json.dumps({"spec": dataclasses.asdict(spec), "code": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def last_build(spark: SparkSession, path: str) -> dict | None:
    """The tag of the table's latest features build: ``{"raw_version": n, "fingerprint": s}``."""
    row = latest_commit(spark, path, BUILD_SEARCH_DEPTH, f"startswith(userMetadata, {sql_string(BUILD_TAG)})",
                        "userMetadata")
    if row is None:
        return None
    try:
        return json.loads(row[0][len(BUILD_TAG):])
    except ValueError:
        return None


def to_ordinal(period: int, spec: DatasetSpec) -> int:
    """Python twin of :func:`~credit_spark.transforms.features.period_ordinal`."""
    if spec.period is None or spec.period.format == "month_name":
        return period
    return (period // 100) * 12 + period % 100


def from_ordinal(ordinal: int, spec: DatasetSpec) -> int:
    if spec.period is None or spec.period.format == "month_name":
        return ordinal
    return ((ordinal - 1) // 12) * 100 + (ordinal - 1) % 12 + 1


@dataclass(frozen=True)
class Plan:
    """What a build rewrites: ``replaced`` periods (or ``from_period`` and every later one) of
    ``features``, computed from the raw rows of the ``read`` periods (None: all of them)."""

    mode: str                              # full | incremental | unchanged
    reason: str
    replaced: frozenset[int] = frozenset()
    from_period: int | None = None
    read: frozenset[int] | None = None

    def predicate(self) -> str:
        """The ``replaceWhere`` condition over the partition column."""
        if self.from_period is not None:
            return f"`{PERIOD}` >= {int(self.from_period)}"
        return f"`{PERIOD}` IN ({', '.join(str(int(p)) for p in sorted(self.replaced))})"

    def keeps(self, period: Column) -> Column:
        return period >= self.from_period if self.from_period is not None else period.isin(*sorted(self.replaced))

    def describe(self) -> str:
        if self.mode == "unchanged":
            return "no period"
        if self.mode == "full":
            return "every period"
        if self.from_period is not None:
            return f"periods from {self.from_period} on"
        return f"period{'s' if len(self.replaced) > 1 else ''} {', '.join(map(str, sorted(self.replaced)))}"


def affected_periods(changed: set[int], spec: DatasetSpec) -> Plan:
    """Which periods of ``features`` raw changes in the ``changed`` periods can alter, and which
    raw periods rebuilding them must read.

    A feature row depends only on its own customer's raw rows (repairs and histories are windows
    per customer): on its own period, on the ``temporal.window`` periods before it (history), on
    every earlier period (``past_periods`` repair), or on every period (``all_periods`` repair:
    a new month can change the repaired value of each earlier month, so everything is rebuilt).
    """
    if spec.period is None:
        return Plan("full", "the spec has no period column")
    if spec.stable and spec.repair_scope == "all_periods":
        return Plan("full", "repair_scope all_periods: a changed period can change every period of its customers")
    if spec.stable:
        return Plan("incremental", "past_periods repair: a changed period changes every later one",
                    from_period=min(changed))
    k = spec.temporal.window if spec.temporal.columns else 0
    ordinals = {to_ordinal(p, spec) for p in changed}
    replaced = frozenset(from_ordinal(o + d, spec) for o in ordinals for d in range(k + 1))
    read = frozenset(from_ordinal(o + d, spec) for o in ordinals for d in range(-k, k + 1))
    why = f"the changed periods and the {k} after each (history window)" if k else "the changed periods"
    return Plan("incremental", why, replaced=replaced, read=read)


def changed_periods(spark: SparkSession, raw_ref: str, spec: DatasetSpec, since: int, until: int) -> set | None:
    """Periods of the ``raw_records`` rows inserted, updated or deleted after version ``since`` up
    to ``until``, from its change data feed (a distinct over the changed rows only); None when the
    feed cannot say (not on at that version, or its files vacuumed)."""
    period = period_index(F.col(spec.period.column), spec.period) if spec.period else F.lit(0)
    try:
        changes = read_changes(spark, raw_ref, since + 1, until)
        return {r[0] for r in changes.select(period.alias("p")).distinct().collect()}
    except (PySparkException, Py4JError) as exc:
        logger.info("features: raw_records' change feed v%d..v%d is unreadable (%s)", since + 1, until,
                    str(exc).splitlines()[0][:200])
        return None


def plan_build(spark: SparkSession, cfg: Config, raw_version: int, full: bool) -> Plan:
    """Full, incremental or nothing to do, and why (logged and returned to the caller)."""
    path = cfg.table_path(FEATURES)
    if full:
        return Plan("full", "asked for (--full)")
    if not table_exists(spark, path):
        return Plan("full", "features does not exist yet")
    build = last_build(spark, path)
    if build is None:
        return Plan("full", "features has no tagged build in its recent history")
    if build.get("fingerprint") != build_fingerprint(cfg.spec):
        return Plan("full", "the dataset spec or credit_spark's release changed since the last build")
    since = int(build.get("raw_version", -1))
    if since == raw_version:
        return Plan("unchanged", f"raw_records v{raw_version} is what the last build read")
    if since > raw_version:
        return Plan("full", f"the last build read raw_records v{since}, newer than its current v{raw_version}")
    changed = changed_periods(spark, cfg.table_path(RAW_RECORDS), cfg.spec, since, raw_version)
    if changed is None:
        return Plan("full", f"raw_records' change feed since v{since} is not readable")
    if not changed:
        return Plan("unchanged", f"raw_records v{since + 1}..v{raw_version} changed no rows")
    if None in changed:
        return Plan("full", "changed rows without a readable period")
    return affected_periods(changed, cfg.spec)


def run_features(spark: SparkSession, cfg: Config, full: bool = False) -> FeaturesResult:
    """Bring ``features`` up to date with the current ``raw_records``: the affected periods in one
    atomic ``replaceWhere``, or everything in one atomic overwrite (idempotent either way)."""
    raw, raw_version = read_snapshot(spark, cfg, RAW_RECORDS)
    if raw.isEmpty():
        raise NoRecordsError(f"raw_records at version {raw_version} holds no rows to build features from")
    plan = plan_build(spark, cfg, raw_version, full)
    path = cfg.table_path(FEATURES)
    if plan.mode == "unchanged":
        version = current_version(spark, path)
        logger.info("features: up to date (%s); features v%d", plan.reason, version)
        return FeaturesResult(rows=0, raw_version=raw_version, features_version=version, mode=plan.mode,
                              periods=plan.describe(), reason=plan.reason)
    tag = BUILD_TAG + json.dumps({"raw_version": raw_version, "fingerprint": build_fingerprint(cfg.spec)})
    if plan.mode == "incremental":
        spec = cfg.spec
        source = raw if plan.read is None else raw.where(
            period_index(F.col(spec.period.column), spec.period).isin(*sorted(plan.read)))
        features = build_features(source, spec).where(plan.keeps(F.col(PERIOD)))
        replace_where(features, path, plan.predicate(), partition_by=[PERIOD], user_metadata=tag)
    else:
        overwrite_table(build_features(raw, cfg.spec), path, partition_by=[PERIOD], user_metadata=tag)
    rows = rows_written(spark, path)
    version = current_version(spark, path)
    quality = record_feature_quality(spark, cfg, raw, read_table(spark, cfg, FEATURES, version=version),
                                     raw_version, version)
    logger.info("features: %s build (%s): %d rows written (raw_records v%d -> features v%d)", plan.mode,
                plan.reason, rows, raw_version, version)
    return FeaturesResult(rows=rows, raw_version=raw_version, features_version=version, quality=quality,
                          mode=plan.mode, periods=plan.describe(), reason=plan.reason)
