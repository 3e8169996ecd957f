#!/usr/bin/env bash
# The end-to-end tests on the newest Spark/Delta pair Delta supports (constraints/newest.txt), in a
# venv of its own (.venv-newest/), beside CI's default pair (constraints/default.txt, .venv/):
#   scripts/test_newest_pair.sh                 # the e2e tests (Spark Connect included) and the packaging checks
#   scripts/test_newest_pair.sh -k delta_rs     # any pytest selection instead
set -euo pipefail
cd "$(dirname "$0")/.."
SPARK_PAIR=newest VENV=.venv-newest bash scripts/setup.sh dev
.venv-newest/bin/python -c 'import pyspark, importlib.metadata as m; print("[newest pair] pyspark", pyspark.__version__, "delta-spark", m.version("delta-spark"))'
if [ "$#" -eq 0 ]; then
  set -- tests/test_e2e.py tests/test_spark_connect.py tests/test_packaging.py
fi
# One process by default: under a pytest-xdist worker (no __main__ file) pyspark 4.2's Spark Connect
# check exits the process when its optional gRPC packages are absent, and MLflow's model logging
# imports pyspark.ml.connect. A normal `credit-spark` run raises ImportError there, which MLflow handles.
if [ "${TEST_WORKERS:-0}" = 0 ]; then
  exec .venv-newest/bin/python -m pytest "$@"
fi
exec .venv-newest/bin/python -m pytest -n "$TEST_WORKERS" --dist loadfile "$@"
