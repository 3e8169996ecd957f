"""spark-submit entry point for `credit-spark score` (options: `credit-spark score --help`)."""
from credit_spark.cli import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("score"))
