#!/usr/bin/env bash
# Command one: set up .venv/ and run the whole pipeline end to end on the embedded default
# (local Spark, Delta tables in ./lake, generated data in ./data/demo).
#   scripts/demo.sh                 # 20,000 labelled rows
#   ROWS=200000 scripts/demo.sh     # more
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/credit-spark demo --rows "${ROWS:-20000}" "$@"
