#!/usr/bin/env python
"""The benchmark (credit_spark_bench.bench, the benchmarks/ distribution), as a script: the same as
`credit-spark bench`.

    .venv/bin/python scripts/benchmark.py --sizes 100000,1000000 --out bench_results
    .venv/bin/python scripts/benchmark.py --sizes 10000000 --stages generate,ingest,features --no-baseline

Needs `bash scripts/setup.sh bench`, which installs benchmarks/ after credit_spark (psutil, scikit-learn
and xxhash for the baseline; `nn` adds the network).
"""
import sys

from credit_spark.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
