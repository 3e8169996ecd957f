import dataclasses
import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F

from credit_spark.errors import ModelNotFoundError, NoRecordsError, TableNotFoundError
from credit_spark.evaluation.comparison import bootstrap_differences
from credit_spark.jobs.generate import generate_records
from credit_spark.jobs.scoring import probability_column, score_run_date
from credit_spark.jobs.train import LABEL_INDEX, decide_promotion, evaluate, train
from credit_spark.lake.tables import FEATURES, SCORES, overwrite_table, table_exists
from credit_spark.ml.metrics import equal_count_bands, log_loss_and_auc
from credit_spark.report import load_results
from credit_spark.tracking import registry
from credit_spark.tracking.wheel import own_wheel
from credit_spark.transforms.features import build_features
from credit_spark.transforms.splits import make_splits, split_by_customer

pytestmark = pytest.mark.training   # every test here fits models through the training flow


def fast(cfg, **train_changes):
    """Fewer, smaller trees, no grid search, a short bootstrap: these tests check behaviour, not accuracy."""
    t = cfg.train
    return dataclasses.replace(cfg, train=dataclasses.replace(
        t, random_forest=dataclasses.replace(t.random_forest, num_trees=5, max_depth=4),
        xgboost=dataclasses.replace(t.xgboost, n_estimators=60, learning_rate=0.2),
        tuning=dataclasses.replace(t.tuning, method="none"),
        selection=dataclasses.replace(t.selection, method="holdout"),
        comparison=dataclasses.replace(t.comparison, bootstrap_samples=200), **train_changes))


@pytest.fixture()
def small_cfg(cfg):
    return fast(cfg)


@pytest.fixture()
def features_lake(spark, small_cfg):
    """A features table built from 1,600 generated rows (200 customers x 8 months) + 200 September rows."""
    labelled = generate_records(spark, 1600, seed=5)
    september = generate_records(spark, 200, seed=5, months=1, start_month=9, labeled=False) \
        .withColumn("Credit_Score", F.lit(None).cast("string"))
    features = build_features(labelled.unionByName(september), small_cfg.spec)
    overwrite_table(features, small_cfg.table_path(FEATURES), partition_by=["period"])
    return small_cfg


def _customers(df):
    return {r[0] for r in df.select("customer_id").distinct().collect()}


def test_split_keeps_each_customer_on_one_side(spark):
    df = spark.range(4000).select((F.col("id") % 500).cast("string").alias("customer_id"), "id")
    train_df, validation_df, test_df = split_by_customer(df, 0.25, 0.2, seed=3)
    sides = [_customers(d) for d in (train_df, validation_df, test_df)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert sum(map(len, sides)) == 500
    assert 0.15 < len(sides[2]) / 500 < 0.35 and 0.1 < len(sides[1]) / 500 < 0.3
    # seeded: another seed moves customers
    assert _customers(split_by_customer(df, 0.25, 0.2, seed=4)[2]) != sides[2]


def test_out_of_time_split_tests_on_the_last_period(spark, cfg):
    df = spark.range(900).select((F.col("id") % 100).cast("string").alias("customer_id"),
                                 (F.col("id") % 9 + 1).cast("int").alias("period"))
    splits = make_splits(df, dataclasses.replace(cfg.train, split="out_of_time", out_of_time_test_periods=2))
    assert {r[0] for r in splits.test.select("period").distinct().collect()} == {8, 9}
    assert splits.train.where("period >= 8").count() == 0 and splits.validation.where("period >= 8").count() == 0
    assert not _customers(splits.train) & _customers(splits.validation)
    assert splits.train.count() + splits.validation.count() + splits.test.count() == 900
    assert "period(s) [8, 9]" in splits.description
    with pytest.raises(NoRecordsError, match="needs more than 9 labelled period"):
        make_splits(df, dataclasses.replace(cfg.train, split="out_of_time", out_of_time_test_periods=9))


def test_promotion_rule_both_ways():
    assert decide_promotion("rf", 0.70, None, None, "macro_f1", 0.01).decision == "promoted"
    won = decide_promotion("rf", 0.720, "lr v1", 0.700, "macro_f1", 0.01)
    assert won.decision == "promoted" and "+0.0200 >= margin 0.01" in won.reason
    lost = decide_promotion("rf", 0.705, "lr v1", 0.700, "macro_f1", 0.01)
    assert lost.decision == "kept" and "+0.0050 < margin 0.01" in lost.reason
    broken = decide_promotion("rf", 0.6, "lr v1", None, "macro_f1", 0.01)
    assert broken.decision == "promoted" and "cannot be evaluated" in broken.reason


def test_logged_models_pin_what_loading_them_imports():
    import pyspark

    from credit_spark._version import __version__

    pins = dict(p.split("==") for p in registry.model_requirements("scorecard"))
    assert pins["pyspark"] == pyspark.__version__ and pins["credit-spark"] == __version__
    # with the wheel the model carries, credit_spark is that file, relative to the model folder
    carried = registry.model_requirements("scorecard", wheel=Path("/tmp/x/credit_spark-9.9.9-py3-none-any.whl"))
    assert carried[0] == "code/credit_spark-9.9.9-py3-none-any.whl"
    assert carried[1:] == [p for p in registry.model_requirements("scorecard") if not p.startswith("credit-spark")]
    assert {"mlflow", "numpy", "pandas", "pyarrow"} <= set(pins) and "torch" not in pins and "xgboost" not in pins
    import xgboost
    boosted = dict(p.split("==") for p in registry.model_requirements("xgboost"))
    assert boosted["xgboost"] == xgboost.__version__ and "scikit-learn" in boosted
    # the ensemble needs what its members need, and nothing for members the run did not train
    stacked = dict(p.split("==") for p in registry.model_requirements("ensemble", ["xgboost", "scorecard"]))
    assert "xgboost" in stacked and "torch" not in stacked
    try:
        import torch
    except ImportError:
        return
    network = dict(p.split("==") for p in registry.model_requirements("neural_network"))
    assert network["torch"] == torch.__version__.split("+")[0]     # PyPI's version, without a local build label


def test_bootstrap_of_a_model_against_itself_and_a_clear_winner():
    # cells: y, yhat_model, yhat_baseline, bucket_model, bucket_baseline, count (binary, bucket 0..49)
    same = np.array([[0, 0, 0, 10, 10, 300], [0, 1, 1, 30, 30, 50], [1, 1, 1, 40, 40, 120], [1, 0, 0, 20, 20, 30]])
    for metric, (diff, low, high) in bootstrap_differences(same, 2, 200, 0.95, seed=1).items():
        assert diff == 0 and low == 0 and high == 0, metric
    # the model is right wherever the baseline is wrong, on 80 of 500 rows
    better = np.array([[0, 0, 0, 10, 10, 300], [0, 0, 1, 10, 30, 50], [1, 1, 1, 40, 40, 120], [1, 1, 0, 40, 20, 30]])
    result = bootstrap_differences(better, 2, 500, 0.95, seed=1)
    diff, low, high = result["accuracy"]
    assert diff == pytest.approx(80 / 500)
    assert 0 < low < diff < high
    assert result["auc"][1] > 0 and result["macro_f1"][1] > 0


def test_equal_count_bands_by_hand():
    # 4 buckets of P(bad): 10 rows (1 bad), 0 rows, 5 rows (2 bad), 5 rows (4 bad); 2 bands of 10 rows
    bands = equal_count_bands([10, 0, 5, 5], [1, 0, 2, 4], bands=2)
    assert bands == [{"band": 1, "low": 0.0, "high": 0.25, "n": 10, "bad": 1, "bad_rate": 0.1},
                     {"band": 2, "low": 0.5, "high": 1.0, "n": 10, "bad": 6, "bad_rate": 0.6}]
    # a bucket of 18 tied scores fills three of four bands; the last two rows share the fourth
    tied = equal_count_bands([18, 1, 1], [2, 1, 1], bands=4)
    assert [(b["n"], b["bad"]) for b in tied] == [(18, 2), (2, 2)]


def test_metrics_from_confusion_matrix(spark):
    # truth/prediction pairs: class 0 -> [0, 0, 1], class 1 -> [1, 1, 1, 0], class 2 -> [2]
    pairs = [(0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (1, 1), (1, 0), (2, 2)]
    rows = [(float(a), float(b), Vectors.dense([1.0 if j == b else 0.0 for j in range(3)])) for a, b in pairs]
    df = spark.createDataFrame(rows, [LABEL_INDEX, "prediction", "probability"])
    m = evaluate(df, ["A", "B", "C"])
    assert m.confusion == [[2, 1, 0], [1, 3, 0], [0, 0, 1]]
    assert m.accuracy == pytest.approx(6 / 8)
    assert m.per_class["A"]["precision"] == pytest.approx(2 / 3)
    assert m.per_class["A"]["recall"] == pytest.approx(2 / 3)
    assert m.per_class["B"]["precision"] == pytest.approx(3 / 4)
    assert m.per_class["C"]["f1"] == pytest.approx(1.0)
    assert m.macro_f1 == pytest.approx((2 / 3 + 3 / 4 + 1.0) / 3)
    assert m.weighted_f1 == pytest.approx((3 * 2 / 3 + 4 * 3 / 4 + 1 * 1.0) / 8)
    # one-hot probabilities: the Brier score is 2 per wrong row, ECE = |0.75 - 1.0|
    assert m.brier == pytest.approx(2 * 2 / 8)
    assert m.ece == pytest.approx(0.25)


def test_probability_metrics_by_hand(spark):
    # binary, adverse class 1 with scores 0.1, 0.4 (class 0) and 0.35, 0.8 (class 1):
    # 3 of the 4 (event, non-event) pairs are ordered right -> AUC 0.75; KS = max|TPR - FPR| = 0.5
    rows = [(0.0, 0.1), (0.0, 0.4), (1.0, 0.35), (1.0, 0.8)]
    df = spark.createDataFrame([(y, float(p >= 0.5), Vectors.dense([1 - p, p])) for y, p in rows],
                               [LABEL_INDEX, "prediction", "probability"])
    m = evaluate(df, ["good", "bad"])
    assert m.auc == pytest.approx(0.75)
    assert m.gini == pytest.approx(0.5)
    assert m.ks == pytest.approx(0.5)
    assert m.log_loss == pytest.approx(-(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4)
    assert m.brier == pytest.approx(2 * (0.1 ** 2 + 0.4 ** 2 + 0.65 ** 2 + 0.2 ** 2) / 4)
    # choosing a calibration measures just these two, in one job: the same values
    assert log_loss_and_auc(df, 2, LABEL_INDEX) == (pytest.approx(m.log_loss), pytest.approx(0.75), 4)


def test_log_loss_and_auc_equal_the_full_evaluation_on_three_classes(spark):
    rng = np.random.default_rng(4)
    rows = []
    for i in range(300):
        p = rng.dirichlet([1.0, 2.0, 1.5])
        y = int(rng.choice(3, p=0.5 * p + 0.5 / 3))        # labels related to the scores, not equal to them
        rows.append((float(y), float(np.argmax(p)), Vectors.dense(p.tolist())))
    rows.append((0.0, 0.0, Vectors.dense([0.0, 1.0, 0.0])))  # a zero probability for the truth: log-loss floored
    df = spark.createDataFrame(rows, [LABEL_INDEX, "prediction", "probability"])
    m = evaluate(df, ["A", "B", "C"])
    loss, auc, n = log_loss_and_auc(df, 3, LABEL_INDEX)
    assert (loss, auc, n) == (pytest.approx(m.log_loss, rel=1e-12), pytest.approx(m.auc, rel=1e-12), 301)
    assert 0.5 < auc < 1 and loss > 1.0
    with pytest.raises(NoRecordsError, match="no rows"):
        log_loss_and_auc(df.limit(0), 3, LABEL_INDEX)


def test_score_without_a_trained_model_fails_before_writing(spark, features_lake):
    from pathlib import Path

    from credit_spark.evaluation.run_report import render_report

    with pytest.raises(ModelNotFoundError, match="no MLflow store at .*mlflow.db .*run `credit-spark train` first"):
        score_run_date(spark, features_lake, date(2026, 9, 30))
    assert not table_exists(spark, features_lake.table_path(SCORES))
    with pytest.raises(ModelNotFoundError, match="no MLflow store at"):
        render_report(features_lake)
    assert not (Path(features_lake.lake.root) / "mlflow").exists()      # a read command creates no store


def test_train_and_score_on_features_of_another_spec_stop_before_any_run(spark, features_lake):
    """A spec that gained a column since `features` was built: named before any fit or MLflow run."""
    import dataclasses

    from credit_spark.config.loader import NumericRule
    from credit_spark.errors import MissingColumnError

    spec = dataclasses.replace(features_lake.spec, numeric={**features_lake.spec.numeric, "Wealth": NumericRule()})
    changed = dataclasses.replace(features_lake, spec=spec)
    with pytest.raises(MissingColumnError, match=r"features v0 lacks column\(s\) Wealth that dataset spec "
                                                 r"'credit_score' needs .*run `credit-spark features`"):
        train(spark, changed)
    experiment = registry.configure(changed)
    assert registry.training_runs(experiment) == []


def test_train_without_features_names_the_missing_table(spark, small_cfg):
    with pytest.raises(TableNotFoundError, match="table 'features' does not exist.*run `credit-spark features`"):
        train(spark, small_cfg)


def test_train_register_promote_score_and_rerun(spark, features_lake):
    cfg = features_lake
    result = train(spark, cfg)
    assert set(result.metrics) == {"logistic_regression", "random_forest", "xgboost", "scorecard", "ensemble"}
    assert result.train_rows + result.validation_rows + result.test_rows == 1600
    labels = spark.read.format("delta").load(cfg.table_path(FEATURES)).where("label IS NOT NULL")
    majority = labels.groupBy("label").count().agg(F.max("count")).first()[0] / labels.count()
    reported = load_results(result.report_dir)["models"]
    for name, m in result.metrics.items():
        assert m.accuracy > majority + 0.05, (name, m.accuracy, majority)   # beats always-the-majority
        assert m.auc > 0.7, (name, m.auc)
        # calibration chosen per model on validation halves; the test AUC before and after is reported
        choice = reported[name]["calibration"]
        if name == "ensemble":   # a logistic regression over the members' calibrated probabilities
            assert choice["method"] == "stacked" and not m.uncalibrated
            tuning = reported[name]["tuning"]
            assert "stacking of logistic_regression, random_forest, xgboost, scorecard" in tuning["method"]
            # every combiner and L2 strength judged by cross-fitted log-loss; the lowest is the one used
            assert [p["params"] for p in tuning["grid"]] == [
                {"combiner": "mean", "reg_param": 0.001}, *({"combiner": "stacked", "reg_param": r}
                                                            for r in (0.001, 0.01, 0.1))]
            best = min(tuning["grid"], key=lambda point: point["metric"])
            assert tuning["best_params"] == best["params"]
        elif choice["method"] == "none":
            assert not m.uncalibrated and "before" not in m.reliability
        else:
            assert set(choice["candidates"]) == {"none", "isotonic", "platt"}
            assert m.uncalibrated["auc"] > 0.7 and m.reliability["before"] and m.reliability["after"]
        assert "learned on validation for macro_f1" in reported[name]["decision_rule"]
    assert result.selected == max(result.validation_metrics, key=result.validation_metrics.get)
    assert {d.model for d in result.comparison} == {"logistic_regression", "random_forest", "xgboost", "ensemble"}
    assert all(d.ci_low <= d.difference <= d.ci_high for d in result.comparison)
    # first run: no champion yet, the selected model is promoted and is what `score` uses
    assert result.promotion.decision == "promoted" and result.promotion.reason == "no champion yet"
    chosen = registry.resolve(cfg)
    assert (chosen.model_name, chosen.model_version) == (result.selected, result.versions[result.selected])
    assert registry.resolve(cfg, "scorecard").model_version == result.versions["scorecard"]
    card = spark.read.format("delta").load(cfg.table_path("scorecard"))
    assert card.where(F.col("model_version") == result.versions["scorecard"]).count() > 0
    assert set(card.columns) == {"model_version", "feature", "bin", "woe", "points", "iv"}
    import mlflow.pyfunc
    requirements = Path(mlflow.pyfunc.get_model_dependencies(f"models:/{chosen.registered_model}/{chosen.model_version}"))
    # the model carries the wheel of the code that trained it (tests/test_model_portability.py loads one)
    assert set(requirements.read_text().split()) == set(registry.model_requirements(
        chosen.model_name, cfg.train.algorithms, own_wheel()))
    assert (requirements.parent / "code" / own_wheel().name).is_file()
    results = load_results(result.report_dir)
    assert results["promotion"]["decision"] == "promoted"
    assert results["run"]["mlflow_run_id"] == result.run_id
    assert results["models"][result.selected]["metrics"]["macro_f1"] == pytest.approx(
        result.metrics[result.selected].macro_f1)

    first = score_run_date(spark, cfg, date(2026, 9, 30))
    assert first.rows == 200 and first.model_version == chosen.model_version
    scores = spark.read.format("delta").load(cfg.table_path(SCORES))
    expected_cols = ["customer_id", "record_id", "run_date", "predicted_class",
                     *[probability_column(c) for c in cfg.spec.label.classes], "score_points", "reasons",
                     "model_name", "model_version", "features_version", "run_id", "scored_at"]
    assert scores.columns == expected_cols
    probs = scores.select(sum(F.col(probability_column(c)) for c in cfg.spec.label.classes).alias("s"))
    assert probs.where(F.abs(F.col("s") - 1.0) > 1e-6).count() == 0

    # another date (August, labelled records are scoreable too), then rerun September
    score_run_date(spark, cfg, date(2026, 8, 31))
    before = {r.record_id: r.predicted_class for r in scores.where("run_date = DATE'2026-09-30'").collect()}
    rerun = score_run_date(spark, cfg, date(2026, 9, 30))
    scores = spark.read.format("delta").load(cfg.table_path(SCORES))
    counts = {str(r.run_date): r["count"] for r in scores.groupBy("run_date").count().collect()}
    assert counts == {"2026-09-30": 200, "2026-08-31": 200}
    assert rerun.scores_version == first.scores_version + 2
    after = {r.record_id: r.predicted_class for r in scores.where("run_date = DATE'2026-09-30'").collect()}
    assert after == before                      # same model, same records, same answers

    # the stacked ensemble and XGBoost score by name too, with reasons (XGBoost's from its SHAP values)
    for model_name, day in (("ensemble", date(2026, 7, 31)), ("xgboost", date(2026, 6, 30))):
        named = dataclasses.replace(cfg, score=dataclasses.replace(cfg.score, model=model_name))
        scored = score_run_date(spark, named, day)
        assert scored.rows == 200 and scored.model_version == result.versions[model_name]
        rows = spark.read.format("delta").load(cfg.table_path(SCORES)).where(F.col("run_date") == F.lit(day))
        assert {r.model_name for r in rows.select("model_name").distinct().collect()} == {model_name}
        assert rows.where(F.size("reasons") > 0).count() > 0
        assert rows.where(F.abs(sum(F.col(probability_column(c)) for c in cfg.spec.label.classes) - 1) > 1e-6) \
            .count() == 0

    # a second run whose challenger cannot clear an impossible margin: the champion stays
    strict = fast(cfg, algorithms=["logistic_regression", "scorecard"],
                  promotion=dataclasses.replace(cfg.train.promotion, margin=1.0))
    second = train(spark, strict)
    assert second.promotion.decision == "kept"
    assert second.promotion.champion_before == f"{result.selected} v{result.versions[result.selected]}"
    assert "< margin 1.0" in second.promotion.reason
    assert registry.resolve(cfg).model_version == chosen.model_version
    assert second.versions["logistic_regression"] > result.versions["logistic_regression"]


def test_a_class_missing_from_training_is_named(spark, features_lake):
    features = spark.read.format("delta").load(features_lake.table_path(FEATURES))
    overwrite_table(features.where("label IS NULL OR label != 'Poor'"), features_lake.table_path(FEATURES))
    with pytest.raises(NoRecordsError, match=r"no record of class\(es\) \['Poor'\]"):
        train(spark, features_lake)


def test_score_a_date_without_records_and_a_missing_model(spark, features_lake):
    cfg = fast(features_lake, algorithms=["scorecard"], calibration=dataclasses.replace(
        features_lake.train.calibration, method="none"))
    train(spark, cfg)
    with pytest.raises(NoRecordsError, match=r"no records for run date 2026-11-30 .*nothing was written"):
        score_run_date(spark, cfg, date(2026, 11, 30))
    assert not table_exists(spark, cfg.table_path(SCORES))
    import shutil
    shutil.rmtree(f"{cfg.lake.root}/mlflow/artifacts")
    with pytest.raises(ModelNotFoundError, match=r"cannot load model scorecard \(models:/credit_spark_credit_score/1\)"):
        score_run_date(spark, cfg, date(2026, 9, 30))
    assert not table_exists(spark, cfg.table_path(SCORES))
