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
