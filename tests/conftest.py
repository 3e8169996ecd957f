"""One Spark session for the whole suite: local[2], Delta on, UTC, two shuffle partitions, no UI."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from credit_spark.config.loader import Config, LakeSettings, SparkSettings, load_config

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TEST_SPARK = SparkSettings(
    master="local[2]",
    app_name="credit_spark_tests",
    log_level="ERROR",
    conf={
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
        "spark.driver.memory": "2g",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.codegen.hugeMethodLimit": "8000",      # as conf/base.yaml
    },
)


# the costly marks, and a file's place in the run: the costliest of its tests' marks (more
# first), then collection order
FILE_ORDER = {"cluster": 3, "e2e": 2, "nn": 1, "training": 1, "real_data": 1}
COSTLY_MARKS = set(FILE_ORDER)


def pytest_collection_modifyitems(items):
    """Tests with none of the costly marks are ``unit``: ``-m unit`` is the quick subset.

    Files with the costliest tests run first: scripts/test.sh hands whole files to two workers in
    this order (``--dist loadfile --no-loadscope-reorder``), so a file of one long test (the
    cluster, the Spark Connect server) starts early instead of leaving one worker busy alone at
    the end while the other waits."""
    weight: dict[Path, int] = {}
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        if not COSTLY_MARKS & marks:
            item.add_marker(pytest.mark.unit)
        rank = max((FILE_ORDER.get(m, 0) for m in marks), default=0)
        weight[item.path] = max(weight.get(item.path, 0), rank)
    items.sort(key=lambda item: -weight[item.path])      # stable: order within a file kept


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from credit_spark.lake.session import get_spark

    warehouse = tmp_path_factory.mktemp("warehouse")
    settings = dataclasses.replace(TEST_SPARK, conf={**TEST_SPARK.conf, "spark.sql.warehouse.dir": str(warehouse)})
    session = get_spark(settings)
    session._suite_conf = dict(session.conf.getAll)     # what _suite_conf_restored puts back
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def _suite_conf_restored():
    """A test that runs a job in this process reuses the suite's session, and the job applies its
    config's runtime settings to it (as it does on Databricks): put the suite's back after it."""
    yield
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    suite = getattr(session, "_suite_conf", None)
    if suite is None:
        return
    for key, value in session.conf.getAll.items():
        if suite.get(key) != value and session.conf.isModifiable(key):
            if key in suite:
                session.conf.set(key, suite[key])
            else:
                session.conf.unset(key)


@pytest.fixture()
def cfg(tmp_path) -> Config:
    """The shipped config with a fresh lake folder per test."""
    loaded = load_config(lake=str(tmp_path / "lake"))
    return dataclasses.replace(loaded, spark=TEST_SPARK, lake=LakeSettings(root=str(tmp_path / "lake")))


@pytest.fixture()
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared sample data not present at {SHARED_DATA}")
    return SHARED_DATA
