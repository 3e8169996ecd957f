"""Test-set metrics computed in Spark; only small summaries (k x k counts, k x bins histograms) reach the driver.

* accuracy, macro / weighted F1, per-class precision and recall — from the confusion matrix;
* one-vs-rest ROC-AUC per class (and their mean), Gini = 2 AUC - 1, KS = max |TPR - FPR| —
  from a histogram of each class's probability in ``HISTOGRAM_BINS`` equal-width buckets
  (scores within one bucket count as ties: the AUC is exact up to that resolution, 1e-3);
* log-loss (mean of -ln p(true class)), Brier score (mean squared distance between the
  probability vector and the one-hot truth, summed over classes), expected calibration error
  (``ECE_BINS`` bins of the top-class probability: sum of |accuracy - confidence| weighted by
  the bin's share of rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credit_spark.errors import NoRecordsError

HISTOGRAM_BINS = 1000
ECE_BINS = 10
EPS = 1e-15


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
    extra: dict = field(default_factory=dict)

    def headline(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "weighted_f1": self.weighted_f1,
                "auc": self.auc, "gini": self.gini, "ks": self.ks, "log_loss": self.log_loss,
                "brier": self.brier, "ece": self.ece}


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


def evaluate(predictions: DataFrame, classes: list[str], label_col: str, probability_col: str = "probability",
             prediction_col: str = "prediction") -> ModelMetrics:
    """Every test-set metric of one model, in three small aggregations."""
    k = len(classes)
    df = predictions.select(F.col(label_col).cast("int").alias("y"), F.col(prediction_col).cast("int").alias("yhat"),
                            vector_to_array(F.col(probability_col)).alias("p"))
    confusion = [[0] * k for _ in range(k)]
    for row in df.groupBy("y", "yhat").count().collect():
        confusion[row["y"]][row["yhat"]] += int(row["count"])
    base = confusion_metrics(confusion, classes)

    p_true = F.element_at("p", F.col("y") + 1)
    onehot_sq = F.aggregate(F.transform("p", lambda x, i: (x - F.when(i == F.col("y"), 1.0).otherwise(0.0)) ** 2),
                            F.lit(0.0), lambda acc, x: acc + x)
    losses = df.agg(F.avg(-F.log(F.greatest(p_true, F.lit(EPS)))).alias("log_loss"),
                    F.avg(onehot_sq).alias("brier")).first()

    confidence = F.array_max("p")
    ece_rows = (df.select(F.least(F.floor(confidence * ECE_BINS), F.lit(ECE_BINS - 1)).alias("b"),
                          confidence.alias("conf"), (F.col("y") == F.col("yhat")).cast("double").alias("hit"))
                .groupBy("b").agg(F.count(F.lit(1)).alias("n"), F.avg("conf").alias("conf"), F.avg("hit").alias("acc"))
                .collect())
    total = base["test_rows"]
    ece = sum(r["n"] / total * abs(r["acc"] - r["conf"]) for r in ece_rows)

    buckets = F.explode(F.transform("p", lambda x, i: F.struct(
        i.alias("cls"), F.least(F.floor(x * HISTOGRAM_BINS), F.lit(HISTOGRAM_BINS - 1)).cast("int").alias("b"))))
    hist = (df.select("y", buckets.alias("h"))
            .groupBy("h.cls", "h.b").agg(F.sum((F.col("y") == F.col("h.cls")).cast("int")).alias("events"),
                                         F.count(F.lit(1)).alias("n"))
            .collect())
    events = [[0] * HISTOGRAM_BINS for _ in range(k)]
    non_events = [[0] * HISTOGRAM_BINS for _ in range(k)]
    for r in hist:
        events[r["cls"]][r["b"]] += int(r["events"])
        non_events[r["cls"]][r["b"]] += int(r["n"]) - int(r["events"])
    per_class = base["per_class"]
    aucs, kss = [], []
    for i, name in enumerate(classes):
        auc, ks = roc_from_histogram(events[i], non_events[i])
        per_class[name].update({"auc": auc, "ks": ks})
        aucs.append(auc)
        kss.append(ks)
    # binary: the adverse (last) class's curve; multi-class: the mean over one-vs-rest curves
    auc = aucs[-1] if k == 2 else sum(aucs) / k
    ks = kss[-1] if k == 2 else sum(kss) / k
    return ModelMetrics(accuracy=base["accuracy"], macro_f1=base["macro_f1"], weighted_f1=base["weighted_f1"],
                        per_class=per_class, confusion=confusion, test_rows=total, auc=auc, gini=2 * auc - 1,
                        ks=ks, log_loss=float(losses["log_loss"]), brier=float(losses["brier"]), ece=ece)
