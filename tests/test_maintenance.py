"""credit-spark maintain: compaction, retention per table, the score history kept, config errors."""
import dataclasses

import pytest
from pyspark.testing import assertDataFrameEqual

from credit_spark.config.loader import MaintainSettings, load_config
from credit_spark.errors import ConfigError
from credit_spark.jobs.maintenance import folder_storage, maintain
from credit_spark.jobs.scoring import table_properties
from credit_spark.lake.tables import FEATURES, SCORES, ensure_table, overwrite_table, read_delta, replace_where

SCHEMA = "record_id string, customer_id string, period int, x double"


def _rows(spark, n: int, offset: int = 0):
    return spark.createDataFrame([(f"r{i}", f"c{i % 7}", 1 + i % 2, float(i + offset)) for i in range(n)], SCHEMA)


def _with(cfg, **maintain):
    return dataclasses.replace(cfg, maintain=dataclasses.replace(cfg.maintain, **maintain))


def test_features_rewritten_ten_times_keep_one_copy_after_maintain(spark, cfg):
    """Each `features` run rewrites the table: its old files stay for time travel until VACUUM
    deletes those older than the retention (0 days here), so storage stops growing per run."""
    path = cfg.table_path(FEATURES)
    for run in range(10):
        overwrite_table(_rows(spark, 200, offset=run).repartition(4), path, ["period"])
    current = read_delta(spark, path).collect()
    files_before, bytes_before = folder_storage(path)

    [done] = maintain(spark, _with(cfg, default_retention_days=0.0))

    assert done.table == FEATURES and done.retention_hours == 0
    assert done.before.folder_files == files_before and done.before.files == 8       # 4 files x 2 periods
    assert done.after.files == 2                                                     # one file per period
    files_after, bytes_after = folder_storage(path)
    assert (done.after.folder_files, done.after.folder_bytes) == (files_after, bytes_after)
    assert files_after == 2 and bytes_after < bytes_before / 5                       # history gone
    assertDataFrameEqual(read_delta(spark, path), current)                           # same rows
    with pytest.raises(Exception):
        read_delta(spark, path, version=0).collect()                                 # past the retention


def test_scores_keep_their_history_and_are_z_ordered_by_customer(spark, cfg):
    path = cfg.table_path(SCORES)
    ensure_table(spark, path, _rows(spark, 1).schema, ["period"], "test scores", table_properties(25))
    for night in range(3):   # a night replaces its partition, then two late appends: small files
        rows = _rows(spark, 60, offset=night).where("period = 1")
        replace_where(rows.where("x % 3 = 0"), path, "period = 1", ["period"])
        for part in (1, 2):
            rows.where(f"x % 3 = {part}").write.format("delta").mode("append").save(path)
    first_night = read_delta(spark, path, version=1).collect()

    [done] = maintain(spark, _with(cfg, default_retention_days=0.0))

    assert done.zorder_by == ["customer_id"] and done.retention_hours == pytest.approx(25 * 365.25 / 12 * 24)
    assert done.after.files == 1 < done.before.files
    assertDataFrameEqual(read_delta(spark, path, version=1), first_night)   # 25 months of history kept
    assert done.after.folder_files > done.after.files


def test_files_of_a_killed_write_go_while_the_score_history_stays(spark, cfg):
    """A job killed before its commit leaves data files no commit names: maintain deletes those
    older than maintain.orphan_hours (24), leaves a newer one (a write may still be running), and
    keeps the 25 months of history VACUUM keeps."""
    import os
    import shutil
    import time
    from pathlib import Path

    path = cfg.table_path(SCORES)
    ensure_table(spark, path, _rows(spark, 1).schema, ["period"], "test scores", table_properties(25))
    for night in range(2):
        replace_where(_rows(spark, 40, offset=night), path, "period IN (1, 2)", ["period"])
    committed = next(Path(path, "period=1").glob("*.parquet"))
    killed, running = Path(path, "period=1", "part-00000-killed.c000.snappy.parquet"), \
        Path(path, "period=2", "part-00000-running.c000.snappy.parquet")
    for orphan in (killed, running):
        shutil.copy(committed, orphan)
    two_days_ago = time.time() - 48 * 3600
    os.utime(killed, (two_days_ago, two_days_ago))
    os.utime(committed, (two_days_ago, two_days_ago))      # old, but named by a commit: kept
    rows, first = read_delta(spark, path).collect(), read_delta(spark, path, version=1).collect()

    [done] = maintain(spark, cfg)

    assert done.orphans_deleted == 1 and not killed.exists() and running.exists() and committed.exists()
    assertDataFrameEqual(read_delta(spark, path), rows)
    assertDataFrameEqual(read_delta(spark, path, version=1), first)   # the history is whole


def test_a_rerun_finds_nothing_to_delete_and_leaves_the_rows(spark, cfg):
    path = cfg.table_path(FEATURES)
    overwrite_table(_rows(spark, 50), path, ["period"])
    overwrite_table(_rows(spark, 50, offset=1), path, ["period"])
    settings = _with(cfg, default_retention_days=0.0)
    maintain(spark, settings)
    rows = read_delta(spark, path).collect()
    [again] = maintain(spark, settings)
    assert again.before.folder_files == again.after.folder_files == again.after.files
    assertDataFrameEqual(read_delta(spark, path), rows)


def test_unknown_tables_and_columns_are_named(spark, cfg):
    overwrite_table(_rows(spark, 5), cfg.table_path(FEATURES), ["period"])
    with pytest.raises(ConfigError, match=r"maintain.retention_days: unknown table\(s\) \['featurez'\]"):
        maintain(spark, _with(cfg, retention_days={"featurez": 1.0}))
    with pytest.raises(ConfigError, match=r"maintain.zorder.features: no column \['nope'\]"):
        maintain(spark, _with(cfg, zorder={"features": ["nope"]}))


def test_config_rejects_negative_days_and_a_retention_for_the_score_history(tmp_path):
    overlay = tmp_path / "m.yaml"
    overlay.write_text("maintain:\n  retention_days:\n    scores: 3\n")
    with pytest.raises(ConfigError, match="maintain.retention_days: the history of scores and monitoring is kept "
                                          "for score.retention_months"):
        load_config([str(overlay)])
    overlay.write_text("maintain:\n  default_retention_days: -1\n")
    with pytest.raises(ConfigError, match=r"maintain: retention days and orphan_hours must be >= 0, "
                                          r"got \{'default_retention_days'"):
        load_config([str(overlay)])
    assert load_config().maintain == MaintainSettings()   # base.yaml says what the defaults say
