"""spark-submit entry point for `credit-spark ingest` (options: `credit-spark ingest --help`)."""
from credit_spark.cli import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("ingest"))
