import json
import math

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql.types import DoubleType, IntegerType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from credit_spark.ml.calibration import (
    EPS,
    FLOOR,
    ProbabilityCalibrator,
    ProbabilityCalibratorModel,
    expected_calibration_error,
    reliability_table,
)

SCHEMA = StructType([StructField("id", IntegerType()), StructField("label", DoubleType()),
                     StructField("probability", VectorUDT()), StructField("prediction", DoubleType())])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):   # NaN in, NaN out
        return np.exp(-np.logaddexp(0.0, -z))


def apply_calibration(probs: np.ndarray, method: str, curves: dict, num_classes: int) -> np.ndarray:
    """The numpy reference the Spark expressions are held to: calibrate an (n, k) array of
    probability rows with fitted curves."""
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != num_classes:
        raise ValueError(f"expected probability vectors of size {num_classes}, got shape {probs.shape}")

    def curve(k: int, p: np.ndarray) -> np.ndarray:
        c = curves[str(k)]
        if method == "isotonic":
            fitted = np.interp(p, np.asarray(c["boundaries"], dtype=float), np.asarray(c["predictions"], dtype=float))
        else:
            fitted = _sigmoid(c["slope"] * _logit(p) + c["intercept"])
        return np.where(np.isnan(p), np.nan, np.clip(fitted, FLOOR, 1.0 - FLOOR))   # np.interp may fill NaN

    if num_classes == 2:
        p1 = curve(1, probs[:, 1])
        return np.column_stack([1.0 - p1, p1])
    calibrated = np.column_stack([curve(k, probs[:, k]) for k in range(num_classes)])
    total = calibrated.sum(axis=1, keepdims=True)
    uniform = np.full_like(calibrated, 1.0 / num_classes)
    positive = np.isnan(total) | (total > 0)   # a NaN row stays NaN, not uniform
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(positive, calibrated / np.where(positive, total, 1.0), uniform)


def overconfident_binary(spark, offset: int = 0):
    """Per group, a true event rate q reported as the overconfident p = sigmoid(3 * logit(q)); 400 rows."""
    rows, n = [], 50
    for q in (0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9):
        p = 1.0 / (1.0 + math.exp(-3.0 * math.log(q / (1.0 - q))))
        events = round(q * n)
        for i in range(n):
            rows.append((offset + len(rows), 1.0 if i < events else 0.0, Vectors.dense([1.0 - p, p]),
                         1.0 if p > 0.5 else 0.0))
    return spark.createDataFrame(rows, SCHEMA)


def ece(df) -> float:
    return expected_calibration_error(reliability_table(df, "label", "probability", "prediction", bins=10))


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_lowers_ece_and_keeps_the_prediction(spark, method):
    validation, test = overconfident_binary(spark), overconfident_binary(spark, offset=1000)
    model = ProbabilityCalibrator(method=method).fit(validation)
    out = model.transform(test)
    raw_ece, calibrated_ece = ece(test), ece(out)
    assert raw_ece > 0.1
    assert calibrated_ece < 0.01 < raw_ece
    before = {r["id"]: r["prediction"] for r in test.select("id", "prediction").collect()}
    after = out.select("id", "prediction", "probability", "uncalibrated_probability").collect()
    assert {r["id"]: r["prediction"] for r in after} == before
    for r in after:
        assert r["probability"][0] + r["probability"][1] == pytest.approx(1.0, abs=1e-12)
    if method == "platt":   # the miscalibration is exactly logit-linear: slope 1/3, intercept 0
        curve = model.curves()["1"]
        assert curve["slope"] == pytest.approx(1 / 3, abs=1e-3)
        assert curve["intercept"] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_multiclass_vectors_sum_to_one_prediction_kept_raw_copied(spark, method):
    probs = [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7],
             [0.2, 0.2, 0.6], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4], [0.1, 0.6, 0.3], [0.4, 0.1, 0.5]]
    labels = [0, 1, 1, 1, 2, 0, 0, 2, 1, 2]
    preds = [0, 0, 1, 1, 2, 2, 1, 2, 1, 2]   # row 6: a tuned decision rule picked class 1, not the argmax
    rows = [(i, float(y), Vectors.dense(p), float(d)) for i, (y, p, d) in enumerate(zip(labels, probs, preds))]
    df = spark.createDataFrame(rows * 3, SCHEMA)
    out = ProbabilityCalibrator(method=method, numClasses=3).fit(df).transform(df)
    got = out.orderBy("id").collect()
    expected = df.orderBy("id").collect()
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert sum(g["probability"]) == pytest.approx(1.0, abs=1e-9)
        assert len(g["probability"]) == 3
        assert g["prediction"] == e["prediction"]
        assert g["uncalibrated_probability"] == e["probability"]
    assert any(g["probability"] != g["uncalibrated_probability"] for g in got)


def calibrated(spark, vectors: list[list[float]], method: str, curves: dict, k: int | None = None) -> np.ndarray:
    """The Spark stage's calibrated vectors, in input order (``k`` classes: the vectors' size by default)."""
    k = k or len(vectors[0])
    model = ProbabilityCalibratorModel(method=method, numClasses=k, state=json.dumps({"method": method, "curves": curves}))
    rows = [(i, 0.0, Vectors.dense(v), 0.0) for i, v in enumerate(vectors)]
    got = {r["id"]: r["probability"].toArray() for r in model.transform(spark.createDataFrame(rows, SCHEMA)).collect()}
    return np.array([got[i] for i in range(len(vectors))])


def test_multiclass_renormalises_and_never_claims_certainty(spark):
    curves = {str(k): {"boundaries": [0.0, 0.5, 1.0], "predictions": [0.0, 0.0, 1.0]} for k in range(3)}
    out = calibrated(spark, [[0.75, 1.0, 0.0], [0.2, 0.3, 0.5]], "isotonic", curves)
    # curves give (0.5, 1, 0) and (0, 0, 0); kept within [FLOOR, 1 - FLOOR], then renormalised
    first = np.array([0.5, 1 - FLOOR, FLOOR])
    np.testing.assert_allclose(out, [first / first.sum(), [1 / 3, 1 / 3, 1 / 3]], atol=1e-12)
    binary = calibrated(spark, [[0.9, 0.1], [0.0, 1.0]], "platt", {"1": {"slope": 1.0, "intercept": math.log(3.0)}})
    np.testing.assert_allclose(binary[:, 1], [0.25, 1 - FLOOR], atol=1e-5)
    np.testing.assert_allclose(binary.sum(axis=1), [1.0, 1.0])


def test_a_vector_of_the_wrong_size_is_named(spark):
    curves = {str(k): {"boundaries": [0.0, 1.0], "predictions": [0.0, 1.0]} for k in range(3)}
    for vector in ([0.5, 0.5], [0.25, 0.25, 0.25, 0.25]):
        with pytest.raises(Exception, match="probability: expected probability vectors of size 3, got size "
                                            f"{len(vector)}"):
            calibrated(spark, [vector], "isotonic", curves, k=3)


CURVES = {
    # repeated boundaries (steps), a single-point curve, values outside [FLOOR, 1 - FLOOR]
    "isotonic": {"0": {"boundaries": [0.1, 0.3, 0.3, 0.6, 0.9], "predictions": [0.0, 0.2, 0.5, 0.5, 1.0]},
                 "1": {"boundaries": [0.4], "predictions": [0.35]},
                 "2": {"boundaries": [0.0, 0.2, 0.2, 0.2, 1.0], "predictions": [0.05, 0.1, 0.3, 0.4, 0.9]}},
    "platt": {"0": {"slope": 0.7, "intercept": -0.2}, "1": {"slope": 2.5, "intercept": 0.4},
              "2": {"slope": 1.0, "intercept": math.log(3.0)}},
}


@pytest.mark.parametrize("method", ["isotonic", "platt"])
@pytest.mark.parametrize("num_classes", [2, 3])
def test_spark_transform_matches_the_numpy_reference(spark, method, num_classes):
    """Exact knots, points between, below and above every curve, 0 and 1, NaN."""
    curves = {c: v for c, v in CURVES[method].items() if num_classes == 3 or c == "1"}
    points = [0.0, 0.05, 0.1, 0.2, 0.25, 0.3, 0.3000001, 0.4, 0.45, 0.6, 0.75, 0.9, 0.95, 1.0]
    rng = np.random.default_rng(7)
    vectors = [[1.0 - p, p] for p in points] if num_classes == 2 else \
        [list(v) for v in rng.dirichlet([1.0] * 3, size=40)] + [[p, p, 1.0 - p] for p in points]
    vectors.append([math.nan] * num_classes)
    rows = [(i, 0.0, Vectors.dense(v), 0.0) for i, v in enumerate(vectors)]
    model = ProbabilityCalibratorModel(method=method, numClasses=num_classes,
                                       state=json.dumps({"method": method, "curves": curves}))
    out = model.transform(spark.createDataFrame(rows, SCHEMA))
    assert out.columns == [*SCHEMA.fieldNames(), "uncalibrated_probability"]
    got = {r["id"]: r["probability"] for r in out.collect()}
    expected = apply_calibration(np.array(vectors), method, curves, num_classes)
    assert np.isnan(expected[-1]).all()
    np.testing.assert_allclose(np.array([got[i].toArray() for i in range(len(vectors))]), expected,
                               rtol=0, atol=1e-15)      # NaN where expected NaN (assert_allclose's equal_nan)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_round_trips_inside_a_saved_pipeline(spark, tmp_path, method):
    df = overconfident_binary(spark)
    fitted = Pipeline(stages=[ProbabilityCalibrator(method=method)]).fit(df)
    fitted.write().overwrite().save(str(tmp_path / "p"))
    loaded = PipelineModel.load(str(tmp_path / "p"))
    stage = loaded.stages[0]
    assert isinstance(stage, ProbabilityCalibratorModel)
    assert stage.curves() == fitted.stages[0].curves()
    assert stage.getOrDefault("method") == method
    assertDataFrameEqual(loaded.transform(df), fitted.transform(df))


def test_invalid_method_and_input_are_named(spark):
    with pytest.raises(ValueError, match=r"method must be one of 'isotonic', 'platt', got 'beta'"):
        ProbabilityCalibrator(method="beta")
    calibrator = ProbabilityCalibrator()
    with pytest.raises(ValueError, match="method must be one of 'isotonic', 'platt', got 'sigmoid'"):
        calibrator.set(calibrator.method, "sigmoid")
    with pytest.raises(TypeError, match="dataset must be a DataFrame but got list"):
        ProbabilityCalibrator().fit([1, 2])


def test_reliability_table_and_ece_by_hand(spark):
    df = spark.createDataFrame([
        (1.0, Vectors.dense([0.2, 0.8]), 1.0),   # conf 0.8 -> bin 3, correct
        (0.0, Vectors.dense([0.4, 0.6]), 1.0),   # conf 0.6 -> bin 2, wrong
        (1.0, Vectors.dense([0.7, 0.3]), 1.0),   # predicted class 1 though not the argmax: conf 0.3 -> bin 1, correct
        (0.0, Vectors.dense([1.0, 0.0]), 0.0),   # conf 1.0 -> clamped into the last bin 3, correct
    ], StructType([StructField("y", DoubleType()), StructField("p", VectorUDT()), StructField("pred", DoubleType())]))
    table = reliability_table(df, "y", "p", prediction_col="pred", bins=4)
    assert table == [
        {"bin": 1, "n": 1, "confidence": pytest.approx(0.3, abs=1e-12), "accuracy": 1.0},
        {"bin": 2, "n": 1, "confidence": pytest.approx(0.6, abs=1e-12), "accuracy": 0.0},
        {"bin": 3, "n": 2, "confidence": pytest.approx(0.9, abs=1e-12), "accuracy": 1.0},
    ]
    # 1/4 * 0.7 + 1/4 * 0.6 + 2/4 * 0.1
    assert expected_calibration_error(table) == pytest.approx(0.375, abs=1e-12)
    assert expected_calibration_error([]) == 0.0


def _largest_generated_method(df) -> int:
    """Bytes of the largest method in the plan's generated code (-1 when a stage does not compile)."""
    stages = df._jdf.queryExecution().debug().codegenToSeq()
    return max(stages.apply(i)._3().maxMethodCodeSize() for i in range(stages.size()))


def test_a_curve_with_thousands_of_boundaries_matches_numpy_and_compiles_small(spark):
    """Isotonic curves fitted on millions of validation rows have hundreds to thousands of
    boundaries (steps included: repeated boundaries); their generated code must compile, well
    within the JVM's 64 KB per method (a tree of CASEs with a leaf per segment took 47 KB at 100
    boundaries and did not compile at 1000: Spark fell back to slower code with an error in the
    log)."""
    rng = np.random.default_rng(11)
    boundaries = np.sort(np.concatenate([rng.uniform(0.0, 1.0, 2500), np.repeat(rng.uniform(0.0, 1.0, 250), 2)]))
    predictions = np.sort(rng.uniform(0.0, 1.0, boundaries.size))
    curves = {str(c): {"boundaries": boundaries.tolist(), "predictions": predictions.tolist()} for c in range(3)}
    vectors = [list(v) for v in rng.dirichlet([1.0] * 3, size=300)] + \
        [[b, b, 1.0 - b] for b in boundaries[::97]] + [[math.nan] * 3]
    rows = [(i, 0.0, Vectors.dense(v), 0.0) for i, v in enumerate(vectors)]
    model = ProbabilityCalibratorModel(method="isotonic", numClasses=3,
                                       state=json.dumps({"method": "isotonic", "curves": curves}))
    out = model.transform(spark.createDataFrame(rows, SCHEMA))
    assert out.columns == [*SCHEMA.fieldNames(), "uncalibrated_probability"]
    got = {r["id"]: r["probability"] for r in out.collect()}
    np.testing.assert_allclose(np.array([got[i].toArray() for i in range(len(vectors))]),
                               apply_calibration(np.array(vectors), "isotonic", curves, 3), rtol=0, atol=1e-15)
    largest = _largest_generated_method(out)
    assert 0 < largest < 32_768       # -1: a stage that did not compile


@pytest.mark.parametrize("size", [2, 3, 4, 5, 9, 10, 17, 50])
def test_search_edges_to_the_last_bit_and_a_filter_on_the_result(spark, size):
    """Searches of every depth up to a 10M-row model's (repeated boundaries first and last; p on,
    between and one ulp beside each knot) equal numpy to the last bit, and a filter on the
    calibrated probability, which the optimizer pushes below the search by substituting its
    columns into the condition, keeps the right rows."""
    xs = np.sort(np.random.default_rng(size).uniform(0.05, 0.95, size))
    xs[1] = xs[0]                                     # steps at both ends (still sorted when size < 4)
    xs[-2] = xs[-1]
    ys = np.sort(np.random.default_rng(size + 1).uniform(0.0, 1.0, size))
    curves = {"1": {"boundaries": xs.tolist(), "predictions": ys.tolist()}}
    points = np.unique(np.concatenate([xs, np.nextafter(xs, 0.0), np.nextafter(xs, 1.0), (xs[1:] + xs[:-1]) / 2,
                                       [0.0, 0.5, 1.0]]))
    vectors = [[1.0 - p, p] for p in points]
    rows = [(i, 0.0, Vectors.dense(v), 0.0) for i, v in enumerate(vectors)]
    model = ProbabilityCalibratorModel(method="isotonic", numClasses=2,
                                       state=json.dumps({"method": "isotonic", "curves": curves}))
    out = model.transform(spark.createDataFrame(rows, SCHEMA))
    expected = apply_calibration(np.array(vectors), "isotonic", curves, 2)
    got = {r["id"]: r["probability"].toArray() for r in out.collect()}
    np.testing.assert_array_equal(np.array([got[i] for i in range(len(vectors))]), expected)
    kept = {r["id"] for r in out.where(vector_to_array("probability")[1] > 0.5).select("id").collect()}
    assert kept == {i for i in range(len(vectors)) if expected[i, 1] > 0.5}


# --------------------------------------------------------------------------- choosing the method
def _squashed(spark, n=400, seed=11):
    """Binary scores that rank well but are squashed towards 0.5: P(bad) = 0.45 + 0.1 * sigmoid(z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-3 * z))).astype(float)
    p1 = 0.45 + 0.1 / (1 + np.exp(-z))
    rows = [(i, float(y[i]), Vectors.dense([1 - p1[i], p1[i]]), float(p1[i] > 0.5)) for i in range(n)]
    return spark.createDataFrame(rows, SCHEMA)


def test_auto_calibration_is_chosen_on_held_out_halves(spark):
    from pyspark.sql import functions as F

    from credit_spark.config.loader import CalibrationSettings
    from credit_spark.ml.tuning import choose_calibration

    df = _squashed(spark)
    choice = choose_calibration(df, ["good", "bad"], "label", F.col("id") % 2, CalibrationSettings(method="auto"))
    table = choice.candidates
    assert set(table) == {"none", "isotonic", "platt"}
    # the squashed scores have a poor log-loss; both calibrators fix most of it on rows they did not see
    assert table["none"]["log_loss"] > table["platt"]["log_loss"] + 0.05
    # Platt is monotone: the binary ranking is kept exactly, so the AUC is the uncalibrated one
    assert table["platt"]["auc"] == pytest.approx(table["none"]["auc"], abs=2e-3)
    eligible = [m for m in table if m == "none" or table[m]["auc"] >= table["none"]["auc"] - 0.002]
    assert choice.method == min(eligible, key=lambda m: table[m]["log_loss"]) and choice.method != "none"


def test_fixed_calibration_method_is_not_searched(spark):
    from pyspark.sql import functions as F

    from credit_spark.config.loader import CalibrationSettings
    from credit_spark.ml.tuning import choose_calibration

    choice = choose_calibration(_squashed(spark, n=50), ["good", "bad"], "label", F.col("id") % 2,
                                CalibrationSettings(method="isotonic"))
    assert choice.method == "isotonic" and choice.candidates == {}
