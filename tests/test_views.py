"""The shipped SQL views (conf/sql/*.sql) on tiny `scores` and `monitoring` tables, checked exactly."""
from __future__ import annotations

from datetime import date, datetime
from importlib import resources

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from credit_spark.errors import ConfigError
from credit_spark.lake.views import VIEW_ORDER, class_order_literal, register_sql_views, shipped_sql, sources_ready

CLASSES = ["Good", "Standard", "Poor"]

SCORES_SCHEMA = (
    "customer_id string, record_id string, run_date date, predicted_class string, prob_good double, "
    "prob_standard double, prob_poor double, score_points double, "
    "reasons array<struct<rank:int,code:string,feature:string,text:string,impact:double>>, "
    "model_name string, model_version int, features_version long, run_id string, scored_at timestamp")
MONITORING_SCHEMA = (
    "run_date date, run_id string, model_name string, model_version int, metric string, name string, "
    "value double, threshold_watch double, threshold_act double, status string, computed_at timestamp")

D1, D2, D3 = date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31)
PROBS = {"Good": (0.7, 0.2, 0.1), "Standard": (0.2, 0.6, 0.2), "Poor": (0.1, 0.2, 0.7)}

#: every view with a test below; a new conf/sql file must be added here (and tested)
TESTED_VIEWS = {"latest_scores", "daily_class_distribution", "class_worsened", "drift_by_feature"}


def score(record_id: str, run_date: date, cls: str, scored_at: datetime, run_id: str = "run-1"):
    good, standard, poor = PROBS[cls]
    reasons = [(1, "R01", "outstanding_debt", "high outstanding debt", -12.5),
               (2, "R02", "credit_mix", "credit mix", -3.0)]
    return (record_id.split("-")[0], record_id, run_date, cls, good, standard, poor, 600.0 - 100 * poor,
            reasons, "credit_model", 3, 7, run_id, scored_at)


T1, T2 = datetime(2024, 4, 1, 6, 0), datetime(2024, 4, 1, 9, 30)
SCORES = [
    score("c1-1", D1, "Standard", T1), score("c1-2", D2, "Poor", T1),          # worsened
    score("c2-1", D1, "Poor", T1), score("c2-2", D2, "Good", T1),              # improved
    score("c3-1", D2, "Good", T1),                                             # scored once
    score("c4-1", D1, "Good", T1), score("c4-2", D1, "Standard", T2, "run-2"),  # rescored the same date
    score("c5-1", D1, "Good", T1), score("c5-2", D2, "Poor", T1),
    score("c5-3", D3, "Standard", T1),                                         # better than its previous date
    score("c6-1", D1, "Good", T1), score("c6-3", D3, "Standard", T1),          # worse, with a gap month
    score("c7-1", D1, "Good", T1), score("c7-2", D2, "Poor", T1),
    score("c7-3", D2, "Good", T2, "run-2"),                                    # rescore undoes the worsening
]

C1 = datetime(2024, 4, 2, 8, 0)
MONITORING = [
    (D1, "m-1", "credit_model", 3, "psi", "score_points", 0.02, 0.1, 0.25, "ok", C1),
    (D1, "m-1", "credit_model", 3, "csi", "annual_income", 0.12, 0.1, 0.25, "watch", C1),
    (D2, "m-2", "credit_model", 3, "csi", "annual_income", 0.31, 0.1, 0.25, "act", C1),
    (D1, "m-1", "credit_model", 3, "rows_in", "features", 7.0, None, None, None, C1),
    (D1, "m-1", "credit_model", 3, "class_share", "Good", 0.57, None, None, None, C1),
    (D1, "m-1", "credit_model", 3, "adverse_share_by_age_band", "25-34", 0.2, None, None, None, C1),
    (D1, "m-1", "credit_model", 3, "run_status", "score", 1.0, None, None, "ok", C1),
]

#: the nights that completed (the scorer writes a runs row last); only their rows reach the views
RUNS = [(D1, run_id) for run_id in ("run-1", "run-2", "m-1", "m-2")]
RUNS_SCHEMA = "run_date date, run_id string"


@pytest.fixture()
def views(spark):
    spark.createDataFrame(SCORES, SCORES_SCHEMA).createOrReplaceTempView("scores")
    spark.createDataFrame(MONITORING, MONITORING_SCHEMA).createOrReplaceTempView("monitoring")
    spark.createDataFrame(RUNS, RUNS_SCHEMA).createOrReplaceTempView("runs")
    names = register_sql_views(spark, CLASSES)
    yield names
    for name in [*names, "scores", "monitoring", "runs"]:
        spark.catalog.dropTempView(name)


def test_every_shipped_sql_file_is_registered_and_tested(spark, views):
    folder = resources.files("credit_spark.conf") / "sql"
    files = {p.name[: -len(".sql")] for p in folder.iterdir() if p.name.endswith(".sql")}
    assert files == set(shipped_sql()) == set(views)
    assert views == list(VIEW_ORDER)            # the fixed order
    assert files == TESTED_VIEWS, "a conf/sql file without a test in tests/test_views.py"
    temp_views = {t.name for t in spark.catalog.listTables() if t.isTemporary}
    assert set(views) <= temp_views


def test_latest_scores_one_row_per_customer(spark, views):
    latest = {"c1-2", "c2-2", "c3-1", "c4-2", "c5-3", "c6-3", "c7-3"}
    expected = spark.createDataFrame([r for r in SCORES if r[1] in latest], SCORES_SCHEMA)
    actual = spark.table("latest_scores")
    assert actual.columns == expected.columns
    assertDataFrameEqual(actual, expected)


def test_daily_class_distribution(spark, views):
    expected = spark.createDataFrame([
        (D1, "Good", 4, 4 / 7), (D1, "Standard", 2, 2 / 7), (D1, "Poor", 1, 1 / 7),
        (D2, "Good", 3, 0.5), (D2, "Poor", 3, 0.5),
        (D3, "Standard", 2, 1.0),
    ], "run_date date, predicted_class string, records long, share double")
    actual = spark.table("daily_class_distribution")
    assertDataFrameEqual(actual, expected, checkRowOrder=True)   # by date, then best to worst
    sums = actual.groupBy("run_date").agg(F.sum("share").alias("total")).collect()
    assert all(abs(r["total"] - 1.0) < 1e-12 for r in sums)


def test_class_worsened(spark, views):
    expected = spark.createDataFrame([
        ("c1", D1, "Standard", D2, "Poor"),
        ("c6", D1, "Good", D3, "Standard"),
    ], "customer_id string, previous_run_date date, previous_class string, run_date date, predicted_class string")
    assertDataFrameEqual(spark.table("class_worsened"), expected)


def test_class_worsened_follows_the_class_order(spark, views):
    register_sql_views(spark, list(reversed(CLASSES)))   # now Good is the worst
    expected = spark.createDataFrame([
        ("c2", D1, "Poor", D2, "Good"),
        ("c5", D2, "Poor", D3, "Standard"),
    ], "customer_id string, previous_run_date date, previous_class string, run_date date, predicted_class string")
    assertDataFrameEqual(spark.table("class_worsened"), expected)


def test_drift_by_feature_keeps_psi_and_csi(spark, views):
    expected = spark.createDataFrame([
        (D1, "annual_income", "csi", 0.12, "watch"),
        (D2, "annual_income", "csi", 0.31, "act"),
        (D1, "score_points", "psi", 0.02, "ok"),
    ], "run_date date, feature string, metric string, psi double, status string")
    assertDataFrameEqual(spark.table("drift_by_feature"), expected, checkRowOrder=True)


def test_a_night_missing_from_runs_reaches_no_view(spark, views):
    """A night killed after its scores (or monitoring) committed and before its runs row: every
    view reads as if it had not run, until its rerun adds the row."""
    before = {name: spark.table(name).collect() for name in VIEW_ORDER}
    killed = [score("c1-9", D3, "Poor", T2, "run-killed"), score("c8-1", D3, "Poor", T2, "run-killed")]
    spark.createDataFrame(SCORES + killed, SCORES_SCHEMA).createOrReplaceTempView("scores")
    spark.createDataFrame(MONITORING + [(D3, "run-killed", "credit_model", 3, "psi", "score_points", 0.4, 0.1, 0.25,
                                         "act", C1)], MONITORING_SCHEMA).createOrReplaceTempView("monitoring")
    for name in VIEW_ORDER:
        assertDataFrameEqual(spark.table(name), before[name])
    spark.createDataFrame(RUNS + [(D3, "run-killed")], RUNS_SCHEMA).createOrReplaceTempView("runs")   # the rerun
    assert {r.customer_id for r in spark.table("latest_scores").where(F.col("run_id") == "run-killed").collect()} \
        == {"c1", "c8"}
    assert spark.table("drift_by_feature").where((F.col("run_date") == D3) & (F.col("psi") == 0.4)).count() == 1


def test_views_wait_for_every_source_table_and_say_which_is_missing(caplog):
    assert sources_ready(["scores", "monitoring", "runs", "features"])
    with caplog.at_level("WARNING", logger="credit_spark.lake.views"):
        assert not sources_ready(["scores", "monitoring"])
    assert "missing: runs" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="credit_spark.lake.views"):
        assert not sources_ready(["features"])        # nothing scored yet: nothing to say
    assert caplog.text == ""


def test_class_order_literal_escapes_quotes(spark):
    literal = class_order_literal(["Good", "it's", "back\\slash"])
    assert literal == "array('Good', 'it\\'s', 'back\\\\slash')"
    assert spark.sql(f"SELECT {literal} AS a").first()["a"] == ["Good", "it's", "back\\slash"]
    with pytest.raises(ValueError, match="at least one class"):
        class_order_literal([])


def test_missing_source_view_names_the_file(spark, views):
    spark.catalog.dropTempView("monitoring")
    with pytest.raises(ConfigError, match=r"conf/sql/drift_by_feature\.sql: .*monitoring"):
        register_sql_views(spark, CLASSES)
