"""Storage per run, measured: nightly batches of one new month each, ``ingest`` then ``features``,
and the size of ``features`` (its current version, and its folder with the history VACUUM has not
deleted yet) and of ``raw_records``' folder after every run; per spec variant, so a full rebuild
per run (the shipped spec's ``all_periods`` repair) and the incremental one (``past_periods``)
sit side by side. At the end, ``maintain`` with a retention of 0 days shows what VACUUM leaves.

    python -m credit_spark_bench.storage --customers 2500 --runs 10 --out bench_storage
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

MB = 1024 * 1024
#: spec variants measured: name -> repair_scope of the shipped spec
VARIANTS = {"shipped (all_periods repair)": "all_periods", "past_periods repair": "past_periods"}


def measure_variant(spark, base_cfg, repair_scope: str, customers: int, runs: int, seed: int, work: Path) -> dict:
    from credit_spark.jobs.features_job import run_features
    from credit_spark.jobs.generate import generate
    from credit_spark.jobs.ingest import ingest
    from credit_spark.jobs.maintenance import maintain, storage
    from credit_spark.lake.tables import FEATURES, RAW_RECORDS

    if runs < 1 or runs > 11:
        raise ValueError("runs: 1..11 (one month per run after January; months end at December)")
    lake = work / f"lake_{repair_scope}"
    shutil.rmtree(lake, ignore_errors=True)
    cfg = dataclasses.replace(base_cfg, lake=dataclasses.replace(base_cfg.lake, root=str(lake)),
                              spec=dataclasses.replace(base_cfg.spec, repair_scope=repair_scope))
    rows = []
    for month in range(1, runs + 2):          # January is the history before the first measured night
        batch = str(work / f"month_{month:02d}")
        if not Path(batch).exists():
            generate(spark, customers, seed, batch, "csv", months=1, start_month=month)
        started = time.perf_counter()
        ingest(spark, cfg, batch)
        built = run_features(spark, cfg)
        seconds = time.perf_counter() - started
        features, raw = storage(spark, cfg.table_path(FEATURES)), storage(spark, cfg.table_path(RAW_RECORDS))
        rows.append({"run": month - 1, "month": month, "mode": built.mode, "periods": built.periods,
                     "rows_written": built.rows, "seconds": round(seconds, 1),
                     "features_current_mb": round(features.bytes / MB, 3),
                     "features_folder_mb": round(features.folder_bytes / MB, 3),
                     "raw_records_folder_mb": round(raw.folder_bytes / MB, 3)})
        print(json.dumps(rows[-1]), flush=True)
    zero = dataclasses.replace(cfg, maintain=dataclasses.replace(
        cfg.maintain, default_retention_days=0, retention_days={}))
    after = {m.table: m.after for m in maintain(spark, zero)}
    return {"runs": rows, "after_maintain_retention_0": {
        "features_folder_mb": round(after[FEATURES].folder_bytes / MB, 3),
        "raw_records_folder_mb": round(after[RAW_RECORDS].folder_bytes / MB, 3)}}


def to_markdown(result: dict) -> str:
    lines = [f"Storage per nightly run: {result['customers']:,} customers, one new month per run "
             f"(ingest, then features), {result['runs']} runs after a first month.", ""]
    for name, variant in result["variants"].items():
        measured = [r for r in variant["runs"] if r["run"] > 0]
        growth = (measured[-1]["features_folder_mb"] - variant["runs"][0]["features_folder_mb"]) / len(measured)
        lines += [f"**{name}**: `features` folder grows {growth:.2f} MB per run; after `maintain` "
                  f"(retention 0): {variant['after_maintain_retention_0']['features_folder_mb']:.2f} MB", "",
                  "| run | month | mode | rows written | s | features current MB | features folder MB | raw_records folder MB |",
                  "|---:|---:|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['run']} | {r['month']} | {r['mode']} | {r['rows_written']:,} | {r['seconds']} | "
                  f"{r['features_current_mb']:.2f} | {r['features_folder_mb']:.2f} | {r['raw_records_folder_mb']:.2f} |"
                  for r in variant["runs"]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m credit_spark_bench.storage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2500, help="customers per monthly batch (demo: 2,500)")
    parser.add_argument("--runs", type=int, default=10, help="nightly runs after the first month (at most 11)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", default="bench_storage_work", help="scratch folder (lakes and inputs)")
    parser.add_argument("--out", default="bench_storage", help="folder for storage.json and storage.md")
    args = parser.parse_args(argv)

    from credit_spark.config.loader import load_config
    from credit_spark.lake.session import get_spark

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(lake=str(work / "lake"))
    spark = get_spark(cfg.spark)
    try:
        variants = {name: measure_variant(spark, cfg, scope, args.customers, args.runs, args.seed, work)
                    for name, scope in VARIANTS.items()}
    finally:
        spark.stop()
    result = {"customers": args.customers, "runs": args.runs, "variants": variants}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "storage.json").write_text(json.dumps(result, indent=2))
    (out / "storage.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
