#!/usr/bin/env bash
# Command two: set up .venv/ with the test extras (pytest, torch, Horovod built once and cached,
# the benchmark distribution benchmarks/) and run the test suite.
#   scripts/test.sh                  # everything (about 30-65 minutes on 2 cores)
#   scripts/test.sh -m "not e2e"     # the fast tests only
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,nn,horovod,bench
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ] && [ "$#" -gt 0 ]; then
  # an explicit selection (-m/-k) may match nothing; the whole suite collecting nothing is a failure
  echo "pytest collected no tests for this selection" >&2
  exit 0
fi
exit "$status"
