"""Table writes: file sizing and atomic replacement of one partition."""
import glob

from pyspark.testing import assertDataFrameEqual

from credit_spark.lake import tables
from credit_spark.lake.tables import overwrite_table, read_delta, replace_where


def data_files(path: str) -> list[str]:
    return glob.glob(f"{path}/**/*.parquet", recursive=True)


def test_files_hold_at_most_max_records_per_file_rows(spark, tmp_path, monkeypatch):
    """One big partition value must not become one huge file (one task's whole heap on read)."""
    monkeypatch.setattr(tables, "MAX_RECORDS_PER_FILE", 4)
    df = spark.range(10).selectExpr("id", "'a' AS part").coalesce(1)
    path = str(tmp_path / "t")
    overwrite_table(df, path, partition_by=["part"])
    assert len(data_files(path)) == 3                       # 4 + 4 + 2 rows
    assertDataFrameEqual(read_delta(spark, path), df)


def test_replace_where_splits_files_too_and_keeps_other_partitions(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "MAX_RECORDS_PER_FILE", 5)
    path = str(tmp_path / "t")
    overwrite_table(spark.createDataFrame([(1, "x"), (2, "y")], "id long, part string"), path, ["part"])
    day = spark.range(100, 111).selectExpr("id", "'y' AS part").coalesce(1)
    replace_where(day, path, "part = 'y'", ["part"])
    assert len(glob.glob(f"{path}/part=y/*.parquet")) - 1 == 3   # 5 + 5 + 1 rows (+ the replaced file)
    assertDataFrameEqual(read_delta(spark, path),
                         spark.createDataFrame([(1, "x")], "id long, part string").unionByName(day))


def test_a_reused_session_takes_the_runtime_settings_and_names_the_static_ones(spark, caplog):
    """Databricks or a notebook hands over a running session: the config's runtime settings are
    applied, a static one that differs is named in a warning, not silently dropped."""
    import logging

    from credit_spark.config.loader import SparkSettings
    from credit_spark.lake.session import get_spark

    settings = SparkSettings(master=None, conf={"spark.sql.shuffle.partitions": "5", "spark.driver.memory": "3g",
                                                "spark.sql.session.timeZone": "UTC"})
    with caplog.at_level(logging.WARNING, logger="credit_spark.lake.session"):
        assert get_spark(settings) is spark
    assert spark.conf.get("spark.sql.shuffle.partitions") == "5"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "spark.driver.memory = 3g is not applied" in warning and "'2g'" in warning


def test_delta_operations_in_sql_create_merge_delete_and_read_history(spark, tmp_path):
    """The Delta SQL helpers (what runs on a Spark Connect server without Delta Connect's
    plugins): a created table keeps its schema contract, MERGE inserts and updates only where told,
    DELETE commits the rows it matched, and the history reads them back newest first."""
    from pyspark.sql import types as T

    path = str(tmp_path / "t")
    schema = T.StructType([T.StructField("id", T.LongType(), False, {"comment": "the key"}),
                           T.StructField("v", T.StringType(), True, {"comment": "it's a value"}),
                           T.StructField("part", T.StringType(), True)])
    assert not tables.table_exists(spark, path)
    spark.range(1).write.parquet(str(tmp_path / "plain"))
    assert not tables.table_exists(spark, str(tmp_path / "plain"))     # Parquet is not a Delta table
    for _ in range(2):                                                  # the second create is a no-op
        tables.ensure_table(spark, path, schema, ["part"], "a 'test' table", {"delta.appendOnly": "false"})
    assert tables.table_exists(spark, path) and tables.current_version(spark, path) == 0
    created = read_delta(spark, path).schema
    assert [(f.name, f.dataType, f.nullable, f.metadata.get("comment")) for f in created] == [
        ("id", T.LongType(), False, "the key"), ("v", T.StringType(), True, "it's a value"),
        ("part", T.StringType(), True, None)]
    detail = spark.sql(f"DESCRIBE DETAIL {tables.sql_ref(path)}").first()
    assert (detail["description"], detail["partitionColumns"]) == ("a 'test' table", ["part"])

    rows = spark.createDataFrame([(1, "a", "x"), (2, "b", "y")], schema)
    tables.merge_into(spark, path, rows, "t.id = s.id")
    changed = spark.createDataFrame([(1, "A", "x"), (2, "b2", "y"), (3, "c", "y")], schema)
    tables.merge_into(spark, path, changed, "t.id = s.id", update_when="s.v <> upper(t.v)")
    assertDataFrameEqual(read_delta(spark, path), spark.createDataFrame(
        [(1, "a", "x"), (2, "b2", "y"), (3, "c", "y")], schema))         # id 1: "A" = upper("a"), kept
    assert tables.last_operation_metrics(spark, path)["numTargetRowsUpdated"] == "1"
    assert not any(t.name.startswith("credit_spark_merge") for t in spark.catalog.listTables())  # view dropped
    tables.delete_where(spark, path, "part = 'y'")
    assertDataFrameEqual(read_delta(spark, path), spark.createDataFrame([(1, "a", "x")], schema))
    assert [r["operation"] for r in tables.history(spark, path, 10).collect()] == [
        "DELETE", "MERGE", "MERGE", "CREATE TABLE"]
