"""Test-set metrics computed in Spark; only small summaries (k x k counts, k x bins histograms) reach the driver.

* accuracy, macro / weighted F1, per-class precision and recall — from the confusion matrix;
* one-vs-rest ROC-AUC per class (and their mean), Gini = 2 AUC - 1, KS = max |TPR - FPR| —
  from a histogram of each class's probability in ``HISTOGRAM_BINS`` equal-width buckets
  (scores within one bucket count as ties: the AUC is exact up to that resolution, 1e-3);
* log-loss (mean of -ln p(true class)), Brier score (mean squared distance between the
  probability vector and the one-hot truth, summed over classes), expected calibration error
  (``ECE_BINS`` bins of the predicted class's probability: sum of |accuracy - confidence|
  weighted by the bin's share of rows), before and after calibration;
* for the report: ROC curves, the distribution of P(adverse class) per true class, and the
  adverse rate in ten equal-count bands of P(adverse) — all from the same histogram.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credit_spark.errors import NoRecordsError
from credit_spark.ml.calibration import expected_calibration_error, reliability_table

HISTOGRAM_BINS = 1000
ECE_BINS = 10
EPS = 1e-15
ROC_POINTS = 101
DISTRIBUTION_BINS = 20
BANDS = 10


@dataclass(frozen=True)
class ModelMetrics:
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    test_rows: int
    auc: float = float("nan")
    gini: float = float("nan")
    ks: float = float("nan")
    log_loss: float = float("nan")
    brier: float = float("nan")
    ece: float = float("nan")
    #: ece / brier / log_loss / auc of the probabilities before calibration (when a calibrator ran)
    uncalibrated: dict[str, float] = field(default_factory=dict)
    #: reliability tables (bin, n, confidence, accuracy): "after" = the model's output, "before" = raw
    reliability: dict[str, list[dict]] = field(default_factory=dict)
    #: per class: ROC curve points (fpr, tpr ascending) and its AUC
    roc: dict[str, dict] = field(default_factory=dict)
    #: histogram of P(adverse class) per true class
    score_distribution: dict = field(default_factory=dict)
    #: ten bands of P(adverse) with equal row counts (ties permitting): n, adverse count and rate
    bad_rate_by_band: list[dict] = field(default_factory=list)

    def headline(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "weighted_f1": self.weighted_f1,
                "auc": self.auc, "gini": self.gini, "ks": self.ks, "log_loss": self.log_loss,
                "brier": self.brier, "ece": self.ece}


CONFUSION_METRICS = ("accuracy", "macro_f1", "weighted_f1")


def confusion_matrix(predictions: DataFrame, k: int, label_col: str, prediction_col: str = "prediction") -> list[list[int]]:
    """k x k counts (truth x prediction), one small aggregation."""
    confusion = [[0] * k for _ in range(k)]
    for row in predictions.groupBy(F.col(label_col).cast("int").alias("y"),
                                   F.col(prediction_col).cast("int").alias("yhat")).count().collect():
        confusion[row["y"]][row["yhat"]] += int(row["count"])
    return confusion


def confusion_metrics(confusion: list[list[int]], classes: list[str]) -> dict:
    """Accuracy, per-class precision/recall/F1, macro and weighted F1 from a k x k matrix (truth x prediction)."""
    k = len(classes)
    total = sum(map(sum, confusion))
    if total == 0:
        raise NoRecordsError("the test set is empty: add data or raise train.test_fraction")
    per_class = {}
    for i, name in enumerate(classes):
        tp = confusion[i][i]
        predicted = sum(confusion[r][i] for r in range(k))
        actual = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": float(actual)}
    return {
        "accuracy": sum(confusion[i][i] for i in range(k)) / total,
        "macro_f1": sum(c["f1"] for c in per_class.values()) / k,
        "weighted_f1": sum(c["f1"] * c["support"] for c in per_class.values()) / total,
        "per_class": per_class,
        "test_rows": total,
    }


def roc_from_histogram(events: list[int], non_events: list[int]) -> tuple[float, float]:
    """(AUC, KS) from per-bucket counts ordered by score ascending; ties within a bucket count half."""
    total_e, total_n = sum(events), sum(non_events)
    if total_e == 0 or total_n == 0:
        return float("nan"), float("nan")
    auc, ks, tpr, fpr = 0.0, 0.0, 0.0, 0.0
    for e, n in zip(reversed(events), reversed(non_events)):   # threshold from high score to low
        new_tpr, new_fpr = tpr + e / total_e, fpr + n / total_n
        auc += (new_fpr - fpr) * (tpr + new_tpr) / 2
        tpr, fpr = new_tpr, new_fpr
        ks = max(ks, abs(tpr - fpr))
    return auc, ks


def roc_curve(events: list[int], non_events: list[int], points: int = ROC_POINTS) -> dict[str, list[float]]:
    """ROC points (fpr, tpr), thresholds stepping down through the histogram, ~``points`` of them."""
    total_e, total_n = sum(events), sum(non_events)
    if total_e == 0 or total_n == 0:
        return {"fpr": [], "tpr": []}
    step = max(1, len(events) // (points - 1))
    fpr, tpr, e_cum, n_cum = [0.0], [0.0], 0, 0
    for i, (e, n) in enumerate(zip(reversed(events), reversed(non_events)), start=1):
        e_cum, n_cum = e_cum + e, n_cum + n
        if i % step == 0 or i == len(events):
            fpr.append(n_cum / total_n)
            tpr.append(e_cum / total_e)
    return {"fpr": fpr, "tpr": tpr}


def equal_count_bands(n_per_bin: list[int], bad_per_bin: list[int], bands: int = BANDS) -> list[dict]:
    """Cut histogram bins (ascending score) into about ``bands`` groups of about equal row counts.

    Each bin goes to band ``floor(rows before it × bands / total)``, so a bin holding many tied
    scores (isotonic calibration makes steps) fills its band and the next bins start a new one,
    instead of each becoming a tiny band of its own.
    """
    total = sum(n_per_bin)
    width = 1.0 / len(n_per_bin)
    groups: dict[int, dict] = {}
    before = 0
    for i, (rows, bads) in enumerate(zip(n_per_bin, bad_per_bin)):
        if rows == 0:
            continue
        g = groups.setdefault(before * bands // total, {"low": i * width, "n": 0, "bad": 0})
        g["n"], g["bad"], g["high"] = g["n"] + rows, g["bad"] + bads, (i + 1) * width
        before += rows
    return [{"band": j, "low": g["low"], "high": g["high"], "n": g["n"], "bad": g["bad"],
             "bad_rate": g["bad"] / g["n"]} for j, g in enumerate(groups.values(), start=1)]


def _probability_quality(df: DataFrame, probability_col: str) -> tuple[float, float, list[dict], float]:
    """(log_loss, brier, reliability table, ECE) of one probability column (``y``, ``yhat`` in df)."""
    p = vector_to_array(F.col(probability_col))
    p_true = F.element_at(p, F.col("y") + 1)
    onehot_sq = F.aggregate(F.transform(p, lambda x, i: (x - F.when(i == F.col("y"), 1.0).otherwise(0.0)) ** 2),
                            F.lit(0.0), lambda acc, x: acc + x)
    losses = df.agg(F.avg(-F.log(F.greatest(p_true, F.lit(EPS)))).alias("log_loss"),
                    F.avg(onehot_sq).alias("brier")).first()
    table = reliability_table(df, "y", probability_col, "yhat", bins=ECE_BINS)
    return float(losses["log_loss"]), float(losses["brier"]), table, expected_calibration_error(table)


def _histogram_rows(df: DataFrame, probability_col: str, with_loss: bool = False) -> list:
    """Rows (cls, b, y, count[, loss]): rows of true class ``y`` whose probability of class ``cls``
    falls in bucket ``b``; ``loss`` sums the log-loss of those rows (over ``cls`` 0, so each row once)."""
    p = vector_to_array(F.col(probability_col))
    buckets = F.explode(F.transform(p, lambda x, i: F.struct(
        i.alias("cls"), F.least(F.floor(x * HISTOGRAM_BINS), F.lit(HISTOGRAM_BINS - 1)).cast("int").alias("b"))))
    aggregates = [F.count(F.lit(1)).alias("count")]
    columns = ["y", buckets.alias("h")]
    if with_loss:
        columns.append((-F.log(F.greatest(F.element_at(p, F.col("y") + 1), F.lit(EPS)))).alias("row_loss"))
        aggregates.append(F.sum("row_loss").alias("loss"))
    return df.select(*columns).groupBy("h.cls", "h.b", "y").agg(*aggregates).collect()


def _counts(rows: list, k: int) -> list[list[list[int]]]:
    counts = [[[0] * HISTOGRAM_BINS for _ in range(k)] for _ in range(k)]
    for r in rows:
        counts[r["cls"]][r["y"]][r["b"]] += int(r["count"])
    return counts


def _class_histograms(df: DataFrame, probability_col: str, k: int) -> list[list[list[int]]]:
    """counts[c][y][b]: rows of true class ``y`` whose probability of class ``c`` falls in bucket ``b``."""
    return _counts(_histogram_rows(df, probability_col), k)


def log_loss_and_auc(predictions: DataFrame, k: int, label_col: str,
                     probability_col: str = "probability") -> tuple[float, float, int]:
    """(log-loss, headline AUC, rows) in one Spark job, the same values as :func:`evaluate`'s:
    what choosing a calibration compares, several times per model, without the other metrics."""
    df = predictions.select(F.col(label_col).cast("int").alias("y"), F.col(probability_col))
    rows = _histogram_rows(df, probability_col, with_loss=True)
    first = [r for r in rows if r["cls"] == 0]
    n = sum(int(r["count"]) for r in first)
    if n == 0:
        raise NoRecordsError("no rows to measure the log-loss and AUC on")
    counts = _counts(rows, k)
    auc = _headline([roc_from_histogram(*_one_vs_rest(counts, c))[0] for c in range(k)])
    return sum(r["loss"] for r in first) / n, auc, n


def _one_vs_rest(counts: list[list[list[int]]], c: int) -> tuple[list[int], list[int]]:
    """Class ``c``'s histogram of its own probability: (rows of class c, rows of every other class)."""
    k = len(counts)
    return counts[c][c], [sum(counts[c][y][b] for y in range(k) if y != c) for b in range(HISTOGRAM_BINS)]


def _headline(per_class: list[float]) -> float:
    """Binary: the adverse (last) class's value; multi-class: the mean over the one-vs-rest curves."""
    return per_class[-1] if len(per_class) == 2 else sum(per_class) / len(per_class)


def evaluate(predictions: DataFrame, classes: list[str], label_col: str, probability_col: str = "probability",
             prediction_col: str = "prediction", raw_probability_col: str | None = None) -> ModelMetrics:
    """Every test-set metric of one model, from a handful of small aggregations.

    ``raw_probability_col`` (the calibrator's copy of the uncalibrated vector) adds the
    before-calibration ECE, Brier score, log-loss and reliability table.
    """
    k = len(classes)
    adverse = k - 1
    columns = [F.col(label_col).cast("int").alias("y"), F.col(prediction_col).cast("int").alias("yhat"),
               F.col(probability_col)]
    if raw_probability_col:
        columns.append(F.col(raw_probability_col))
    df = predictions.select(*columns)
    confusion = confusion_matrix(df, k, "y", "yhat")
    base = confusion_metrics(confusion, classes)

    log_loss, brier, reliability, ece = _probability_quality(df, probability_col)
    reliability_tables = {"after": reliability}
    uncalibrated = {}
    if raw_probability_col:
        raw_loss, raw_brier, raw_table, raw_ece = _probability_quality(df, raw_probability_col)
        uncalibrated = {"ece": raw_ece, "brier": raw_brier, "log_loss": raw_loss}
        reliability_tables["before"] = raw_table

    counts = _class_histograms(df, probability_col, k)
    if raw_probability_col:   # does calibration cost ranking? (isotonic steps tie scores)
        raw_counts = _class_histograms(df, raw_probability_col, k)
        uncalibrated["auc"] = _headline([roc_from_histogram(*_one_vs_rest(raw_counts, c))[0] for c in range(k)])
    per_class = base["per_class"]
    aucs, kss, roc = [], [], {}
    for c, name in enumerate(classes):
        events, non_events = _one_vs_rest(counts, c)
        auc, ks = roc_from_histogram(events, non_events)
        per_class[name].update({"auc": auc, "ks": ks})
        roc[name] = {**roc_curve(events, non_events), "auc": auc}
        aucs.append(auc)
        kss.append(ks)
    auc, ks = _headline(aucs), _headline(kss)

    group = HISTOGRAM_BINS // DISTRIBUTION_BINS
    distribution = {
        "score": f"P({classes[adverse]})",
        "edges": [i / DISTRIBUTION_BINS for i in range(DISTRIBUTION_BINS + 1)],
        "counts": {name: [sum(counts[adverse][y][g * group:(g + 1) * group]) for g in range(DISTRIBUTION_BINS)]
                   for y, name in enumerate(classes)},
    }
    n_per_bin = [sum(counts[adverse][y][b] for y in range(k)) for b in range(HISTOGRAM_BINS)]
    bands = equal_count_bands(n_per_bin, counts[adverse][adverse])
    return ModelMetrics(accuracy=base["accuracy"], macro_f1=base["macro_f1"], weighted_f1=base["weighted_f1"],
                        per_class=per_class, confusion=confusion, test_rows=base["test_rows"], auc=auc,
                        gini=2 * auc - 1, ks=ks, log_loss=log_loss, brier=brier, ece=ece,
                        uncalibrated=uncalibrated, reliability=reliability_tables, roc=roc,
                        score_distribution=distribution, bad_rate_by_band=bands)
