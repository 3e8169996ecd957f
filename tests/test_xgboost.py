"""XGBoost on Spark as algorithm ``xgboost``: early stopping, typed grid, importance, save/load, config."""
import dataclasses

import pytest
from pyspark.ml import PipelineModel
from pyspark.sql import functions as F

from credit_spark.config.loader import load_config
from credit_spark.errors import ConfigError
from credit_spark.jobs.generate import generate_records
from credit_spark.jobs.train import with_label_index
from credit_spark.ml.models import (LABEL_INDEX, balanced_weights, build_pipeline, importance, param_grid,
                                 with_class_weights, xgboost_workers)
from credit_spark.ml.tuning import MetricEvaluator, boosting_rounds, fit_tuned
from credit_spark.transforms.features import build_features
from credit_spark.transforms.splits import make_splits

pytestmark = pytest.mark.training   # every test here fits models through the training flow


@pytest.fixture(scope="module")
def splits(spark, tmp_path_factory):
    cfg = load_config(lake=str(tmp_path_factory.mktemp("lake")))
    classes = cfg.spec.label.classes
    features = build_features(generate_records(spark, 2400, seed=5), cfg.spec).where("label IS NOT NULL")
    s = make_splits(features.transform(with_label_index(classes)), cfg.train)
    weights = balanced_weights({r[0]: r[1] for r in s.train.groupBy(LABEL_INDEX).count().collect()}, 3)
    parts = (s.train.transform(with_class_weights(weights)).cache(), s.validation.cache(), s.test.cache())
    yield cfg, parts
    for p in parts:
        p.unpersist()


def _settings(cfg, **changes):
    return dataclasses.replace(cfg.train, xgboost=dataclasses.replace(cfg.train.xgboost, **changes))


def test_grid_values_keep_the_settings_type(splits):
    cfg, _ = splits
    settings = _settings(cfg, grid={"max_depth": [3.0, 5.0], "learning_rate": [0.1]})
    grid = param_grid(build_pipeline(cfg.spec, "xgboost", settings), "xgboost", settings)
    depths = sorted(pm[p] for pm in grid for p in pm if p.name == "max_depth")
    assert depths == [3, 5] and all(isinstance(d, int) for d in depths)
    assert {pm[p] for pm in grid for p in pm if p.name == "learning_rate"} == {0.1}


def test_xgboost_stops_early_picks_on_validation_and_round_trips(splits, tmp_path):
    cfg, (train_df, validation_df, test_df) = splits
    classes = cfg.spec.label.classes
    settings = _settings(cfg, n_estimators=300, early_stopping_rounds=10, learning_rate=0.3,
                         grid={"max_depth": [2, 4]})
    evaluator = MetricEvaluator(metricName="macro_f1", classes=classes, labelCol=LABEL_INDEX)
    result = fit_tuned(build_pipeline(cfg.spec, "xgboost", settings), "xgboost", settings, train_df,
                       validation_df, evaluator)
    assert result.method == "early_stopping + train_validation_split"
    assert [g["params"]["max_depth"] for g in result.grid] == [2, 4]
    best = max(result.grid, key=lambda g: g["metric"])
    assert result.best_params == best["params"]
    assert all(1 <= g["params"]["rounds"] < 300 for g in result.grid)     # stopped before the last round
    booster = result.model.stages[-1]
    assert booster.getOrDefault("num_workers") == xgboost_workers("auto", train_df.sparkSession) == 2
    assert booster.getOrDefault("max_depth") == result.best_params["max_depth"]

    scored = result.model.transform(test_df).select("record_id", "prediction", "probability")
    accuracy = scored.join(test_df.select("record_id", LABEL_INDEX), "record_id") \
        .agg(F.avg((F.col("prediction") == F.col(LABEL_INDEX)).cast("double"))).first()[0]
    assert accuracy > 0.55            # three classes: chance is about 0.33
    path = str(tmp_path / "xgb")
    result.model.write().overwrite().save(path)
    again = PipelineModel.load(path).transform(test_df).select("record_id", "prediction", "probability")
    assert sorted(again.collect()) == sorted(scored.collect())

    top = importance(result.model, test_df.limit(0))
    assert top["kind"] == "feature importance (total gain)"
    values = [i["value"] for i in top["items"]]
    assert values == sorted(values, reverse=True) and 0.3 < sum(values) <= 1.0 + 1e-9
    assert "__imputed" not in top["items"][0]["feature"]


@pytest.mark.parametrize("overlay, message", [
    ("train:\n  xgboost:\n    grid:\n      num_workers: [1, 2]\n", r"train\.xgboost\.grid: unknown parameter 'num_workers'"),
    ("train:\n  xgboost:\n    subsample: 0\n", r"train\.xgboost needs .*0 < subsample"),
    ("train:\n  xgboost:\n    num_workers: 0\n", r"train\.xgboost needs .*num_workers 'auto' or >= 1"),
    ("train:\n  xgboost:\n    device: tpu\n", r"train\.xgboost\.device: must be one of"),
])
def test_xgboost_config_errors_name_the_key(tmp_path, overlay, message):
    path = tmp_path / "overlay.yaml"
    path.write_text(overlay)
    with pytest.raises(ConfigError, match=message):
        load_config([str(path)])


def test_num_workers_follow_the_task_slots(spark):
    assert xgboost_workers("auto", spark) == spark.sparkContext.defaultParallelism
    assert xgboost_workers(3, spark) == 3


def test_reasons_are_xgboosts_own_contributions(splits):
    import numpy as np
    import xgboost as xgb

    from credit_spark.ml.models import FEATURES_RAW, vector_slot_names
    from credit_spark.ml.reasons import contribution_reasons, source_feature

    cfg, (train_df, validation_df, test_df) = splits
    settings = _settings(cfg, n_estimators=40, learning_rate=0.3)
    evaluator = MetricEvaluator(metricName="macro_f1", classes=cfg.spec.label.classes, labelCol=LABEL_INDEX)
    model = fit_tuned(build_pipeline(cfg.spec, "xgboost", settings), "xgboost", settings, train_df,
                      validation_df, evaluator).model
    stage = contribution_reasons(model, train_df.limit(0), adverse=2, num_classes=3, max_reasons=40)
    explained = PipelineModel(stages=[*model.stages, stage])
    rows = explained.transform(test_df.orderBy("record_id").limit(20)).select(FEATURES_RAW, "reason_features").collect()
    assert "__reason_contributions" not in explained.transform(test_df.limit(1)).columns

    names = [source_feature(n) for n in vector_slot_names(model, test_df.limit(0))]
    matrix = np.array([r[FEATURES_RAW].toArray() for r in rows])
    rounds = boosting_rounds(model)              # the early-stopped model predicts with its best rounds
    contribs = model.stages[-1].get_booster().predict(xgb.DMatrix(matrix, missing=np.nan), pred_contribs=True,
                                                      strict_shape=True, iteration_range=(0, rounds))
    contribs = contribs[:, 2, :-1]               # the adverse class's margin, without the bias term
    for row, expected in zip(rows, contribs):
        per_feature: dict[str, float] = {}
        for name, value in zip(names, expected):
            per_feature[name] = per_feature.get(name, 0.0) + float(value)
        want = sorted(((f, v) for f, v in per_feature.items() if v > 1e-9), key=lambda fv: (-fv[1], fv[0]))
        got = [(r.feature, r.impact) for r in row.reason_features]
        assert [f for f, _ in got] == [f for f, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-5, abs=1e-6)
    assert any(row.reason_features for row in rows)


def test_training_rows_that_arrive_in_num_workers_partitions(splits):
    """Training (1 partition) + early-stopping rows (1 partition) = a union of exactly 2 = num_workers
    partitions: without the forced shuffle, Spark's barrier mode refuses the union (German credit)."""
    cfg, (train_df, validation_df, _) = splits
    settings = _settings(cfg, n_estimators=20)
    evaluator = MetricEvaluator(metricName="macro_f1", classes=cfg.spec.label.classes, labelCol=LABEL_INDEX)
    result = fit_tuned(build_pipeline(cfg.spec, "xgboost", settings), "xgboost", settings, train_df.coalesce(1),
                       validation_df.coalesce(1), evaluator)
    assert 1 <= result.best_params["rounds"] <= 20
