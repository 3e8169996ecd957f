#!/usr/bin/env python
"""Time every pipeline stage on generated data and print rows/s per stage (and JSON).

    .venv/bin/python scripts/benchmark.py                       # 100k and 1M rows
    .venv/bin/python scripts/benchmark.py --sizes 100000 --out bench_results/run.json

Each size runs in a fresh lake folder under --work (deleted afterwards), in one local Spark
session built from the same config as the CLI (conf/base.yaml + conf/local.yaml + --conf
overlays). Per stage: seconds, rows/s and the peak resident memory of the Python driver and of
the JVM; "train" also per algorithm (search, fit and calibration); "score" is the whole nightly
job (scoring, reasons, the Delta write and the monitoring table). Targets belong to later
issues; this records where we stand.

    .venv/bin/python scripts/benchmark.py --sizes 100000,1000000 --conf conf/bench.yaml

    .venv/bin/python scripts/benchmark.py --sizes 10000000 --stages generate,ingest,features

The ``nn`` stage (needs ``scripts/setup.sh nn``) trains the network alone with 1 and 2 processes
and scores every feature row with it: ``--stages generate,ingest,features,nn``.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import sys
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path

from credit_spark.cli import configure_logging
from credit_spark.config import load_config
from credit_spark.features import run_features
from credit_spark.generate import generate
from credit_spark.ingest import ingest
from credit_spark.scoring import score_run_date
from credit_spark.session import get_spark
from credit_spark.train import train

MONTHS = 8


STAGES = ("generate", "ingest", "features", "train", "score", "nn")
NN_EPOCHS = 2


def nn_stage(spark, cfg) -> dict:
    """The network alone on the features table: data-parallel training throughput with 1 and 2
    processes (``NN_EPOCHS`` epochs each, no early stop), then scoring every row through the
    Arrow UDF into Spark's ``noop`` sink (inference cost without a write)."""
    import dataclasses

    from pyspark.sql import functions as F

    from credit_spark.features import LABEL
    from credit_spark.models import build_pipeline
    from credit_spark.tables import FEATURES, read_table
    from credit_spark.train import with_label_index

    spec = cfg.spec
    rows = (read_table(spark, cfg, FEATURES).where(F.col(LABEL).isNotNull())
            .transform(with_label_index(spec.label.classes)))
    out, model = {}, None
    for processes in (1, 2):
        nn = dataclasses.replace(cfg.train.neural_network, num_processes=processes, max_epochs=NN_EPOCHS,
                                 patience=NN_EPOCHS)
        settings = dataclasses.replace(cfg.train, class_weight="none", neural_network=nn)
        pipeline = build_pipeline(spec, "neural_network", settings, cfg.lake.root)
        seconds, model, mem = timed(lambda: pipeline.fit(rows))
        info = model.stages[-1].fit_info()
        samples = info["train_rows"] * info["epochs"]
        out[f"nn:train {processes} process{'es' if processes > 1 else ''}"] = {
            "rows": samples, "seconds": round(seconds, 2), "rows_per_s": round(info["samples_per_second"], 1),
            "python_driver_peak_mb": round(mem.python_peak / 2**20), "jvm_peak_mb": round(mem.jvm_peak / 2**20),
            "note": f"{NN_EPOCHS} epochs; rows/s = samples/s inside the training loop"}
    scored = read_table(spark, cfg, FEATURES)
    n = scored.count()
    seconds, _, mem = timed(lambda: model.transform(scored).select("prediction", "probability")
                            .write.format("noop").mode("overwrite").save())
    out["nn:score"] = {"rows": n, "seconds": round(seconds, 2), "rows_per_s": round(n / seconds, 1),
                       "python_driver_peak_mb": round(mem.python_peak / 2**20), "jvm_peak_mb": round(mem.jvm_peak / 2**20)}
    return out


class PeakMemory:
    """Samples the resident memory of this Python driver and of its JVM (psutil) every 0.2 s.

    In local mode the JVM is driver and executors at once, so its figure includes the work
    itself (bounded by spark.driver.memory); the Python figure is the driver's own footprint,
    which must not grow with the number of rows.
    """

    def __init__(self):
        import psutil

        self.me = psutil.Process()
        self.python_peak = self.jvm_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _jvm_rss(self) -> int:
        return sum(c.memory_info().rss for c in self.me.children(recursive=True) if "java" in c.name())

    def _run(self):
        while not self._stop.is_set():
            try:
                self.python_peak = max(self.python_peak, self.me.memory_info().rss)
                self.jvm_peak = max(self.jvm_peak, self._jvm_rss())
            except Exception:   # a child may exit between listing and reading
                pass
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(fn):
    start = time.perf_counter()
    with PeakMemory() as mem:
        result = fn()
    return time.perf_counter() - start, result, mem


def run_size(spark, base_cfg, rows: int, work: Path, seed: int, stages: list[str],
             night_rows: int | None = None) -> dict:
    import dataclasses

    from credit_spark.config import LakeSettings

    folder = work / f"rows_{rows}"
    shutil.rmtree(folder, ignore_errors=True)
    cfg = dataclasses.replace(base_cfg, lake=LakeSettings(root=str((folder / "lake").resolve())))
    labelled, later = str(folder / "input_labelled"), str(folder / "input_september")
    customers = math.ceil(rows / MONTHS)
    # the night to score: by default the training customers' next month; --night-rows scores a
    # bigger night (the extra customers are new, without history)
    night = night_rows or customers
    steps = {
        "generate": lambda: (rows + night, (
            generate(spark, rows, seed, labelled, "csv", months=MONTHS),
            generate(spark, night, seed, later, "csv", months=1, start_month=9, labeled=False))),
        "ingest": lambda: (rows + night, (ingest(spark, cfg, labelled), ingest(spark, cfg, later))),
        "features": lambda: (lambda r: (r.rows, r))(run_features(spark, cfg)),
        "train": lambda: (lambda r: (r.train_rows, r))(train(spark, cfg)),
        "score": lambda: (lambda r: (r.rows, r))(score_run_date(spark, cfg, date(date.today().year, 9, 30))),
    }
    out, quality = {}, {}
    for name in stages:
        if name == "nn":
            out.update(nn_stage(spark, cfg))
            continue
        seconds, (n, result), mem = timed(steps[name])
        out[name] = {"rows": n, "seconds": round(seconds, 2), "rows_per_s": round(n / seconds, 1),
                     "python_driver_peak_mb": round(mem.python_peak / 2**20), "jvm_peak_mb": round(mem.jvm_peak / 2**20)}
        if name == "train":
            quality = {algo: round(m.macro_f1, 4) for algo, m in result.metrics.items()}
            for algo, fit in result.fit_seconds.items():   # tuning + final fit + calibration
                out[f"train:{algo}"] = {"rows": n, "seconds": round(fit, 2), "rows_per_s": round(n / fit, 1),
                                        "python_driver_peak_mb": out[name]["python_driver_peak_mb"],
                                        "jvm_peak_mb": out[name]["jvm_peak_mb"]}
    shutil.rmtree(folder, ignore_errors=True)
    return {"rows": rows, "stages": out, "macro_f1": quality}


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"{m['cpus']} CPUs, {m['platform']}, Python {m['python']}, Spark {m['spark']} ({m['master']}), "
             f"{report['when']}", "",
             "| rows | stage | rows in | seconds | rows/s | Python driver peak MB | JVM peak MB |",
             "|---|---|---|---|---|---|---|"]
    for result in report["results"]:
        for name, st in result["stages"].items():
            lines.append(f"| {result['rows']:,} | {name} | {st['rows']:,} | {st['seconds']:.1f} | "
                         f"{st['rows_per_s']:,.0f} | {st['python_driver_peak_mb']} | {st['jvm_peak_mb']} |")
        if result["macro_f1"]:
            lines.append(f"| {result['rows']:,} | macro-F1 | {', '.join(f'{k} {v}' for k, v in result['macro_f1'].items())} ||||")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", default="bench_results/work", help="scratch folder (deleted per size)")
    parser.add_argument("--out", default="bench_results/benchmark.json", help="JSON results file")
    parser.add_argument("--conf", action="append", default=[], help="config overlay(s)")
    parser.add_argument("--night-rows", type=int, default=None,
                        help="records in the scored night (default: one month of the training customers)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated subset of {','.join(STAGES)}, run in that order "
                             "(each needs the ones before it)")
    args = parser.parse_args(argv)
    configure_logging(verbose=False)

    cfg = load_config(args.conf)
    spark = get_spark(cfg.spark)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for rows in sizes:
        print(f"\n=== {rows:,} rows", flush=True)
        result = run_size(spark, cfg, rows, Path(args.work), args.seed, args.stages.split(","), args.night_rows)
        results.append(result)
        print(f"{'stage':<34}{'rows':>12}{'seconds':>10}{'rows/s':>10}{'py MB':>8}{'JVM MB':>8}")
        for name, s in result["stages"].items():
            print(f"{name:<34}{s['rows']:>12,}{s['seconds']:>10.1f}{s['rows_per_s']:>10,.0f}"
                  f"{s['python_driver_peak_mb']:>8}{s['jvm_peak_mb']:>8}", flush=True)
        print(f"macro-F1: {result['macro_f1']}")
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": __import__("os").cpu_count(), "python": sys.version.split()[0],
                    "platform": platform.platform(), "spark": spark.version,
                    "master": spark.sparkContext.master},
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    markdown = Path(args.out).with_suffix(".md")
    markdown.write_text(to_markdown(report))
    print(f"\nwrote {args.out} and {markdown}")
    print(to_markdown(report))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
