"""The decision rule: which class a customer is put in, from the calibrated class probabilities.

``DecisionRule`` (Estimator) is fitted on the **validation** split's calibrated predictions and
appended after the calibrator, so the saved ``PipelineModel`` scores with the rule it was chosen
with. The rule is

    prediction = argmin_j  sum_i  w_i * p_i * C[i][j]

with ``C`` the cost matrix (rows: true class, columns: predicted class; default ``1 - I``, the 0-1
loss, for which the rule is ``argmax_j w_j * p_j``) and ``w`` per-class weights learned on the
validation rows to optimise the configured objective:

* ``macro_f1`` (default): the weights that maximise macro-F1. An arg-max of calibrated
  probabilities predicts rare classes too rarely for macro-F1; weights move the boundaries.
* ``expected_cost``: the weights that minimise the realised cost ``sum C[label][prediction]`` (the
  bank's cost matrix, ``train.decision.cost_matrix``). ``w = 1`` is the Bayes rule for calibrated
  probabilities; the search only moves away from it where the validation rows say it pays.
* ``argmax``: ``w = 1`` and the 0-1 loss: the most probable class, nothing learned.

Distributed and bounded: the validation predictions are aggregated by Spark into cells of the
probability simplex (each probability rounded to ``1 / levels``; per cell and label the row count
and the mean probability vector), so at most ``levels ** (k - 1) * k`` small rows reach the driver
whatever the data size; the search (coordinate ascent over log-weights) runs on those cells. The
fitted weights live in the model's ``state`` param (JSON) and are applied as one SQL expression.
"""
from __future__ import annotations

import json
import math

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.functions import vector_to_array
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasLabelCol, HasPredictionCol, HasProbabilityCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credit_spark.lake.sqltext import sql_double, sql_name
from credit_spark.ml.stages import AfterPrediction

OBJECTIVES = ("macro_f1", "expected_cost", "argmax")
#: log-weights searched per class, per round of coordinate ascent
LOG_WEIGHT_GRID = np.linspace(-3.0, 3.0, 121)
ROUNDS = 3
#: cells of the simplex at most (levels ** (k - 1) <= MAX_CELLS, levels <= MAX_LEVELS)
MAX_CELLS = 200_000
MAX_LEVELS = 1000


def zero_one_costs(k: int) -> list[list[float]]:
    return [[0.0 if i == j else 1.0 for j in range(k)] for i in range(k)]


def simplex_levels(k: int) -> int:
    """How finely each probability is rounded so the cells stay bounded (k = 2: 1000, k = 3: 447)."""
    return max(4, min(MAX_LEVELS, int(MAX_CELLS ** (1.0 / (k - 1)))))


def decide(weights: np.ndarray, probabilities: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """The rule on the driver (cells): argmin_j sum_i w_i p_i C[i][j]; ties go to the lower class."""
    return np.argmin((probabilities * weights) @ costs, axis=1)


def macro_f1(confusion: np.ndarray) -> float:
    tp = np.diag(confusion)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    denominator = predicted + actual
    f1 = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1e-300), 0.0)
    return float(f1.mean())


def confusion(labels: np.ndarray, predictions: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((k, k))
    np.add.at(out, (labels, predictions), counts)
    return out


def search_weights(labels: np.ndarray, probabilities: np.ndarray, counts: np.ndarray, costs: np.ndarray,
                   objective: str) -> tuple[np.ndarray, float, float]:
    """Coordinate ascent over log-weights (class 0's weight stays 1: only ratios matter).

    Returns the weights, the objective at ``w = 1`` and at the weights found (both to maximise:
    macro-F1, or minus the cost per row). A move is kept only if it strictly improves, so the
    result is ``w = 1`` unless the validation rows prefer something else."""
    k = probabilities.shape[1]
    total = max(float(counts.sum()), 1.0)

    def score(w: np.ndarray) -> float:
        matrix = confusion(labels, decide(w, probabilities, costs), counts, k)
        if objective == "macro_f1":
            return macro_f1(matrix)
        return -float((matrix * costs).sum()) / total

    log_w = np.zeros(k)
    start = best = score(np.exp(log_w))
    if objective == "argmax":
        return np.ones(k), start, start
    for _ in range(ROUNDS):
        moved = False
        for j in range(1, k):
            for value in LOG_WEIGHT_GRID:
                trial = log_w.copy()
                trial[j] = value
                s = score(np.exp(trial))
                if s > best + 1e-12:
                    best, log_w, moved = s, trial, True
        if not moved:
            break
    return np.exp(log_w), start, best


class _DecisionParams(HasLabelCol, HasProbabilityCol, HasPredictionCol):
    numClasses = Param(Params._dummy(), "numClasses", "number of label classes (label = 0..k-1)",
                       typeConverter=TypeConverters.toInt)
    objective = Param(Params._dummy(), "objective", f"what the rule optimises: one of {', '.join(OBJECTIVES)}",
                      typeConverter=TypeConverters.toString)
    costMatrix = Param(Params._dummy(), "costMatrix",
                       "JSON k x k costs, rows = true class, columns = predicted class ('' = 0-1 loss)",
                       typeConverter=TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(numClasses=2, objective="macro_f1", costMatrix="", labelCol="label",
                         probabilityCol="probability", predictionCol="prediction")

    def costs(self) -> np.ndarray:
        k = self.getOrDefault("numClasses")
        text = self.getOrDefault("costMatrix")
        matrix = np.asarray(json.loads(text) if text else zero_one_costs(k), dtype=float)
        if matrix.shape != (k, k):
            raise ValueError(f"costMatrix must be {k} x {k} (rows = true class), got shape {matrix.shape}")
        return matrix

    def _validate(self) -> None:
        if self.getOrDefault("objective") not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {self.getOrDefault('objective')!r}")
        if self.getOrDefault("numClasses") < 2:
            raise ValueError(f"numClasses must be at least 2, got {self.getOrDefault('numClasses')}")
        self.costs()


class DecisionRule(Estimator, _DecisionParams, DefaultParamsReadable, DefaultParamsWritable):
    """Learns the per-class weights of the decision rule on (validation) predictions.

    >>> rule = DecisionRule(numClasses=3, labelCol="label_index").fit(calibrated_validation)  # doctest: +SKIP
    >>> served = PipelineModel(stages=[*model.stages, rule])                                  # doctest: +SKIP
    """

    @keyword_only
    def __init__(self, *, numClasses: int = 2, objective: str = "macro_f1", costMatrix: str = "",
                 labelCol: str = "label", probabilityCol: str = "probability", predictionCol: str = "prediction"):
        super().__init__()
        self._set(**self._input_kwargs)

    def cells(self, dataset: DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels, mean probability vectors, counts) per occupied cell of the simplex."""
        k = self.getOrDefault("numClasses")
        levels = simplex_levels(k)
        vector = F.col(self.getOrDefault("probabilityCol"))
        p = F.when(vector.isNotNull(), vector_to_array(vector))
        # no filter on the probabilities: Spark would push it below a calibrator by copying the
        # calibrator's expressions into it (exponential in its search steps); an unusable vector
        # (null, wrong size) makes a cell of nulls instead, dropped below
        label = F.col(self.getOrDefault("labelCol")).cast("int")
        keyed = dataset.where(label.isNotNull()).select(
            label.alias("label"), F.when(F.size(p) == k, p).alias("p"))
        keys = [F.round(F.col("p")[i] * levels).cast("int").alias(f"q{i}") for i in range(k - 1)]
        rows = (keyed.groupBy("label", *keys)
                .agg(F.count(F.lit(1)).alias("n"), *[F.avg(F.col("p")[i]).alias(f"p{i}") for i in range(k)])
                .collect())
        rows = [r for r in rows if all(r[f"p{i}"] is not None for i in range(k))]
        labels = np.array([r["label"] for r in rows], dtype=int)
        probabilities = np.array([[r[f"p{i}"] for i in range(k)] for r in rows], dtype=float).reshape(-1, k)
        counts = np.array([r["n"] for r in rows], dtype=float)
        return labels, probabilities, counts

    def _fit(self, dataset: DataFrame) -> "DecisionRuleModel":
        if not isinstance(dataset, DataFrame):
            raise TypeError(f"dataset must be a DataFrame but got {type(dataset).__name__}")
        self._validate()
        k = self.getOrDefault("numClasses")
        labels, probabilities, counts = self.cells(dataset)
        if len(counts) == 0:
            weights, start, best = np.ones(k), math.nan, math.nan
        else:
            weights, start, best = search_weights(labels, np.nan_to_num(probabilities, nan=1.0 / k), counts,
                                                  self.costs(), self.getOrDefault("objective"))
        state = {"weights": [float(w) for w in weights], "validation_start": start, "validation_best": best,
                 "rows": int(counts.sum())}
        model = DecisionRuleModel(state=json.dumps(state))
        return self._copyValues(model)


class DecisionRuleModel(Model, _DecisionParams, DefaultParamsReadable, DefaultParamsWritable, AfterPrediction):
    """Overwrites ``predictionCol`` with ``argmin_j sum_i w_i p_i C[i][j]`` (a null vector: null)."""

    state = Param(Params._dummy(), "state", "JSON: the learned per-class weights and what they achieved",
                  typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, numClasses: int = 2, objective: str = "macro_f1", costMatrix: str = "",
                 labelCol: str = "label", probabilityCol: str = "probability", predictionCol: str = "prediction",
                 state: str = "{}"):
        super().__init__()
        self._set(**self._input_kwargs)

    def weights(self) -> list[float]:
        k = self.getOrDefault("numClasses")
        return json.loads(self.getOrDefault("state")).get("weights", [1.0] * k)

    def describe(self, classes: list[str]) -> str:
        """The rule in words, for the report."""
        w = self.weights()
        objective = self.getOrDefault("objective")
        weights = ", ".join(f"{c} x{v:.3g}" for c, v in zip(classes, w))
        if self.getOrDefault("costMatrix"):
            return (f"least expected cost under the configured cost matrix, probabilities weighted {weights} "
                    f"(learned on validation for {objective})")
        return f"largest weighted probability: {weights} (learned on validation for {objective})"

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._validate()
        k = self.getOrDefault("numClasses")
        w, costs = self.weights(), self.costs()
        if len(w) != k:
            raise ValueError(f"decision rule has {len(w)} weights for {k} classes")
        vector = F.col(self.getOrDefault("probabilityCol"))
        p = F.when(vector.isNotNull(), vector_to_array(vector))     # vector_to_array fails on null
        column = f"{self.getOrDefault('predictionCol')}__p"
        values = [f"{sql_name(column)}[{i}]" for i in range(k)]
        # expected cost of predicting j; the first (lowest) class wins ties, as np.argmin does
        cost = [" + ".join(f"{sql_double(w[i] * costs[i][j])} * {values[i]}" for i in range(k)) for j in range(k)]
        pick = f"array_min(array({', '.join(f'struct({c}, {j}D)' for j, c in enumerate(cost))})).col2"
        expr = f"CASE WHEN {sql_name(column)} IS NULL OR size({sql_name(column)}) != {k} THEN NULL ELSE {pick} END"
        return (dataset.withColumn(column, p)
                .withColumn(self.getOrDefault("predictionCol"), F.expr(expr))
                .drop(column))
