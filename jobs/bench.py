"""spark-submit entry point for `credit-spark bench` (options: `credit-spark bench --help`)."""
from credit_spark.cli import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("bench"))
