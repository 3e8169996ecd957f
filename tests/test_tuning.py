"""Grid search: customers stay within one fold, and the search picks the better grid point."""
import dataclasses

import pytest
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import functions as F

from credit_spark.ml.models import LABEL_INDEX, balanced_weights, param_grid
from credit_spark.ml.tuning import MetricEvaluator, fit_tuned
from credit_spark.transforms.splits import CV_FOLD, with_cv_fold

pytestmark = pytest.mark.training   # every test here fits models through the training flow


@pytest.fixture(scope="module")
def toy(spark):
    """40 customers x 5 months; the label follows x with 10% noise."""
    df = spark.range(200).select((F.col("id") % 40).cast("string").alias("customer_id"),
                                 (F.col("id") / 200.0).alias("x"), (F.pmod(F.xxhash64("id"), F.lit(10)) == 0).alias("noisy"))
    label = F.when(F.col("noisy"), F.col("x") <= 0.5).otherwise(F.col("x") > 0.5).cast("double")
    return df.withColumn(LABEL_INDEX, label).drop("noisy")


def _settings(cfg, method):
    lr = dataclasses.replace(cfg.train.logistic_regression, grid={"reg_param": [0.0, 50.0]})
    return dataclasses.replace(cfg.train, logistic_regression=lr,
                               tuning=dataclasses.replace(cfg.train.tuning, method=method, num_folds=3))


def _pipeline():
    return Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="features"),
                            LogisticRegression(featuresCol="features", labelCol=LABEL_INDEX)])


def test_cv_folds_are_groups_of_customers(toy):
    folded = toy.transform(with_cv_fold(3, seed=1))
    per_customer = folded.groupBy("customer_id").agg(F.countDistinct(CV_FOLD).alias("folds"))
    assert per_customer.where("folds > 1").count() == 0
    assert {r[0] for r in folded.select(CV_FOLD).distinct().collect()} == {0, 1, 2}


@pytest.mark.parametrize("method", ["cross_validation", "train_validation_split"])
def test_search_picks_the_lower_log_loss(spark, cfg, toy, method):
    # a huge L2 penalty flattens the probabilities towards 0.5: its log-loss is worse
    train_df, validation_df = toy.where("customer_id < '3'"), toy.where("customer_id >= '3'")
    evaluator = MetricEvaluator(metricName="log_loss", classes=["good", "bad"], labelCol=LABEL_INDEX)
    result = fit_tuned(_pipeline(), "logistic_regression", _settings(cfg, method), train_df, validation_df,
                       evaluator)
    assert result.method == method
    assert result.best_params == {"reg_param": 0.0}
    assert [g["params"] for g in result.grid] == [{"reg_param": 0.0}, {"reg_param": 50.0}]
    assert result.grid[0]["metric"] < result.grid[1]["metric"]
    assert result.model.stages[-1].getRegParam() == 0.0


def test_no_grid_or_tuning_off_fits_once(cfg, toy):
    evaluator = MetricEvaluator(metricName="macro_f1", classes=["good", "bad"], labelCol=LABEL_INDEX)
    result = fit_tuned(_pipeline(), "logistic_regression", _settings(cfg, "none"), toy, toy, evaluator)
    assert result.method == "none" and result.grid == []


def test_grid_values_take_the_param_types_and_weights_balance_classes(cfg):
    grid = param_grid(_pipeline(), "logistic_regression", _settings(cfg, "cross_validation"))
    assert [{p.name: v for p, v in g.items()} for g in grid] == [{"regParam": 0.0}, {"regParam": 50.0}]
    assert balanced_weights({0: 300, 1: 100}, 2) == {0: 400 / 600, 1: 400 / 200}


def test_network_grid_values_take_the_network_params_types(spark, tmp_path):
    from credit_spark.config.loader import load_config
    from credit_spark.ml.models import build_pipeline

    overlay = tmp_path / "nn.yaml"
    overlay.write_text("train:\n  neural_network:\n    grid: {numeric_encoding: [standard, quantile], "
                       "num_bins: [8, 16], hidden_layers: [[64], [32, 32]]}\n")
    cfg = load_config([str(overlay)], env="local")
    grid = param_grid(build_pipeline(cfg.spec, "neural_network", cfg.train), "neural_network", cfg.train)
    maps = [{p.name: v for p, v in g.items()} for g in grid]
    assert len(maps) == 8
    assert maps[0] == {"hiddenLayers": [64], "numBins": 8, "numericEncoding": "standard"}
    assert maps[-1] == {"hiddenLayers": [32, 32], "numBins": 16, "numericEncoding": "quantile"}
    assert type(maps[0]["numBins"]) is int


def test_evaluator_confusion_metrics_by_hand(spark):
    # truth x prediction: good->good 3, good->bad 1, bad->bad 1, bad->good 1
    rows = [(0.0, 0.0)] * 3 + [(0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]
    df = spark.createDataFrame(rows, f"{LABEL_INDEX} double, prediction double")

    def metric(name):
        return MetricEvaluator(metricName=name, classes=["good", "bad"], labelCol=LABEL_INDEX).evaluate(df)

    f1_good, f1_bad = 2 * 0.75 * 0.75 / 1.5, 2 * 0.5 * 0.5 / 1.0
    assert metric("accuracy") == pytest.approx(4 / 6)
    assert metric("macro_f1") == pytest.approx((f1_good + f1_bad) / 2)
    assert metric("weighted_f1") == pytest.approx((4 * f1_good + 2 * f1_bad) / 6)


def test_kfold_predicts_every_row_out_of_fold_and_refits_the_best(spark, cfg, toy):
    from pyspark.ml.functions import vector_to_array

    from credit_spark.ml.tuning import fit_kfold

    data = toy.withColumn("record_id", F.monotonically_increasing_id()).cache()
    evaluator = MetricEvaluator(metricName="log_loss", classes=["good", "bad"], labelCol=LABEL_INDEX)
    folded = fit_kfold(_pipeline(), "logistic_regression", _settings(cfg, "train_validation_split"), data,
                       evaluator, folds=4, keep=["record_id", "customer_id", LABEL_INDEX])
    oof = folded.out_of_fold
    assert oof.count() == data.count() == oof.select("record_id").distinct().count()
    assert folded.tuning.method == "kfold (4 folds, out of fold)"
    assert folded.tuning.best_params == {"reg_param": 0.0}          # the huge penalty loses out of fold too
    assert folded.tuning.grid[0]["metric"] < folded.tuning.grid[1]["metric"]
    # the refit saw every row: same coefficients as one fit of the best grid point on all of them
    full = _pipeline().copy({_pipeline().getStages()[-1].regParam: 0.0}).fit(data)
    assert folded.model.stages[-1].coefficients.toArray() == pytest.approx(full.stages[-1].coefficients.toArray())
    # out-of-fold predictions are not the refit's: a row's model never saw its customer
    refit = folded.model.transform(data).select("record_id", vector_to_array("probability")[1].alias("p"))
    joined = oof.select("record_id", vector_to_array("probability")[1].alias("q")).join(refit, "record_id")
    assert joined.where(F.abs(F.col("p") - F.col("q")) > 1e-9).count() > 0


@pytest.mark.parametrize("method, rows, expected", [("auto", 10_000, True), ("auto", 10_001, False),
                                                    ("kfold", 10**7, True), ("holdout", 10, False)])
def test_kfold_is_used_on_small_data_unless_told(cfg, method, rows, expected):
    from credit_spark.jobs.train import use_kfold

    assert use_kfold(dataclasses.replace(cfg.train.selection, method=method), rows) is expected
