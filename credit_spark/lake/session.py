"""The one place a SparkSession is built or reused.

Three situations, one function:

* a session already exists (Databricks, a notebook, a test fixture): reuse it, with the
  configured settings the running session can still take (the others are named in a warning);
* the Python process was launched by ``spark-submit`` (the JVM is already up, its JARs and master
  chosen on the command line): build on that JVM, never re-download the Delta JARs;
* a plain local run: configure Delta through ``configure_spark_with_delta_pip``, which asks Ivy to
  fetch the Delta JAR matching the installed delta-spark from Maven Central once and caches it.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Iterator

from pyspark.sql import SparkSession

from credit_spark.config.loader import SparkSettings

logger = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def delta_maven_coordinate() -> str:
    """The Maven coordinate of the Delta JAR that matches the installed delta-spark and pyspark,
    by the rule ``configure_spark_with_delta_pip`` follows: up to Delta 4.0 the artifact is
    ``delta-spark_2.13``; from 4.1 it names the Spark minor it is built for
    (``delta-spark_4.2_2.13``). For ``spark-submit --packages``, scripts and docs alike."""
    from importlib.metadata import version

    delta, spark = version("delta-spark"), version("pyspark")
    major_minor = tuple(int(part) for part in delta.split(".")[:2])
    artifact = "delta-spark_2.13" if major_minor < (4, 1) else f"delta-spark_{'.'.join(spark.split('.')[:2])}_2.13"
    return f"io.delta:{artifact}:{delta}"


def ivy_jar_names(coordinate: str) -> list[str]:
    """The files Ivy stores a Delta coordinate's JARs as (``group_artifact-version.jar``): the
    Delta JAR and the delta-storage JAR it depends on."""
    group, artifact, version = coordinate.split(":")
    return [f"{group}_{artifact}-{version}.jar", f"{group}_delta-storage-{version}.jar"]


def launched_by_spark_submit() -> bool:
    """True when a JVM gateway was started for us (spark-submit, pyspark shell, Databricks)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ or "DATABRICKS_RUNTIME_VERSION" in os.environ


def get_spark(settings: SparkSettings) -> SparkSession:
    """Return the active SparkSession, or build one from ``settings`` with Delta Lake enabled."""
    active = SparkSession.getActiveSession()
    if active is not None:
        logger.info("reusing the active Spark session (master %s)", active.sparkContext.master)
        apply_runtime_conf(active, settings.conf)
        return active

    builder = SparkSession.builder.appName(settings.app_name)
    for key, value in {**DELTA_CONF, **settings.conf}.items():
        builder = builder.config(key, value)

    if launched_by_spark_submit():
        # spark-submit already decided master and JARs (--packages with delta_maven_coordinate())
        logger.info("running under spark-submit: master and JARs come from its command line")
    else:
        from delta import configure_spark_with_delta_pip

        if settings.master:
            builder = builder.master(settings.master)
        # local Python workers run this interpreter (the venv with pandas/pyarrow), not PATH's python3
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = configure_spark_with_delta_pip(builder)

    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.log_level)
    logger.info("Spark %s session started (master %s)", spark.version, spark.sparkContext.master)
    return spark


def apply_runtime_conf(spark: SparkSession, conf: dict[str, str]) -> dict[str, str]:
    """On a reused session (Databricks, a notebook): set each configured setting that the running
    session may change and that differs; a static one that differs (memory, JARs, extensions)
    can only be set where the session starts, so it is named in a warning, not silently dropped.
    Returns the settings it changed."""
    changed = {}
    for key, value in conf.items():
        value = str(value)
        current = spark.conf.get(key, None)
        if current == value:
            continue
        if spark.conf.isModifiable(key):
            spark.conf.set(key, value)
            changed[key] = value
        else:
            logger.warning("spark.conf %s = %s is not applied: the reused session has %s, and it can only be "
                           "set when a session starts (the cluster's or spark-submit's configuration)", key, value,
                           "it unset" if current is None else repr(current))
    if changed:
        logger.info("reused session: set %s", ", ".join(f"{k}={v}" for k, v in changed.items()))
    return changed


def spark_schedules_gpus(spark: SparkSession, key: str = "spark.task.resource.gpu.amount") -> bool:
    """True when Spark gives each task (or the driver, by ``key``) at least one GPU."""
    return float(spark.conf.get(key, "0") or 0) >= 1


def make_active(spark: SparkSession) -> None:
    """Make ``spark`` the thread's active session again. Work done in a ``newSession()`` (the
    nightly scorer's) leaves that session active — ``createDataFrame`` activates its own session —
    and a later ``getActiveSession()`` in the same process (the next CLI command) would reuse it.
    Classic PySpark only; a Spark Connect session has no JVM handle here and is left alone."""
    jsession = getattr(spark, "_jsparkSession", None)
    if jsession is None:
        return
    SparkSession._activeSession = spark
    SparkSession._get_j_spark_session_class(spark._jvm).setActiveSession(jsession)


@contextmanager
def session_setting(spark: SparkSession, key: str, value: str, default: str) -> Iterator[None]:
    """``key`` set to ``value`` inside the block, restored (to its value, or ``default``) on exit."""
    previous = spark.conf.get(key, default)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        spark.conf.set(key, previous)


@contextmanager
def without_whole_stage_codegen(spark: SparkSession) -> Iterator[None]:
    """Plans built and run inside compile per operator, not as one whole-stage method.

    For a pass whose one operator carries a hundred generated expressions (an explode of a struct
    per feature, each with its bin CASE): as one whole-stage method it outgrows Java's 64 KB
    limit, and Spark logs a 250-line ``ERROR CodeGenerator`` before falling back to exactly this.
    The setting is the session's, restored on exit."""
    with session_setting(spark, "spark.sql.codegen.wholeStage", "false", "true"):
        yield

