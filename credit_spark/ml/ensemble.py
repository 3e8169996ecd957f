"""A combined champion: the calibrated models of a run stacked into one pipeline stage.

``StackedEnsembleModel`` holds the run's fitted member pipelines (each up to its calibrator: no
decision rule, no reasons) and a multinomial logistic regression over their log-probabilities,
``p = softmax(W · [ln p_1, ..., ln p_M] + b)``. The stacker is fitted by MLlib on **held-out**
predictions only (validation rows, or out-of-fold predictions under k-fold selection), never on
the rows the members were fitted on and never on the test set: members that overfit their own
training rows would otherwise look better than they are.

Members run one after another over the same rows; after each, its probability vector is kept as
a column of its own and every other column it added is dropped, so members with the same
intermediate column names (``features_raw``, ``features``) never meet. The stacker is one SQL
expression. The stage saves its members below its own folder (``members/<i>``, each a
``PipelineModel``) and loads inside a ``PipelineModel`` like any stage.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Model, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasPredictionCol, HasProbabilityCol
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReadable, MLReader, MLWritable, MLWriter
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credit_spark.lake.sqltext import sql_double, sql_name

#: probabilities are clipped to [EPS, 1] before the log (a calibrated model never outputs 0, but
#: an uncalibrated one may)
EPS = 1e-6
STACK_INPUT = "stack_input"
#: stacked: a coefficient per member and class; mean: the members' mean log-probabilities
COMBINERS = ("stacked", "mean")

logger = logging.getLogger(__name__)


def member_column(i: int) -> str:
    return f"__member{i}_probability"


class StackedEnsembleModel(Model, HasProbabilityCol, HasPredictionCol, MLReadable, MLWritable):
    """Members' probability vectors -> stacked probability; see the module docstring."""

    memberNames = Param(Params._dummy(), "memberNames", "names of the member models, in order",
                        typeConverter=TypeConverters.toListString)
    numClasses = Param(Params._dummy(), "numClasses", "number of classes", typeConverter=TypeConverters.toInt)
    state = Param(Params._dummy(), "state", "JSON: the stacker's coefficient matrix (k x M*k) and intercepts (k)",
                  typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, memberNames: list[str] | None = None, numClasses: int = 2, state: str = "{}",
                 probabilityCol: str = "probability", predictionCol: str = "prediction"):
        super().__init__()
        self._setDefault(memberNames=[], numClasses=2, state="{}", probabilityCol="probability",
                         predictionCol="prediction")
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})
        self.members: list[PipelineModel] = []

    def with_members(self, members: list[PipelineModel]) -> "StackedEnsembleModel":
        if len(members) != len(self.getOrDefault("memberNames")):
            raise ValueError(f"{len(members)} member models for {len(self.getOrDefault('memberNames'))} names")
        self.members = list(members)
        return self

    def copy(self, extra=None) -> "StackedEnsembleModel":
        that = super().copy(extra)
        that.members = list(self.members)
        return that

    def weights(self) -> dict:
        return json.loads(self.getOrDefault("state"))

    def member_weights(self) -> list[dict]:
        """Per member, the sum of |coefficient| on its log-probabilities (how much the stack uses it)."""
        coefficients = np.asarray(self.weights()["coefficients"], dtype=float)
        k = self.getOrDefault("numClasses")
        return [{"feature": name, "value": float(np.abs(coefficients[:, i * k:(i + 1) * k]).sum())}
                for i, name in enumerate(self.getOrDefault("memberNames"))]

    def member_probabilities(self, dataset: DataFrame) -> DataFrame:
        """``dataset`` plus one probability-vector column per member (``member_column(i)``)."""
        if not self.members:
            raise ValueError("the ensemble has no member models (load it with StackedEnsembleModel.load)")
        prob = self.getOrDefault("probabilityCol")
        out, kept = dataset, list(dataset.columns)
        for i, member in enumerate(self.members):
            scored = member.transform(out)
            out = scored.select(*kept, F.col(prob).alias(member_column(i)))
            kept.append(member_column(i))
        return out

    def _transform(self, dataset: DataFrame) -> DataFrame:
        k = self.getOrDefault("numClasses")
        members = len(self.members)
        stacked = self.member_probabilities(dataset)
        logs = [F.log(F.greatest(vector_to_array(F.col(member_column(i)))[c], F.lit(EPS)))
                for i in range(members) for c in range(k)]
        stacked = stacked.withColumn(STACK_INPUT, F.array(*logs))
        return (apply_stacker(stacked, self.weights(), k, self.getOrDefault("probabilityCol"),
                              self.getOrDefault("predictionCol"))
                .drop(STACK_INPUT, *(member_column(i) for i in range(members))))

    # ---------------------------------------------------------------- persistence
    def write(self) -> MLWriter:
        return _EnsembleWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return _EnsembleReader(cls)


class _EnsembleWriter(MLWriter):
    def __init__(self, instance: StackedEnsembleModel):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sparkSession,
                                         extraMetadata={"members": len(self.instance.members)})
        for i, member in enumerate(self.instance.members):
            member.write().overwrite().save(os.path.join(path, "members", str(i)))


class _EnsembleReader(MLReader):
    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> StackedEnsembleModel:
        metadata = DefaultParamsReader.loadMetadata(path, self.sparkSession)   # a session: also on Spark Connect
        instance = self.cls()
        DefaultParamsReader.getAndSetParams(instance, metadata)
        members = [PipelineModel.load(os.path.join(path, "members", str(i))) for i in range(metadata["members"])]
        return instance.with_members(members)


def apply_stacker(df: DataFrame, state: dict, k: int, probability_col: str = "probability",
                  prediction_col: str = "prediction") -> DataFrame:
    """``softmax(W · stack_input + b)`` (``stack_input``: the array of members' log-probabilities)
    as SQL expressions: the probability vector and its arg-max."""
    x = sql_name(STACK_INPUT)
    margins = [" + ".join([sql_double(state["intercepts"][j]),
                           *(f"{sql_double(w)} * {x}[{i}]" for i, w in enumerate(state["coefficients"][j]) if w)])
               for j in range(k)]
    margin = f"{STACK_INPUT}__margin"
    m = sql_name(margin)
    top = f"array_max({m})"
    exps = [f"exp({m}[{j}] - {top})" for j in range(k)]     # shifted by the largest: exp never overflows
    total = "(" + " + ".join(exps) + ")"
    out = df.withColumn(margin, F.expr("array(" + ", ".join(margins) + ")"))
    return out.withColumns({
        probability_col: array_to_vector(F.expr("array(" + ", ".join(f"{e} / {total}" for e in exps) + ")")),
        prediction_col: F.expr(f"CAST(array_position({m}, {top}) - 1 AS DOUBLE)"),
    }).drop(margin)


# --------------------------------------------------------------------------- fitting
def stack_features(held_out: dict[str, DataFrame], keys: list[str], label_col: str, k: int) -> DataFrame:
    """One row per held-out record predicted by every member: ``keys``, the label and the
    stacker's input array (the members' log-probabilities, member by member)."""
    names = list(held_out)
    joined = None
    for i, name in enumerate(names):
        part = held_out[name].select(*keys, *([label_col] if i == 0 else []),
                                     vector_to_array("probability").alias(f"p{i}"))
        joined = part if joined is None else joined.join(part, keys, "inner")
    logs = [F.log(F.greatest(F.col(f"p{i}")[c], F.lit(EPS))) for i in range(len(names)) for c in range(k)]
    return joined.select(*keys, label_col, F.array(*logs).alias(STACK_INPUT))


def fit_stacker(rows: DataFrame, label_col: str, k: int, reg_param: float, combiner: str = "stacked") -> dict:
    """MLlib multinomial logistic regression of the label on the stacked log-probabilities
    (unweighted: its probabilities are the calibrated output; the decision rule comes after).

    ``combiner``: ``stacked`` gives every member and class its own coefficient (k x M*k);
    ``mean`` regresses on the members' *mean* log-probability per class (k x k), so every member
    weighs the same (a recalibrated geometric mean: few parameters, robust on little data). Both
    are saved as the same k x M*k matrix, so the stage scores them alike."""
    if combiner not in COMBINERS:
        raise ValueError(f"unknown combiner '{combiner}' (one of {', '.join(COMBINERS)})")
    vector = f"{STACK_INPUT}__vector"
    if combiner == "mean":
        first = rows.select(STACK_INPUT).first()
        if first is None:
            raise ValueError("the stacker has no held-out rows to fit on")
        members = len(first[0]) // k
        means = [functools.reduce(lambda a, b: a + b, [F.col(STACK_INPUT)[m * k + c] for m in range(members)]) / members
                 for c in range(k)]
        rows = rows.withColumn(vector, array_to_vector(F.array(*means)))
    else:
        rows = rows.withColumn(vector, array_to_vector(STACK_INPUT))
    lr = LogisticRegression(featuresCol=vector, labelCol=label_col, family="multinomial",
                            regParam=reg_param, elasticNetParam=0.0, maxIter=200, standardization=False)
    model = lr.fit(rows)
    coefficients = model.coefficientMatrix.toArray()
    intercepts = model.interceptVector.toArray()
    if coefficients.shape[0] != k:   # MLlib drops classes it never saw; the spec's classes stay
        raise ValueError(f"the stacker saw {coefficients.shape[0]} of {k} classes in the held-out rows")
    if not np.isfinite(coefficients).all() or not all(math.isfinite(v) for v in intercepts):
        raise ValueError("the stacker's fit did not converge to finite coefficients")
    if combiner == "mean":   # V (k x k) on the means = V / M on each member's block
        coefficients = np.tile(coefficients / members, (1, members))
    return {"coefficients": coefficients.tolist(), "intercepts": intercepts.tolist()}


def log_loss(predictions: DataFrame, label_col: str, probability_col: str = "probability") -> float:
    """Mean negative log-probability of the true class."""
    p_true = vector_to_array(probability_col)[F.col(label_col).cast("int")]
    return float(predictions.agg(F.avg(-F.log(F.greatest(p_true, F.lit(EPS))))).first()[0])


@dataclass(frozen=True)
class CombinerChoice:
    """The combiner picked by cross-fitted log-loss, every candidate's log-loss, and the winner's
    cross-fitted predictions (for its decision rule: no second fit)."""

    combiner: str
    reg_param: float
    log_loss: dict[str, float]
    predictions: DataFrame | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        return candidate_label(self.combiner, self.reg_param)


def candidate_label(combiner: str, reg_param: float) -> str:
    return f"{combiner} (reg_param {reg_param:g})"


def cross_fit(rows: DataFrame, half: Column, label_col: str, k: int, combiner: str, reg_param: float) -> DataFrame:
    """Every held-out row predicted by a stacker fitted on the *other* half of the customers."""
    return functools.reduce(DataFrame.unionByName, [
        apply_stacker(rows.where(half == i), fit_stacker(rows.where(half != i), label_col, k, reg_param, combiner), k)
        for i in (0, 1)])


def choose_combiner(rows: DataFrame, half: Column, label_col: str, k: int,
                    candidates: list[tuple[str, float]]) -> CombinerChoice:
    """The (combiner, reg_param) whose cross-fitted predictions have the lowest log-loss: judged
    on rows no candidate was fitted on, so a stacker with many coefficients wins only where the
    held-out rows support them. Ties go to the earlier candidate."""
    predictions = {candidate_label(c, r): cross_fit(rows, half, label_col, k, c, r) for c, r in candidates}
    losses = {name: log_loss(frame, label_col) for name, frame in predictions.items()}
    best = min(candidates, key=lambda cr: losses[candidate_label(*cr)])
    logger.info("ensemble: %s chosen by cross-fitted log-loss %s", candidate_label(*best),
                {name: round(v, 4) for name, v in losses.items()})
    return CombinerChoice(best[0], best[1], losses, predictions[candidate_label(*best)])


def stacker_model(names: list[str], members: list[PipelineModel], k: int, state: dict) -> StackedEnsembleModel:
    return StackedEnsembleModel(memberNames=names, numClasses=k, state=json.dumps(state)).with_members(members)
