#!/usr/bin/env bash
# Create .venv/ in the repo root and install credit_spark with the given extras (idempotent).
#   scripts/setup.sh            # runtime only
#   scripts/setup.sh dev        # + test tools
#   scripts/setup.sh nn         # + torch, for the neural network (TorchDistributor backend)
#   scripts/setup.sh nn,horovod # + Horovod 0.28.1 built against that torch (scripts/build_horovod.sh)
#   scripts/setup.sh bench      # + the benchmark, its own distribution benchmarks/ (credit_spark_bench)
#   scripts/setup.sh dev,nn,horovod,bench   # what the test command installs
# Spark and Delta always come with it (the `spark` extra), as the exact pair of
# constraints/default.txt; SPARK_PAIR=newest takes constraints/newest.txt instead, and
# VENV=.venv-newest puts that install in a folder of its own.
# A second run with the same setup.py (and benchmarks/setup.py with bench), constraints and extras
# does nothing; pip's cache serves reinstalls.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTED="${1:-}"
VENV="${VENV:-.venv}"
CONSTRAINTS="constraints/${SPARK_PAIR:-default}.txt"
[ -f "$CONSTRAINTS" ] || { echo "no Spark/Delta pair $CONSTRAINTS (SPARK_PAIR: $(ls constraints | sed 's/.txt//' | paste -sd' ' -))" >&2; exit 2; }
# "horovod" is not a pip extra (no installable wheel exists for current torch): it means the nn
# extra plus the cached local build of scripts/build_horovod.sh. "bench" is not one either: the
# benchmark is a distribution of its own, benchmarks/, installed after credit_spark.
EXTRAS="$(echo "spark,$REQUESTED" | tr ',' '\n' | grep -v -x -e horovod -e bench -e '' | paste -sd, - || true)"
WITH_BENCH=0
echo ",$REQUESTED," | grep -q ",bench," && WITH_BENCH=1
WITH_HOROVOD=0
if echo ",$REQUESTED," | grep -q ",horovod,"; then
  WITH_HOROVOD=1
  echo ",$EXTRAS," | grep -q ",nn," || EXTRAS="${EXTRAS:+$EXTRAS,}nn"
fi
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"credit_spark needs Python >= 3.10 (3.11 recommended), found {sys.version.split()[0]}")
PY
command -v java >/dev/null || { echo "Java 17 is required by Spark: install a JDK 17 first" >&2; exit 1; }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV/ with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi

SETUP_FILES=(setup.py credit_spark/_version.py "$CONSTRAINTS")
[ "$WITH_BENCH" = 1 ] && SETUP_FILES+=(benchmarks/setup.py)
stamp="$VENV/.credit_spark-$(cat "${SETUP_FILES[@]}" | sha1sum | cut -c1-12)-${EXTRAS:-base}"
[ "$WITH_BENCH" = 1 ] && stamp="$stamp+bench"
if [ -f "$stamp" ]; then
  echo "[setup] $VENV/ is up to date (extras: ${EXTRAS:-none}$([ "$WITH_BENCH" = 1 ] && echo ', benchmark'))"
else
  echo "[setup] installing credit_spark[$EXTRAS]$([ "$WITH_BENCH" = 1 ] && echo ' and benchmarks/') into $VENV/ ($(grep -v '^#' "$CONSTRAINTS" | paste -sd' ' -))"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" -e ".[$EXTRAS]"
  if [ "$WITH_BENCH" = 1 ]; then
    # credit_spark is installed (editable) by now, so pip finds its requirement satisfied
    "$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS" -e ./benchmarks
  fi
  rm -f "$VENV"/.credit_spark-*        # another pair's or extras' stamp no longer describes the venv
  touch "$stamp"
fi

if [ "$WITH_HOROVOD" = 1 ]; then
  PYTHON="$VENV/bin/python" bash scripts/build_horovod.sh
fi

# The Delta JARs for the installed pair, fetched by Spark's Ivy once (Maven Central) before any
# run: two test workers starting Spark at the same moment on an empty Ivy cache would race on it.
"$VENV/bin/python" - <<'PY'
from credit_spark.jobs.sql_server import delta_jars, fetch_delta_jars

if not all(path.exists() for path in delta_jars({})):
    print("[setup] fetching the Delta JARs (Spark's Ivy, Maven Central)")
    fetch_delta_jars()
PY
