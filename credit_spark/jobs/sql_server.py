"""``credit-spark serve-sql``: Spark's Thrift JDBC/ODBC server (the HiveServer2 protocol) over the lake.

Analysts' own tools — SQL clients (beeline, DBeaver), BI tools over JDBC/ODBC, Python DB-API
clients (PyHive) — connect to ``jdbc:hive2://HOST:PORT/<schema>`` and query every lake table and
the shipped views (``conf/sql/``) by name. The server is Spark's own (the
``spark-hive-thriftserver`` JAR ships with pyspark), started inside this process on a session
with Delta and a Hive metastore: an embedded Derby database under ``<lake>/_metastore`` by
default, or the external metastore that ``spark.hadoop.hive.metastore.uris`` names.

Every lake table is published in the schema as a *view* over its Delta path, so each query reads
the table's latest version, and ``INSERT``/``UPDATE``/``DELETE``/``DROP TABLE`` on a published name
fail (Spark does not modify data through a view). That is no access control: a client may still
name a path (``delta.`/lake/scores```) or create objects of its own. For a shared endpoint, run the
server as an operating-system user (or a cloud identity) that can only read the lake, and require
authentication (docs/operations.md, "A SQL endpoint").
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from pyspark.sql import SparkSession

from credit_spark.config.loader import Config
from credit_spark.errors import ConfigError
from credit_spark.lake.session import delta_maven_coordinate, ivy_jar_names, launched_by_spark_submit
from credit_spark.lake.tables import TABLES, table_exists
from credit_spark.lake.views import render, shipped_sql, sources_ready

logger = logging.getLogger(__name__)

THRIFT_SERVER = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
DEFAULT_SCHEMA = "credit"


def metastore_dir(cfg: Config) -> Path:
    return Path(cfg.lake.root).resolve() / "_metastore"


def delta_jars(spark_conf: dict[str, str]) -> list[Path]:
    """Where Spark's Ivy keeps the Delta JARs of the installed delta-spark (what
    ``configure_spark_with_delta_pip`` asks for)."""
    ivy = Path(spark_conf.get("spark.jars.ivy") or Path.home() / ".ivy2.5.2")
    return [ivy / "jars" / name for name in ivy_jar_names(delta_maven_coordinate())]


def fetch_delta_jars() -> None:
    """Have Spark's Ivy fetch the Delta JARs once (a short local session in a child process)."""
    code = ("from delta import configure_spark_with_delta_pip; from pyspark.sql import SparkSession; "
            "configure_spark_with_delta_pip(SparkSession.builder.master('local[1]')).getOrCreate().stop()")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=900)


def with_server_conf(cfg: Config, host: str, port: int) -> Config:
    """The Spark settings the server needs, set before the session starts (they are static): the
    Hive catalog with an embedded Derby metastore under the lake (unless the config names one),
    and where the Thrift service listens."""
    if cfg.lake.schema:
        raise ConfigError("serve-sql publishes a path lake; with lake.schema set the tables are metastore tables "
                          "already: serve them from the metastore's own SQL endpoint (e.g. a Databricks SQL warehouse)")
    if "://" in cfg.lake.root and not cfg.lake.root.startswith("file:"):
        raise ConfigError(f"serve-sql's embedded metastore needs a local lake.root, got {cfg.lake.root}; "
                          f"set spark.hadoop.hive.metastore.uris to an external metastore")
    conf = dict(cfg.spark.conf)
    # Hive opens each client's session with a class loader of its own, whose parent is the JVM's
    # class path, not the loader holding the JARs fetched by spark.jars.packages: Delta's catalog
    # must be on the driver's class path itself, or a client connecting to a database fails with
    # "Cannot find catalog plugin class for catalog 'spark_catalog': ...DeltaCatalog"
    jars = delta_jars(conf)
    if not launched_by_spark_submit():
        if not all(j.is_file() for j in jars):
            fetch_delta_jars()
        conf["spark.driver.extraClassPath"] = os.pathsep.join(
            [*filter(None, [conf.get("spark.driver.extraClassPath")]), *map(str, jars)])
    if "spark.hadoop.hive.metastore.uris" not in conf:
        home = metastore_dir(cfg)
        home.mkdir(parents=True, exist_ok=True)
        conf.setdefault("spark.hadoop.javax.jdo.option.ConnectionURL",
                        f"jdbc:derby:;databaseName={home / 'metastore_db'};create=true")
        conf.setdefault("spark.driver.extraJavaOptions", f"-Dderby.system.home={home}")
        conf["spark.sql.warehouse.dir"] = str(home / "warehouse")
    conf.update({
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.hive.server2.thrift.bind.host": host,
        "spark.hadoop.hive.server2.thrift.port": str(port),
        "spark.hadoop.hive.server2.transport.mode": "binary",
    })
    return dataclasses.replace(cfg, spark=dataclasses.replace(cfg.spark, conf=conf))


def publish(spark: SparkSession, cfg: Config, schema: str = DEFAULT_SCHEMA) -> list[str]:
    """Create (or replace) ``schema`` with a view per existing lake table and per shipped view."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{schema}`")
    published = []
    for name in TABLES:
        path = cfg.table_path(name)
        if table_exists(spark, path):
            location = str(Path(path).resolve()) if "://" not in path else path
            spark.sql(f"CREATE OR REPLACE VIEW `{schema}`.`{name}` AS SELECT * FROM delta.`{location}`")
            published.append(name)
    if sources_ready(published):
        previous = spark.catalog.currentDatabase()
        spark.sql(f"USE `{schema}`")            # the shipped queries name the tables unqualified
        try:
            for name, query in shipped_sql().items():
                spark.sql(f"CREATE OR REPLACE VIEW `{name}` AS\n{render(query, cfg.spec.label.classes)}")
                published.append(name)
        finally:
            spark.sql(f"USE `{previous}`")
    return published


def serve_sql(spark: SparkSession, cfg: Config, schema: str = DEFAULT_SCHEMA,
              stop: threading.Event | None = None) -> list[str]:
    """Publish the lake in ``schema``, start the Thrift server, serve until SIGTERM/SIGINT (or
    ``stop``), then stop it; returns what was published."""
    if spark.conf.get("spark.sql.catalogImplementation", "in-memory") != "hive":
        raise ConfigError("serve-sql needs a session with the Hive catalog (credit-spark serve-sql sets it up)")
    published = publish(spark, cfg, schema)
    jvm = spark.sparkContext._jvm
    server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithContext(
        spark._jsparkSession.sqlContext())
    stop = stop or threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    host = spark.conf.get("spark.hadoop.hive.server2.thrift.bind.host")
    port = spark.conf.get("spark.hadoop.hive.server2.thrift.port")
    logger.info("serving SQL on jdbc:hive2://%s:%s/%s: %s", host, port, schema, ", ".join(published) or "no table yet")
    print(f"serving jdbc:hive2://{host}:{port}/{schema} ({len(published)} tables and views); stop with Ctrl-C",
          flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        logger.info("SQL server stopped")
    return published
