#!/usr/bin/env bash
# The end-to-end tests on the newest Spark/Delta pair Delta supports (constraints/newest.txt), in a
# venv of its own (.venv-newest/), beside CI's default pair (constraints/default.txt, .venv/):
#   scripts/test_newest_pair.sh                 # the e2e tests and the packaging checks
#   scripts/test_newest_pair.sh -k delta_rs     # any pytest selection instead
set -euo pipefail
cd "$(dirname "$0")/.."
SPARK_PAIR=newest VENV=.venv-newest bash scripts/setup.sh dev
.venv-newest/bin/python -c 'import pyspark, importlib.metadata as m; print("[newest pair] pyspark", pyspark.__version__, "delta-spark", m.version("delta-spark"))'
if [ "$#" -eq 0 ]; then
  set -- tests/test_e2e.py tests/test_packaging.py
fi
exec .venv-newest/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
