import dataclasses
import math
from datetime import date

import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F

from credit_spark import registry
from credit_spark.errors import ModelNotFoundError, NoRecordsError, TableNotFoundError
from credit_spark.features import build_features
from credit_spark.generate import generate_records
from credit_spark.scoring import probability_column, score_run_date
from credit_spark.tables import FEATURES, SCORES, overwrite_table, table_exists
from credit_spark.train import LABEL_INDEX, evaluate, is_test_customer, split_by_customer, train


@pytest.fixture()
def small_cfg(cfg):
    """Fewer, smaller trees: the tests check behaviour, not accuracy."""
    rf = dataclasses.replace(cfg.train.random_forest, num_trees=5, max_depth=4)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, random_forest=rf))


@pytest.fixture()
def features_lake(spark, small_cfg):
    """A features table built from 1,600 generated rows (200 customers x 8 months) + 200 September rows."""
    labelled = generate_records(spark, 1600, seed=5)
    september = generate_records(spark, 200, seed=5, months=1, start_month=9, labeled=False) \
        .withColumn("Credit_Score", F.lit(None).cast("string"))
    features = build_features(labelled.unionByName(september), small_cfg.spec)
    overwrite_table(features, small_cfg.table_path(FEATURES), partition_by=["period"])
    return small_cfg


def test_split_keeps_each_customer_on_one_side(spark):
    df = spark.range(4000).select((F.col("id") % 500).cast("string").alias("customer_id"), "id")
    train_df, test_df = split_by_customer(df, 0.25, seed=3)
    train_c = {r[0] for r in train_df.select("customer_id").distinct().collect()}
    test_c = {r[0] for r in test_df.select("customer_id").distinct().collect()}
    assert not train_c & test_c
    assert len(train_c) + len(test_c) == 500
    assert 0.15 < len(test_c) / 500 < 0.35
    # seeded: another seed moves customers
    other = df.where(is_test_customer(F.col("customer_id"), 0.25, seed=4)).select("customer_id").distinct()
    assert {r[0] for r in other.collect()} != test_c


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


def test_score_without_a_trained_model_fails_before_writing(spark, features_lake):
    with pytest.raises(ModelNotFoundError, match="run `credit-spark train` first"):
        score_run_date(spark, features_lake, date(2026, 9, 30))
    assert not table_exists(spark, features_lake.table_path(SCORES))


def test_train_without_features_names_the_missing_table(spark, small_cfg):
    with pytest.raises(TableNotFoundError, match="table 'features' does not exist.*run `credit-spark features`"):
        train(spark, small_cfg)


def test_train_register_score_and_rerun(spark, features_lake):
    cfg = features_lake
    result = train(spark, cfg)
    assert result.version == 1
    assert set(result.metrics) == {"logistic_regression", "random_forest", "scorecard"}
    assert result.train_rows + result.test_rows == 1600
    labels = spark.read.format("delta").load(cfg.table_path(FEATURES)).where("label IS NOT NULL")
    majority = labels.groupBy("label").count().agg(F.max("count")).first()[0] / labels.count()
    for name, m in result.metrics.items():
        assert m.accuracy > majority + 0.05, (name, m.accuracy, majority)   # beats always-the-majority
        assert m.auc > 0.7, (name, m.auc)
    card = spark.read.format("delta").load(cfg.table_path("scorecard"))
    assert card.where("model_version = 1").count() > 0
    assert set(card.columns) == {"model_version", "feature", "bin", "woe", "points", "iv"}
    chosen = registry.resolve(spark, cfg)
    assert chosen.model_name == result.selected and chosen.model_version == 1

    first = score_run_date(spark, cfg, date(2026, 9, 30))
    assert first.rows == 200
    scores = spark.read.format("delta").load(cfg.table_path(SCORES))
    expected_cols = ["customer_id", "record_id", "run_date", "model_name", "model_version", "predicted_class",
                     *[probability_column(c) for c in cfg.spec.label.classes], "features_version", "scored_at"]
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


def test_a_class_missing_from_training_is_named(spark, features_lake):
    features = spark.read.format("delta").load(features_lake.table_path(FEATURES))
    overwrite_table(features.where("label IS NULL OR label != 'Poor'"), features_lake.table_path(FEATURES))
    with pytest.raises(NoRecordsError, match=r"no record of class\(es\) \['Poor'\]"):
        train(spark, features_lake)


def test_score_a_date_without_records(spark, features_lake):
    train(spark, features_lake)
    with pytest.raises(NoRecordsError, match=r"no records for run date 2026-11-30 .*nothing was written"):
        score_run_date(spark, features_lake, date(2026, 11, 30))
    assert not table_exists(spark, features_lake.table_path(SCORES))


def test_missing_model_files_are_named(spark, features_lake, tmp_path):
    train(spark, features_lake)
    record = registry.resolve(spark, features_lake)
    import shutil
    shutil.rmtree(record.path)
    with pytest.raises(ModelNotFoundError, match=f"cannot load model {record.model_name} v1 from {record.path}"):
        score_run_date(spark, features_lake, date(2026, 9, 30))
