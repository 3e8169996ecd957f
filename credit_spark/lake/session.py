"""The one place a SparkSession is built or reused.

Four situations, one function:

* a session already exists (Databricks, a notebook, a test fixture): reuse it, with the
  configured settings the running session can still take (the others are named in a warning);
* the Python process was launched by ``spark-submit`` (the JVM is already up, its JARs and master
  chosen on the command line): build on that JVM, never re-download the Delta JARs;
* a plain local run: configure Delta through ``configure_spark_with_delta_pip``, which asks Ivy to
  fetch the Delta JAR matching the installed delta-spark from Maven Central once and caches it;
* a Spark Connect server is named (``spark.remote``, ``--remote``, ``SPARK_REMOTE``): a client
  session of it (:func:`connect_session`).
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from pyspark.sql import SparkSession

from credit_spark.config.loader import SparkSettings

logger = logging.getLogger(__name__)
R = TypeVar("R")

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
        logger.info("reusing the active Spark session (%s)", "Spark Connect" if is_connect(active)
                    else f"master {active.sparkContext.master}")
        apply_runtime_conf(active, settings.conf)
        return active

    remote = settings.remote or os.environ.get("SPARK_REMOTE")
    if remote:
        return connect_session(remote, settings)
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


def connect_session(remote: str, settings: SparkSettings) -> SparkSession:
    """A Spark Connect client session. For a ``local[N]`` remote pyspark starts a local server (a
    JVM of its own), with Delta configured as for a classic local run; an ``sc://`` server was configured
    by whoever started it (Delta's SQL extension and catalog, its JAR), so only the settings a
    running session may change are applied, the others named in a warning."""
    builder = SparkSession.builder.remote(remote).appName(settings.app_name)
    if remote.startswith("local"):
        from delta import configure_spark_with_delta_pip

        for key, value in {**DELTA_CONF, **settings.conf}.items():
            builder = builder.config(key, value)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        with warnings.catch_warnings():    # the client then tries to set them again: static, refused
            warnings.filterwarnings("ignore", message="Failed to set", category=UserWarning)
            spark = configure_spark_with_delta_pip(builder).getOrCreate()
    else:
        spark = builder.getOrCreate()
        apply_runtime_conf(spark, settings.conf)
    logger.info("Spark Connect session (Spark %s at %s)", spark.version, remote)
    # released before the interpreter tears down: pyspark 4.1+ frees each fitted model on the
    # server from its finaliser, and a finaliser that calls the server during shutdown waits forever
    atexit.register(spark.stop)
    return spark


def is_connect(spark: SparkSession) -> bool:
    """A Spark Connect client session (no JVM, no SparkContext, no RDDs on this side)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def in_session(spark: SparkSession, fn: Callable[..., R]) -> Callable[..., R]:
    """``fn`` for another thread (a thread pool fitting models in parallel), with ``spark`` as that
    thread's active session. A Spark Connect client's active session is per thread, and pyspark.ml
    looks it up for every call to a fitted model on the server (a forest's trees ...): in a new
    thread it finds none and fails. A classic session is shared by every thread already."""
    if not is_connect(spark):
        return fn

    def run(*args, **kwargs) -> R:
        # no public setter: the builder's getOrCreate sets it only for the session it creates
        type(spark)._set_default_and_active_session(spark)
        return fn(*args, **kwargs)
    return run


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

