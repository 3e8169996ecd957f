#!/usr/bin/env bash
# Train and evaluate on the real "Credit score classification" sample in ../shared/data:
# ingest the labelled August rows and the unlabelled Sep-Dec rows (the other months feed the
# per-customer repair), build features, train with the customer-grouped split, print metrics.
#   scripts/evaluate_real_sample.sh [LAKE_DIR] [extra credit-spark options...]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="../shared/data/kaggle_credit_score"
[ -d "$DATA" ] || { echo "no real sample at $DATA" >&2; exit 1; }
LAKE="${1:-/tmp/credit_spark_real_sample}"; shift || true
bash scripts/setup.sh >/dev/null
rm -rf "$LAKE"
CS=(.venv/bin/credit-spark --lake "$LAKE" "$@")
"${CS[@]}" ingest --input "$DATA/august_labeled_sample.csv"
"${CS[@]}" ingest --input "$DATA/sep_dec_unlabeled.csv"
"${CS[@]}" features
"${CS[@]}" train
