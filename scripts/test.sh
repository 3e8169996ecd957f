#!/usr/bin/env bash
# Command two: set up .venv/ with the test extras (pytest, torch, Horovod built once and cached,
# the benchmark distribution benchmarks/) and run the test suite.
#   scripts/test.sh                  # everything (two pytest workers, a test file each at a time)
#   scripts/test.sh -m unit          # the quick subset
#   TEST_WORKERS=0 scripts/test.sh   # one process (pytest-xdist off)
# Two workers (pytest-xdist, --dist loadfile: a file's module fixtures are built once) overlap one
# file's waits (JVM starts, subprocesses, py4j round trips, MLflow) with another's computing. Files
# go out in tests/conftest.py's order, the costliest first (--no-loadscope-reorder keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,nn,horovod,bench
set +e
WORKERS="${TEST_WORKERS:-2}"
if [ "$WORKERS" = 0 ]; then
  .venv/bin/python -m pytest "$@"
else
  .venv/bin/python -m pytest -n "$WORKERS" --dist loadfile --no-loadscope-reorder "$@"
fi
status=$?
set -e
if [ "$status" -eq 5 ] && [ "$#" -gt 0 ]; then
  # an explicit selection (-m/-k) may match nothing; the whole suite collecting nothing is a failure
  echo "pytest collected no tests for this selection" >&2
  exit 0
fi
exit "$status"
