"""Probability calibration as a pyspark.ml Estimator/Model pair, plus reliability diagnostics.

``ProbabilityCalibrator`` is fitted on a **validation** set's predictions of an already-fitted
classifier and appended as the last stage of that classifier's ``PipelineModel``, so one saved
``PipelineModel`` serves calibrated scoring::

    preds = classifier_model.transform(validation)                        # doctest: +SKIP
    calibrator = ProbabilityCalibrator(method="isotonic", numClasses=3).fit(preds)
    served = PipelineModel(stages=[*classifier_model.stages, calibrator])

Methods (fitted per calibrated class in Spark, so the data never reaches the driver; only the
fitted curves do, and they live as JSON in the model's ``state`` param):

* ``isotonic``: ``pyspark.ml.regression.IsotonicRegression`` of ``label == k`` on ``p_k``; the
  boundaries and predictions are kept and applied with linear interpolation between boundaries,
  clamped outside their range (``np.interp`` semantics, as MLlib predicts);
* ``platt``: the maximum-likelihood logistic regression of ``label == k`` on the single feature
  ``logit(clip(p_k, 1e-6, 1 - 1e-6))`` (:func:`fit_platt`: one aggregation into fine buckets of
  the logit, Newton's method on the driver); applied as ``sigmoid(slope * logit(p) + intercept)``.

Binary models calibrate ``p(class 1)`` only and set ``p(class 0) = 1 - p1``. Multiclass models
calibrate each class one-vs-rest and renormalise the vector to sum to one (uniform when every
calibrated value is 0).

The model copies the input vector to ``rawProbabilityCol`` and overwrites ``probabilityCol``
with built-in expressions written as SQL text (:func:`calibration_sql`): an isotonic curve finds
each value's segment by an unrolled binary search over its boundaries (one small projection per
step, :func:`with_segment_search`, so the generated code grows with log2 of the boundaries) and
applies ``np.interp``'s arithmetic, Platt is numpy's ``exp(-logaddexp(0, -z))``; the tests hold
them to a numpy reference to 1e-15. (The previous Arrow ``pandas_udf`` cost ~16 s per 1M scored
records in the night's pipeline, mostly in moving the wide rows to and from Python; these
expressions ~4 s.) It never touches the prediction column:
calibration changes probabilities, not the class decision. Class-weighted models pick their class
by a decision rule tuned on the (weighted) scores, which calibration would silently move if the
prediction were re-derived as the argmax of calibrated probabilities; the calibrated
probabilities are what PDs, log-loss, Brier score and ECE are computed from.
"""
from __future__ import annotations

import json
import math

import numpy as np

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasLabelCol, HasProbabilityCol
from pyspark.ml.regression import IsotonicRegression
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credit_spark.lake.sqltext import sql_double, sql_name
from credit_spark.ml.stages import AfterPrediction
from credit_spark.transforms.columns import with_columns

METHODS = ("isotonic", "platt")
EPS = 1e-6
#: each calibrated curve is kept within [FLOOR, 1 - FLOOR] (multiclass vectors are renormalised
#: afterwards, so a class can end slightly below FLOOR, never at 0): an isotonic step fitted on a
#: finite validation set would otherwise claim certainty (p = 0 or 1), which no PD can, and one
#: such row costs -ln(1e-15) in log-loss
FLOOR = 1e-3


def _to_method(value) -> str:
    value = TypeConverters.toString(value)
    if value not in METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {value!r}")
    return value


class _CalibratorParams(HasLabelCol, HasProbabilityCol):
    method = Param(Params._dummy(), "method", f"calibration method: one of {', '.join(METHODS)}",
                   typeConverter=_to_method)
    rawProbabilityCol = Param(Params._dummy(), "rawProbabilityCol",
                              "output column keeping a copy of the uncalibrated probability vector",
                              typeConverter=TypeConverters.toString)
    numClasses = Param(Params._dummy(), "numClasses", "number of label classes (label = 0..k-1)",
                       typeConverter=TypeConverters.toInt)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(method="isotonic", labelCol="label", probabilityCol="probability",
                         rawProbabilityCol="uncalibrated_probability", numClasses=2)

    def _validate(self) -> None:
        _to_method(self.getOrDefault("method"))
        if self.getOrDefault("numClasses") < 2:
            raise ValueError(f"numClasses must be at least 2, got {self.getOrDefault('numClasses')}")
        if self.getOrDefault("rawProbabilityCol") == self.getOrDefault("probabilityCol"):
            raise ValueError("rawProbabilityCol must differ from probabilityCol")

    def calibrated_classes(self) -> list[int]:
        """Class 1 only when binary, every class (one-vs-rest) otherwise."""
        k = self.getOrDefault("numClasses")
        return [1] if k == 2 else list(range(k))


def _search_steps(boundaries: list[float]) -> tuple[str, list[int]]:
    """The literal array and the steps of an unrolled binary search over ``boundaries``.

    Segment ``j`` (0 <= j < n - 1) is ``[x_j, x_j+1)``; the search returns the largest ``j`` with
    ``x_j <= p`` for ``x_0 <= p < x_n-1``. The array is padded to a power of two with the last
    boundary (never ``<= p`` in that range), so every probe ``lo + step`` is inside it."""
    segments = len(boundaries) - 1
    size = 1 << max(segments - 1, 0).bit_length()         # the power of two >= segments
    padded = [*boundaries[:segments], *[boundaries[-1]] * (size - segments)]
    steps, step = [], size // 2
    while step >= 1:
        steps.append(step)
        step //= 2
    return "array(" + ", ".join(sql_double(x) for x in padded) + ")", steps


def _segment_sql(p: str, boundaries: list[float], predictions: list[float], index: str) -> str:
    """``np.interp(p, boundaries, predictions)`` as SQL, given ``index``, the segment found by
    :func:`_search_steps`' search: below the first boundary its prediction, from the last one on
    the last prediction, in between numpy's arithmetic ``slope_j * (p - x_j) + y_j`` with the
    slopes computed here as numpy does, so the values are the same to the last bit."""
    xs, ys = [float(b) for b in boundaries], [float(v) for v in predictions]
    if len(xs) == 1:
        return sql_double(ys[0])
    # a repeated boundary's zero-width segment is never the one found: the next one starts at the same x
    slopes = [0.0 if xs[j + 1] == xs[j] else (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]) for j in range(len(xs) - 1)]
    lookup = {name: "array(" + ", ".join(sql_double(v) for v in values[:len(xs) - 1]) + ")"
              for name, values in (("slope", slopes), ("x", xs), ("y", ys))}
    segment = (f"(get({lookup['slope']}, {index}) * ({p} - get({lookup['x']}, {index})) "
               f"+ get({lookup['y']}, {index}))")
    return (f"CASE WHEN {p} < {sql_double(xs[0])} THEN {sql_double(ys[0])} "
            f"WHEN {p} >= {sql_double(xs[-1])} THEN {sql_double(ys[-1])} ELSE {segment} END")


def _platt_sql(p: str, slope: float, intercept: float) -> str:
    """``sigmoid(slope * logit(p) + intercept)`` as SQL, in numpy's steps (``logit`` of ``p``
    clipped to [EPS, 1 - EPS] as ``ln(p) - log1p(-p)``, then ``exp(-logaddexp(0, -z))``)."""
    clipped = f"least(greatest({p}, {sql_double(EPS)}), {sql_double(1.0 - EPS)})"
    z = f"({sql_double(slope)} * (ln({clipped}) - log1p(-{clipped})) + {sql_double(intercept)})"
    log_add_exp = (f"CASE WHEN {z} = 0D THEN {sql_double(math.log(2.0))} WHEN {z} > 0D THEN log1p(exp(-{z})) "
                   f"ELSE -{z} + log1p(exp({z})) END")
    return f"exp(-({log_add_exp}))"


def calibration_sql(p: str, method: str, curve: dict, index: str | None = None) -> str:
    """One class's calibrated probability as SQL text: the curve (an isotonic one needs the
    column ``index`` of its searched segment), clipped to [FLOOR, 1 - FLOOR]; NaN stays NaN."""
    fitted = (_segment_sql(p, curve["boundaries"], curve["predictions"], index) if method == "isotonic"
              else _platt_sql(p, curve["slope"], curve["intercept"]))
    return (f"CASE WHEN isnan({p}) THEN {p} "
            f"ELSE least(greatest({fitted}, {sql_double(FLOOR)}), {sql_double(1.0 - FLOOR)}) END")


def with_segment_search(df: DataFrame, searches: dict[str, tuple[str, list[float]]]) -> DataFrame:
    """Adds, per ``name: (p, boundaries)``, the column ``name``: the segment of ``p`` among the
    boundaries (see :func:`_search_steps`), by an unrolled binary search with one projection per
    step. Each step is a small expression over one literal array, so the generated code grows with
    log2(boundaries), not with their number: a tree of CASEs with a leaf per segment (the previous
    form) outgrew the JVM's 64 KB method limit with the hundreds of boundaries an isotonic curve
    has when fitted on 2M validation rows (a model trained on 10M rows), and Spark fell back to
    slower code with an error in the log. A step reads the previous one's column twice, so the
    optimizer keeps the steps as separate projections (it inlines only what is used once or is
    cheap). A filter on the calibrated probability, pushed below them, does substitute each step
    into the next: its condition grows with 2^steps, i.e. with the number of boundaries, as the
    tree did (a step that read its input three times grew it with boundaries^1.58)."""
    plans = {name: (p, *_search_steps(boundaries)) for name, (p, boundaries) in searches.items()}
    out = with_columns(df, {name: F.lit(0) for name in plans})
    for depth in range(max((len(steps) for _, _, steps in plans.values()), default=0)):
        step = {}
        for name, (p, array, steps) in plans.items():
            if depth < len(steps):
                lo = sql_name(name)
                step[name] = F.expr(f"{lo} + {steps[depth]} * CAST(get({array}, {lo} + {steps[depth]}) <= {p} AS INT)")
        out = with_columns(out, step)
    return out


class ProbabilityCalibrator(Estimator, _CalibratorParams, DefaultParamsReadable, DefaultParamsWritable):
    """Fits isotonic or Platt calibration curves on a validation set's predictions.

    The input needs ``labelCol`` (0-based class index) and ``probabilityCol`` (a Vector of size
    ``numClasses``); the fitted ``ProbabilityCalibratorModel`` goes last in the classifier's pipeline.
    """

    @keyword_only
    def __init__(self, *, method: str = "isotonic", labelCol: str = "label", probabilityCol: str = "probability",
                 rawProbabilityCol: str = "uncalibrated_probability", numClasses: int = 2):
        super().__init__()
        self._set(**self._input_kwargs)

    def _fit(self, dataset: DataFrame) -> "ProbabilityCalibratorModel":
        if not isinstance(dataset, DataFrame):
            raise TypeError(f"dataset must be a DataFrame but got {type(dataset).__name__}")
        self._validate()
        method = self.getOrDefault("method")
        classes = self.calibrated_classes()
        probs = vector_to_array(F.col(self.getOrDefault("probabilityCol")))
        label = F.col(self.getOrDefault("labelCol")).cast("double")
        if method == "platt":
            curves = {str(k): curve for k, curve in fit_platt(dataset, probs, label, classes).items()}
            model = ProbabilityCalibratorModel(state=json.dumps({"method": method, "curves": curves}))
            return self._copyValues(model)
        cols = []
        for k in classes:
            p = F.element_at(probs, k + 1)
            cols += [p.alias(f"x{k}"), (label == float(k)).cast("double").alias(f"y{k}")]
        prepared = dataset.select(*cols)
        if len(classes) > 1:
            prepared = prepared.cache()
        try:
            curves = {}
            for k in classes:
                fitted = IsotonicRegression(featuresCol=f"x{k}", labelCol=f"y{k}", isotonic=True).fit(prepared)
                curves[str(k)] = {"boundaries": [float(b) for b in fitted.boundaries],
                                  "predictions": [float(v) for v in fitted.predictions]}
        finally:
            if len(classes) > 1:
                prepared.unpersist()
        model = ProbabilityCalibratorModel(state=json.dumps({"method": method, "curves": curves}))
        return self._copyValues(model)


#: Platt's input, logit(p) of p clipped to [EPS, 1 - EPS], is summarised in this many equal-width
#: buckets (width ~0.007 in logit units); each bucket keeps its rows' exact mean logit
PLATT_BUCKETS = 4096


def fit_platt(dataset: DataFrame, probs, label, classes: list[int], iterations: int = 100) -> dict[int, dict]:
    """Per class ``k``: the maximum-likelihood ``slope, intercept`` of ``P(label == k) =
    sigmoid(slope * logit(p_k) + intercept)``. One aggregation for every class (rows, events and
    the sum of logit(p_k) per bucket of logit(p_k): at most classes x PLATT_BUCKETS small rows reach
    the driver), then Newton's method on the driver over the buckets' mean logits. An MLlib
    logistic regression per class took up to 100 Spark jobs each (L-BFGS iterations); this is one.
    Exact when a bucket's rows share one logit; otherwise within the bucket's width."""
    limit = math.log((1.0 - EPS) / EPS)
    parts = []
    for k in classes:
        p = F.element_at(probs, k + 1)
        clipped = F.least(F.greatest(p, F.lit(EPS)), F.lit(1.0 - EPS))
        x = F.log(clipped) - F.log1p(-clipped)
        bucket = F.least(F.floor((x + limit) / (2 * limit) * PLATT_BUCKETS), F.lit(PLATT_BUCKETS - 1)).cast("int")
        valid = x.isNotNull() & ~F.isnan(x) & label.isNotNull()
        parts.append(F.when(valid, F.struct(F.lit(k).alias("k"), bucket.alias("b"), x.alias("x"),
                                            (label == float(k)).cast("double").alias("y"))))
    rows = (dataset.select(F.explode(F.array(*parts)).alias("c")).where(F.col("c").isNotNull())
            .groupBy("c.k", "c.b").agg(F.count(F.lit(1)).alias("n"), F.sum("c.y").alias("events"),
                                       F.sum("c.x").alias("sum_x"))
            .collect())
    curves = {}
    for k in classes:
        mine = [r for r in rows if r["k"] == k]
        n = np.array([r["n"] for r in mine], dtype=float)
        if n.sum() == 0:
            raise ValueError(f"no probability of class {k} to calibrate")
        events = np.array([r["events"] for r in mine], dtype=float)
        x = np.array([r["sum_x"] for r in mine], dtype=float) / n
        def log_likelihood(a: float, b: float) -> float:
            z = a * x + b
            return float(np.dot(events, -np.logaddexp(0.0, -z)) + np.dot(n - events, -np.logaddexp(0.0, z)))

        # Newton from the constant model (slope 0, the base rate), each step halved until the
        # likelihood does not fall (a full step can overshoot where the buckets are nearly separable)
        rate = min(max(events.sum() / n.sum(), 1e-9), 1 - 1e-9)
        slope, intercept = 0.0, math.log(rate / (1 - rate))
        current = log_likelihood(slope, intercept)
        for _ in range(iterations):
            q = 1.0 / (1.0 + np.exp(-(slope * x + intercept)))
            residual, weight = events - n * q, n * q * (1.0 - q) + 1e-12
            gradient = np.array([np.dot(residual, x), residual.sum()])
            hessian = np.array([[np.dot(weight, x * x), np.dot(weight, x)], [np.dot(weight, x), weight.sum()]])
            step = np.linalg.solve(hessian + 1e-9 * np.eye(2), gradient)
            for _ in range(30):
                candidate = log_likelihood(slope + step[0], intercept + step[1])
                if candidate >= current - 1e-12:
                    break
                step = step / 2
            slope, intercept, current = slope + step[0], intercept + step[1], candidate
            if np.abs(step).max() < 1e-10:
                break
        curves[k] = {"slope": float(slope), "intercept": float(intercept)}
    return curves


class ProbabilityCalibratorModel(Model, _CalibratorParams, DefaultParamsReadable, DefaultParamsWritable, AfterPrediction):
    """Fitted calibration curves; overwrites ``probabilityCol``, keeps the raw vector, leaves the prediction."""

    state = Param(Params._dummy(), "state", "JSON: method and, per calibrated class, the fitted curve",
                  typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, method: str = "isotonic", labelCol: str = "label", probabilityCol: str = "probability",
                 rawProbabilityCol: str = "uncalibrated_probability", numClasses: int = 2, state: str = "{}"):
        super().__init__()
        self._set(**self._input_kwargs)

    def curves(self) -> dict[str, dict]:
        """Per calibrated class ("1" when binary, "0".."k-1" otherwise): boundaries/predictions or slope/intercept."""
        return json.loads(self.getOrDefault("state")).get("curves", {})

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._validate()
        state = json.loads(self.getOrDefault("state"))
        method, curves = state.get("method", self.getOrDefault("method")), state.get("curves", {})
        k = self.getOrDefault("numClasses")
        missing = [c for c in self.calibrated_classes() if str(c) not in curves]
        if missing:
            raise ValueError(f"no fitted calibration curve for class(es) {missing}")

        prob = self.getOrDefault("probabilityCol")
        raw = self.getOrDefault("rawProbabilityCol")
        values, calibrated = f"{prob}__calibration_input", f"{prob}__calibrated"
        array = vector_to_array(F.col(prob))
        sized = F.when(F.size(array) == k, array).otherwise(F.raise_error(F.concat(
            F.lit(f"{prob}: expected probability vectors of size {k}, got size "), F.size(array).cast("string"))))
        inputs = dataset.withColumns({raw: F.col(prob), values: sized})
        p = [f"{sql_name(values)}[{i}]" for i in range(k)]
        classes = self.calibrated_classes()
        index = {i: f"{prob}__segment{i}" for i in classes if method == "isotonic"}
        inputs = with_segment_search(inputs, {index[i]: (p[i], curves[str(i)]["boundaries"]) for i in index})
        curve = {i: calibration_sql(p[i], method, curves[str(i)], sql_name(index[i]) if i in index else None)
                 for i in classes}
        if k == 2:
            out = inputs.withColumn(calibrated, F.expr(f"array(1D - ({curve[1]}), {curve[1]})"))
        else:
            curved = inputs.withColumn(calibrated, F.expr("array(" + ", ".join(curve[i] for i in range(k)) + ")"))
            c = [f"{sql_name(calibrated)}[{i}]" for i in range(k)]
            total = "(" + " + ".join(c) + ")"
            # renormalised to sum to one (every curve is >= FLOOR, so the total is > 0 or NaN)
            out = curved.withColumn(calibrated, F.expr(
                f"CASE WHEN {total} > 0D OR isnan({total}) THEN array(" + ", ".join(f"{ci} / {total}" for ci in c)
                + f") ELSE array_repeat({sql_double(1.0 / k)}, {k}) END"))
        return out.withColumn(prob, array_to_vector(F.col(calibrated))).drop(values, calibrated, *index.values())


def reliability_table(predictions: DataFrame, label_col: str, probability_col: str,
                      prediction_col: str = "prediction", bins: int = 10) -> list[dict]:
    """Reliability diagram rows from one Spark ``groupBy``.

    The confidence of a row is the probability of its **predicted** class (not necessarily the
    largest one: a tuned decision rule may pick another class); its bin is
    ``min(floor(confidence * bins), bins - 1)``. Rows: ``bin``, ``n``, ``confidence`` (mean) and
    ``accuracy`` (share with label == prediction), sorted by bin; empty bins are absent.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    prediction = F.col(prediction_col).cast("double")
    confidence = F.element_at(vector_to_array(F.col(probability_col)), prediction.cast("int") + 1)
    rows = (predictions
            .select(confidence.alias("confidence"),
                    (F.col(label_col).cast("double") == prediction).cast("double").alias("correct"))
            .withColumn("bin", F.least(F.floor(F.col("confidence") * bins).cast("int"), F.lit(bins - 1)))
            .groupBy("bin")
            .agg(F.count(F.lit(1)).alias("n"), F.avg("confidence").alias("confidence"),
                 F.avg("correct").alias("accuracy"))
            .collect())
    return sorted(({"bin": int(r["bin"]), "n": int(r["n"]), "confidence": float(r["confidence"]),
                    "accuracy": float(r["accuracy"])} for r in rows), key=lambda r: r["bin"])


def expected_calibration_error(table: list[dict]) -> float:
    """ECE = sum over bins of n / N * |accuracy - confidence| (0 for an empty table)."""
    total = sum(r["n"] for r in table)
    if total == 0:
        return 0.0
    return float(sum(r["n"] / total * abs(r["accuracy"] - r["confidence"]) for r in table))
