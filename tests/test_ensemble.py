"""The stacked ensemble stage: its arithmetic, its members' columns kept apart, save and load."""
import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import functions as F

from credit_spark.ensemble import (EPS, StackedEnsembleModel, apply_stacker, fit_stacker, stack_features,
                                   stacker_model)

pytestmark = pytest.mark.training   # every test here fits models through the training flow


@pytest.fixture(scope="module")
def members(spark):
    """Two logistic regressions on different inputs, with the same intermediate column names."""
    rng = np.random.default_rng(4)
    n = 300
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = ((x1 + x2 + rng.normal(scale=0.8, size=n)) > 0).astype(float)
    df = spark.createDataFrame([(f"r{i}", f"c{i % 100}", float(x1[i]), float(x2[i]), float(y[i])) for i in range(n)],
                               "record_id string, customer_id string, x1 double, x2 double, label_index double")

    def fit(column):
        return Pipeline(stages=[VectorAssembler(inputCols=[column], outputCol="features"),
                                LogisticRegression(featuresCol="features", labelCol="label_index")]).fit(df)
    return df.cache(), [fit("x1"), fit("x2")]


def test_stack_is_softmax_of_weighted_member_log_probabilities(members):
    df, models = members
    held_out = {name: m.transform(df) for name, m in zip(["a", "b"], models)}
    rows = stack_features(held_out, ["record_id", "customer_id"], "label_index", 2)
    state = fit_stacker(rows, "label_index", 2, 0.01)
    ensemble = stacker_model(["a", "b"], models, 2, state)
    out = ensemble.transform(df)
    assert out.columns == [*df.columns, "probability", "prediction"]   # no member's columns leak
    got = {r.record_id: (r.probability.toArray(), r.prediction) for r in out.collect()}

    p = {name: {r.record_id: r.probability.toArray() for r in frame.collect()} for name, frame in held_out.items()}
    w, b = np.array(state["coefficients"]), np.array(state["intercepts"])
    for record, (probability, prediction) in got.items():
        z = np.log(np.maximum(np.concatenate([p["a"][record], p["b"][record]]), EPS))
        margin = w @ z + b
        expected = np.exp(margin - margin.max()) / np.exp(margin - margin.max()).sum()
        assert probability == pytest.approx(expected, abs=1e-12)
        assert prediction == float(np.argmax(margin))
    # both inputs carry signal: the stack uses both members, and beats either alone on log-loss
    weights = {m["feature"]: m["value"] for m in ensemble.member_weights()}
    assert weights["a"] > 0.1 and weights["b"] > 0.1
    labels = {r.record_id: int(r.label_index) for r in df.collect()}

    def log_loss(prob):
        return -np.mean([np.log(max(prob[r][labels[r]], 1e-15)) for r in labels])
    stacked = {r: v[0] for r, v in got.items()}
    assert log_loss(stacked) < min(log_loss(p["a"]), log_loss(p["b"])) - 0.05

    # the same arithmetic on held-out rows (without members) as in the stage
    direct = {r.record_id: r.probability.toArray() for r in apply_stacker(rows, state, 2).collect()}
    assert all(direct[r] == pytest.approx(got[r][0], abs=1e-12) for r in got)


def test_ensemble_saves_and_loads_inside_a_pipeline(members, tmp_path):
    df, models = members
    rows = stack_features({n: m.transform(df) for n, m in zip(["a", "b"], models)},
                          ["record_id", "customer_id"], "label_index", 2)
    ensemble = stacker_model(["a", "b"], models, 2, fit_stacker(rows, "label_index", 2, 0.01))
    path = str(tmp_path / "ensemble")
    PipelineModel(stages=[ensemble]).write().overwrite().save(path)
    loaded = PipelineModel.load(path)
    stage = loaded.stages[0]
    assert isinstance(stage, StackedEnsembleModel) and stage.getOrDefault("memberNames") == ["a", "b"]
    assert len(stage.members) == 2
    before = ensemble.transform(df).select("record_id", "probability").orderBy("record_id").collect()
    after = loaded.transform(df).select("record_id", "probability").orderBy("record_id").collect()
    assert before == after


def test_stacker_needs_every_class(members):
    df, models = members
    rows = stack_features({"a": models[0].transform(df).where(F.col("label_index") == 0)},
                          ["record_id", "customer_id"], "label_index", 2)
    with pytest.raises(ValueError, match="saw 1 of 2 classes"):
        fit_stacker(rows, "label_index", 2, 0.01)
