"""The real samples in ../shared/data (skipped cleanly when that folder is absent)."""
import pytest
from pyspark.sql import functions as F

from credit_spark.features import run_features
from credit_spark.ingest import ingest
from credit_spark.tables import FEATURES, QUARANTINE, RAW_RECORDS, table_exists

pytestmark = [pytest.mark.real_data, pytest.mark.e2e]

PLACEHOLDERS_AND_DIRT = r"^_+$|_$|^_|^NM$|!@9#%8|#F%\$D@\*&8"


def test_real_samples_ingest_and_clean(spark, cfg, shared_data):
    folder = shared_data / "kaggle_credit_score"
    august = ingest(spark, cfg, str(folder / "august_labeled_sample.csv"))
    later = ingest(spark, cfg, str(folder / "sep_dec_unlabeled.csv"))
    assert (august.rows_read, later.rows_read) == (6260, 50000)
    for r in (august, later):
        assert r.rows_ingested + r.rows_quarantined == r.rows_read
    raw = spark.read.format("delta").load(cfg.table_path(RAW_RECORDS))
    assert raw.count() == august.rows_ingested + later.rows_ingested
    if august.rows_quarantined + later.rows_quarantined:
        assert table_exists(spark, cfg.table_path(QUARANTINE))

    result = run_features(spark, cfg)
    assert result.rows == raw.count()
    features = spark.read.format("delta").load(cfg.table_path(FEATURES))
    assert not {"Name", "SSN"} & set(features.columns)
    counts = {r.period: r["count"] for r in features.groupBy("period").count().collect()}
    assert counts == {8: 6260, 9: 12500, 10: 12500, 11: 12500, 12: 12500}
    labels = {r.label: r["count"] for r in features.where("period = 8").groupBy("label").count().collect()}
    assert labels == {"Standard": 3208, "Poor": 1855, "Good": 1197}
    text_cols = [c for c, t in features.dtypes if t == "string" and c not in ("record_id", "customer_id")]
    dirty = features.select(F.explode(F.array(*text_cols)).alias("v")).where(F.col("v").rlike(PLACEHOLDERS_AND_DIRT))
    assert dirty.count() == 0
    # numbers with a stray underscore were parsed, not dropped: "52312.68_" for customer CUS_0x1009
    row = features.where((F.col("customer_id") == "CUS_0x1009") & (F.col("period") == 8)).first()
    assert row.Annual_Income == pytest.approx(52312.68)
