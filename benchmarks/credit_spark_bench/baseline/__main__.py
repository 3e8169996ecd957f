"""``python -m credit_spark_bench.baseline``: the baseline as a child process (how the benchmark runs it)."""
import sys

from credit_spark_bench.baseline import main

sys.exit(main())
