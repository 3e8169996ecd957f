"""Real cluster: scripts/standalone_cluster.sh starts a Spark standalone master and two workers on
127.0.0.1, spark-submits the nightly scorer (wheel via --py-files, Delta via --packages) and stops
the cluster. Slow (several minutes): select with ``-m cluster``."""
import json
import os
import shutil
import signal
import socket
import subprocess
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from credit_spark.lake.tables import FEATURES, SCORES

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "standalone_cluster.sh"
RUN_DATE = f"{date.today().year}-09-30"
# a guard against a hung cluster, not a speed target: about 8 minutes here on a normal day, more
# than twice that on a slow shared machine
TIMEOUT_S = int(os.environ.get("CLUSTER_TEST_TIMEOUT_S", 30 * 60))

if shutil.which("java") is None and not (os.environ.get("JAVA_HOME")
                                         and Path(os.environ["JAVA_HOME"], "bin", "java").exists()):
    pytest.skip("Java is not installed: a Spark standalone cluster needs a JDK 17", allow_module_level=True)


def free_ports(n: int) -> list[int]:
    """n distinct ports free on 127.0.0.1 right now (all bound at once, then released)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _stop_leftover_daemons(cluster_dir: Path) -> None:
    """Safety net: the script's trap stops its daemons; if it was killed, stop them by pid here."""
    for pid_file in cluster_dir.glob("*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"org.apache.spark.deploy" in cmdline:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    """Runs the script once; returns (work folder, exit code, output, master port)."""
    work = tmp_path_factory.mktemp("standalone")
    while True:   # the second worker's UI takes the first one's port + 1: that one must be free too
        master_port, master_ui, worker_ui = ports = free_ports(3)
        if worker_ui + 1 not in ports and _is_free(worker_ui + 1):
            break
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env.update(SPARK_MASTER_PORT=str(master_port), SPARK_MASTER_WEBUI_PORT=str(master_ui),
               SPARK_WORKER_WEBUI_PORT=str(worker_ui), RUN_DATE=RUN_DATE,
               ROWS="2000", SCORE_ROWS="250")
    proc = subprocess.Popen(["bash", str(SCRIPT), str(work)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)          # the script's trap stops the cluster
        try:
            output, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        _stop_leftover_daemons(work / "cluster")
        pytest.fail(f"{SCRIPT.name} ran over {TIMEOUT_S}s:\n{output[-5000:]}")
    finally:
        _stop_leftover_daemons(work / "cluster")
    return work, proc.returncode, output, master_port


def test_the_script_succeeds_and_stops_the_cluster(cluster_run):
    work, returncode, output, master_port = cluster_run
    assert returncode == 0, output[-8000:]
    assert "OK: " in output and f"spark://127.0.0.1:{master_port}" in output
    assert "cluster stopped" in output and "== timings" in output
    print(output[output.index("== timings"):])              # shown with -s or -rP
    assert not list((work / "cluster").glob("*.pid"))
    for name in ("master", "worker-1", "worker-2"):
        assert (work / "cluster" / f"{name}.log").is_file()


def test_scores_hold_the_september_records_of_the_run_date(spark, cluster_run):
    work, returncode, output, _ = cluster_run
    assert returncode == 0, output[-8000:]
    lake = str(work / "lake")
    scores = spark.read.format("delta").load(f"{lake}/{SCORES}")
    september = spark.read.format("delta").load(f"{lake}/{FEATURES}").where(F.col("period") == 9).count()
    assert september == 250
    of_the_date = scores.where(F.col("run_date") == F.lit(RUN_DATE).cast("date"))
    assert of_the_date.count() == september
    assert scores.count() == september                       # nothing for any other date
    assert of_the_date.where(F.col("predicted_class").isNull()).count() == 0
    assert of_the_date.select("record_id").distinct().count() == september


@pytest.mark.parametrize("label", ["score", "sql"])
def test_the_master_ran_each_job_with_executors_on_both_workers(cluster_run, label):
    work, returncode, output, master_port = cluster_run
    assert returncode == 0, output[-8000:]
    app = json.loads((work / "cluster" / f"{label}-app.json").read_text())
    master = json.loads((work / "cluster" / f"{label}-master.json").read_text())
    assert app["master_url"] == master["url"] == f"spark://127.0.0.1:{master_port}"
    assert app["state"] == "FINISHED" and app["name"] == "credit_spark_standalone"
    assert app["app_id"] in {a["id"] for a in master["completedapps"]}
    alive = [w for w in master["workers"] if w["state"] == "ALIVE"]
    assert len(alive) == 2
    assert app["executors"] == 2 and app["cores"] == 2
    assert sorted(app["workers"]) == sorted(w["id"] for w in alive)
    assert sorted(app["workers_with_tasks"]) == sorted(app["workers"])     # both did work
    assert f"Connected to Spark cluster with app ID {app['app_id']}" in output
