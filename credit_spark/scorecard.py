"""The traditional scorecard as a pyspark.ml Estimator/Model pair: binning -> WOE/IV -> LR -> points.

Fitting is Spark-native: quantile bin edges come from one ``approxQuantile`` pass, the event
counts per (feature, bin, class) from one ``groupBy`` (a table of features x bins x classes
reaches the driver, never the data), and each logistic regression is fitted by MLlib on the
WOE-encoded data. The fitted model keeps only small JSON params (edges, WOE tables,
coefficients), so it saves and loads inside a ``PipelineModel``, and scoring is plain SQL
expressions.

Definitions (per feature ``f`` and bin ``b``, "event" = the adverse class being modelled):

* ``WOE(b) = ln( ((non_events_b + 0.5) / (NON_EVENTS + 0.5 * n_bins))
               / ((events_b + 0.5) / (EVENTS + 0.5 * n_bins)) )`` — positive WOE = safer bin;
  the 0.5 smoothing keeps empty cells finite;
* ``IV(f) = sum_b (share_non_events_b - share_events_b) * WOE(b)`` with the same smoothed shares;
* features with ``IV < minIV`` are dropped (the best one is always kept);
* ``logit(P(event)) = intercept + sum_f coef_f * WOE_f(bin)`` (MLlib logistic regression);
* points: ``factor = pdo / ln 2``, ``offset = baseScore - factor * ln(baseOdds)``, the score is
  ``offset + factor * ln(odds of non-event)`` and each bin's points are
  ``-factor * (coef_f * WOE_f(b) + intercept / n_features) + offset / n_features``, so a
  customer's points sum exactly to the score.

Multi-class labels (Good / Standard / Poor): one scorecard per class, one-vs-rest, with the
class probabilities normalised to sum to one; the **points** are those of the worst class's
card (``adverse class vs rest``: e.g. "Poor vs not Poor"), so higher points = safer, as usual.
Binary labels have a single card for the adverse (last) class.

Binning (param ``binning``):

* ``"quantile"`` (default): up to ``numBins`` bins per numeric feature, cut at approximate
  quantiles; a value ``v`` is in bin ``i`` when ``edges[i-1] <= v < edges[i]``; null/NaN is the
  ``"missing"`` bin.
* ``"monotonic"``: the same quantile count table, then ``monotonic_merge`` pools adjacent
  non-missing bins on the driver (pool-adjacent-violators on the counts; no extra pass over the
  data) until the adverse class's (label ``numClasses - 1``) event rate is monotonic across the
  bins. The direction is the sign of the count-weighted covariance between bin index and the
  adverse event rate (ties: increasing). Bins are pooled while the raw rate or the rate smoothed
  as the WOE is, ``(adverse + 0.5) / (n + 1)``, breaks that direction, so the adverse card's WOE
  is exactly monotonic too (the other one-vs-rest cards need not be); empty bins carry no
  evidence and are absorbed into a neighbour first. A merge drops the interior edges, the
  merged bins are renumbered ``"0".."m"``, and every card (all one-vs-rest cards) uses these
  edges. ``"missing"`` is never merged; categorical features (unordered) are left as they are.

Weights (param ``weightCol``): when set, the logistic regressions on WOE are weighted by that
column; the class probabilities and predictions use the weighted fit (a balanced decision rule),
while the **points** use the intercept minus ln(mean event weight / mean non-event weight), so
the score stays on the unweighted odds scale (``baseScore`` at ``baseOdds``). The WOE/IV count table stays unweighted on purpose: class weights scale each class's
counts uniformly, which leaves every WOE unchanged apart from the 0.5 smoothing (a constant
shift otherwise), and the exact counts keep the WOE tables checkable by hand.
"""
from __future__ import annotations

import json
import math
from fractions import Fraction

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import array_to_vector
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasLabelCol, HasPredictionCol, HasProbabilityCol, HasWeightCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credit_spark.sqltext import sql_double, sql_name, sql_string

MISSING = "missing"
SMOOTHING = 0.5
BINNINGS = ("quantile", "monotonic")


def _list_param(name: str, doc: str) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=TypeConverters.toListString)


class _ScorecardParams(HasLabelCol, HasProbabilityCol, HasPredictionCol):
    numericCols = _list_param("numericCols", "numeric inputs, binned by quantiles")
    categoricalCols = _list_param("categoricalCols", "categorical inputs, one bin per value")
    numClasses = Param(Params._dummy(), "numClasses", "number of label classes (label = 0..k-1, k-1 worst)",
                       typeConverter=TypeConverters.toInt)
    numBins = Param(Params._dummy(), "numBins", "quantile bins per numeric feature", typeConverter=TypeConverters.toInt)
    minIV = Param(Params._dummy(), "minIV", "drop features whose information value is below this",
                  typeConverter=TypeConverters.toFloat)
    pdo = Param(Params._dummy(), "pdo", "points to double the odds", typeConverter=TypeConverters.toFloat)
    baseScore = Param(Params._dummy(), "baseScore", "score at the base odds", typeConverter=TypeConverters.toFloat)
    baseOdds = Param(Params._dummy(), "baseOdds", "odds (non-event:event) at the base score",
                     typeConverter=TypeConverters.toFloat)
    regParam = Param(Params._dummy(), "regParam", "L2 regularisation of the logistic regressions",
                     typeConverter=TypeConverters.toFloat)
    scoreCol = Param(Params._dummy(), "scoreCol", "output column of the points score", typeConverter=TypeConverters.toString)
    binning = Param(Params._dummy(), "binning",
                    "numeric binning: 'quantile' or 'monotonic' (quantile bins merged until the adverse "
                    "event rate is monotonic)", typeConverter=TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(numericCols=[], categoricalCols=[], numClasses=2, numBins=10, minIV=0.02, pdo=20.0,
                         baseScore=600.0, baseOdds=50.0, regParam=0.0, scoreCol="score_points",
                         binning="quantile", labelCol="label", probabilityCol="probability", predictionCol="prediction")

    def _validate(self) -> None:
        if not self.getOrDefault("numericCols") and not self.getOrDefault("categoricalCols"):
            raise ValueError("Scorecard needs at least one numeric or categorical input column")
        if self.getOrDefault("numClasses") < 2:
            raise ValueError(f"numClasses must be at least 2, got {self.getOrDefault('numClasses')}")
        if self.getOrDefault("numBins") < 2:
            raise ValueError(f"numBins must be at least 2, got {self.getOrDefault('numBins')}")
        if self.getOrDefault("pdo") <= 0 or self.getOrDefault("baseOdds") <= 0:
            raise ValueError("pdo and baseOdds must be positive")
        if self.getOrDefault("binning") not in BINNINGS:
            raise ValueError(f"binning must be one of {', '.join(map(repr, BINNINGS))}, "
                             f"got {self.getOrDefault('binning')!r}")

    def modelled_classes(self) -> list[int]:
        """One card per class (one-vs-rest), or a single card for the adverse class when binary."""
        k = self.getOrDefault("numClasses")
        return [k - 1] if k == 2 else list(range(k))

    def points_scale(self) -> tuple[float, float]:
        return points_scale(self.getOrDefault("pdo"), self.getOrDefault("baseScore"), self.getOrDefault("baseOdds"))


def points_scale(pdo: float, base_score: float, base_odds: float) -> tuple[float, float]:
    """(factor, offset) of the points scale: score = offset + factor × ln(odds of non-event)."""
    factor = pdo / math.log(2)
    return factor, base_score - factor * math.log(base_odds)


def bin_key_sql(column: str, edges: list[float] | None) -> str:
    """:func:`bin_key` as SQL text."""
    col = sql_name(column)
    if edges is None:
        return f"coalesce(CAST({col} AS STRING), {sql_string(MISSING)})"
    branches = " ".join(f"WHEN {col} < {sql_double(edge)} THEN '{i}'" for i, edge in enumerate(edges))
    return (f"CASE WHEN {col} IS NULL OR isnan(CAST({col} AS DOUBLE)) THEN {sql_string(MISSING)} "
            f"{branches} ELSE '{len(edges)}' END")


def bin_key(column: str, edges: list[float] | None) -> Column:
    """The bin of a value as text: "0".."n" for numeric quantile bins, the value for categories."""
    return F.expr(bin_key_sql(column, edges))


def lookup_sql(column: str, edges: list[float] | None, values: dict[str, float]) -> str:
    """The value of a row's bin in ``values`` (bin key -> number); 0 for a bin not in it."""
    if not values:
        return "0.0D"
    pairs = ", ".join(f"{sql_string(key)}, {sql_double(value)}" for key, value in values.items())
    return f"coalesce(element_at(map({pairs}), {bin_key_sql(column, edges)}), 0.0D)"


def bin_label(key: str, edges: list[float] | None) -> str:
    if edges is None or key == MISSING:
        return key
    i = int(key)
    low = "-inf" if i == 0 else f"{edges[i - 1]:g}"
    high = "+inf" if i == len(edges) else f"{edges[i]:g}"
    return f"[{low}, {high})"


def woe_iv(counts: dict[str, tuple[int, int]]) -> tuple[dict[str, float], float]:
    """WOE per bin and the IV from {bin: (non_events, events)}, with the module's smoothing."""
    n_bins = len(counts)
    total_good = sum(g for g, _ in counts.values()) + SMOOTHING * n_bins
    total_bad = sum(b for _, b in counts.values()) + SMOOTHING * n_bins
    woe, iv = {}, 0.0
    for key, (good, bad) in counts.items():
        share_good = (good + SMOOTHING) / total_good
        share_bad = (bad + SMOOTHING) / total_bad
        woe[key] = math.log(share_good / share_bad)
        iv += (share_good - share_bad) * woe[key]
    return woe, iv


def monotonic_merge(edges: list[float], counts_by_bin: dict[str, dict[int, int]],
                    adverse: int) -> tuple[list[float], dict[str, dict[int, int]]]:
    """Pool adjacent numeric bins until the adverse class's event rate is monotonic.

    ``edges`` are a numeric feature's cut points (bins "0".."len(edges)", as ``bin_key``);
    ``counts_by_bin`` is {bin: {class: count}} (absent bins are empty, "missing" is optional);
    ``adverse`` is the class whose rate must be monotonic. Returns the kept edges and the merged
    counts keyed "0".."m" (plus "missing", copied unchanged). Pure and exact (integer/Fraction
    arithmetic): empty bins are first absorbed into the next non-empty bin (the last ones into the
    previous), the direction is the sign of the count-weighted covariance between bin index and
    the raw adverse rate (0 -> increasing), then pool-adjacent-violators: adjacent blocks are
    pooled while either the raw rate ``adverse / n`` or the rate smoothed as the WOE,
    ``(adverse + 0.5) / (n + 1)``, breaks the direction (ties are not violations), so both end
    monotonic and with them the adverse card's WOE.
    """
    # blocks: [last original bin index, {class: count}]; a block reaches up to edges[last], so
    # skipping an empty bin hands its range to the next block (trailing ones to the last block)
    blocks = [[i, dict(ys)] for i in range(len(edges) + 1)
              if sum((ys := counts_by_bin.get(str(i), {})).values()) > 0]

    def totals(ys: dict[int, int]) -> tuple[int, int]:
        return sum(ys.values()), ys.get(adverse, 0)

    big_n = sum(totals(ys)[0] for _, ys in blocks)
    big_a = sum(totals(ys)[1] for _, ys in blocks)
    idx_n = sum(j * totals(ys)[0] for j, (_, ys) in enumerate(blocks))
    idx_a = sum(j * totals(ys)[1] for j, (_, ys) in enumerate(blocks))
    increasing = big_n * idx_a - idx_n * big_a >= 0

    def rates(ys: dict[int, int]) -> tuple[Fraction, Fraction]:
        n, a = totals(ys)
        return Fraction(a, n), Fraction(2 * a + 1, 2 * n + 2)  # raw, smoothed as the WOE

    def ordered(before: Fraction, after: Fraction) -> bool:
        return before <= after if increasing else before >= after

    stack: list[list] = []
    for last, ys in blocks:
        stack.append([last, ys])
        while len(stack) >= 2:
            if all(map(ordered, rates(stack[-2][1]), rates(stack[-1][1]))):
                break
            last_top, ys_top = stack.pop()
            merged = dict(stack[-1][1])
            for y, n in ys_top.items():
                merged[y] = merged.get(y, 0) + n
            stack[-1] = [last_top, merged]

    new_edges = [edges[last] for last, _ in stack[:-1]]
    merged_counts = {str(j): ys for j, (_, ys) in enumerate(stack)}
    if MISSING in counts_by_bin:
        merged_counts[MISSING] = dict(counts_by_bin[MISSING])
    return new_edges, merged_counts


class Scorecard(Estimator, _ScorecardParams, HasWeightCol, DefaultParamsReadable, DefaultParamsWritable):
    """Binning + WOE + logistic regression + points, fitted on a DataFrame with a 0-based label."""

    @keyword_only
    def __init__(self, *, numericCols: list[str] | None = None, categoricalCols: list[str] | None = None,
                 labelCol: str = "label", numClasses: int = 2, numBins: int = 10, minIV: float = 0.02,
                 pdo: float = 20.0, baseScore: float = 600.0, baseOdds: float = 50.0, regParam: float = 0.0,
                 probabilityCol: str = "probability", predictionCol: str = "prediction",
                 scoreCol: str = "score_points", binning: str = "quantile", weightCol: str | None = None):
        super().__init__()
        self._set(**{key: value for key, value in self._input_kwargs.items() if value is not None})

    def _weight_col(self) -> str | None:
        return (self.getOrDefault(self.weightCol) or None) if self.isDefined(self.weightCol) else None

    def _fit(self, dataset: DataFrame) -> "ScorecardModel":
        if not isinstance(dataset, DataFrame):
            raise TypeError(f"dataset must be a DataFrame but got {type(dataset).__name__}")
        self._validate()
        weight = self._weight_col()
        if weight is not None and weight not in dataset.columns:
            raise ValueError(f"weightCol {weight!r} is not a column of the dataset")
        numeric, categorical = self.getOrDefault("numericCols"), self.getOrDefault("categoricalCols")
        label = self.getOrDefault("labelCol")
        k = self.getOrDefault("numBins")
        edges: dict[str, list[float] | None] = {c: None for c in categorical}
        if numeric:
            quantiles = dataset.approxQuantile(numeric, [i / k for i in range(1, k)], 0.001)
            edges.update({c: sorted(set(q)) for c, q in zip(numeric, quantiles)})
        features = [*numeric, *categorical]

        # one pass: counts per (feature, bin, class)
        pairs = F.explode(F.array(*[F.struct(F.lit(f).alias("feature"), bin_key(f, edges[f]).alias("bin"))
                                    for f in features]))
        rows = (dataset.select(F.col(label).cast("int").alias("y"), pairs.alias("p"))
                .groupBy("p.feature", "p.bin", "y").count().collect())
        table: dict[str, dict[str, dict[int, int]]] = {}
        for r in rows:
            table.setdefault(r["feature"], {}).setdefault(r["bin"], {})[r["y"]] = int(r["count"])
        if self.getOrDefault("binning") == "monotonic":
            adverse = self.getOrDefault("numClasses") - 1
            for f in numeric:
                edges[f], table[f] = monotonic_merge(edges[f], table.get(f, {}), adverse)

        # mean weight per class: a weighted regression's intercept is off by ln(mean event weight /
        # mean non-event weight); the points undo that shift so they stay on the true odds scale
        class_weights: dict[int, tuple[float, int]] = {}
        if weight is not None:
            for r in dataset.groupBy(F.col(label).cast("int").alias("y")).agg(
                    F.avg(F.col(weight)).alias("w"), F.count(F.lit(1)).alias("n")).collect():
                class_weights[r["y"]] = (float(r["w"]), int(r["n"]))

        cards = {}
        for cls in self.modelled_classes():
            woe, iv = {}, {}
            for f in features:
                bins = table.get(f, {})
                counts = {b: (sum(n for y, n in ys.items() if y != cls), ys.get(cls, 0)) for b, ys in bins.items()}
                woe[f], iv[f] = woe_iv(counts) if counts else ({}, 0.0)
            kept = [f for f in features if iv[f] >= self.getOrDefault("minIV")] or [max(features, key=iv.get)]
            weights = [F.col(weight).cast("double").alias("weight")] if weight is not None else []
            encoded = dataset.select((F.col(label).cast("int") == cls).cast("double").alias("event"), *weights,
                                     *[woe_column(f, edges[f], woe[f]).alias(f"woe_{i}") for i, f in enumerate(kept)])
            assembled = VectorAssembler(inputCols=[f"woe_{i}" for i in range(len(kept))],
                                        outputCol="woe").transform(encoded)
            lr = LogisticRegression(featuresCol="woe", labelCol="event", family="binomial",
                                    regParam=self.getOrDefault("regParam"), maxIter=100,
                                    **({"weightCol": "weight"} if weight is not None else {})).fit(assembled)
            shift = 0.0
            if class_weights and cls in class_weights:
                others = [(w, n) for y, (w, n) in class_weights.items() if y != cls]
                other_mean = sum(w * n for w, n in others) / max(1, sum(n for _, n in others))
                shift = math.log(class_weights[cls][0] / other_mean) if other_mean > 0 else 0.0
            cards[str(cls)] = {"features": kept, "woe": {f: woe[f] for f in kept}, "iv": iv,
                               "coefficients": [float(c) for c in lr.coefficients], "intercept": float(lr.intercept),
                               "points_intercept": float(lr.intercept) - shift}
        model = ScorecardModel(state=json.dumps({"edges": edges, "cards": cards}))
        return self._copyValues(model)


def woe_column(feature: str, edges: list[float] | None, woe: dict[str, float]) -> Column:
    """WOE of a value's bin; a bin never seen in training is neutral (0)."""
    return F.expr(lookup_sql(feature, edges, woe))


class ScorecardModel(Model, _ScorecardParams, DefaultParamsReadable, DefaultParamsWritable):
    """Fitted scorecard: class probabilities, prediction and the points score, all as SQL expressions."""

    state = Param(Params._dummy(), "state", "JSON: bin edges and, per modelled class, WOE tables and coefficients",
                  typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, state: str = "{}", **kwargs):
        super().__init__()
        self._set(**self._input_kwargs)

    def _state(self) -> dict:
        return json.loads(self.getOrDefault("state"))

    def _logit(self, card: dict, edges: dict) -> Column:
        terms = [sql_double(card["intercept"])]
        terms += [f"{sql_double(coef)} * {lookup_sql(f, edges[f], card['woe'][f])}"
                  for f, coef in zip(card["features"], card["coefficients"])]
        return F.expr(" + ".join(terms))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        state = self._state()
        edges, cards = state["edges"], state["cards"]
        k = self.getOrDefault("numClasses")
        adverse = str(k - 1)
        logits = {cls: self._logit(card, edges) for cls, card in cards.items()}
        factor, offset = self.points_scale()
        if k == 2:
            p_bad = F.lit(1.0) / (F.lit(1.0) + F.exp(-logits[adverse]))
            probs = F.array(F.lit(1.0) - p_bad, p_bad)
        else:
            raw = [F.lit(1.0) / (F.lit(1.0) + F.exp(-logits[str(c)])) for c in range(k)]
            total = sum(raw[1:], raw[0])
            probs = F.array(*[r / total for r in raw])
        out = dataset.withColumn("_sc_probs", probs)
        return (out.withColumn(self.getOrDefault("probabilityCol"), array_to_vector(F.col("_sc_probs")))
                .withColumn(self.getOrDefault("predictionCol"),
                            (F.array_position(F.col("_sc_probs"), F.array_max(F.col("_sc_probs"))) - 1).cast("double"))
                .withColumn(self.getOrDefault("scoreCol"), F.lit(offset) - F.lit(factor) * (
                    logits[adverse] - F.lit(cards[adverse]["intercept"]) + F.lit(self._points_intercept(cards[adverse]))))
                .drop("_sc_probs"))

    @staticmethod
    def _points_intercept(card: dict) -> float:
        """The intercept the points use: without the class-weight shift (see ``_fit``)."""
        return card.get("points_intercept", card["intercept"])

    def points_by_bin_key(self) -> list[dict]:
        """feature, bin key (as ``bin_key`` computes it), WOE and points of the adverse class's card."""
        state = self._state()
        card = state["cards"][str(self.getOrDefault("numClasses") - 1)]
        factor, offset = self.points_scale()
        n = len(card["features"])
        rows = []
        for f, coef in zip(card["features"], card["coefficients"]):
            for key, w in sorted(card["woe"][f].items(), key=lambda kv: (kv[0] == MISSING, kv[0].zfill(6))):
                points = -factor * (coef * w + self._points_intercept(card) / n) + offset / n
                rows.append({"feature": f, "bin_key": key, "woe": w, "points": points, "iv": card["iv"][f]})
        return rows

    def bin_edges(self) -> dict[str, list[float] | None]:
        """Numeric features' bin edges (None for a categorical feature: one bin per value)."""
        return self._state()["edges"]

    def scorecard_table(self) -> list[dict]:
        """feature, bin, WOE and points of the adverse class's card (the points that sum to the score)."""
        edges = self.bin_edges()
        return [{"feature": r["feature"], "bin": bin_label(r["bin_key"], edges[r["feature"]]), "woe": r["woe"],
                 "points": r["points"], "iv": r["iv"]} for r in self.points_by_bin_key()]

    def iv_table(self) -> list[dict]:
        card = self._state()["cards"][str(self.getOrDefault("numClasses") - 1)]
        return sorted(({"feature": f, "iv": v, "kept": f in card["features"]} for f, v in card["iv"].items()),
                      key=lambda r: -r["iv"])
