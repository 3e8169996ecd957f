"""Adverse-action reasons: which factors pushed a customer's score down, as a pipeline stage.

``ReasonCodesModel`` is appended to every trained pipeline (after the calibrator and the decision
rule), so the saved
model that scores also explains, with state fixed at training time. It writes ``reason_features``:
up to ``maxReasons`` structs ``(feature, impact)``, largest impact first, only impacts > 0, and
only features the model actually uses. The scorer sets ``reasonCodes`` from the dataset spec
(``reason_codes``), and the stage then writes the coded reasons themselves (rank, code, feature,
text, impact; one per code). Two methods:

* ``points`` — scorecard points below the feature's best bin: ``impact = max_b points(f, b) −
  points(f, customer's bin)``, over the card of the adverse class. For a scorecard model these
  are exactly its own points (they sum to its score). A tree model has no per-customer
  attribution in MLlib, so it uses the card of the scorecard trained in the same run as a
  surrogate, restricted to the features the trees use (non-zero importance) — documented as such.
* ``contributions`` — XGBoost: its exact per-row TreeSHAP contributions (``pred_contrib_col``)
  to the adverse class's margin (binary: the one margin, toward the adverse class), summed over
  a feature's slots; computed on the executors with the prediction.
* ``linear`` — logistic regression: ``impact = Σ_slots w_s (x_s − mean_s)`` over the feature's
  slots of the scaled input vector (one-hot slots of a category add up to their feature), with
  ``w`` the adverse class's coefficients minus the mean over classes (its exact contribution to
  the adverse log-odds against the classes' geometric mean) and ``mean`` the training mean.

All are built-in column expressions: no Python UDF runs per row.
"""
from __future__ import annotations

import json
from collections import defaultdict

from pyspark import keyword_only
from pyspark.ml import Model, PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.stat import Summarizer
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credit_spark.lake.sqltext import sql_double, sql_name, sql_string
from credit_spark.ml.binning import lookup_sql
from credit_spark.ml.introspection import fitted_classifier, tree_importances, vector_slot_names
from credit_spark.ml.scorecard import ScorecardModel
from credit_spark.ml.stages import AfterPrediction

REASON_FEATURES = "reason_features"
METHODS = ("points", "linear", "contributions")
#: the column XGBoost writes its per-row SHAP contributions to (array<array<double>>: group x slot)
CONTRIBUTIONS = "__reason_contributions"


#: temporary column holding the linear model's input vector as an array while reasons are computed
LINEAR_INPUT = "__reason_input"
#: temporary column: the ranked candidates, one per code
RANKED = "__reason_ranked"
REASON_FEATURES_TYPE = "array<struct<feature:string,impact:double>>"
CODED_REASONS_TYPE = "array<struct<rank:int,code:string,feature:string,text:string,impact:double>>"


class ReasonCodesModel(Model, DefaultParamsReadable, DefaultParamsWritable, AfterPrediction):
    """Top adverse factors per row (see module docstring); fitted state in ``state`` (JSON).

    With ``reasonCodes`` set (the scorer sets it from the dataset spec), the output is the coded
    reasons themselves: features without a code are left out, features sharing a code are one
    reason (the largest of their impacts, named by its feature), ranked 1..``maxReasons``.
    """

    method = Param(Params._dummy(), "method", "points | linear", typeConverter=TypeConverters.toString)
    state = Param(Params._dummy(), "state", "JSON: per-feature points tables, or linear slot weights",
                  typeConverter=TypeConverters.toString)
    maxReasons = Param(Params._dummy(), "maxReasons", "reasons kept per row", typeConverter=TypeConverters.toInt)
    outputCol = Param(Params._dummy(), "outputCol", "array<struct<feature, impact>>, or coded reasons",
                      typeConverter=TypeConverters.toString)
    reasonCodes = Param(Params._dummy(), "reasonCodes",
                        "JSON {feature: [code, text]}; when set, the output is array<struct<rank, code, "
                        "feature, text, impact>> over coded features, one reason per code",
                        typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, method: str = "points", state: str = "{}", maxReasons: int = 4,
                 outputCol: str = REASON_FEATURES, reasonCodes: str = ""):
        super().__init__()
        self._setDefault(method="points", state="{}", maxReasons=4, outputCol=REASON_FEATURES, reasonCodes="")
        self._set(**self._input_kwargs)
        if self.getOrDefault("method") not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.getOrDefault('method')!r}")

    def with_codes(self, codes: dict[str, tuple[str, str]], max_reasons: int, output_col: str) -> "ReasonCodesModel":
        """A copy that writes coded reasons (``codes``: feature -> (code, text)) to ``output_col``."""
        return self.copy({self.reasonCodes: json.dumps({f: list(ct) for f, ct in codes.items()}),
                          self.maxReasons: max_reasons, self.outputCol: output_col})

    def _impacts(self, state: dict) -> dict[str, str]:
        """Per feature, its impact as SQL text (parsed once by the JVM with the candidates: built
        node by node with the Column API, a card's expressions cost seconds of Py4J per transform)."""
        if self.getOrDefault("method") == "points":
            impacts = {}
            for feature, table in state["points"].items():
                best = max(table.values())
                # a bin never seen in training scores neutral: no reason
                impacts[feature] = lookup_sql(feature, state["edges"][feature],
                                              {k: best - v for k, v in table.items()})
            return impacts
        if self.getOrDefault("method") == "contributions":
            # XGBoost's exact (TreeSHAP) contributions to the adverse class's margin, per slot
            c = f"{sql_name(state['input_col'])}[{int(state['group'])}]"
            return {feature: " + ".join(f"{c}[{int(i)}]" for i in slots)
                    for feature, slots in state["features"].items()}
        x = sql_name(LINEAR_INPUT)   # the vector as an array, made once per row by _transform, not once per slot
        return {feature: " + ".join(f"{sql_double(w)} * ({x}[{int(i)}] - {sql_double(m)})" for i, w, m in slots)
                for feature, slots in state["features"].items()}

    def _candidates(self, impacts: dict[str, str], codes: dict[str, list[str]] | None) -> list[str]:
        """One candidate per reason code (per feature when uncoded), as SQL text: struct(neg,
        feature, code, text) of its largest impact (the caller keeps only positive ones). ``neg`` =
        −impact, so that an ascending sort puts the largest first, ties broken by feature name."""
        groups: dict[str, list[str]] = {}
        for feature in impacts:
            if codes is None:
                groups[feature] = [feature]
            elif feature in codes:
                groups.setdefault(codes[feature][0], []).append(feature)
        candidates = []
        for code, features in groups.items():
            # a null impact is no reason (a null neg would sort first and win its code)
            options = [f"named_struct('neg', -coalesce(CAST(({impacts[f]}) AS DOUBLE), 0.0D), "
                       f"'feature', {sql_string(f)}, 'code', {sql_string(code)}, "
                       f"'text', {sql_string(codes[f][1] if codes else '')})"
                       for f in sorted(features)]
            candidates.append(options[0] if len(options) == 1 else f"least({', '.join(options)})")
        return candidates

    def _transform(self, dataset: DataFrame) -> DataFrame:
        """Built-in expressions only (no Python): per code the best feature by ``least`` over
        structs, ``filter`` to the positive impacts (one small lambda per code), ``sort_array``,
        then the top ``maxReasons`` positions unrolled."""
        state = json.loads(self.getOrDefault("state"))
        codes_json = self.getOrDefault("reasonCodes")
        codes = json.loads(codes_json) if codes_json else None
        out_col, k = self.getOrDefault("outputCol"), self.getOrDefault("maxReasons")
        out_type = CODED_REASONS_TYPE if codes is not None else REASON_FEATURES_TYPE
        candidates = self._candidates(self._impacts(state), codes)
        if not candidates:
            return dataset.withColumn(out_col, F.array().cast(out_type))
        linear = self.getOrDefault("method") == "linear"
        if linear:
            dataset = dataset.withColumn(LINEAR_INPUT, vector_to_array(F.col(state["input_col"])))
        # a column of its own: the optimizer keeps it computed once, not once per position below
        # each candidate is built once (as `CASE WHEN c.neg < 0 THEN c END` + array_compact, its
        # struct was built twice, for the test and for the value: calibration + reasons of 1M
        # records to a noop sink 34 s -> 22 s)
        ranked = dataset.withColumn(RANKED, F.expr(
            f"sort_array(filter(array({', '.join(candidates)}), c -> c.neg < -1e-9D))"))
        top = []
        for rank in range(1, k + 1):
            item = F.try_element_at(F.col(RANKED), F.lit(rank))
            fields = [F.lit(rank).alias("rank"), item["code"].alias("code")] if codes is not None else []
            fields += [item["feature"].alias("feature")]
            fields += [item["text"].alias("text")] if codes is not None else []
            top.append(F.when(item.isNotNull(), F.struct(*fields, (-item["neg"]).alias("impact"))))
        out = ranked.withColumn(out_col, F.array_compact(F.array(*top)).cast(out_type))
        contributions = [state["input_col"]] if self.getOrDefault("method") == "contributions" else []
        return out.drop(RANKED, *([LINEAR_INPUT] if linear else []), *contributions)


# --------------------------------------------------------------------------- fitting
def points_reasons(card: ScorecardModel, used: set[str] | None = None, max_reasons: int = 4) -> ReasonCodesModel:
    """Reasons from the adverse card's points (optionally only the features in ``used``)."""
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for row in card.points_by_bin_key():
        if used is None or row["feature"] in used:
            table[row["feature"]][row["bin_key"]] = row["points"]
    edges = card.bin_edges()
    state = {"points": dict(table), "edges": {f: edges[f] for f in table}}
    return ReasonCodesModel(method="points", state=json.dumps(state), maxReasons=max_reasons)


def source_feature(slot_name: str) -> str:
    """``Occupation = Engineer`` (a one-hot slot) -> ``Occupation``; numeric slots are their feature."""
    return slot_name.split(" = ", 1)[0]


def linear_reasons(model: PipelineModel, train: DataFrame, adverse: int, max_reasons: int = 4) -> ReasonCodesModel:
    """Reasons from a logistic regression's coefficients and the training means of its inputs."""
    lr = fitted_classifier(model)
    input_col = lr.getFeaturesCol()
    names = vector_slot_names(model, train.limit(0))
    matrix = lr.coefficientMatrix.toArray()
    weights = matrix[0] if matrix.shape[0] == 1 else matrix[adverse] - matrix.mean(axis=0)
    means = Summarizer.metrics("mean").summary(F.col(input_col)).alias("s")
    mean = model.transform(train).select(means).first()["s"]["mean"].toArray()
    features: dict[str, list] = defaultdict(list)
    for i, (name, w, m) in enumerate(zip(names, weights, mean)):
        if w != 0.0:             # an elastic-net zero: the model does not use this slot
            features[source_feature(name)].append([i, float(w), float(m)])
    state = {"input_col": input_col, "features": dict(features)}
    return ReasonCodesModel(method="linear", state=json.dumps(state), maxReasons=max_reasons)


def contribution_reasons(model: PipelineModel, sample: DataFrame, adverse: int, num_classes: int,
                         max_reasons: int = 4) -> ReasonCodesModel:
    """Reasons from XGBoost's own per-row SHAP contributions (``pred_contrib_col``, computed on the
    executors with the prediction): a feature's impact is the sum of its slots' contributions to
    the adverse class's margin (one-hot slots of a category add up to their feature); the bias
    term is no reason. Sets the booster stage of ``model`` to write the contributions."""
    booster = fitted_classifier(model)
    names = vector_slot_names(model, sample)
    booster.set(booster.pred_contrib_col, CONTRIBUTIONS)
    features: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        features[source_feature(name)].append(i)
    state = {"input_col": CONTRIBUTIONS, "group": 0 if num_classes == 2 else adverse, "features": dict(features)}
    return ReasonCodesModel(method="contributions", state=json.dumps(state), maxReasons=max_reasons)


def used_features(model: PipelineModel, sample: DataFrame) -> set[str] | None:
    """Source features with non-zero importance in a tree model (None: not a tree model)."""
    names = vector_slot_names(model, sample)
    importances = tree_importances(fitted_classifier(model), len(names))
    if importances is None:
        return None
    return {source_feature(n) for n, v in zip(names, importances) if v > 0}
