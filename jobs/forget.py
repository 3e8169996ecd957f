"""spark-submit entry point for `credit-spark forget` (options: `credit-spark forget --help`)."""
from credit_spark.cli import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("forget"))
