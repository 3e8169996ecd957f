#!/usr/bin/env bash
# Train, compare and report on the real samples in ../shared/data (absent from the repo on purpose):
#   scripts/evaluate_real_sample.sh [credit_score|german] [LAKE_DIR] [extra credit-spark options...]
# credit_score: ingest the labelled August rows and the unlabelled Sep-Dec rows (the other months
#   feed the per-customer repair), build features, train with the customer-grouped split;
# german: the Statlog German credit file with conf/german.yaml (binary label, GBT too).
# Prints the metrics, the bootstrap comparison with the scorecard and the report folder.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET="${1:-credit_score}"; shift || true
LAKE="${1:-/tmp/credit_spark_real_${DATASET}}"; shift || true
bash scripts/setup.sh >/dev/null
rm -rf "$LAKE"
case "$DATASET" in
  credit_score)
    DATA="../shared/data/kaggle_credit_score"
    [ -d "$DATA" ] || { echo "no real sample at $DATA" >&2; exit 1; }
    CS=(.venv/bin/credit-spark --lake "$LAKE" "$@")
    "${CS[@]}" ingest --input "$DATA/august_labeled_sample.csv"
    "${CS[@]}" ingest --input "$DATA/sep_dec_unlabeled.csv" ;;
  german)
    DATA="../shared/data/german_credit/german_credit.csv"
    [ -f "$DATA" ] || { echo "no German credit data at $DATA" >&2; exit 1; }
    CS=(.venv/bin/credit-spark --lake "$LAKE" --conf conf/german.yaml "$@")
    "${CS[@]}" ingest --input "$DATA" ;;
  *) echo "unknown dataset '$DATASET' (credit_score | german)" >&2; exit 2 ;;
esac
"${CS[@]}" features
"${CS[@]}" train
