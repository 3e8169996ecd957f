"""The decision rule learned on validation: macro-F1 weights, expected cost, exact transform, save/load."""
import json

import numpy as np
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import types as T

from credit_spark.config.loader import load_config
from credit_spark.errors import ConfigError
from credit_spark.ml.decision import DecisionRule, DecisionRuleModel, decide, macro_f1, confusion


SCHEMA = T.StructType([T.StructField("label", T.DoubleType()), T.StructField("probability", VectorUDT())])


def _frame(spark, rows):
    return spark.createDataFrame([(float(y), Vectors.dense(p)) for y, p in rows], SCHEMA)


def _imbalanced(spark):
    """Class 1 is rare and never the most probable class, but its probability separates it."""
    rows = [(0, [0.9, 0.1])] * 60 + [(0, [0.7, 0.3])] * 30 + [(0, [0.62, 0.38])] * 4 + \
           [(1, [0.62, 0.38])] * 8 + [(1, [0.7, 0.3])] * 2
    return _frame(spark, rows)


def _macro_f1(df, k):
    rows = df.select("label", "prediction").collect()
    labels = np.array([int(r[0]) for r in rows])
    predicted = np.array([int(r[1]) for r in rows])
    return macro_f1(confusion(labels, predicted, np.ones(len(rows)), k))


def test_macro_f1_weights_find_the_rare_class(spark):
    df = _imbalanced(spark)
    argmax = DecisionRule(numClasses=2, objective="argmax").fit(df)
    tuned = DecisionRule(numClasses=2).fit(df)
    assert argmax.weights() == [1.0, 1.0]
    assert _macro_f1(argmax.transform(df), 2) == pytest.approx(macro_f1(np.array([[94, 0], [10, 0]])), abs=1e-12)
    # the rare class's weight rises until p1 = 0.38 wins (not 0.3): 8 of 10 found, 4 false alarms
    assert tuned.transform(df).where("prediction = 1").count() == 12
    assert _macro_f1(tuned.transform(df), 2) == pytest.approx(macro_f1(np.array([[90, 4], [2, 8]])), abs=1e-12)
    w = tuned.weights()
    assert w[0] == 1.0 and 0.62 / 0.38 < w[1] < 0.7 / 0.3
    state = json.loads(tuned.getOrDefault("state"))
    assert state["validation_best"] > state["validation_start"] and state["rows"] == 104


def test_expected_cost_penalises_missing_the_adverse_class(spark):
    df = _imbalanced(spark)
    costs = [[0.0, 1.0], [20.0, 0.0]]           # approving a bad customer costs 20 good ones
    rule = DecisionRule(numClasses=2, objective="expected_cost", costMatrix=json.dumps(costs)).fit(df)
    by_p1 = {round(r.probability[1], 2): int(r.prediction) for r in rule.transform(df).collect()}
    # Bayes at w = 1 flags every row (p1 >= 1/21: cost 94); flagging p1 >= 0.3 costs 34, p1 >= 0.38 costs 4 + 2 x 20
    assert by_p1 == {0.1: 0, 0.3: 1, 0.38: 1}
    state = json.loads(rule.getOrDefault("state"))
    assert state["validation_start"] == pytest.approx(-94 / 104) and state["validation_best"] == pytest.approx(-34 / 104)
    assert "cost matrix" in rule.describe(["good", "bad"])


def test_transform_matches_the_numpy_rule_and_survives_save(spark, tmp_path):
    rng = np.random.default_rng(3)
    p = rng.dirichlet([1.0, 1.0, 1.0], size=300)
    df = _frame(spark, [(0, list(row)) for row in p])
    weights, costs = [1.0, 2.5, 0.4], [[0, 1, 4], [1, 0, 1], [9, 2, 0]]
    model = DecisionRuleModel(numClasses=3, costMatrix=json.dumps(costs), state=json.dumps({"weights": weights}))
    expected = decide(np.array(weights), p, np.array(costs, dtype=float))
    got = np.array([r.prediction for r in model.transform(df).collect()])
    assert (got == expected).all() and len(set(expected)) == 3
    PipelineModel(stages=[model]).write().overwrite().save(str(tmp_path / "m"))
    loaded = PipelineModel.load(str(tmp_path / "m")).stages[0]
    assert isinstance(loaded, DecisionRuleModel) and loaded.weights() == weights
    assert (np.array([r.prediction for r in loaded.transform(df).collect()]) == expected).all()


def test_null_or_wrong_size_vector_gets_no_class(spark):
    df = spark.createDataFrame([(0.0, None), (0.0, Vectors.dense([0.2, 0.8]))], SCHEMA)
    model = DecisionRuleModel(numClasses=3, state=json.dumps({"weights": [1.0, 1.0, 1.0]}))
    assert [r.prediction for r in model.transform(df).collect()] == [None, None]


@pytest.mark.parametrize("overlay, message", [
    ("train:\n  decision:\n    objective: expected_cost\n",
     r"train\.decision\.cost_matrix: objective expected_cost needs a 3 x 3 matrix"),
    ("train:\n  decision:\n    objective: expected_cost\n    cost_matrix: [[0, 1], [5, 0]]\n",
     r"train\.decision\.cost_matrix: objective expected_cost needs a 3 x 3"),
    ("train:\n  decision:\n    cost_matrix: [[0, 1, 2], [1, 0, 1], [5, 2, 0]]\n",
     r"train\.decision\.cost_matrix is used by objective expected_cost only"),
    ("train:\n  decision:\n    objective: cheapest\n", r"train\.decision\.objective: must be one of"),
])
def test_decision_config_errors_name_the_key(tmp_path, overlay, message):
    path = tmp_path / "overlay.yaml"
    path.write_text(overlay)
    with pytest.raises(ConfigError, match=message):
        load_config([str(path)])


def test_cost_matrix_config_is_accepted(tmp_path):
    path = tmp_path / "overlay.yaml"
    path.write_text("train:\n  decision:\n    objective: expected_cost\n    cost_matrix: [[0, 1, 2], [1, 0, 1], [5, 2, 0]]\n")
    cfg = load_config([str(path)])
    assert cfg.train.decision.cost_matrix == [[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [5.0, 2.0, 0.0]]
