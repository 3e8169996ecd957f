"""Is a model really better than the scorecard? A paired bootstrap on the test set.

Both models score the same test records, so their errors are correlated and must be resampled
together (a paired bootstrap). Resampling rows with replacement only changes how many times each
*kind* of row is drawn, and accuracy, macro-F1 and the AUC depend on the rows only through the
counts of (true class, model's class, baseline's class, model's P(adverse) bucket, baseline's
P(adverse) bucket). So Spark reduces the joined test predictions to that contingency table (at
most k^3 x BINS^2 cells, and never more than the rows), and the bootstrap draws multinomial counts
over its cells on the driver: the same distribution as resampling rows, at a cost independent of
the data size. The AUC compared is the adverse class against the rest (for a binary label, the
AUC), with P(adverse) in ``BINS`` buckets; the reported interval is shifted onto the exact
(1000-bucket) difference.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

logger = logging.getLogger(__name__)

BINS = 50
CHUNK = 50


@dataclass(frozen=True)
class Difference:
    model: str
    baseline: str
    metric: str
    model_value: float
    baseline_value: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    samples: int

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def auc_metric_name(classes: list[str]) -> str:
    return "auc" if len(classes) == 2 else f"auc_{classes[-1].lower()}_vs_rest"


def paired_cells(model_predictions: DataFrame, baseline_predictions: DataFrame, key: str, label_col: str,
                 num_classes: int) -> np.ndarray:
    """The contingency table (y, yhat_model, yhat_baseline, bucket_model, bucket_baseline, count)."""
    adverse = num_classes - 1

    def side(df: DataFrame, suffix: str) -> DataFrame:
        p_adverse = vector_to_array(F.col("probability"))[adverse]
        return df.select(F.col(key), F.col(label_col).cast("int").alias("y"),
                         F.col("prediction").cast("int").alias(f"yhat_{suffix}"),
                         F.least(F.floor(p_adverse * BINS), F.lit(BINS - 1)).cast("int").alias(f"b_{suffix}"))
    joined = side(model_predictions, "m").join(side(baseline_predictions, "b").drop("y"), on=key, how="inner")
    rows = joined.groupBy("y", "yhat_m", "yhat_b", "b_m", "b_b").count().collect()
    return np.array([[r["y"], r["yhat_m"], r["yhat_b"], r["b_m"], r["b_b"], r["count"]] for r in rows],
                    dtype=np.int64).reshape(-1, 6)


def _metrics(counts: np.ndarray, cells: np.ndarray, pred: int, bucket: int, k: int) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 and adverse AUC for every row of ``counts`` (replicates x cells)."""
    y, yhat, b = cells[:, 0], cells[:, pred], cells[:, bucket]
    total = counts.sum(axis=1)
    accuracy = counts[:, y == yhat].sum(axis=1) / total
    f1s = []
    for c in range(k):
        tp = counts[:, (y == c) & (yhat == c)].sum(axis=1)
        predicted = counts[:, yhat == c].sum(axis=1)
        actual = counts[:, y == c].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            f1s.append(np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0))
    macro_f1 = np.mean(f1s, axis=0)
    # AUC of P(adverse) for adverse vs rest from per-bucket histograms (ties count half)
    onehot = np.zeros((len(cells), BINS))
    onehot[np.arange(len(cells)), b] = 1.0
    events = counts[:, y == k - 1] @ onehot[y == k - 1]
    non_events = counts[:, y != k - 1] @ onehot[y != k - 1]
    ne_below = np.cumsum(non_events, axis=1) - non_events
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (events * (ne_below + 0.5 * non_events)).sum(axis=1) / (events.sum(axis=1) * non_events.sum(axis=1))
    return {"accuracy": accuracy, "macro_f1": macro_f1, "auc": auc}


def bootstrap_differences(cells: np.ndarray, num_classes: int, samples: int, confidence: float,
                          seed: int) -> dict[str, tuple[float, float, float]]:
    """{metric: (difference on the full table, CI low, CI high)} of model minus baseline."""
    if len(cells) == 0:
        raise ValueError("no paired test predictions to compare")
    table, counts = cells[:, :5], cells[:, 5]
    full = counts[None, :].astype(float)
    point = {m: float(a[0] - b[0]) for (m, a), b in zip(_metrics(full, table, 1, 3, num_classes).items(),
                                                       _metrics(full, table, 2, 4, num_classes).values())}
    rng = np.random.default_rng(seed)
    n, shares = int(counts.sum()), counts / counts.sum()
    diffs: dict[str, list[np.ndarray]] = {m: [] for m in point}
    for start in range(0, samples, CHUNK):
        draw = rng.multinomial(n, shares, size=min(CHUNK, samples - start)).astype(float)
        model = _metrics(draw, table, 1, 3, num_classes)
        baseline = _metrics(draw, table, 2, 4, num_classes)
        for m in diffs:
            diffs[m].append(model[m] - baseline[m])
    alpha = (1 - confidence) / 2
    out = {}
    for m, parts in diffs.items():
        values = np.concatenate(parts)
        values = values[np.isfinite(values)]
        low, high = (np.quantile(values, [alpha, 1 - alpha]) if len(values) else (np.nan, np.nan))
        out[m] = (point[m], float(low), float(high))
    return out


def compare_with_baseline(name: str, predictions: DataFrame, baseline: str, baseline_predictions: DataFrame,
                          headline: dict[str, float], baseline_headline: dict[str, float],
                          adverse_auc: tuple[float, float], classes: list[str], key: str, label_col: str,
                          samples: int, confidence: float, seed: int) -> list[Difference]:
    """Differences (model - baseline) in accuracy, macro-F1 and adverse AUC, with bootstrap intervals.

    ``headline``/``baseline_headline`` hold the exact metrics; ``adverse_auc`` the exact adverse-class
    AUCs (model, baseline). Intervals are the bootstrap percentiles, shifted by (exact - table)
    difference so they sit on the exact value.
    """
    cells = paired_cells(predictions, baseline_predictions, key, label_col, len(classes))
    boot = bootstrap_differences(cells, len(classes), samples, confidence, seed)
    exact = {"accuracy": (headline["accuracy"], baseline_headline["accuracy"]),
             "macro_f1": (headline["macro_f1"], baseline_headline["macro_f1"]),
             "auc": adverse_auc}
    out = []
    for metric, (value, base_value) in exact.items():
        table_diff, low, high = boot[metric]
        shift = (value - base_value) - table_diff
        out.append(Difference(model=name, baseline=baseline,
                              metric=auc_metric_name(classes) if metric == "auc" else metric,
                              model_value=value, baseline_value=base_value, difference=value - base_value,
                              ci_low=low + shift, ci_high=high + shift, confidence=confidence, samples=samples))
    return out
