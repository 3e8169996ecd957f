"""Scale-out, measured: every stage at ``local[1]`` and ``local[2]`` (or any core counts) and at
two sizes or more, then speed-up, parallel efficiency, core-seconds per row and a projection to
larger data on more cores, stated with its model.

Each core count runs ``credit-spark bench`` in a process of its own (a Spark master is fixed for
the life of a JVM), pinned to that many cores (``taskset``) when it is fewer than the machine's,
on the same generated data (same seed), with no baseline, after a small warm-up size whose timings
are left out. The model fitted per
stage, by least squares over every (rows, cores) point::

    seconds(rows, cores) = fixed + serial * rows + parallel * rows / cores

``fixed`` is per-run cost (session work, Delta commits, job scheduling), ``serial`` the per-row
work that did not spread over the cores, ``parallel`` the per-row work that did. The projection
assumes all three hold at the projected size: no network shuffle cost (local mode has none), no
skew, no spill, executors with the memory this machine has per core, and the driver doing no more
than here. It is a projection from a small machine, not a measurement of a cluster.

    python -m credit_spark_bench.scale_out --cores 1,2 --sizes 100000,200000 \\
        --stages generate,ingest,features[,train,score] --out bench_scale_out
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

#: the projections reported: rows x cores
PROJECT_ROWS = (10_000_000, 100_000_000)
PROJECT_CORES = (8, 32, 128)


def run_at(cores: int, sizes: list[int], stages: list[str], work: Path, extra: list[str],
           warmup_rows: int = 0) -> dict:
    """``credit-spark bench`` on ``local[cores]`` in a child process; its benchmark.json, without
    the warm-up size: a JVM's first run of each stage pays for class loading and JIT compilation
    (measured: 100k rows took longer than 200k rows after it), which is not a cost of the rows."""
    folder = work / f"local{cores}"
    folder.mkdir(parents=True, exist_ok=True)
    overlay = folder / "master.yaml"
    overlay.write_text(f'spark:\n  master: "local[{cores}]"\n')
    command = [sys.executable, "-m", "credit_spark.cli", "--conf", str(overlay), "--lake", str(folder / "lake"),
               "bench", "--sizes", ",".join(map(str, [warmup_rows, *sizes] if warmup_rows else sizes)), "--stages", ",".join(stages), "--no-baseline",
               "--work", str(folder / "work"), "--out", str(folder / "out"), *extra]
    # local[N] bounds Spark's task threads only: the JVM's GC, JIT and driver threads and the
    # Python driver would still use every core. Pinned to N cores, "N cores" means N cores.
    if cores < (os.cpu_count() or cores) and shutil.which("taskset"):
        command = ["taskset", "-c", ",".join(map(str, range(cores))), *command]
    subprocess.run(command, check=True)
    report = json.loads((folder / "out" / "benchmark.json").read_text())
    if warmup_rows:
        report["results"] = report["results"][1:]
    return report


def points(reports: dict[int, dict]) -> dict[str, list[tuple[int, int, float]]]:
    """stage -> (rows in, cores, seconds) over every report and size."""
    out: dict[str, list[tuple[int, int, float]]] = {}
    for cores, report in reports.items():
        for result in report["results"]:
            for stage, record in result["credit_spark"].items():
                if ":" in stage or record.get("seconds") is None:   # train:<algorithm>, nn:epoch: inside others
                    continue
                out.setdefault(stage, []).append((int(record["rows"]), int(cores), float(record["seconds"])))
    return out


def fit_model(stage_points: list[tuple[int, int, float]]) -> dict[str, float] | None:
    """``fixed``, ``serial`` and ``parallel`` of :data:`seconds(rows, cores)` by non-negative least
    squares (a negative cost means no such cost was seen: it is held at 0 and the rest refitted);
    None without at least two sizes and two core counts."""
    if len({r for r, _, _ in stage_points}) < 2 or len({c for _, c, _ in stage_points}) < 2:
        return None
    design = np.array([[1.0, r, r / c] for r, c, _ in stage_points])
    seconds = np.array([s for _, _, s in stage_points])
    active = [0, 1, 2]
    while True:
        coef, *_ = np.linalg.lstsq(design[:, active], seconds, rcond=None)
        if (coef >= 0).all() or len(active) == 1:
            break
        active.pop(int(np.argmin(coef)))
    full = np.zeros(3)
    full[active] = np.clip(coef, 0, None)
    return {"fixed_s": float(full[0]), "serial_s_per_row": float(full[1]), "parallel_s_per_row": float(full[2])}


def predict(model: dict[str, float], rows: int, cores: int) -> float:
    return model["fixed_s"] + model["serial_s_per_row"] * rows + model["parallel_s_per_row"] * rows / cores


def scale_out(reports: dict[int, dict]) -> dict:
    """Per stage and size: seconds per core count, speed-up and parallel efficiency against the
    fewest cores, core-seconds per row; the fitted model and its projections."""
    stages: dict[str, dict] = {}
    for name, pts in points(reports).items():
        by_size: dict[int, dict[int, float]] = {}
        for rows, cores, seconds in pts:
            by_size.setdefault(rows, {})[cores] = seconds
        sizes = []
        for rows, timing in sorted(by_size.items()):
            base = min(timing)
            entry: dict = {"rows": rows, "seconds": {str(c): round(s, 2) for c, s in sorted(timing.items())},
                           "core_s_per_row": {str(c): s * c / rows for c, s in sorted(timing.items())}}
            for cores, seconds in sorted(timing.items()):
                if cores != base and seconds > 0:
                    speedup = timing[base] / seconds
                    entry.setdefault("speedup", {})[str(cores)] = round(speedup, 3)
                    entry.setdefault("efficiency", {})[str(cores)] = round(speedup / (cores / base), 3)
            sizes.append(entry)
        model = fit_model(pts)
        stages[name] = {"sizes": sizes, "model": model}
        if model:
            stages[name]["projection_s"] = {f"{rows}x{cores}": round(predict(model, rows, cores), 1)
                                            for rows in PROJECT_ROWS for cores in PROJECT_CORES}
    machine = next(iter(reports.values()))["machine"]
    return {"machine": {k: v for k, v in machine.items() if k != "master"}, "cores": sorted(reports),
            "when": max(r["when"] for r in reports.values()), "stages": stages}


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def to_markdown(result: dict) -> str:
    m, cores = result["machine"], result["cores"]
    lines = [f"{m['cpus']} CPUs, {m['memory_gb']} GB, Spark {m['spark']}, local[{'], local['.join(map(str, cores))}], "
             f"{result['when']}", "",
             "| stage | rows | " + " | ".join(f"seconds, {c} core{'s' if c > 1 else ''}" for c in cores)
             + " | speed-up | efficiency | core-µs per row (fewest → most cores) |",
             "|---|---:|" + "---:|" * len(cores) + "---:|---:|---|"]
    for name, stage in result["stages"].items():
        for size in stage["sizes"]:
            most = str(max(cores))
            per_row = " → ".join(f"{1e6 * size['core_s_per_row'][str(c)]:.0f}" for c in cores
                                 if str(c) in size["core_s_per_row"])
            lines.append(f"| {name} | {size['rows']:,} | "
                         + " | ".join(str(size["seconds"].get(str(c), "")) for c in cores)
                         + f" | {size.get('speedup', {}).get(most, '')} | {size.get('efficiency', {}).get(most, '')}"
                         + f" | {per_row} |")
    lines += ["", "Fitted per stage, seconds = fixed + serial × rows + parallel × rows / cores, and what it "
              "projects (same assumptions: see the module's docstring):", "",
              "| stage | fixed s | serial µs/row | parallel core-µs/row | "
              + " | ".join(f"{r // 1_000_000}M rows, {c} cores" for r in PROJECT_ROWS for c in PROJECT_CORES) + " |",
              "|---|---:|---:|---:|" + "---:|" * (len(PROJECT_ROWS) * len(PROJECT_CORES))]
    for name, stage in result["stages"].items():
        model = stage["model"]
        if not model:
            continue
        lines.append(f"| {name} | {model['fixed_s']:.1f} | {1e6 * model['serial_s_per_row']:.1f} | "
                     f"{1e6 * model['parallel_s_per_row']:.1f} | "
                     + " | ".join(_duration(stage["projection_s"][f"{r}x{c}"]) for r in PROJECT_ROWS
                                  for c in PROJECT_CORES) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m credit_spark_bench.scale_out", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", default="1,2", help="comma-separated core counts (local[N] each)")
    parser.add_argument("--sizes", default="100000,300000", help="comma-separated row counts (two or more)")
    parser.add_argument("--stages", default="generate,ingest,features",
                        help="benchmark stages, in order (score needs train before it)")
    parser.add_argument("--work", default="bench_scale_out_work", help="scratch folder")
    parser.add_argument("--out", default="bench_scale_out", help="folder for scale_out.json and scale_out.md")
    parser.add_argument("--seed", default="42")
    parser.add_argument("--warmup-rows", type=int, default=20_000,
                        help="a first size run and left out of the results (JVM warm-up); 0 for none")
    args = parser.parse_args(argv)
    cores = [int(c) for c in args.cores.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    if len(cores) < 2 or len(sizes) < 2:
        parser.error("--cores and --sizes need two values or more each (the model has three unknowns)")
    stages = [s for s in args.stages.split(",") if s]
    for stage, needs in (("ingest", "generate"), ("features", "ingest"), ("train", "features"), ("score", "train")):
        if stage in stages and needs not in stages[:stages.index(stage)]:
            parser.error(f"--stages: {stage} needs {needs} before it (each stage reads what the one before wrote)")
    reports = {c: run_at(c, sizes, stages, Path(args.work), ["--seed", args.seed], args.warmup_rows) for c in cores}
    result = scale_out(reports)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale_out.json").write_text(json.dumps({"scale_out": result, "reports": reports}, indent=2))
    (out / "scale_out.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
