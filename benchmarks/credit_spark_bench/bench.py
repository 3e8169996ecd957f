"""Benchmark: seconds, rows/s, scaling exponents and driver memory of every stage, side by side
with a single-machine pandas + scikit-learn baseline on the same generated data.

For each size (rows of labelled history; one fresh lake folder per size, deleted afterwards):

* credit_spark: ``generate``, ``ingest``, ``features``, ``train`` (the whole training run) and,
  inside it, ``train:<algorithm>`` (search, fit and calibration of each model; the network to
  convergence by early stopping when torch is installed and the ``nn`` stage is selected), ``nn:epoch`` (one epoch of the network
  with 1 and with 2 processes) and ``score`` (the nightly job: scoring, reasons, Delta write and
  the monitoring table);
* the baseline (:mod:`credit_spark_bench.baseline`, in a child process with a memory cap, so its peak
  memory is its own and running out of memory is a result, not a crash): ``read``, ``features``,
  ``split``, ``train:logistic_regression``, ``train:random_forest``, ``evaluate``, on the same
  labelled CSV files and the same customer-grouped split.

Reported: per stage seconds, rows/s and the peak resident memory of the Python driver (and of
the JVM, which in local mode is driver and executors at once); per credit_spark stage, Spark's own
account of it (:class:`SparkCosts`: jobs, stages, tasks, executor and CPU time, GC, shuffle,
spill, the costliest Spark stages); the scaling exponent ``k`` of each
stage between consecutive sizes (time ∝ rows^k); the speed ratio of comparable stages; macro-F1
and AUC of every model of both systems. Written as JSON, Markdown and a log-log PNG.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable

from pyspark.sql import SparkSession

from credit_spark.config.loader import Config, LakeSettings

logger = logging.getLogger(__name__)

MONTHS = 8
STAGES = ("generate", "ingest", "features", "train", "nn", "score")
#: comparable work of the two systems: (label, credit_spark stages, baseline stages)
COMPARABLE = (
    ("clean + features", ("ingest", "features"), ("read", "features")),
    ("train logistic regression", ("train:logistic_regression",), ("train:logistic_regression",)),
    ("train random forest", ("train:random_forest",), ("train:random_forest",)),
    ("end to end (ingest, features, LR, RF)",
     ("ingest", "features", "train:logistic_regression", "train:random_forest"),
     ("read", "features", "split", "train:logistic_regression", "train:random_forest")),
)


# --------------------------------------------------------------------------- measuring
class PeakMemory:
    """Samples the resident memory of this Python process and of its JVM child every 0.2 s."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.python_peak = self.jvm_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _jvm_rss(self) -> int:
        return sum(c.memory_info().rss for c in self.me.children(recursive=True) if "java" in c.name())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.python_peak = max(self.python_peak, self.me.memory_info().rss)
                self.jvm_peak = max(self.jvm_peak, self._jvm_rss())
            except Exception:   # a child may exit between listing and reading
                pass
            self._stop.wait(0.2)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


#: Spark's per-stage metrics kept (StageData getter, unit factor to the reported unit)
STAGE_METRICS = {
    "executor_run_s": (("executorRunTime",), 1e-3),
    "executor_cpu_s": (("executorCpuTime",), 1e-9),
    "gc_s": (("jvmGcTime",), 1e-3),
    "shuffle_read_mb": (("shuffleReadBytes",), 2.0 ** -20),
    "shuffle_write_mb": (("shuffleWriteBytes",), 2.0 ** -20),
    "spill_mb": (("memoryBytesSpilled", "diskBytesSpilled"), 2.0 ** -20),
    "input_mb": (("inputBytes",), 2.0 ** -20),
    "output_mb": (("outputBytes",), 2.0 ** -20),
}
JOB_GROUP_PREFIX = "credit_spark_bench:"


class SparkCosts:
    """Spark's own account of one benchmark stage: its jobs carry a job group, and the driver's
    status store (what the UI and its REST API read; kept with the UI off) gives their stages'
    task metrics. Jobs started from other threads without the group (e.g. a tuning pool's) and
    stages past ``spark.ui.retainedStages`` are not counted; the record says how many jobs were."""

    def __init__(self, spark: SparkSession, stage: str) -> None:
        self.sc = spark.sparkContext
        self.group = JOB_GROUP_PREFIX + stage
        self.summary: dict = {}

    def __enter__(self) -> "SparkCosts":
        self.sc.setJobGroup(self.group, f"benchmark stage {self.group[len(JOB_GROUP_PREFIX):]}")
        return self

    def __exit__(self, *exc) -> None:
        self.sc.setLocalProperty("spark.jobGroup.id", None)
        self.sc.setLocalProperty("spark.job.description", None)
        try:
            self.summary = summarise_stages(*self._stages())
        except Exception as error:   # a private JVM API: a Spark without it loses the breakdown only
            logger.warning("no Spark cost breakdown for %s: %s", self.group, error)

    def _stages(self) -> tuple[int, list[dict]]:
        store = self.sc._jsc.sc().statusStore()
        as_java = self.sc._jvm.scala.jdk.javaapi.CollectionConverters.asJava   # Scala Seq -> java List
        jobs, stage_ids = 0, set()
        for job in as_java(store.jobsList(None)):
            group = job.jobGroup()
            if group.isDefined() and group.get() == self.group:
                jobs += 1
                stage_ids |= set(as_java(job.stageIds()))
        stages = []
        defaults = [getattr(store, f"stageList$default${i}")() for i in (2, 3, 4, 5)]   # no details
        for stage in as_java(store.stageList(None, *defaults)):
            if stage.stageId() in stage_ids:
                record = {"name": stage.name(), "status": str(stage.status()), "tasks": stage.numCompleteTasks()}
                for metric, (getters, _) in STAGE_METRICS.items():
                    record[metric] = sum(getattr(stage, g)() for g in getters)
                stages.append(record)
        return jobs, stages


def summarise_stages(jobs: int, stages: list[dict], top: int = 3) -> dict:
    """Totals of the stages' metrics (in seconds and MB) and the ``top`` stages by executor time
    (a stage skipped because its shuffle output was reused has no tasks and costs nothing)."""
    ran = [s for s in stages if s["tasks"] > 0]
    out = {"jobs": jobs, "stages": len(ran), "tasks": sum(s["tasks"] for s in ran)}
    for metric, (_, factor) in STAGE_METRICS.items():
        out[metric] = round(sum(s[metric] for s in ran) * factor, 2)
    run_factor = STAGE_METRICS["executor_run_s"][1]
    costly = sorted(ran, key=lambda s: s["executor_run_s"], reverse=True)[:top]
    out["top_stages"] = [{"name": s["name"][:80], "executor_run_s": round(s["executor_run_s"] * run_factor, 2)}
                         for s in costly]
    return out


def stage_record(rows: int, seconds: float, mem: PeakMemory | None = None, **extra) -> dict:
    out = {"rows": int(rows), "seconds": round(seconds, 2), "rows_per_s": round(rows / max(seconds, 1e-9), 1)}
    if mem is not None:
        out["python_driver_peak_mb"] = round(mem.python_peak / 2**20)
        out["jvm_peak_mb"] = round(mem.jvm_peak / 2**20)
    return {**out, **extra}


def timed(fn: Callable):
    start = time.perf_counter()
    with PeakMemory() as mem:
        result = fn()
    return time.perf_counter() - start, result, mem


# --------------------------------------------------------------------------- credit_spark side
def bench_config(cfg: Config, lake: Path, with_network: bool) -> Config:
    """One fit per algorithm (no grid: the benchmark times the work per model, not the grid's
    size), a short bootstrap, and the network too when torch is installed."""
    t = cfg.train
    algorithms = [*t.algorithms]
    if with_network and "neural_network" not in algorithms:
        algorithms.append("neural_network")
    train = dataclasses.replace(t, algorithms=algorithms, tuning=dataclasses.replace(t.tuning, method="none"),
                                comparison=dataclasses.replace(t.comparison, bootstrap_samples=200))
    return dataclasses.replace(cfg, train=train, lake=LakeSettings(root=str(lake.resolve())))


def network_epoch(spark: SparkSession, cfg: Config) -> dict:
    """One epoch of the network alone on the labelled features, with 1 and with 2 processes, then
    inference on every feature row."""
    from pyspark.sql import functions as F

    from credit_spark.jobs.train import with_label_index
    from credit_spark.lake.tables import FEATURES, read_table
    from credit_spark.ml.models import build_pipeline
    from credit_spark.transforms.features import LABEL

    rows = (read_table(spark, cfg, FEATURES).where(F.col(LABEL).isNotNull())
            .transform(with_label_index(cfg.spec.label.classes)))
    out, model = {}, None
    for processes in (1, 2):
        nn = dataclasses.replace(cfg.train.neural_network, num_processes=processes, max_epochs=1, patience=1)
        settings = dataclasses.replace(cfg.train, class_weight="none", neural_network=nn)
        pipeline = build_pipeline(cfg.spec, "neural_network", settings, cfg.lake.root)
        seconds, model, mem = timed(lambda: pipeline.fit(rows))
        info = model.stages[-1].fit_info()
        out[f"nn:epoch x{processes}"] = stage_record(
            info["train_rows"], seconds, mem, samples_per_s_in_loop=round(info["samples_per_second"], 1),
            note="wall time includes preprocessing, shard writing and process start")
    scored = read_table(spark, cfg, FEATURES)    # every record, through the network's Arrow UDF
    n = scored.count()
    seconds, _, mem = timed(lambda: model.transform(scored).select("prediction", "probability")
                            .write.format("noop").mode("overwrite").save())
    out["nn:score"] = stage_record(n, seconds, mem, note="inference only (Spark's noop sink, no write)")
    return out


def run_credit_spark(spark: SparkSession, cfg: Config, rows: int, folder: Path, seed: int, stages: list[str],
                     night_rows: int | None) -> tuple[dict, dict]:
    from credit_spark.jobs.features_job import run_features
    from credit_spark.jobs.generate import generate
    from credit_spark.jobs.ingest import ingest
    from credit_spark.jobs.scoring import score_run_date
    from credit_spark.jobs.train import train

    labelled, later = str(folder / "input_labelled"), str(folder / "input_night")
    customers = math.ceil(rows / MONTHS)
    night = night_rows or customers      # default: the training customers' next month
    steps = {
        "generate": lambda: (rows + night, (generate(spark, rows, seed, labelled, "csv", months=MONTHS),
                                            generate(spark, night, seed, later, "csv", months=1, start_month=9,
                                                     labeled=False))),
        "ingest": lambda: (rows + night, (ingest(spark, cfg, labelled), ingest(spark, cfg, later))),
        "features": lambda: (lambda r: (r.rows, r))(run_features(spark, cfg)),
        "train": lambda: (lambda r: (r.train_rows, r))(train(spark, cfg)),
        "score": lambda: (lambda r: (r.rows, r))(score_run_date(spark, cfg, date(date.today().year, 9, 30))),
    }
    out, quality = {}, {}
    for name in stages:
        if name == "nn":
            out.update(network_epoch(spark, cfg))
            continue
        with SparkCosts(spark, name) as costs:
            seconds, (n, result), mem = timed(steps[name])
        out[name] = stage_record(n, seconds, mem, spark=costs.summary)
        logger.info("bench %s rows: %s %s", rows, name, out[name])
        if name == "train":
            quality = {algo: {"macro_f1": round(m.macro_f1, 4), "auc": round(m.auc, 4),
                              "accuracy": round(m.accuracy, 4)} for algo, m in result.metrics.items()}
            for algo, fit in result.fit_seconds.items():   # search + final fit + calibration
                out[f"train:{algo}"] = stage_record(n, fit)
    return out, quality


# --------------------------------------------------------------------------- baseline side
def memory_cap_bytes(fraction: float) -> int:
    import psutil

    return int(psutil.virtual_memory().total * fraction)


def run_baseline(labelled_dir: Path, dataset: str, out: Path, memory_fraction: float,
                 timeout_s: int) -> dict:
    """The pandas + scikit-learn baseline in a child process, its address space capped at
    ``memory_fraction`` of the machine's memory (MemoryError instead of the kernel's OOM
    killer taking Spark down with it)."""
    cap = memory_cap_bytes(memory_fraction)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    command = [sys.executable, "-m", "credit_spark_bench.baseline", "--input", str(labelled_dir),
               "--dataset", dataset, "--out", str(out)]
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, preexec_fn=limit, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"completed": False, "error": f"did not finish within {timeout_s} s"}
    wall = time.perf_counter() - started
    result = json.loads(out.read_text()) if out.is_file() else {}
    if proc.returncode != 0 or "error" in result:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        return {"completed": False, "error": result.get("error") or f"exit {proc.returncode}: {' | '.join(tail)}",
                "stage": result.get("stage"), "memory_cap_mb": round(cap / 2**20), "wall_seconds": round(wall, 1)}
    return {"completed": True, **result, "memory_cap_mb": round(cap / 2**20), "wall_seconds": round(wall, 1)}


def baseline_stages(result: dict) -> dict:
    """The baseline's stage seconds in the same record shape as credit_spark's."""
    if not result.get("completed"):
        return {}
    rows = result["rows"]
    train_rows = (result.get("split_rows") or {}).get("train", rows)
    out = {}
    for stage, seconds in result["seconds"].items():
        if stage == "total":
            continue
        n = train_rows if stage.startswith("train:") else rows
        peak = result.get("peak_rss_mb")
        out[stage] = stage_record(n, seconds, **({} if peak is None else {"python_driver_peak_mb": round(peak)}))
    return out


def baseline_quality(metrics: dict, num_classes: int) -> dict:
    """The baseline's metrics on credit_spark's definitions: the headline AUC of several classes
    is the mean of the one-vs-rest AUCs (credit_spark.ml.metrics), of two the adverse class's."""
    out = {}
    for name, m in metrics.items():
        auc = m.get("auc_mean_ovr") if num_classes > 2 and m.get("auc_mean_ovr") is not None else m.get("auc")
        out[name] = {"macro_f1": m.get("macro_f1"), "auc": auc, "accuracy": m.get("accuracy")}
    return out


# --------------------------------------------------------------------------- analysis
def scaling_exponents(results: list[dict], system: str) -> dict[str, dict[str, float]]:
    """k in seconds ∝ rows^k, per stage, between each pair of consecutive sizes (by rows in)."""
    out: dict[str, dict[str, float]] = {}
    for small, large in zip(results, results[1:]):
        a, b = small[system], large[system]
        for stage in a:
            # A stage timed at 0 s (rounded) has no exponent: log(0) is undefined.
            if (stage in b and a[stage]["seconds"] > 0 and b[stage]["seconds"] > 0
                    and b[stage]["rows"] != a[stage]["rows"]):
                k = (math.log(b[stage]["seconds"] / a[stage]["seconds"])
                     / math.log(b[stage]["rows"] / a[stage]["rows"]))
                out.setdefault(stage, {})[f"{small['rows']}->{large['rows']}"] = round(k, 3)
    return out


def comparisons(result: dict) -> list[dict]:
    """Per comparable stage: seconds of both systems and credit_spark's time per row over the
    baseline's (below 1 = credit_spark faster)."""
    ours, theirs = result["credit_spark"], result["baseline"]
    out = []
    for label, mine, base in COMPARABLE:
        if not all(s in ours for s in mine) or not all(s in theirs for s in base):
            continue
        spark_s = sum(ours[s]["seconds"] for s in mine)
        base_s = sum(theirs[s]["seconds"] for s in base)
        spark_rows, base_rows = ours[mine[0]]["rows"], theirs[base[0]]["rows"]
        ratio = (spark_s / spark_rows) / (base_s / base_rows) if base_s > 0 else math.nan
        out.append({"stage": label, "credit_spark_seconds": round(spark_s, 2), "baseline_seconds": round(base_s, 2),
                    "time_per_row_ratio": round(ratio, 2)})
    return out


def machine() -> dict:
    import psutil

    from pyspark import __version__ as spark_version

    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": sys.version.split()[0], "platform": platform.platform(), "spark": spark_version}


def run_benchmark(spark: SparkSession, cfg: Config, sizes: list[int], work: Path, stages: list[str],
                  baseline: bool = True, night_rows: int | None = None, seed: int = 42,
                  baseline_memory_fraction: float = 0.6, baseline_timeout_s: int = 7200) -> dict:
    from credit_spark.ml.neural import torch_available

    # the network joins `train` with the `nn` stage: a night-only run keeps to the MLlib models
    with_network = "nn" in stages and torch_available()
    results = []
    for rows in sizes:
        folder = work / f"rows_{rows}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        size_cfg = bench_config(cfg, folder / "lake", with_network)
        run_stages = [s for s in stages if s != "nn" or with_network]
        ours, quality = run_credit_spark(spark, size_cfg, rows, folder, seed, run_stages, night_rows)
        entry = {"rows": rows, "credit_spark": ours, "quality": {"credit_spark": quality}}
        if baseline and (folder / "input_labelled").is_dir():
            base = run_baseline(folder / "input_labelled", cfg.dataset, folder / "baseline.json",
                                baseline_memory_fraction, baseline_timeout_s)
            entry["baseline_run"] = {k: v for k, v in base.items() if k not in ("seconds", "metrics")}
            entry["baseline"] = baseline_stages(base)
            entry["quality"]["baseline"] = baseline_quality(base.get("metrics", {}), len(cfg.spec.label.classes))
            entry["comparison"] = comparisons(entry) if base.get("completed") else []
        shutil.rmtree(folder, ignore_errors=True)
        results.append(entry)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {**machine(), "master": spark.sparkContext.master}, "results": results,
              "scaling": {"credit_spark": scaling_exponents(results, "credit_spark")}}
    if baseline:
        report["scaling"]["baseline"] = scaling_exponents([r for r in results if r.get("baseline")], "baseline")
        done = [r["rows"] for r in results if r.get("baseline_run", {}).get("completed")]
        report["baseline_largest_completed"] = max(done) if done else None
    return report


# --------------------------------------------------------------------------- output
def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"{m['cpus']} CPUs, {m['memory_gb']} GB, {m['platform']}, Python {m['python']}, Spark {m['spark']} "
             f"({m['master']}), {report['when']}", "",
             "| rows | system | stage | rows in | seconds | rows/s | Python peak MB | JVM peak MB |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for result in report["results"]:
        for system in ("credit_spark", "baseline"):
            for stage, s in (result.get(system) or {}).items():
                lines.append(f"| {result['rows']:,} | {system} | {stage} | {s['rows']:,} | {s['seconds']:.1f} | "
                             f"{s['rows_per_s']:,.0f} | {s.get('python_driver_peak_mb', '')} | "
                             f"{s.get('jvm_peak_mb', '')} |")
        run = result.get("baseline_run")
        if run and not run.get("completed"):
            lines.append(f"| {result['rows']:,} | baseline | did not complete: {run.get('error')} "
                         f"(stage {run.get('stage')}, memory cap {run.get('memory_cap_mb')} MB) ||||||")
    lines += ["", "Speed against the baseline (credit_spark time per row / baseline time per row; < 1 = faster):",
              "", "| rows | work | credit_spark s | baseline s | ratio |", "|---:|---|---:|---:|---:|"]
    for result in report["results"]:
        for c in result.get("comparison", []):
            lines.append(f"| {result['rows']:,} | {c['stage']} | {c['credit_spark_seconds']:.1f} | "
                         f"{c['baseline_seconds']:.1f} | {c['time_per_row_ratio']:.2f} |")
    lines += ["", "Where credit_spark's time goes (Spark's task metrics per stage: executor time summed over tasks, "
              "so up to cores x wall seconds; the costliest Spark stages by executor time):", "",
              "| rows | stage | jobs | Spark stages | tasks | executor s | CPU s | GC s | shuffle read MB | "
              "shuffle write MB | spill MB | costliest |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for result in report["results"]:
        for stage, s in (result.get("credit_spark") or {}).items():
            c = s.get("spark")
            if c:
                costly = "; ".join(f"{t['name']} ({t['executor_run_s']:.1f} s)" for t in c["top_stages"])
                lines.append(f"| {result['rows']:,} | {stage} | {c['jobs']} | {c['stages']} | {c['tasks']:,} | "
                             f"{c['executor_run_s']:.1f} | {c['executor_cpu_s']:.1f} | {c['gc_s']:.1f} | "
                             f"{c['shuffle_read_mb']:.1f} | {c['shuffle_write_mb']:.1f} | {c['spill_mb']:.1f} | "
                             f"{costly} |")
    lines += ["", "Scaling exponents k (seconds ∝ rows^k):", "", "| system | stage | sizes | k |", "|---|---|---|---:|"]
    for system, stages in report.get("scaling", {}).items():
        for stage, pairs in stages.items():
            for pair, k in pairs.items():
                lines.append(f"| {system} | {stage} | {pair} | {k:.2f} |")
    lines += ["", "Model quality on the same customer-grouped test split:", "",
              "| rows | system | model | macro-F1 | AUC |", "|---:|---|---|---:|---:|"]
    for result in report["results"]:
        for system, models in result.get("quality", {}).items():
            for name, q in models.items():
                lines.append(f"| {result['rows']:,} | {system} | {name} | {q.get('macro_f1', float('nan')):.4f} | "
                             f"{q.get('auc', float('nan')):.4f} |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    """Log-log chart: rows in vs seconds, one line per stage and system (baseline dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 6))
    for system, style in (("credit_spark", "-o"), ("baseline", "--s")):
        stages = {s for r in report["results"] for s in (r.get(system) or {})}
        for stage in sorted(stages):
            points = [(r[system][stage]["rows"], r[system][stage]["seconds"]) for r in report["results"]
                      if stage in (r.get(system) or {})]
            if points:
                ax.plot(*zip(*points), style, label=f"{system}: {stage}", markersize=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows in")
    ax.set_ylabel("seconds")
    ax.set_title("credit_spark vs pandas + scikit-learn, per stage")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(report: dict, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "benchmark.json", "markdown": out_dir / "benchmark.md", "png": out_dir / "benchmark.png"}
    paths["json"].write_text(json.dumps(report, indent=2))
    paths["markdown"].write_text(to_markdown(report))
    plot(report, paths["png"])
    return paths
