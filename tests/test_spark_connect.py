"""Through a real Spark Connect server: a server started from pyspark's own JARs with Delta
(``spark-submit --class org.apache.spark.sql.connect.service.SparkConnectServer --packages <Delta>``),
and the CLI as a Spark Connect client (``--remote sc://127.0.0.1:PORT``) in a process of its own (a
Python process that has made a Connect session is in Connect mode for good). The nightly path runs
through it: generate, ingest (twice, and a re-ingest), features, train, score, sql. ``train`` needs a
Spark 4.1+ server (docs/operations.md#spark-connect): on the default pair's 4.0 server the test checks
that it stops saying so and trains with a classic session, as a job cluster would; on the newest
pair (``scripts/test_newest_pair.sh``) it trains through the server, a random forest included.
Tables are checked as in the classic end-to-end test.

Slow (a server JVM, a client per command): marked e2e."""
from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from credit_spark.cli import main
from credit_spark.lake.session import DELTA_CONF, delta_maven_coordinate
from credit_spark.lake.tables import FEATURES, QUARANTINE, RAW_RECORDS, RUNS, SCORES
from credit_spark.ml.models import CONNECT_TRAIN_MIN_SPARK

pytestmark = pytest.mark.e2e
pytest.importorskip("grpc", reason="the Spark Connect client needs gRPC: pip install 'credit_spark[connect]'")

ROOT = Path(__file__).resolve().parents[1]
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
# guards against a hung server or client, not speed targets
START_TIMEOUT_S = 300
COMMAND_TIMEOUT_S = 900
TRAIN_TIMEOUT_S = 2400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server on 127.0.0.1 with Delta's JAR, SQL extension and catalog; stopped after."""
    work = tmp_path_factory.mktemp("connect_server")
    port = _free_port()
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    env.pop("SPARK_REMOTE", None)
    confs = {**DELTA_CONF, "spark.connect.grpc.binding.address": "127.0.0.1",
             "spark.connect.grpc.binding.port": str(port), "spark.ui.enabled": "false", "spark.log.level": "WARN",
             "spark.sql.shuffle.partitions": "4", "spark.sql.warehouse.dir": str(work / "warehouse"),
             "spark.driver.extraJavaOptions": f"-Dderby.system.home={work}"}
    # the driver is the executor here, and Spark 4.2's ML cache keeps fitted models on its heap
    command = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]", "--driver-memory", "4g",
               "--packages", delta_maven_coordinate(), "--class", SERVER_CLASS,
               *[arg for key, value in confs.items() for arg in ("--conf", f"{key}={value}")], "spark-internal"]
    log = open(work / "server.log", "w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, (work / "server.log").read_text()[-3000:]
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "the Spark Connect server did not open its port"
            time.sleep(1)
        yield f"sc://127.0.0.1:{port}", work / "server.log"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def client(remote: str, *args: str, expect: int = 0, timeout: int = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess:
    """One CLI command as a Spark Connect client, in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "SPARK_REMOTE"}
    proc = subprocess.run([sys.executable, "-m", "credit_spark.cli", "--env", "connect", "--remote", remote, *args],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    assert proc.returncode == expect, f"{args}: {proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def server_version(client_log: str) -> tuple[int, ...]:
    """The server's Spark (major, minor), from the line a client logs when it connects."""
    found = re.search(r"Spark Connect session \(Spark (\d+)\.(\d+)", client_log)
    assert found, client_log[-2000:]
    return tuple(int(part) for part in found.groups())


def test_the_nightly_path_runs_through_a_spark_connect_server(spark, connect_server, tmp_path):
    remote, _ = connect_server
    lake, labelled, later = str(tmp_path / "lake"), str(tmp_path / "labelled"), str(tmp_path / "september")
    common = ["--lake", lake]
    client(remote, *common, "generate", "--rows", "800", "--seed", "5", "--out", labelled)
    client(remote, *common, "generate", "--rows", "100", "--seed", "5", "--months", "1", "--start-month", "9",
           "--unlabeled", "--out", later)
    bad = tmp_path / "bad"
    bad.mkdir()
    header = next(Path(labelled).glob("part-*.csv")).read_text().splitlines()[0]
    (bad / "bad.csv").write_text(header + "\n0xdead,CUS_0x1,January,oops\n")
    for source in (labelled, later, str(bad), labelled):         # the last: a re-ingest adds nothing
        ingested = client(remote, *common, "ingest", "--input", source)
        assert "remote sc://" in ingested.stderr and "Spark Connect session" in ingested.stderr
    version = server_version(ingested.stderr)
    client(remote, *common, "features")

    # xgboost cannot train there: the command stops before any work, saying why
    boosted = tmp_path / "boosted.yaml"
    boosted.write_text("train:\n  algorithms: [logistic_regression, xgboost]\n")
    refused = client(remote, *common, "--conf", str(boosted), "train", expect=2)
    assert "xgboost, which needs a classic Spark session" in refused.stderr
    assert "RDD barrier" in refused.stderr
    if importlib.util.find_spec("horovod") and importlib.util.find_spec("torch"):   # so cannot Horovod
        horovod = tmp_path / "horovod.yaml"
        horovod.write_text("train:\n  algorithms: [neural_network]\n  neural_network:\n    backend: horovod\n")
        refused = client(remote, *common, "--conf", str(horovod), "train", expect=2)
        assert "'horovod', which needs a classic Spark session" in refused.stderr

    small = tmp_path / "small.yaml"
    small.write_text("train:\n  algorithms: [logistic_regression, random_forest, scorecard]\n  selection:\n    folds: 3\n")
    if version < CONNECT_TRAIN_MIN_SPARK:
        # a 4.0 server cannot keep tuning's models: the command stops before any work, saying why
        refused = client(remote, *common, "--conf", str(small), "train", expect=2)
        assert "needs a Spark 4.1 or newer server" in refused.stderr and "CACHE_INVALID" in refused.stderr
        # the model: trained by a classic session (this process), as a Databricks job cluster would;
        # two models and no k-fold, as only its scoring through the server is tested from here
        classic = tmp_path / "classic.yaml"
        classic.write_text("train:\n  algorithms: [logistic_regression, scorecard]\n  selection: {method: holdout}\n"
                           "  calibration: {method: none}\n  ensemble: {enabled: false}\n")
        assert main([*common, "--conf", str(classic), "train"]) == 0
    else:
        trained = client(remote, *common, "--conf", str(small), "train", timeout=TRAIN_TIMEOUT_S)
        assert "random_forest: validation" in trained.stderr and "promoted" in trained.stdout

    for _ in range(2):                                          # a rerun of the night: same rows
        client(remote, *common, "score", "--run-date", "2026-09-30")
    answer = client(remote, *common, "sql", "SELECT count(*) AS n, count(DISTINCT record_id) AS d FROM scores")

    def table(name):
        return spark.read.format("delta").load(f"{lake}/{name}")
    raw = table(RAW_RECORDS)
    assert raw.count() == raw.select("ID").distinct().count() == 800 + 100
    assert table(QUARANTINE).count() == 1 and table(QUARANTINE).first().reason == "malformed_row"
    assert table(FEATURES).count() == raw.count()
    scores = table(SCORES)
    september = table(FEATURES).where(F.col("period") == 9)
    assert scores.count() == scores.select("record_id").distinct().count() == september.count() == 100
    assert scores.join(september, "record_id", "left_anti").count() == 0
    assert table(RUNS).count() == 2
    assert "|100|100|" in answer.stdout.replace(" ", "")
