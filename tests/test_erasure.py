"""credit-spark forget: a customer's rows leave every table, the request is recorded, --purge
deletes the files."""
import dataclasses
from pathlib import Path

import pytest

from credit_spark.config.loader import DatasetSpec, LabelSpec, NumericRule, PeriodSpec
from credit_spark.errors import ConfigError
from credit_spark.jobs.erasure import forget
from credit_spark.jobs.ingest import ingest
from credit_spark.jobs.scoring import table_properties
from credit_spark.lake.tables import (ERASURE_REQUESTS, FEATURES, QUARANTINE, RAW_RECORDS, SCORES, ensure_table,
                                 overwrite_table, read_delta, replace_where)

SPEC = DatasetSpec(
    name="tiny", record_id="ID", customer_id="Cust", period=PeriodSpec(column="Month"),
    label=LabelSpec(column="Score", classes=["Good", "Poor"]), pii=["Name"],
    numeric={"Age": NumericRule(min=14, max=100)}, categorical=["Job"],
)
GONE = "CUS_ERASE_ME"
LINES = ["1,C1,March,Ann,30,Good,Baker", f"2,{GONE},March,Bo,40,Poor,Zymurgist",
         f"3,{GONE},April,Bo,41,Poor,Zymurgist", f"4,{GONE},April,Bo,41,Excellent,Zymurgist",  # quarantined
         "5,C5,April,Di,50,Good,Baker"]


def data_files_mentioning(folder: str, text: str) -> list[str]:
    """Data files (current, removed, change-data) under a table folder holding ``text``; the
    tests write them uncompressed, so a value in a file is a value in its bytes."""
    return [str(p) for p in Path(folder).rglob("*.parquet") if text.encode() in p.read_bytes()]


@pytest.fixture()
def lake(spark, cfg, tmp_path):
    """raw_records and quarantine by ingest; features and scores (Change Data Feed on, as the
    scorer makes it) written directly with a customer_id column."""
    spark.conf.set("spark.sql.parquet.compression.codec", "uncompressed")
    config = dataclasses.replace(cfg, spec=SPEC)
    src = tmp_path / "b.csv"
    src.write_text("\n".join(["ID,Cust,Month,Name,Age,Score,Job", *LINES]) + "\n")
    ingest(spark, config, str(src))
    rows = spark.createDataFrame([("1", "C1", 3, "Baker"), ("2", GONE, 3, "Zymurgist"), ("3", GONE, 4, "Zymurgist"),
                                  ("5", "C5", 4, "Baker")], "record_id string, customer_id string, period int, job string")
    overwrite_table(rows, config.table_path(FEATURES), ["period"])
    scores = config.table_path(SCORES)
    ensure_table(spark, scores, rows.schema, ["period"], "test scores", table_properties(25))
    replace_where(rows, scores, "period IN (3, 4)", ["period"])
    yield config
    spark.conf.unset("spark.sql.parquet.compression.codec")


def test_forget_deletes_the_customer_everywhere_and_records_the_request(spark, lake):
    tables = (RAW_RECORDS, QUARANTINE, FEATURES, SCORES)
    assert all(data_files_mentioning(lake.table_path(t), "Zymurgist") for t in (RAW_RECORDS, FEATURES, SCORES))
    before = {t: read_delta(spark, lake.table_path(t)).count() for t in tables}

    result = forget(spark, lake, [GONE, " "])

    assert result.rows_deleted == {RAW_RECORDS: 2, QUARANTINE: 1, FEATURES: 2, SCORES: 2} and not result.purged
    for table in tables:
        left = read_delta(spark, lake.table_path(table))
        assert left.count() == before[table] - result.rows_deleted[table]
    assert {r.Cust for r in read_delta(spark, lake.table_path(RAW_RECORDS)).collect()} == {"C1", "C5"}
    [audit] = read_delta(spark, lake.table_path(ERASURE_REQUESTS)).collect()
    assert (audit.customer_id, audit.request_id, audit.purged) == (GONE, result.request_id, False)
    assert audit.rows_deleted == result.rows_deleted and audit.requested_at is not None
    # without --purge the removed files stay for time travel (until maintain vacuums them)
    assert read_delta(spark, lake.table_path(SCORES), version=1).where(f"customer_id = '{GONE}'").count() == 2
    # a rerun deletes nothing more and is recorded too
    assert set(forget(spark, lake, [GONE]).rows_deleted.values()) == {0}
    assert read_delta(spark, lake.table_path(ERASURE_REQUESTS)).count() == 2


def test_reingest_after_forget_brings_no_erased_row_back(spark, lake, tmp_path):
    """The same extract sent again (and a new one naming the customer with spaces around the id):
    the erased customer's rows go neither to raw_records nor to quarantine, and are counted."""
    forget(spark, lake, [GONE])
    again = tmp_path / "again.csv"
    again.write_text("\n".join(["ID,Cust,Month,Name,Age,Score,Job", *LINES,
                                 f"6, {GONE} ,May,Bo,42,Poor,Zymurgist", "7,C7,May,Ed,33,Excellent,Baker"]) + "\n")
    result = ingest(spark, lake, str(again))
    assert (result.rows_read, result.rows_ingested, result.rows_quarantined, result.rows_erased) == (7, 2, 1, 4)
    assert result.quarantine_reasons == {"invalid_label": 1}
    quality = {r.metric: r.value for r in read_delta(spark, lake.table_path("data_quality"))
               .where(f"stage = 'ingest:{result.batch_id}'").collect()}
    assert (quality["rows_read"], quality["rows_ingested"], quality["quarantined:invalid_label"],
            quality["rows_erased"]) == (7, 2, 1, 4)
    assert {r.Cust for r in read_delta(spark, lake.table_path(RAW_RECORDS)).collect()} == {"C1", "C5"}
    quarantined = read_delta(spark, lake.table_path(QUARANTINE)).collect()
    assert [r.record_id for r in quarantined] == ["7"]
    assert not any("Zymurgist" in (r.raw or "") for r in quarantined)


def test_an_erased_row_never_pushes_a_kept_row_with_its_record_id_out(spark, lake, tmp_path):
    """Duplicates are ranked after the erased rows are marked: a kept row sharing its record id with
    an erased customer's row is ingested, not quarantined as the duplicate (whichever hashes first)."""
    forget(spark, lake, [GONE])
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("\n".join(["ID,Cust,Month,Name,Age,Score,Job",
                                *[f"{i},{GONE},June,Bo,{40 + i},Poor,Zymurgist" for i in range(10, 16)],
                                *[f"{i},C{i},June,Ed,{20 + i},Good,Baker" for i in range(10, 16)]]) + "\n")
    result = ingest(spark, lake, str(pairs))
    assert (result.rows_ingested, result.rows_erased, result.quarantine_reasons) == (6, 6, {})
    kept = read_delta(spark, lake.table_path(RAW_RECORDS)).where("Month = 'June'").collect()
    assert {(r.ID, r.Cust) for r in kept} == {(str(i), f"C{i}") for i in range(10, 16)}


def test_purge_leaves_no_data_file_holding_the_customer(spark, lake):
    result = forget(spark, lake, [GONE], purge_files=True)
    assert result.purged
    for table in (RAW_RECORDS, QUARANTINE, FEATURES, SCORES):   # scores' change-data files included
        assert data_files_mentioning(lake.table_path(table), "Zymurgist") == [], table
        assert data_files_mentioning(lake.table_path(table), "Baker") or table == QUARANTINE
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled", "true") == "true"


def test_forget_needs_a_customer_and_a_customer_column(spark, lake):
    with pytest.raises(ConfigError, match="name at least one customer"):
        forget(spark, lake, ["  "])
    no_customer = dataclasses.replace(lake, spec=dataclasses.replace(SPEC, customer_id=None))
    with pytest.raises(ConfigError, match="has no customer_id column"):
        forget(spark, no_customer, [GONE])
