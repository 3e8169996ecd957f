"""The stacked ensemble stage: its arithmetic, its members' columns kept apart, save and load."""
import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import functions as F

from pyspark.ml.functions import array_to_vector

from credit_spark.ml.ensemble import (EPS, StackedEnsembleModel, apply_stacker, candidate_label, choose_combiner,
                                   cross_fit, fit_stacker, log_loss, stack_features, stacker_model)

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


def test_mean_combiner_weighs_every_member_alike(members):
    """``mean``: a logistic regression on the members' mean log-probability per class, saved as the
    same k x M*k matrix (each member's block V / M), so the stage scores it like any stacker."""
    df, models = members
    held_out = {name: m.transform(df) for name, m in zip(["a", "b"], models)}
    rows = stack_features(held_out, ["record_id", "customer_id"], "label_index", 2)
    state = fit_stacker(rows, "label_index", 2, 0.001, "mean")
    w = np.array(state["coefficients"])
    assert w.shape == (2, 4)
    assert w[:, 0:2] == pytest.approx(w[:, 2:4], abs=1e-12)
    # the same fit by hand: MLlib on the mean log-probabilities, coefficients halved per member
    means = rows.select("label_index", array_to_vector(F.array(
        *[(F.col("stack_input")[c] + F.col("stack_input")[2 + c]) / 2 for c in range(2)])).alias("x"))
    direct = LogisticRegression(featuresCol="x", labelCol="label_index", family="multinomial", regParam=0.001,
                                maxIter=200, standardization=False).fit(means)
    assert w[:, 0:2] == pytest.approx(direct.coefficientMatrix.toArray() / 2, abs=1e-9)
    assert state["intercepts"] == pytest.approx(list(direct.interceptVector.toArray()), abs=1e-9)
    with pytest.raises(ValueError, match="unknown combiner 'median'"):
        fit_stacker(rows, "label_index", 2, 0.001, "median")


def test_combiner_chosen_by_cross_fitted_log_loss(spark, members):
    """A member of pure noise: the mean gives it half the say, the stacker learns to ignore it, so
    ``stacked`` has the lower log-loss on rows it was not fitted on and is chosen."""
    df, models = members
    rng = np.random.default_rng(11)
    noise = spark.createDataFrame([(r.record_id, float(u)) for r, u in zip(df.select("record_id").collect(),
                                                                            rng.uniform(0.05, 0.95, df.count()))],
                                  "record_id string, u double")
    noisy = (df.join(noise, "record_id")
             .withColumn("probability", array_to_vector(F.array(1 - F.col("u"), F.col("u")))))
    held_out = {"a": models[0].transform(df), "noise": noisy}
    rows = stack_features(held_out, ["record_id", "customer_id"], "label_index", 2).cache()
    half = F.abs(F.hash("customer_id")) % 2
    candidates = [("mean", 0.001), ("stacked", 0.001), ("stacked", 0.1)]
    choice = choose_combiner(rows, half, "label_index", 2, candidates)
    assert set(choice.log_loss) == {candidate_label(c, r) for c, r in candidates}
    assert choice.combiner == "stacked"
    assert choice.log_loss[choice.label] == min(choice.log_loss.values())
    assert choice.log_loss[choice.label] < choice.log_loss[candidate_label("mean", 0.001)] - 0.02
    # the winner's cross-fitted predictions come with it (its decision rule is learned on them)
    assert choice.predictions.count() == rows.count()
    assert log_loss(choice.predictions, "label_index") == pytest.approx(choice.log_loss[choice.label])
    # each loss is that of the cross-fitted predictions: every row predicted by the other half's fit
    again = cross_fit(rows, half, "label_index", 2, "stacked", 0.1)
    assert again.count() == rows.count()
    assert log_loss(again, "label_index") == pytest.approx(choice.log_loss[candidate_label("stacked", 0.1)])
