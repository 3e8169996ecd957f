"""Issue 'the lake stays lean': ``features`` is updated by period from raw_records' change feed,
and the result is the table a full rebuild gives."""
import dataclasses

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from credit_spark.config.loader import DatasetSpec, LabelSpec, PeriodSpec, StableRule, TemporalSpec
from credit_spark.jobs.features_job import Plan, affected_periods, from_ordinal, run_features, to_ordinal
from credit_spark.transforms.features import PERIOD, build_features

MONTHLY = DatasetSpec(name="t", record_id="ID", customer_id="Cust", period=PeriodSpec(column="Month"),
                      label=LabelSpec(column="Score", classes=["Good", "Poor"]))
DATED = dataclasses.replace(MONTHLY, period=PeriodSpec(column="Month", format="year_month"))


def test_a_period_changes_only_itself_and_the_history_window_after_it():
    spec = dataclasses.replace(MONTHLY, temporal=TemporalSpec(columns=["Debt"], window=2))
    plan = affected_periods({5}, spec)
    assert (plan.mode, plan.replaced, plan.read) == ("incremental", {5, 6, 7}, {3, 4, 5, 6, 7})
    assert plan.predicate() == "`period` IN (5, 6, 7)"
    no_history = affected_periods({5, 9}, MONTHLY)
    assert (no_history.replaced, no_history.read) == ({5, 9}, {5, 9})


def test_history_windows_cross_the_year_in_year_month_periods():
    spec = dataclasses.replace(DATED, temporal=TemporalSpec(columns=["Debt"], window=1))
    plan = affected_periods({202412}, spec)
    assert plan.replaced == {202412, 202501}
    assert plan.read == {202411, 202412, 202501}
    assert all(from_ordinal(to_ordinal(p, DATED), DATED) == p for p in (202401, 202412, 199912, 200001))


def test_repairs_widen_the_change_to_later_periods_or_to_every_period():
    past = dataclasses.replace(MONTHLY, stable={"Age": StableRule(method="mode")}, repair_scope="past_periods")
    plan = affected_periods({6, 8}, past)
    assert (plan.mode, plan.from_period, plan.read) == ("incremental", 6, None)
    assert plan.predicate() == "`period` >= 6"
    every = affected_periods({8}, dataclasses.replace(past, repair_scope="all_periods"))
    assert every.mode == "full" and "all_periods" in every.reason
    assert affected_periods({0}, dataclasses.replace(MONTHLY, period=None)).mode == "full"


def test_plan_describes_what_it_replaces():
    assert Plan("incremental", "x", replaced=frozenset({9, 8})).describe() == "periods 8, 9"
    assert Plan("incremental", "x", from_period=6).describe() == "periods from 6 on"
    assert Plan("full", "x").describe() == "every period"


def _files_by_period(spark, path):
    files = spark.read.format("delta").load(path).select(PERIOD, F.input_file_name().alias("f")).distinct()
    return {(r[0], r[1]) for r in files.collect()}


@pytest.mark.e2e   # generate -> ingest -> features, twice, against full rebuilds
@pytest.mark.parametrize("scope", ["past_periods", "no_repair"])
def test_a_new_month_rewrites_only_the_periods_it_can_change(spark, cfg, tmp_path, scope):
    from credit_spark.jobs.generate import generate_records
    from credit_spark.jobs.ingest import ingest

    spec = (dataclasses.replace(cfg.spec, repair_scope="past_periods") if scope == "past_periods"
            else dataclasses.replace(cfg.spec, stable={}))
    cfg = dataclasses.replace(cfg, spec=spec)
    generate_records(spark, 420, seed=3, months=7).write.option("header", True).csv(str(tmp_path / "jan_jul"))
    generate_records(spark, 60, seed=3, months=1, start_month=8).write.option("header", True).csv(
        str(tmp_path / "aug"))
    ingest(spark, cfg, str(tmp_path / "jan_jul"))
    first = run_features(spark, cfg)
    assert (first.mode, first.reason) == ("full", "features does not exist yet")
    path = cfg.table_path("features")
    before = _files_by_period(spark, path)

    ingest(spark, cfg, str(tmp_path / "aug"))
    second = run_features(spark, cfg)
    assert second.mode == "incremental"
    assert second.rows == 60                                        # August's rows only were written
    after = _files_by_period(spark, path)
    assert {f for f in after if f[0] != 8} == before                # July and earlier: the same files
    raw = spark.read.format("delta").load(cfg.table_path("raw_records"))
    assertDataFrameEqual(spark.read.format("delta").load(path), build_features(raw, spec))

    again = run_features(spark, cfg)                                # a rerun writes nothing
    assert (again.mode, again.rows, again.features_version) == ("unchanged", 0, second.features_version)
    assert run_features(spark, cfg, full=True).mode == "full"


@pytest.mark.e2e
def test_full_rebuild_when_the_last_build_cannot_be_trusted(spark, cfg, tmp_path):
    """Another spec, or raw_records without a readable change feed, rebuild everything."""
    from credit_spark.jobs.generate import generate_records
    from credit_spark.jobs.ingest import ingest

    cfg = dataclasses.replace(cfg, spec=dataclasses.replace(cfg.spec, stable={}))
    generate_records(spark, 160, seed=5).write.option("header", True).csv(str(tmp_path / "in"))
    ingest(spark, cfg, str(tmp_path / "in"))
    raw_path = cfg.table_path("raw_records")
    props = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{raw_path}`").collect()}
    assert props["delta.enableChangeDataFeed"] == "true"
    run_features(spark, cfg)

    other = dataclasses.replace(cfg, spec=dataclasses.replace(cfg.spec, temporal=TemporalSpec()))
    rebuilt = run_features(spark, other)
    assert rebuilt.mode == "full" and "spec" in rebuilt.reason

    # a lake from before the change feed: raw_records changed while the feed was off
    spark.sql(f"ALTER TABLE delta.`{raw_path}` SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'false')")
    spark.sql(f"DELETE FROM delta.`{raw_path}` WHERE Month = 'March'")
    blind = run_features(spark, other)
    assert blind.mode == "full" and "change feed" in blind.reason
    assert spark.read.format("delta").load(other.table_path("features")).where(f"{PERIOD} = 3").isEmpty()
