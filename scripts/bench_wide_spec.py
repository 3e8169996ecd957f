"""The wide-spec case of the features stage: N rows of 30 numeric text columns with placeholders,
unit suffixes and ranges (like a bank extract), cleaned by ``build_features`` into a no-op sink.

Wide specs once outgrew Java's 64 KB method limit: Spark logged a 250-line ``Failed to compile``
ERROR and fell back to slower code. This times the stage; a fallback shows in its output as
Spark's ``ERROR CodeGenerator: Failed to compile`` line, so a release can be compared with an
older checkout:

    .venv/bin/python scripts/bench_wide_spec.py --rows 1000000 2>&1 | grep -c "Failed to compile"
    git worktree add /tmp/old <commit> && ln -s /tmp/old/conf /tmp/old/credit_spark/conf
    PYTHONPATH=/tmp/old .venv/bin/python scripts/bench_wide_spec.py --rows 1000000
"""
from __future__ import annotations

import argparse
import json
import time

COLUMNS = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import credit_spark
    from pyspark.sql import functions as F

    from credit_spark.config.loader import DatasetSpec, LabelSpec, NumericRule, SparkSettings
    from credit_spark.lake.session import get_spark
    from credit_spark.transforms.features import build_features

    spark = get_spark(SparkSettings(master="local[*]", log_level="ERROR",
                                    conf={"spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false"}))
    names = [f"x{i}" for i in range(COLUMNS)]
    spec = DatasetSpec(name="wide", record_id="id", label=LabelSpec(column="y", classes=["0", "1"]),
                       placeholders=["NA", "_"], numeric={n: NumericRule(min=-4, max=5) for n in names})
    value = lambda i: F.when((F.col("id") + i) % 7 == 0, F.lit("NA")).otherwise(      # noqa: E731
        F.concat(((F.col("id") * i) % 11 - 5).cast("string"), F.lit("_")))
    raw = spark.range(args.rows).select(F.col("id").cast("string").alias("id"),
                                        *[value(i).alias(n) for i, n in enumerate(names)],
                                        (F.col("id") % 2).cast("string").alias("y"))
    seconds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        build_features(raw, spec).write.format("noop").mode("overwrite").save()
        seconds.append(round(time.perf_counter() - started, 1))
    print(json.dumps({"code": credit_spark.__file__, "rows": args.rows, "columns": COLUMNS, "seconds": seconds}))
    spark.stop()


if __name__ == "__main__":
    main()
