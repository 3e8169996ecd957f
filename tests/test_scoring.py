"""The nightly scorer as a product: content, reasons, idempotent and concurrent writes, kills, drift."""
import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import Observation
from pyspark.sql import functions as F

from credit_spark.config.loader import MonitoringSettings, load_config
from credit_spark.errors import DriftAlert
from credit_spark.evaluation.monitoring import adverse_share_by_age_band, population_stability
from credit_spark.jobs import scoring
from credit_spark.jobs.generate import generate_records
from credit_spark.jobs.scoring import load_baseline, observed_metrics, probability_column, score_run_date
from credit_spark.jobs.train import fitted_classifier, train
from credit_spark.lake.tables import (FEATURES, MONITORING, RUNS, SCORES, current_version, overwrite_table, register_views,
                                 table_exists)
from credit_spark.ml.binning import bin_key
from credit_spark.tracking import registry
from credit_spark.transforms.features import build_features

from conftest import TEST_SPARK

pytestmark = pytest.mark.training   # every test here fits models through the training flow

FAST = """
train:
  algorithms: [logistic_regression, scorecard]
  tuning: {method: none}
  selection: {method: holdout}
  comparison: {bootstrap_samples: 200}
  ensemble: {enabled: false}
"""
SEPTEMBER, AUGUST, JULY = date(2026, 9, 30), date(2026, 8, 31), date(2026, 7, 31)


def with_model(cfg, model: str):
    return dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, model=model))


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    """One trained lake for the module: 200 customers x 8 months + an unlabelled September."""
    base = tmp_path_factory.mktemp("scoring")
    overlay = base / "fast.yaml"
    overlay.write_text(FAST)
    cfg = dataclasses.replace(load_config([str(overlay)], lake=str(base / "lake")), spark=TEST_SPARK)
    labelled = generate_records(spark, 1600, seed=8)
    september = generate_records(spark, 200, seed=8, months=1, start_month=9, labeled=False) \
        .withColumn("Credit_Score", F.lit(None).cast("string"))
    overwrite_table(build_features(labelled.unionByName(september), cfg.spec), cfg.table_path(FEATURES),
                    partition_by=["period"])
    result = train(spark, cfg)
    return cfg, result, overlay


def scores(spark, cfg):
    return spark.read.format("delta").load(cfg.table_path(SCORES))


def test_scored_rows_carry_points_reasons_and_lineage(spark, trained):
    cfg, result, _ = trained
    out = score_run_date(spark, cfg, SEPTEMBER)
    assert out.rows == 200 and out.status in ("ok", "watch", "act")
    table = scores(spark, cfg).where(F.col("run_id") == out.run_id)
    assert table.count() == 200
    row = table.first()
    assert row.model_version == result.versions[result.selected] and row.features_version == out.features_version
    assert row.predicted_class in cfg.spec.label.classes
    assert sum(getattr(row, probability_column(c)) for c in cfg.spec.label.classes) == pytest.approx(1.0)
    # every row has between 0 and max_reasons reasons, ranked 1.., impacts positive and descending
    for r in table.select("reasons").collect():
        assert len(r.reasons) <= cfg.score.max_reasons
        assert [x.rank for x in r.reasons] == list(range(1, len(r.reasons) + 1))
        impacts = [x.impact for x in r.reasons]
        assert all(i > 0 for i in impacts) and impacts == sorted(impacts, reverse=True)
    assert table.where(F.size("reasons") > 0).count() > 100
    reasons = table.select(F.explode("reasons").alias("r")).select("r.*")
    # codes and texts from the dataset spec; history features speak through their base feature's
    # code; unconfigured features (e.g. Age) never appear; one reason per code and row
    assert reasons.where("code = 'R01'").count() > 0
    assert {(r.code, r.text) for r in reasons.where("feature = 'Outstanding_Debt'").collect()} <= \
        {("R01", "Amount owed on accounts is too high")}
    assert reasons.where("code IS NULL OR code LIKE 'R-%' OR feature = 'Age'").count() == 0
    per_row = table.select(F.size("reasons").alias("n"), F.size(F.array_distinct(F.col("reasons.code"))).alias("d"))
    assert per_row.where("n != d").count() == 0


def test_scorecard_reasons_are_its_points_below_the_best_bin(spark, trained):
    """Hand-check a few rows: points add up to score_points; reasons = the largest points lost."""
    cfg, result, _ = trained
    cfg = with_model(cfg, "scorecard")
    out = score_run_date(spark, cfg, AUGUST)
    card = fitted_classifier(registry.load_model(cfg, registry.resolve(cfg, "scorecard")))
    table: dict[str, dict[str, float]] = {}
    for r in card.points_by_bin_key():
        table.setdefault(r["feature"], {})[r["bin_key"]] = r["points"]
    edges = card.bin_edges()
    features = spark.read.format("delta").load(cfg.table_path(FEATURES)).where("period = 8")
    bins = features.select("record_id", *[bin_key(f, edges[f]).alias(f) for f in table])
    scored = scores(spark, cfg).where(F.col("run_id") == out.run_id).join(bins, "record_id")
    codes = cfg.spec.reason_codes

    def code_of(feature):
        base = feature.split("__")[0] if feature.endswith(("__prev", "__delta", "__mean3", "__max3", "__history")) \
            else feature
        reason = codes.get(feature) or codes.get(base)
        return reason.code if reason else None
    checked = 0
    for row in scored.orderBy("record_id").limit(5).collect():
        points = {f: table[f][row[f]] for f in table}
        assert sum(points.values()) == pytest.approx(row.score_points, abs=1e-6)
        lost = sorted(((max(table[f].values()) - p, f) for f, p in points.items()), key=lambda x: (-x[0], x[1]))
        expected, seen = [], set()
        for value, feature in lost:      # largest points lost first; coded features; one per code
            code = code_of(feature)
            if value > 1e-9 and code and code not in seen:
                seen.add(code)
                expected.append((code, feature, pytest.approx(value, abs=1e-6)))
        expected = expected[: cfg.score.max_reasons]
        assert [(x.code, x.feature, x.impact) for x in row.reasons] == expected
        checked += bool(expected)
    assert checked >= 3


def test_rerun_replaces_the_date_with_the_same_values(spark, trained):
    cfg, _, _ = trained
    first = score_run_date(spark, cfg, JULY)
    columns = ["record_id", "predicted_class", "score_points", "reasons"]
    before = scores(spark, cfg).where(F.col("run_date") == JULY).select(*columns).orderBy("record_id").collect()
    second = score_run_date(spark, cfg, JULY)
    after = scores(spark, cfg).where(F.col("run_date") == JULY)
    assert after.count() == first.rows == second.rows == 200
    assert after.select(*columns).orderBy("record_id").collect() == before
    assert {r.run_id for r in after.select("run_id").distinct().collect()} == {second.run_id}
    assert second.scores_version > first.scores_version


def test_table_properties_comments_and_monitoring(spark, trained):
    cfg, _, _ = trained
    score_run_date(spark, cfg, SEPTEMBER)
    detail = DeltaTable.forPath(spark, cfg.table_path(SCORES)).detail().first()
    props = detail.properties
    assert props["delta.enableChangeDataFeed"] == "true"
    assert props["delta.logRetentionDuration"] == "interval 761 days"      # 25 months
    assert props["delta.deletedFileRetentionDuration"] == "interval 761 days"
    assert detail.partitionColumns == ["run_date"] and "adverse-action" in detail.description
    comments = {f.name: f.metadata.get("comment") for f in scores(spark, cfg).schema.fields}
    assert all(comments.values()) and "MLflow" in comments["model_version"]
    monitor = spark.read.format("delta").load(cfg.table_path(MONITORING)).where(F.col("run_date") == SEPTEMBER)
    metrics = {(r.metric, r.name): r for r in monitor.collect()}
    assert metrics[("rows_in", "records")].value == 200 == metrics[("rows_out", "scores")].value
    assert ("psi", "score_points") in metrics
    assert {("csi", "Outstanding_Debt"), ("csi", "Occupation")} <= set(metrics)
    assert sum(r.value for (m, _), r in metrics.items() if m == "class_share") == pytest.approx(1.0)
    assert any(m == "adverse_share_by_age_band" for m, _ in metrics)
    assert sum(1 for m, _ in metrics if m == "run_status") == 1

    # the night's statistics were observed during the write: recomputed from the written table
    # (and the features' age) by the DataFrame paths, they agree
    written = scores(spark, cfg).where(F.col("run_date") == SEPTEMBER)
    counts = {r["predicted_class"]: r["count"] for r in written.groupBy("predicted_class").count().collect()}
    assert {c: metrics[("class_share", c)].value for c in cfg.spec.label.classes} == pytest.approx(
        {c: counts.get(c, 0) / 200 for c in cfg.spec.label.classes})
    baseline = load_baseline(cfg, registry.resolve(cfg, cfg.score.model))["features"]["score_points"]
    assert metrics[("psi", "score_points")].value == pytest.approx(
        population_stability(written, {"features": {"score_points": baseline}})["score_points"], abs=1e-12)
    ages = spark.read.format("delta").load(cfg.table_path(FEATURES)).select("record_id", cfg.spec.age_column)
    bands = adverse_share_by_age_band(written.join(ages, "record_id"), cfg.spec.age_column, "predicted_class",
                                      cfg.spec.label.classes[-1])
    assert {b["band"]: b["adverse_share"] for b in bands} == pytest.approx(
        {n: r.value for (m, n), r in metrics.items() if m == "adverse_share_by_age_band"})


def test_observed_metrics_wait_is_bounded(spark):
    df = spark.newSession().range(10)      # an Observation spoils its session for the rest (see score_run_date)
    waiting = Observation()
    df.observe(waiting, F.count(F.lit(1)).alias("rows"))        # no action runs: get would block
    assert observed_metrics(waiting, timeout_s=0.5) is None
    done = Observation()
    df.observe(done, F.count(F.lit(1)).alias("rows")).write.format("noop").mode("overwrite").save()
    assert observed_metrics(done, timeout_s=30) == {"rows": 10}


def test_the_caller_session_can_still_fit_and_use_models_after_a_night(spark, trained):
    """The night's Observation stays in a session of its own: a model fitted afterwards in the
    caller's session (its training summary holds that session) still runs in tasks."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.linalg import Vectors

    from pyspark.sql import SparkSession

    cfg, _, _ = trained
    score_run_date(spark, cfg, SEPTEMBER)
    # and the caller's session is the active one again: the next command of the same process
    # (the CLI's get_spark reuses the active session) must not pick up the night's
    assert SparkSession.getActiveSession()._jsparkSession.equals(spark._jsparkSession)
    df = spark.createDataFrame([(Vectors.dense([float(i)]), float(i % 2)) for i in range(20)], ["features", "label"])
    model = LogisticRegression(maxIter=5).fit(df)
    assert model.transform(df).groupBy("prediction").count().count() >= 1


def test_lost_observed_statistics_are_recomputed_from_the_written_rows(spark, trained, monkeypatch, caplog):
    cfg, _, _ = trained

    def monitoring_values():
        monitor = spark.read.format("delta").load(cfg.table_path(MONITORING)).where(F.col("run_date") == AUGUST)
        return {(r.metric, r.name): r.value for r in monitor.collect()}

    score_run_date(spark, cfg, AUGUST)
    observed = monitoring_values()
    monkeypatch.setattr(scoring, "observed_metrics", lambda observation, timeout_s: None)
    with caplog.at_level(logging.WARNING, logger="credit_spark.jobs.scoring"):
        score_run_date(spark, cfg, AUGUST)
    assert "statistics observed during the write are missing; recomputing them from the written rows" in caplog.text
    recomputed = monitoring_values()
    assert ("psi", "score_points") in recomputed and any(m == "adverse_share_by_age_band" for m, _ in recomputed)
    assert recomputed == pytest.approx(observed)


def test_concurrent_runs_for_two_dates_both_land(spark, trained):
    cfg, _, _ = trained
    results, errors = {}, []

    def run(day):
        try:
            results[day] = score_run_date(spark, cfg, day)
        except Exception as exc:   # surfaced below
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(d,)) for d in (date(2026, 5, 31), date(2026, 6, 30))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    table = scores(spark, cfg)
    for day, result in results.items():
        assert table.where((F.col("run_date") == day) & (F.col("run_id") == result.run_id)).count() == 200


def test_a_killed_run_leaves_the_previous_version_and_the_rerun_completes(spark, trained):
    cfg, _, overlay = trained
    day = date(2026, 4, 30)
    path = cfg.table_path(SCORES)
    score_run_date(spark, cfg, SEPTEMBER)            # the table exists with other dates
    before_version, before_rows = current_version(spark, path), scores(spark, cfg).count()
    cli = Path(sys.executable).parent / "credit-spark"
    proc = subprocess.Popen([str(cli), "--lake", cfg.lake.root, "--conf", str(overlay), "score", "--run-date",
                             day.isoformat()], stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "CREDIT_SPARK_ENV": "local"})
    deadline = time.time() + 300
    try:
        for line in proc.stderr:          # kill as soon as the write starts
            if "writing scores for run date" in line:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            assert time.time() < deadline, "the scoring subprocess never started writing"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert current_version(spark, path) == before_version
    assert scores(spark, cfg).count() == before_rows
    assert scores(spark, cfg).where(F.col("run_date") == day).count() == 0
    rerun = score_run_date(spark, cfg, day)
    assert rerun.rows == 200 and scores(spark, cfg).where(F.col("run_date") == day).count() == 200


def test_runs_hold_a_night_only_once_its_scores_and_monitoring_are_both_committed(spark, trained, monkeypatch):
    """``runs`` is written last: a night that dies after its scores commit and before its
    monitoring has scores but no runs row (readers see it is incomplete); its rerun adds it."""
    import credit_spark.jobs.scoring as scoring

    cfg, _, _ = trained
    day = date(2026, 1, 31)                      # a run date no other test of the module scores
    real = scoring.replace_where

    def monitoring_write_dies(df, path, *args, **kwargs):
        if path == cfg.table_path(MONITORING):
            raise RuntimeError("killed before the monitoring write")
        return real(df, path, *args, **kwargs)

    monkeypatch.setattr(scoring, "replace_where", monitoring_write_dies)
    with pytest.raises(RuntimeError, match="killed before the monitoring write"):
        score_run_date(spark, cfg, day)
    monkeypatch.setattr(scoring, "replace_where", real)
    night = scores(spark, cfg).where(F.col("run_date") == day)
    [died] = [r.run_id for r in night.select("run_id").distinct().collect()]
    assert night.count() == 200
    if table_exists(spark, cfg.table_path(RUNS)):   # other nights of the module may have written it
        runs = spark.read.format("delta").load(cfg.table_path(RUNS))
        assert runs.where((F.col("run_date") == day) | (F.col("run_id") == died)).count() == 0
    result = score_run_date(spark, cfg, day)
    [run] = spark.read.format("delta").load(cfg.table_path(RUNS)).where(F.col("run_date") == day).collect()
    assert (run.run_id, run.scores_version, run.rows, run.status) == (result.run_id, result.scores_version, 200,
                                                                        result.status)
    monitor = spark.read.format("delta").load(cfg.table_path(MONITORING)).where(F.col("run_date") == day)
    assert {r.run_id for r in monitor.collect()} == {run.run_id}
    assert run.monitoring_version == DeltaTable.forPath(spark, cfg.table_path(MONITORING)).history(1).first().version


def test_runs_records_every_completed_night_once_even_scored_before_runs_existed(spark, trained):
    """A lake scored by a release without ``runs`` (or whose ``runs`` append died after the
    monitoring committed): the next night records those nights too, so the shipped views (which
    read only nights in ``runs``) keep the lake's history; a second night adds only itself."""
    cfg, _, _ = trained
    shutil.rmtree(cfg.table_path(RUNS))
    result = score_run_date(spark, cfg, date(2026, 1, 31))     # a rescore: January's old night goes
    monitored = {r.run_id for r in spark.read.format("delta").load(cfg.table_path(MONITORING))
                 .where(F.col("metric") == "run_status").collect()}
    runs = spark.read.format("delta").load(cfg.table_path(RUNS))
    assert DeltaTable.forPath(spark, cfg.table_path(RUNS)).history().count() == 2   # created, then one merge
    assert sorted(r.run_id for r in runs.collect()) == sorted(monitored) and len(monitored) >= 4
    [new] = runs.where(F.col("scores_version").isNotNull()).collect()
    assert (new.run_id, new.rows) == (result.run_id, 200)
    earlier = runs.where(F.col("run_id") != result.run_id).collect()
    assert all(r.rows is None and r.status in ("ok", "watch", "act") and r.finished_at for r in earlier)
    registered = register_views(spark, cfg)
    assert "latest_scores" in registered
    assert spark.table("latest_scores").count() == scores(spark, cfg).select("customer_id").distinct().count()
    again = score_run_date(spark, cfg, date(2026, 1, 31))
    assert sorted(r.run_id for r in spark.read.format("delta").load(cfg.table_path(RUNS)).collect()) == \
        sorted(monitored | {again.run_id})


def test_drift_breach_writes_the_scores_then_fails(spark, trained):
    cfg, _, _ = trained
    # a night whose debts are ten times the training ones
    features = spark.read.format("delta").load(cfg.table_path(FEATURES))
    shifted = features.where("period = 3").withColumn("Outstanding_Debt", F.col("Outstanding_Debt") * 10 + 5000)
    overwrite_table(features.where("period != 3").unionByName(shifted), cfg.table_path(FEATURES),
                    partition_by=["period"])
    strict = dataclasses.replace(cfg, score=dataclasses.replace(
        cfg.score, monitoring=MonitoringSettings(psi_watch=0.1, psi_act=0.25, fail_on="act")))
    # the same night without the shift: the debt distribution is stable
    calm = score_run_date(spark, cfg, date(2026, 2, 28))
    assert calm.drift["Outstanding_Debt"] < 0.25
    # (the largest PSIs named in the message are history counts: March customers have two earlier
    # months, the August reference three — the table below is checked for the debt itself)
    with pytest.raises(DriftAlert, match=r"reached 'act'.*scores were written \(scores v\d+\); largest PSI: \w+"):
        score_run_date(spark, strict, date(2026, 3, 31))
    assert scores(spark, cfg).where(F.col("run_date") == date(2026, 3, 31)).count() == 200
    monitor = spark.read.format("delta").load(cfg.table_path(MONITORING)).where(F.col("run_date") == date(2026, 3, 31))
    debt = monitor.where("metric = 'csi' AND name = 'Outstanding_Debt'").first()
    assert debt.value > 0.25 and debt.status == "act"
    assert monitor.where("metric = 'run_status'").first().status == "act"


@pytest.mark.e2e
def test_tables_in_a_metastore_schema_instead_of_paths(spark, tmp_path):
    """lake.schema (Databricks / Unity Catalog style): every stage reads and writes named tables."""
    from credit_spark.config.loader import LakeSettings
    from credit_spark.jobs.features_job import run_features
    from credit_spark.jobs.ingest import ingest
    from credit_spark.lake.tables import ensure_schema, register_views

    overlay = tmp_path / "fast.yaml"
    overlay.write_text(FAST.replace("[logistic_regression, scorecard]", "[scorecard]"))
    cfg = load_config([str(overlay)], lake=str(tmp_path / "lake"))
    cfg = dataclasses.replace(cfg, spark=TEST_SPARK, lake=LakeSettings(root=str(tmp_path / "lake"), schema="cs_named"))
    ensure_schema(spark, cfg)
    generate_records(spark, 400, seed=3).write.option("header", True).csv(str(tmp_path / "in"))
    ingest(spark, cfg, str(tmp_path / "in"))
    run_features(spark, cfg)
    train(spark, cfg)
    out = score_run_date(spark, cfg, AUGUST)
    assert spark.catalog.tableExists("cs_named.scores") and spark.catalog.tableExists("cs_named.monitoring")
    assert spark.table("cs_named.scores").count() == out.rows == 50
    assert "latest_scores" in register_views(spark, cfg)
    assert spark.sql("SELECT count(*) FROM latest_scores").first()[0] == 50
    assert not (tmp_path / "lake" / "scores").exists()      # nothing written by path
    # features reads the named raw_records' change feed (table_changes): the shipped spec's
    # all_periods repair then rebuilds every period; with no new batch, nothing
    generate_records(spark, 50, seed=3, months=1, start_month=9).write.option("header", True).csv(
        str(tmp_path / "september"))
    ingest(spark, cfg, str(tmp_path / "september"))
    rebuilt = run_features(spark, cfg)
    assert rebuilt.mode == "full" and "all_periods" in rebuilt.reason
    assert run_features(spark, cfg).mode == "unchanged"
