"""spark-submit entry point for `credit-spark serve-sql` (options: `credit-spark serve-sql --help`)."""
from credit_spark.cli import run_job

if __name__ == "__main__":
    raise SystemExit(run_job("serve-sql"))
