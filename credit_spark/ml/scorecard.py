"""The traditional scorecard as a pyspark.ml Estimator/Model pair: binning -> WOE/IV -> LR -> points.

Fitting is Spark-native: the numeric bin edges come from one aggregation pass
(``histogram_numeric``: which features have few distinct values) and one ``approxQuantile`` pass
(quantiles of the others), the event counts per (feature, bin, class) from one ``groupBy`` (a
table of features x bins x classes reaches the driver, never the data), and each logistic
regression is fitted by MLlib on the WOE-encoded data. The fitted model keeps only small JSON
params (edges, WOE tables, coefficients), so it saves and loads inside a ``PipelineModel``, and
scoring is plain SQL expressions.

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

Binning of a numeric feature (null/NaN is always the ``"missing"`` bin; a value ``v`` is in bin
``i`` when ``edges[i-1] <= v < edges[i]``, bins ``"0".."len(edges)"``):

* **at most ``numBins`` distinct values** (counts such as "times 90 days late"): one bin per
  value, cut midway between neighbouring values (0, 1, 2, 3 -> edges 0.5, 1.5, 2.5). Quantile
  edges cannot do this: with 95% zeros every decile is 0, so the feature was one bin with an IV
  of 0 and was dropped, however strong the rest (41.6% bad above zero against 4.6% at zero);
* **otherwise quantile bins**: edges at the approximate ``i / numBins`` quantiles (relative rank
  error 0.001), deduplicated, except that a **dominant value**, one holding at least
  ``1 / numBins`` of the non-missing rows (a whole bin's share, which quantiles cannot split),
  gets a bin of its own: it is cut midway to the nearest training value on either side (no
  lower cut at the minimum, no upper one at the maximum), the quantile edges in that span (the
  value and its upper neighbour at most) give way, and the other edges stay, so the other
  values keep their quantile bins (a dominant value that is a quantile edge adds one bin at
  most). E.g. 55% zeros and 1..45 with ``numBins=5``: edges 0.5, 5, 25 instead of 0, 5, 25
  (whose bin [0, 5) mixed the zeros with 1..4). A feature without a dominant value keeps
  exactly its quantile edges.

How, at the cost of one aggregation pass: which features have few distinct values is one
aggregation over all numeric features (``few_distinct_values``: ``histogram_numeric`` with
``numBins + 1`` centres, exact while the values fit; bounded memory, no shuffle); the quantiles
of the others come from one ``approxQuantile`` pass. The count pass then bins finer than the
final bins and records the smallest and largest value of each fine bin: a few-distinct feature
is cut midway between its (histogram) values, a quantiled one at ``q`` and ``nextafter(q)`` for
every quantile edge ``q``, so the fine bin ``[q, nextafter(q))`` holds exactly the rows equal to
``q`` (a value with a bin's share spans a quantile step, so it is a quantile edge, up to the
rank error). ``isolate_values`` reads the exact shares and neighbouring values from that table on
the driver, places the cuts (midpoints of exact training values), and sums the fine bins into the
final ones: no further pass. Categorical features get one bin per value. Then (param ``binning``):

* ``"quantile"`` (default): the bins as above.
* ``"monotonic"``: the same count table, then ``monotonic_merge`` pools adjacent
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

from credit_spark.lake.session import without_whole_stage_codegen
from credit_spark.lake.sqltext import sql_double
from credit_spark.ml.binning import (MISSING, _non_missing, bin_key, bin_label, cut_between, few_distinct_values,
                                  isolate_values, lookup_sql, monotonic_merge, woe_iv)

BINNINGS = ("quantile", "monotonic")
QUANTILE_ERROR = 0.001  # relative rank error of the approxQuantile pass


def _list_param(name: str, doc: str) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=TypeConverters.toListString)


class _ScorecardParams(HasLabelCol, HasProbabilityCol, HasPredictionCol):
    numericCols = _list_param("numericCols", "numeric inputs: one bin per value when they have at most numBins "
                              "distinct values, else quantile bins with a dominant value in a bin of its own")
    categoricalCols = _list_param("categoricalCols", "categorical inputs, one bin per value")
    numClasses = Param(Params._dummy(), "numClasses", "number of label classes (label = 0..k-1, k-1 worst)",
                       typeConverter=TypeConverters.toInt)
    numBins = Param(Params._dummy(), "numBins", "quantile bins per numeric feature; a feature with at most this many "
                    "distinct values gets one bin per value", typeConverter=TypeConverters.toInt)
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
        # the counting pass (a struct per feature) and the WOE inputs of the regression (a CASE per
        # feature) are each one operator with a hundred expressions on a wide spec
        with without_whole_stage_codegen(dataset.sparkSession):
            return self._fit_card(dataset)

    def _fit_card(self, dataset: DataFrame) -> "ScorecardModel":
        self._validate()
        weight = self._weight_col()
        if weight is not None and weight not in dataset.columns:
            raise ValueError(f"weightCol {weight!r} is not a column of the dataset")
        numeric, categorical = self.getOrDefault("numericCols"), self.getOrDefault("categoricalCols")
        label = self.getOrDefault("labelCol")
        k = self.getOrDefault("numBins")
        # numeric binning plan: the edges kept unless a value is isolated, the finer edges the count
        # pass uses, and the share that isolates a single-valued fine bin (see "Binning" above)
        base: dict[str, list[float]] = {}
        fine: dict[str, list[float] | None] = {c: None for c in categorical}
        min_share: dict[str, Fraction] = {}
        distinct = few_distinct_values(dataset, numeric, k) if numeric else {}
        for c, values in distinct.items():
            if values is not None:  # one bin per value
                base[c] = fine[c] = [cut_between(a, b) for a, b in zip(values, values[1:])]
                min_share[c] = Fraction(0)
        quantiled = [c for c in numeric if distinct[c] is None]
        if quantiled:
            quantiles = dataset.approxQuantile(quantiled, [i / k for i in range(1, k)], QUANTILE_ERROR)
            for c, q in zip(quantiled, quantiles):
                base[c] = sorted(set(q))
                # [q, nextafter(q)) holds exactly the rows equal to q: its count is q's share
                fine[c] = sorted(set(base[c]) | {math.nextafter(e, math.inf) for e in base[c]})
                min_share[c] = Fraction(1, k)
        features = [*numeric, *categorical]

        # one pass: counts per (feature, fine bin, class), with each numeric fine bin's value range
        pairs = F.explode(F.array(*[F.struct(F.lit(f).alias("feature"), bin_key(f, fine[f]).alias("bin"),
                                             (_non_missing(f) if f in base else F.lit(None).cast("double"))
                                             .alias("v"))
                                    for f in features]))
        rows = (dataset.select(F.col(label).cast("int").alias("y"), pairs.alias("p"))
                .groupBy("p.feature", "p.bin", "y")
                .agg(F.count(F.lit(1)).alias("count"), F.min("p.v").alias("low"), F.max("p.v").alias("high"))
                .collect())
        table: dict[str, dict[str, dict[int, int]]] = {}
        ranges: dict[str, dict[str, tuple[float, float]]] = {}
        for r in rows:
            table.setdefault(r["feature"], {}).setdefault(r["bin"], {})[r["y"]] = int(r["count"])
            if r["feature"] in base and r["bin"] != MISSING:
                low, high = ranges.setdefault(r["feature"], {}).get(r["bin"], (r["low"], r["high"]))
                ranges[r["feature"]][r["bin"]] = (min(low, r["low"]), max(high, r["high"]))
        edges: dict[str, list[float] | None] = {c: None for c in categorical}
        for f in numeric:
            edges[f], table[f] = isolate_values(base[f], table.get(f, {}), ranges.get(f, {}), min_share[f])
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
