"""A single-machine pandas + scikit-learn baseline of the Spark pipeline, for benchmarks.

Why it exists: to say whether Spark pays off, a benchmark needs the *same* work done without it,
on the same input files — same cleaning, same features, same customer-grouped split, same two
models — so that time, memory and quality can be compared side by side. Everything here is
driven by the same dataset spec (``conf/datasets/*.yaml``) and the same ``TrainSettings``; the
feature names come from :func:`credit_spark.transforms.features.feature_catalog`. Importing this package
does not start Spark (``credit_spark.transforms.features`` only builds column expressions when called).

One module per part of the pipeline it transcribes: :mod:`.ingest` (``credit_spark.jobs.ingest``),
:mod:`.features` (``credit_spark.transforms.features``), :mod:`.sql` (the Spark SQL of the spec's derived
features), :mod:`.splits` (``credit_spark.transforms.splits``) and :mod:`.models` (``credit_spark.ml.models`` and
``credit_spark.ml.metrics``). This module runs them in order, timing each stage, and is what the
benchmark starts as a child process: ``python -m credit_spark_bench.baseline``.

Stages (each timed by :func:`run_baseline`):

1. ``read``      — every CSV file under the input paths as strings (:func:`read_raw`), then the
   ingest contract (:func:`ingest_rows`): rows that ``credit-spark ingest`` would quarantine are
   dropped, one copy of a duplicated record id is kept, values are trimmed;
2. ``features``  — :func:`build_features`, a pandas transcription of ``features.build_features``;
3. ``split``     — labelled rows, split by the same seeded ``xxhash64`` customer buckets as
   ``splits.split_by_customer`` (:func:`customer_bucket` reproduces Spark's hash bit for bit);
4. ``train:<algorithm>`` — median imputation, one-hot encoding, scaling and the classifier, as
   in ``models.build_pipeline``, with the configured (untuned) settings;
5. ``evaluate``  — accuracy, macro-F1 and AUC on the test split.

Known differences from the Spark pipeline (none of them affect the features of well-formed input):

* CSV lines with too many fields are skipped; lines with too few fields are read with the
  missing trailing cells empty. Spark quarantines both as ``malformed_row``. pandas' C parser
  cannot flag short lines, and the generated data has neither.
* Floating point NaN stands for SQL null throughout; Spark keeps NaN and null apart (NaN only
  arises from ``inf`` arithmetic, which the cleaned, range-checked columns never produce).
* Regular expressions of the spec (``splits.*.pattern``) run on Python's ``re`` with ``re.ASCII``
  (Java's default character classes); a pattern must mean the same in both engines.
* ``year_month`` / ``date`` periods are read with strict ``YYYY-MM`` / ``YYYY-MM-DD`` patterns.
* Models: scikit-learn's lbfgs (``tol=1e-4``) and CART forest (exact thresholds) instead of MLlib's
  L-BFGS (``tol=1e-6``) and binned forest (``maxBins=32``); the median is the exact median
  (MLlib's ``percentile_approx`` returns an observed value, the lower middle for an even count);
  ``StandardScaler`` divides by the population, not the sample, standard deviation; a missing
  category is its own one-hot level (MLlib: an all-zero block, which with an intercept is the
  same model); no grid search and no probability calibration.
* Metrics are exact (scikit-learn); Spark's come from a 1000-bucket histogram (AUC to ~1e-3).
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from credit_spark.config.loader import DatasetSpec, TrainSettings
from credit_spark.transforms.features import LABEL
from credit_spark_bench.baseline.features import build_features
from credit_spark_bench.baseline.ingest import ingest_rows, read_raw, row_hashes
from credit_spark_bench.baseline.models import ALGORITHMS, evaluate, fit_models
from credit_spark_bench.baseline.splits import customer_bucket, split_by_customer
from credit_spark_bench.baseline.sql import ExpressionError, evaluate_expression

__all__ = ["ALGORITHMS", "EXIT_MEMORY_ERROR", "ExpressionError", "StageMemoryError", "build_features",
           "customer_bucket", "evaluate", "evaluate_expression", "fit_models", "ingest_rows", "main", "read_raw",
           "row_hashes", "run_baseline", "split_by_customer"]

EXIT_MEMORY_ERROR = 3


class StageMemoryError(MemoryError):
    """A MemoryError that remembers in which stage it happened."""

    def __init__(self, stage: str):
        super().__init__(f"out of memory in stage '{stage}'")
        self.stage = stage


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``: KB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_baseline(paths: Sequence[str], spec: DatasetSpec, settings: TrainSettings,
                 stages_timer: Callable[[str, float], None] | None = None,
                 algorithms: Iterable[str] = ALGORITHMS) -> dict:
    """Read, build features, split, train and evaluate, timing every stage.

    Returns ``{"seconds": {stage: s, ..., "total": s}, "metrics": {algorithm: {...}}, "rows": rows
    read, "rows_ingested", "rows_labelled", "split_rows": {...}, "peak_rss_mb"}``. ``stages_timer``
    is called with ``(stage, seconds)`` as each stage ends (progress output). Run it in its own
    process for a clean ``peak_rss_mb``: the peak covers the whole process's life. A MemoryError
    is re-raised as :class:`StageMemoryError` naming the stage.
    """
    if settings.split != "customer":
        raise ValueError(f"the baseline mirrors train.split 'customer' only, got {settings.split!r}")
    seconds: dict[str, float] = {}

    def stage(name: str, fn: Callable[[], object]):
        start = time.perf_counter()
        try:
            result = fn()
        except MemoryError as exc:
            raise StageMemoryError(name) from exc
        seconds[name] = time.perf_counter() - start
        if stages_timer is not None:
            stages_timer(name, seconds[name])
        return result

    started = time.perf_counter()
    counts = {}

    def read() -> pd.DataFrame:
        raw = read_raw(paths, columns=spec.all_columns())
        counts["rows"] = len(raw)
        return ingest_rows(raw, spec)

    holder = {"records": stage("read", read)}
    features = stage("features", lambda: build_features(holder.pop("records"), spec))   # frees the strings

    def split():
        labelled = features[features[LABEL].notna()]
        return split_by_customer(labelled, settings.test_fraction, settings.validation_fraction, settings.seed)

    train, validation, test = stage("split", split)
    models = {}
    for algorithm in algorithms:
        models.update(stage(f"train:{algorithm}", lambda a=algorithm: fit_models(train, spec, settings, [a])))
    metrics = stage("evaluate", lambda: evaluate(models, test, spec))
    seconds["total"] = time.perf_counter() - started
    return {"seconds": seconds, "metrics": metrics, "rows": counts["rows"], "rows_ingested": len(features),
            "rows_labelled": len(train) + len(validation) + len(test),
            "split_rows": {"train": len(train), "validation": len(validation), "test": len(test)},
            "peak_rss_mb": peak_rss_mb()}


def _json_safe(value):
    """NaN/inf -> null, so the result file is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m credit_spark_bench.baseline --input DIR [--input DIR ...] --out result.json``.

    Writes run_baseline's dict as JSON (stdout without ``--out``). Exit 0 on success; on a
    MemoryError writes ``{"error": "MemoryError", "stage": ...}`` and exits 3, so a benchmark
    can tell "did not fit in memory" from a crash.
    """
    from credit_spark.config.loader import load_config, load_dataset_spec

    parser = argparse.ArgumentParser(prog="python -m credit_spark_bench.baseline",
                                     description="pandas + scikit-learn baseline of the Spark pipeline")
    parser.add_argument("--input", action="append", required=True, metavar="PATH",
                        help="a CSV file or a folder of them (repeatable)")
    parser.add_argument("--dataset", default=None, help="dataset spec (default: the config's, credit_score)")
    parser.add_argument("--env", default="local", help="config environment for the train settings")
    parser.add_argument("--out", default=None, metavar="FILE", help="result JSON (default: stdout)")
    args = parser.parse_args(argv)

    cfg = load_config(env=args.env)
    spec = load_dataset_spec(args.dataset) if args.dataset else cfg.spec
    status = 0
    try:
        result = run_baseline(args.input, spec, cfg.train,
                              stages_timer=lambda s, t: print(f"{s:<28} {t:9.2f} s", file=sys.stderr))
    except MemoryError as exc:
        result = {"error": "MemoryError", "stage": getattr(exc, "stage", None), "peak_rss_mb": peak_rss_mb()}
        status = EXIT_MEMORY_ERROR
    result = {"dataset": spec.name, "inputs": list(args.input), **_json_safe(result)}
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return status
