"""spark-submit entry point for `credit-spark generate` (options: `credit-spark generate --help`)."""
from credit_spark.cli import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("generate"))
