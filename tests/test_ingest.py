import dataclasses
import json

import pytest
from pyspark.sql import functions as F

from credit_spark.config.loader import DatasetSpec, LabelSpec, NumericRule, PeriodSpec
from credit_spark.errors import MissingColumnError
from credit_spark.jobs.ingest import ingest
from credit_spark.lake.tables import QUARANTINE, RAW_RECORDS, table_exists

TINY = DatasetSpec(
    name="tiny", record_id="ID", customer_id="Cust", period=PeriodSpec(column="Month"),
    label=LabelSpec(column="Score", classes=["Good", "Poor"]), pii=["Name"],
    numeric={"Age": NumericRule(min=14, max=100)},
)

HEADER = "ID,Cust,Month,Name,Age,Score"
MIXED = [
    "1,C1,March,Ann,30,Good",
    "2,C2,March,Bo,40,Poor,extra",        # malformed: one field too many
    "3,C3,March",                         # malformed: fields missing
    ",C4,March,Di,50,Good",               # missing record id
    "5,,March,Ed,50,Good",                # missing customer id
    "6,C6,Smarch,Flo,50,Good",            # not a month
    "7,C7,April,Gus,50,Excellent",        # label outside the spec's classes
    "8,C8,April,Hal,61_,",                # fine: dirty numbers are the features stage's job
    "9,C9,April,Ivy,20,Poor",
    "9,C9,April,Ivy,21,Poor",             # the same record id twice in one batch
]


@pytest.fixture()
def tiny_cfg(cfg):
    return dataclasses.replace(cfg, spec=TINY)


def write_csv(path, header, lines):
    path.write_text("\n".join([header, *lines]) + "\n")
    return str(path)


def test_every_row_is_ingested_or_quarantined_with_a_reason(spark, tiny_cfg, tmp_path):
    src = write_csv(tmp_path / "batch.csv", HEADER, MIXED)
    result = ingest(spark, tiny_cfg, src)
    assert result.rows_read == len(MIXED)
    assert result.rows_ingested + result.rows_quarantined == result.rows_read
    assert result.quarantine_reasons == {
        "duplicate_record_id_in_batch": 1, "invalid_label": 1, "invalid_period": 1,
        "malformed_row": 2, "missing_customer_id": 1, "missing_record_id": 1,
    }
    raw = spark.read.format("delta").load(tiny_cfg.table_path(RAW_RECORDS))
    assert sorted(r.ID for r in raw.select("ID").collect()) == ["1", "8", "9"]
    assert raw.where(F.col("ID") == "8").first().Age == "61_"            # kept as the string it was
    quarantine = spark.read.format("delta").load(tiny_cfg.table_path(QUARANTINE))
    assert quarantine.count() == result.rows_quarantined
    details = {r.reason: r.detail for r in quarantine.collect()}
    assert details["invalid_period"] == "Month=Smarch"
    assert details["invalid_label"] == "Score=Excellent"
    assert details["duplicate_record_id_in_batch"] == "ID=9"


def test_quarantine_keeps_no_personal_identifiers(spark, tiny_cfg, tmp_path):
    ingest(spark, tiny_cfg, write_csv(tmp_path / "b.csv", HEADER, MIXED))
    quarantine = spark.read.format("delta").load(tiny_cfg.table_path(QUARANTINE))
    rows = quarantine.collect()
    names = {"Ann", "Bo", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy"}
    assert rows and all(not any(n in (r.raw or "") for n in names) for r in rows)
    assert all("Age" in json.loads(r.raw) for r in rows if r.reason != "malformed_row")
    malformed = [r for r in rows if r.reason == "malformed_row"]
    assert len(malformed) == 2 and all(r.raw is None and r.record_id is None for r in malformed)
    assert all(len(r.row_sha256) == 64 for r in rows)


def test_a_broken_line_keeps_no_field_a_personal_identifier_could_shift_into(spark, tiny_cfg, tmp_path):
    """An unquoted newline inside a field breaks a record in two: the fragments' fields shift, so
    the name sits under another column's name (here Cust and Month); nothing of them is kept."""
    lines = ["1,C1,March,Ann,30,Good", "2,C2,March,Mary", "Smith,40,Poor", "3,Zed Quist,44,Poor"]
    result = ingest(spark, tiny_cfg, write_csv(tmp_path / "broken.csv", HEADER, lines))
    assert result.quarantine_reasons == {"malformed_row": 3}
    quarantine = spark.read.format("delta").load(tiny_cfg.table_path(QUARANTINE))
    text = " ".join(str(v) for r in quarantine.collect() for v in r.asDict().values())
    assert not any(n in text for n in ("Mary", "Smith", "Zed", "Quist")), text
    assert quarantine.where("raw IS NULL AND record_id IS NULL AND length(row_sha256) = 64").count() == 3


def test_a_bad_copy_never_pushes_out_a_good_row_with_the_same_id(spark, tiny_cfg, tmp_path):
    lines = ["7,C7,April,Gus,50,Excellent", "7,C7,April,Gus,50,Good", "7,C7,Smarch,Gus,51,Good"]
    result = ingest(spark, tiny_cfg, write_csv(tmp_path / "dups.csv", HEADER, lines))
    assert result.rows_ingested == 1
    assert result.quarantine_reasons == {"invalid_label": 1, "invalid_period": 1}
    raw = spark.read.format("delta").load(tiny_cfg.table_path(RAW_RECORDS)).first()
    assert (raw.ID, raw.Score, raw.Month) == ("7", "Good", "April")


def test_a_renamed_copy_adds_no_quarantine_rows(spark, tiny_cfg, tmp_path):
    first = ingest(spark, tiny_cfg, write_csv(tmp_path / "a.csv", HEADER, MIXED))
    copy = ingest(spark, tiny_cfg, write_csv(tmp_path / "copy_of_a.csv", HEADER, MIXED))
    assert copy.batch_id != first.batch_id
    assert spark.read.format("delta").load(tiny_cfg.table_path(QUARANTINE)).count() == first.rows_quarantined
    assert spark.read.format("delta").load(tiny_cfg.table_path(RAW_RECORDS)).count() == first.rows_ingested


def test_only_the_listed_data_files_of_a_folder_are_read(spark, tiny_cfg, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    write_csv(folder / "part-1.csv", HEADER, ["1,C1,March,Ann,30,Good"])
    write_csv(folder / "part-2.csv", "Score,Age,Name,Month,Cust,ID", ["Poor,41,Bo,March,C2,2"])  # other order
    (folder / "README.txt").write_text("not data, must not be parsed\n")
    result = ingest(spark, tiny_cfg, str(folder))
    assert (result.files, result.rows_read, result.rows_quarantined) == (2, 2, 0)
    raw = spark.read.format("delta").load(tiny_cfg.table_path(RAW_RECORDS))
    assert sorted((r.ID, r.Age, r.Score) for r in raw.collect()) == [("1", "30", "Good"), ("2", "41", "Poor")]


def test_one_file_of_a_folder_missing_a_column_is_named(spark, tiny_cfg, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    write_csv(folder / "good.csv", HEADER, ["1,C1,March,Ann,30,Good"])
    write_csv(folder / "bad.csv", "ID,Cust,Month,Name,Score", ["2,C2,March,Bo,Good"])
    with pytest.raises(MissingColumnError, match=r"bad\.csv is missing required column\(s\): Age"):
        ingest(spark, tiny_cfg, str(folder))
    assert not table_exists(spark, tiny_cfg.table_path(RAW_RECORDS))


def test_reingesting_the_same_file_duplicates_nothing(spark, tiny_cfg, tmp_path):
    src = write_csv(tmp_path / "batch.csv", HEADER, MIXED)
    first = ingest(spark, tiny_cfg, src)
    second = ingest(spark, tiny_cfg, src)
    assert second.batch_id == first.batch_id
    assert (second.rows_inserted, second.rows_updated) == (0, 0)
    assert spark.read.format("delta").load(tiny_cfg.table_path(RAW_RECORDS)).count() == first.rows_ingested
    assert spark.read.format("delta").load(tiny_cfg.table_path(QUARANTINE)).count() == first.rows_quarantined


def test_a_corrected_record_updates_instead_of_duplicating(spark, tiny_cfg, tmp_path):
    ingest(spark, tiny_cfg, write_csv(tmp_path / "a.csv", HEADER, ["1,C1,March,Ann,30,Good"]))
    result = ingest(spark, tiny_cfg, write_csv(tmp_path / "b.csv", HEADER,
                                               ["1,C1,March,Ann,31,Good", "2,C2,March,Bo,40,Poor"]))
    assert (result.rows_inserted, result.rows_updated) == (1, 1)
    raw = spark.read.format("delta").load(tiny_cfg.table_path(RAW_RECORDS))
    assert sorted((r.ID, r.Age) for r in raw.select("ID", "Age").collect()) == [("1", "31"), ("2", "40")]


def test_missing_columns_stop_before_any_write(spark, tiny_cfg, tmp_path):
    src = write_csv(tmp_path / "bad.csv", "ID,Month,Name,Score", ["1,March,Ann,Good"])
    with pytest.raises(MissingColumnError, match=r"missing required column\(s\): Cust, Age"):
        ingest(spark, tiny_cfg, src)
    assert not table_exists(spark, tiny_cfg.table_path(RAW_RECORDS))
    assert not table_exists(spark, tiny_cfg.table_path(QUARANTINE))


def test_columns_are_matched_by_name_and_label_is_optional(spark, tiny_cfg, tmp_path):
    src = write_csv(tmp_path / "unlabelled.csv", "Age,Month,Extra,Cust,ID,Name", ["44,May,x,C5,50,Jo"])
    result = ingest(spark, tiny_cfg, src)
    assert (result.rows_read, result.rows_ingested) == (1, 1)
    row = spark.read.format("delta").load(tiny_cfg.table_path(RAW_RECORDS)).first()
    assert (row.ID, row.Cust, row.Month, row.Age, row.Score) == ("50", "C5", "May", "44", None)
    assert "Extra" not in row.asDict()


def test_parquet_folder_input(spark, tiny_cfg, tmp_path):
    rows = [("1", "C1", "March", "Ann", "30", "Good"), ("2", "C2", "March", "Bo", "41", None)]
    spark.createDataFrame(rows, "ID string, Cust string, Month string, Name string, Age string, Score string") \
        .write.parquet(str(tmp_path / "in.parquet"))
    result = ingest(spark, tiny_cfg, str(tmp_path / "in.parquet"))
    assert (result.rows_read, result.rows_ingested, result.rows_quarantined) == (2, 2, 0)


def test_compressed_csv_ingests_like_the_plain_file(spark, tiny_cfg, tmp_path):
    """Banks deliver .csv.gz and .csv.bz2: one folder with both (and a plain file) reads every row."""
    import bz2
    import gzip

    folder = tmp_path / "delivery"
    folder.mkdir()
    plain = write_csv(tmp_path / "plain.csv", HEADER, MIXED)
    text = open(plain, "rb").read()
    (folder / "part1.csv.gz").write_bytes(gzip.compress(text))
    (folder / "part2.csv.bz2").write_bytes(bz2.compress(text.replace(b"1,C1,March", b"11,C11,March")))
    result = ingest(spark, tiny_cfg, str(folder))
    assert result.files == 2 and result.rows_read == 2 * len(MIXED)
    assert result.rows_ingested + result.rows_quarantined == result.rows_read
    raw = spark.read.format("delta").load(tiny_cfg.table_path(RAW_RECORDS))
    assert sorted(r.ID for r in raw.select("ID").collect()) == ["1", "11", "8", "9"]


def test_headers_match_trimmed_ignoring_case_and_through_source_columns(spark, tiny_cfg, tmp_path):
    """An extract's header is ingested unmodified: lower-cased names, padding, and a label whose
    header text (dots, spaces) cannot be a spec column name, mapped by the spec."""
    spec = dataclasses.replace(TINY, source_columns={"Score": "default.payment next month"})
    cfg = dataclasses.replace(tiny_cfg, spec=spec)
    src = write_csv(tmp_path / "extract.csv", " id ,CUST,month,name,Age,default.payment next month",
                    ["1,C1,March,Ann,30,Good", "2,C2,April,Bo,41,Poor"])
    result = ingest(spark, cfg, src)
    assert (result.rows_read, result.rows_ingested, result.rows_quarantined) == (2, 2, 0)
    rows = sorted(spark.read.format("delta").load(cfg.table_path(RAW_RECORDS)).select("ID", "Cust", "Score").collect())
    assert [tuple(r) for r in rows] == [("1", "C1", "Good"), ("2", "C2", "Poor")]
    # a mapped header that is absent is named with the text the spec looks for
    other = write_csv(tmp_path / "other.csv", "ID,Cust,Month,Name,Age", ["3,C3,May,Cy,50"])
    unlabelled = ingest(spark, cfg, other)                  # the label is optional, mapped or not
    assert unlabelled.rows_ingested == 1
    missing = write_csv(tmp_path / "missing.csv", "ID,Cust,Name,Age", ["3,C3,Cy,50"])
    with pytest.raises(MissingColumnError, match=r"missing required column\(s\): Month"):
        ingest(spark, cfg, missing)


def test_source_columns_must_name_spec_columns(tmp_path):
    from credit_spark.config.loader import load_dataset_spec
    from credit_spark.errors import ConfigError

    path = tmp_path / "spec.yaml"
    path.write_text("name: t\nrecord_id: id\nlabel: {column: y, classes: [a, b]}\n"
                    "source_columns: {target: 'default.payment.next.month'}\n")
    with pytest.raises(ConfigError, match=r"source_columns: \['target'\] are not columns of the spec"):
        load_dataset_spec(str(path))


def test_an_empty_file_says_it_is_empty(spark, tiny_cfg, tmp_path):
    from credit_spark.errors import NoRecordsError

    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(NoRecordsError, match=r"empty\.csv is empty \(0 bytes\)"):
        ingest(spark, tiny_cfg, str(tmp_path / "empty.csv"))


def test_a_file_matching_no_column_shows_its_header_and_the_likely_delimiter(spark, tiny_cfg, tmp_path):
    src = write_csv(tmp_path / "semicolons.csv", HEADER.replace(",", ";"), ["1;C1;March;Ann;30;Good"])
    with pytest.raises(MissingColumnError, match=r"has none of the 5 columns .* header reads "
                                                 r"\['ID;Cust;Month;Name;Age;Score'\] .*semicolons"):
        ingest(spark, tiny_cfg, src)
    assert not table_exists(spark, tiny_cfg.table_path(RAW_RECORDS))


def test_quoted_fields_with_embedded_newlines_are_one_record(spark, tiny_cfg, tmp_path):
    """A bank's export quotes a multi-line field: each record stays one row, and the counts add up
    to the file's records (a line-by-line read split them into fragments, quarantined)."""
    lines = [f'{i},C{i},March,"Ann\nof line {i}",{20 + i},Good' if i % 4 == 0 else f"{i},C{i},March,Bo,{20 + i},Poor"
             for i in range(1, 41)]
    src = write_csv(tmp_path / "multiline.csv", HEADER, [*lines, "41,C41,March,Cy,30,Good,extra"])
    result = ingest(spark, tiny_cfg, src)
    assert (result.rows_read, result.rows_ingested, result.rows_quarantined) == (41, 40, 1)
    assert result.quarantine_reasons == {"malformed_row": 1}
    raw = spark.read.format("delta").load(tiny_cfg.table_path(RAW_RECORDS))
    row = raw.where(F.col("ID") == "4").first()      # the fields after the quoted line break are in place
    assert (row.Cust, row.Age, row.Score, row.Name) == ("C4", "24", "Good", None)   # the name is pii: dropped
