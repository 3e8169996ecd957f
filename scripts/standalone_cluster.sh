#!/usr/bin/env bash
# Real cluster: the nightly scoring job on a Spark *standalone* cluster started on this machine.
#
#   scripts/standalone_cluster.sh [WORK_DIR]        # default data/standalone_cluster
#
# 1. prepares a small lake locally (client mode, local[*]): generate, ingest, features, train;
# 2. starts a standalone master and TWO workers (1 core, 1 GiB each) on 127.0.0.1 from the
#    installed pyspark's own launcher (.venv/bin/spark-class), and waits until both are ALIVE;
# 3. spark-submits jobs/score.py and then jobs/sql.py to spark://127.0.0.1:<port> the way a user
#    ships the package: a wheel with --py-files, a config overlay with --files/--conf, Delta with
#    --packages, the venv's Python for the executors;
# 4. checks the scored rows, and that the master ran each application with executors on both
#    workers (the master's and the workers' /json/ are saved under WORK_DIR/cluster/);
# 5. stops the workers and the master, also when a step fails.
#
# WORK_DIR holds the lake, the inputs, the wheel, the daemons' logs and pid files, the saved /json/
# of the master and workers and timings.txt; the script owns it (its lake/, labelled/, september/,
# dist/, cluster/, logs/, *.yaml and timings.txt are replaced on every run). The local filesystem
# is the "shared" storage: both workers run on this machine.
#
# Environment overrides:
#   SPARK_MASTER_PORT (7077)  SPARK_MASTER_WEBUI_PORT (8080)  SPARK_WORKER_WEBUI_PORT (8081; worker 2: +1)
#   ROWS (2000 labelled rows)  SCORE_ROWS (250 September rows)  RUN_DATE (<this year>-09-30)
#   CLUSTER_WAIT_S (180: how long to wait for the master and two ALIVE workers)
#   SPARK_DAEMON_MEMORY (512m: heap of the master and worker daemons themselves)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

MASTER_PORT="${SPARK_MASTER_PORT:-7077}"
MASTER_UI_PORT="${SPARK_MASTER_WEBUI_PORT:-8080}"
WORKER_UI_PORT="${SPARK_WORKER_WEBUI_PORT:-8081}"
ROWS="${ROWS:-2000}"
SCORE_ROWS="${SCORE_ROWS:-250}"
RUN_DATE="${RUN_DATE:-$(date +%Y)-09-30}"
CLUSTER_WAIT_S="${CLUSTER_WAIT_S:-180}"
export SPARK_DAEMON_MEMORY="${SPARK_DAEMON_MEMORY:-512m}"
HOST=127.0.0.1
MASTER_URL="spark://$HOST:$MASTER_PORT"
MASTER_UI="http://$HOST:$MASTER_UI_PORT"

# Every Spark process (daemons, driver, executors) binds and advertises the loopback address.
export SPARK_LOCAL_IP="$HOST"
# A gateway inherited from a parent pyspark process would make the CLI think it runs under spark-submit.
unset PYSPARK_GATEWAY_PORT PYSPARK_GATEWAY_SECRET PYSPARK_DRIVER_PYTHON PYSPARK_PYTHON
# The daemons' own settings come from their command lines, not from the environment.
unset SPARK_MASTER_HOST SPARK_WORKER_PORT SPARK_WORKER_CORES SPARK_WORKER_MEMORY SPARK_WORKER_DIR \
      SPARK_WORKER_WEBUI_PORT SPARK_MASTER_PORT SPARK_MASTER_WEBUI_PORT

T0=$SECONDS
TIMINGS=()
step_start=$SECONDS
step() {   # step "title": print a header; records the previous step's duration
  step_done
  CURRENT_STEP="$1"
  step_start=$SECONDS
  echo
  echo "== $1"
}
step_done() {
  if [ -n "${CURRENT_STEP:-}" ]; then
    TIMINGS+=("$(printf '%6ds  %s' $((SECONDS - step_start)) "$CURRENT_STEP")")
    CURRENT_STEP=""
  fi
}

# ------------------------------------------------------------------ environment
step "setup .venv"
bash scripts/setup.sh
command -v java >/dev/null || { echo "Java 17 is required by Spark: install a JDK 17 first" >&2; exit 1; }
PY="$ROOT/.venv/bin/python"
BIN="$ROOT/.venv/bin"
# pip's pyspark is its own SPARK_HOME (bin/, jars/); spark-class would otherwise ask PATH's python3
export SPARK_HOME="$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
DELTA_PACKAGE="$("$PY" -c 'from credit_spark.lake.session import delta_maven_coordinate; print(delta_maven_coordinate())')"

WORK="${1:-data/standalone_cluster}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
LAKE="$WORK/lake"
CLUSTER_DIR="$WORK/cluster"
LOGS="$WORK/logs"
rm -rf "$LAKE" "$WORK/labelled" "$WORK/september" "$WORK/dist" "$CLUSTER_DIR" "$LOGS" "$WORK/timings.txt"
mkdir -p "$CLUSTER_DIR" "$LOGS"
echo "work folder: $WORK"
echo "lake:        $LAKE"
echo "master:      $MASTER_URL (UI $MASTER_UI), workers' UI ports $WORKER_UI_PORT and $((WORKER_UI_PORT + 1))"
echo "run date:    $RUN_DATE"

# ------------------------------------------------------------------ cluster helpers
# One small Python helper for the HTTP side (the master's and workers' /json/ endpoints).
cat >"$CLUSTER_DIR/cluster_check.py" <<'PYHELPER'
"""Polls a standalone master's /json/ and checks which workers ran an application's executors."""
import glob
import json
import os
import sys
import time
import urllib.request


def fetch(url):
    with urllib.request.urlopen(url.rstrip("/") + "/json/", timeout=5) as response:
        return json.load(response)


def alive(pid_files):
    for pid_file in pid_files:
        pid = int(open(pid_file).read().strip())
        try:
            os.kill(pid, 0)
        except OSError:
            sys.exit(f"[cluster] process {pid} ({os.path.basename(pid_file)}) exited; see its log")


def wait_workers(master_ui, n, timeout, *pid_files):
    """Until the master reports n ALIVE workers (fails early when a daemon died)."""
    deadline, last = time.time() + float(timeout), "master not answering yet"
    while time.time() < deadline:
        alive(pid_files)
        try:
            state = fetch(master_ui)
            workers = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
            last = f"master {state.get('status')}, {len(workers)} ALIVE worker(s)"
            if state.get("status") == "ALIVE" and len(workers) >= int(n):
                print(f"[cluster] {state['url']}: {last}, {state.get('cores')} cores, "
                      f"{state.get('memory')} MiB: " + ", ".join(w["id"] for w in workers))
                return
        except OSError as exc:
            last = f"master not answering yet ({exc})"
        time.sleep(1)
    sys.exit(f"[cluster] gave up after {timeout}s waiting for {n} ALIVE workers: {last}")


def tasks_run(out_dir, app_id, executor_id):
    """Tasks an executor finished, from its stderr in its worker's work folder (worker-N/<app>/<id>/)."""
    total = 0
    for worker_dir in sorted(glob.glob(os.path.join(out_dir, "worker-*"))):
        stderr = os.path.join(worker_dir, app_id, str(executor_id), "stderr")
        if os.path.exists(stderr):
            with open(stderr, errors="replace") as f:
                total += sum("Finished task" in line for line in f)
    return total


def check_app(master_ui, seen_file, label, out_dir, min_workers):
    """The one application completed since the last check: its state, and which workers ran its
    executors and how many tasks each executor finished."""
    seen = set(open(seen_file).read().split()) if os.path.exists(seen_file) else set()
    deadline = time.time() + 60
    while True:
        master = fetch(master_ui)
        new = [a for a in master.get("completedapps", []) if a["id"] not in seen]
        if new or time.time() > deadline:
            break
        time.sleep(1)
    if len(new) != 1:
        sys.exit(f"[cluster] {label}: expected one newly completed application on the master, "
                 f"found {[a['id'] for a in new]} (active: {[a['id'] for a in master.get('activeapps', [])]})")
    app = new[0]
    workers, executors = {}, []
    for w in master.get("workers", []):
        state = fetch(w["webuiaddress"])
        workers[w["id"]] = state
        for e in state.get("finishedexecutors", []) + state.get("executors", []):
            if e.get("appid") == app["id"]:
                executors.append({"worker": w["id"], "executor": e.get("id"), "memory": e.get("memory"),
                                  "tasks": tasks_run(out_dir, app["id"], e.get("id"))})
    used = sorted({e["worker"] for e in executors})
    working = sorted({e["worker"] for e in executors if e["tasks"] > 0})
    summary = {"label": label, "app_id": app["id"], "name": app.get("name"), "state": app.get("state"),
               "master_url": master.get("url"), "cores": app.get("cores"),
               "duration_ms": app.get("duration"), "executors": len(executors),
               "workers": used, "workers_with_tasks": working,
               "tasks": sum(e["tasks"] for e in executors), "alive_workers": len([w for w in master.get("workers", [])
                                                      if w.get("state") == "ALIVE"]),
               "executor_list": executors}
    for name, data in (("master", master), ("workers", workers), ("app", summary)):
        with open(os.path.join(out_dir, f"{label}-{name}.json"), "w") as f:
            json.dump(data, f, indent=2)
    with open(seen_file, "a") as f:
        f.write(app["id"] + "\n")
    print(f"[cluster] {label}: application {app['id']} '{app.get('name')}' {app.get('state')} on "
          f"{master.get('url')}: {len(executors)} executor(s) on {len(used)} worker(s), tasks per executor "
          + ", ".join(f"{e['worker']}: {e['tasks']}" for e in executors))
    if app.get("state") != "FINISHED":
        sys.exit(f"[cluster] {label}: application state {app.get('state')}, expected FINISHED")
    if len(working) < int(min_workers):
        sys.exit(f"[cluster] {label}: executors ran tasks on {len(working)} worker(s), expected {min_workers}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"wait-workers": wait_workers, "check-app": check_app}[command](*args)
PYHELPER
cluster_check() { "$PY" "$CLUSTER_DIR/cluster_check.py" "$@"; }

DAEMON_PIDS=()
stop_cluster() {
  local status=$? failed_step="${CURRENT_STEP:-}"
  trap - EXIT INT TERM
  if [ ${#DAEMON_PIDS[@]} -gt 0 ]; then
    step "stop the cluster (pids ${DAEMON_PIDS[*]})"
    # workers first (each also stops its executors), then the master
    for ((i = ${#DAEMON_PIDS[@]} - 1; i >= 0; i--)); do
      kill "${DAEMON_PIDS[$i]}" 2>/dev/null || true
    done
    for pid in "${DAEMON_PIDS[@]}"; do
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "pid $pid did not stop on SIGTERM: SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
      fi
    done
    rm -f "$CLUSTER_DIR"/*.pid
    echo "cluster stopped; daemon logs in $CLUSTER_DIR/"
  fi
  step_done
  if [ "$status" -ne 0 ]; then
    echo >&2
    echo "FAILED (exit $status) in step: ${failed_step:-?}; logs in $LOGS/ and $CLUSTER_DIR/" >&2
    for log in "$CLUSTER_DIR"/*.log; do
      [ -f "$log" ] || continue
      echo "--- last lines of $log" >&2
      tail -n 15 "$log" >&2
    done
  else
    echo
    echo "== timings (also in $WORK/timings.txt)"
    { printf '%s\n' "${TIMINGS[@]}"; printf '%6ds  total\n' $((SECONDS - T0)); } | tee "$WORK/timings.txt"
  fi
  exit "$status"
}
trap stop_cluster EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_daemon() {   # start_daemon NAME CLASS ARGS...: background JVM with a log and a pid file
  local name="$1"
  shift
  "$BIN/spark-class" "$@" >"$CLUSTER_DIR/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$CLUSTER_DIR/$name.pid"
  DAEMON_PIDS+=("$pid")
  echo "started $name (pid $pid), log $CLUSTER_DIR/$name.log"
}

# ------------------------------------------------------------------ the package and the lake
step "build the wheel"
"$BIN/pip" wheel . --no-deps -q -w "$WORK/dist" 2>"$LOGS/wheel.log" || { cat "$LOGS/wheel.log" >&2; exit 1; }
WHEEL="$(ls "$WORK"/dist/credit_spark-*.whl)"
echo "$WHEEL"

FAST_TRAIN="$WORK/train_fast.yaml"
cat >"$FAST_TRAIN" <<'YAML'
# keep the local training short: the cluster run below is what is being shown
# (logistic regression, calibrated, explained by the scorecard baseline)
train:
  algorithms: [logistic_regression, scorecard]
  tuning: {method: none}
  selection: {method: holdout}
  comparison: {bootstrap_samples: 200}
YAML

OVERLAY="$WORK/cluster_overlay.yaml"
cat >"$OVERLAY" <<'YAML'
# user overlay for the standalone run (on top of conf/cluster.yaml, which leaves the master to spark-submit)
spark:
  app_name: credit_spark_standalone
  log_level: WARN
  conf:
    spark.sql.shuffle.partitions: 4
YAML

LOCAL=("$BIN/credit-spark" --env local --lake "$LAKE")
step "local: generate $ROWS labelled rows (January-August)"
"${LOCAL[@]}" generate --rows "$ROWS" --out "$WORK/labelled"
step "local: generate $SCORE_ROWS unlabelled September rows"
"${LOCAL[@]}" generate --rows "$SCORE_ROWS" --months 1 --start-month 9 --unlabeled --out "$WORK/september"
step "local: ingest both"
"${LOCAL[@]}" ingest --input "$WORK/labelled"
"${LOCAL[@]}" ingest --input "$WORK/september"
step "local: features"
"${LOCAL[@]}" features
step "local: train (small overlay $FAST_TRAIN)"
"${LOCAL[@]}" --conf "$FAST_TRAIN" train

# ------------------------------------------------------------------ the cluster
step "start a standalone master and two workers"
start_daemon master org.apache.spark.deploy.master.Master \
  --host "$HOST" --port "$MASTER_PORT" --webui-port "$MASTER_UI_PORT"
for i in 1 2; do
  mkdir -p "$CLUSTER_DIR/worker-$i"
  start_daemon "worker-$i" org.apache.spark.deploy.worker.Worker "$MASTER_URL" \
    --host "$HOST" --cores 1 --memory 1g --webui-port $((WORKER_UI_PORT + i - 1)) \
    --work-dir "$CLUSTER_DIR/worker-$i"
done
cluster_check wait-workers "$MASTER_UI" 2 "$CLUSTER_WAIT_S" "$CLUSTER_DIR"/master.pid "$CLUSTER_DIR"/worker-*.pid

SUBMIT=(
  "$BIN/spark-submit"
  --master "$MASTER_URL"
  --deploy-mode client
  --packages "$DELTA_PACKAGE"
  --py-files "$WHEEL"
  --files "$OVERLAY"
  --conf "spark.pyspark.python=$PY"
  --conf spark.executor.cores=1
  --conf spark.executor.memory=1g
  --conf spark.cores.max=2
  --conf "spark.driver.host=$HOST"
  --conf spark.ui.enabled=false
)
# In client mode the driver (this machine) reads the overlay from its path; --files also ships it
# to the executors' working folders, which is where a cluster-mode driver would find it by name.
JOB_ARGS=(--env cluster --lake "$LAKE" --conf "$OVERLAY")

submit() {   # submit LOG ARGS...: spark-submit; the whole output to LOG, the console without Spark's INFO
  local log="$1"
  shift
  echo "driver log: $log"
  "${SUBMIT[@]}" "$@" 2>&1 | tee "$log" | awk '
    !/^[0-9][0-9]\/[0-9][0-9]\/[0-9][0-9] [0-9:]+ INFO / || /Connected to Spark cluster|Granted executor ID|Registered executor/ {
      print; fflush() }'
}

step "spark-submit jobs/score.py --run-date $RUN_DATE to $MASTER_URL"
submit "$LOGS/score-submit.log" "$ROOT/jobs/score.py" "${JOB_ARGS[@]}" --run-date "$RUN_DATE"
grep -q "running under spark-submit" "$LOGS/score-submit.log" \
  || { echo "the driver did not detect spark-submit" >&2; exit 1; }
cluster_check check-app "$MASTER_UI" "$CLUSTER_DIR/seen_apps" score "$CLUSTER_DIR" 2

QUERY="SELECT s.run_date, count(*) AS scored, count(s.predicted_class) AS with_class,
  (SELECT count(*) FROM features WHERE period = 9) AS september_records
FROM scores s WHERE s.run_date = DATE'$RUN_DATE' GROUP BY s.run_date"
step "spark-submit jobs/sql.py to $MASTER_URL"
submit "$LOGS/sql-submit.log" "$ROOT/jobs/sql.py" "${JOB_ARGS[@]}" "$QUERY"
cluster_check check-app "$MASTER_UI" "$CLUSTER_DIR/seen_apps" sql "$CLUSTER_DIR" 2

step "check the scores"
row="$(tr -d ' ' <"$LOGS/sql-submit.log" | grep "^|$RUN_DATE|" || true)"
[ -n "$row" ] || { echo "no scores for run date $RUN_DATE in the sql output" >&2; exit 1; }
IFS='|' read -r _ _ scored with_class september _ <<<"$row"
echo "scores for $RUN_DATE: $scored rows, $with_class with a predicted class; features has $september September records"
if [ "$scored" -ne "$september" ] || [ "$with_class" -ne "$scored" ] || [ "$scored" -le 0 ]; then
  echo "scores do not match the September records" >&2
  exit 1
fi
echo "OK: $scored September records scored on the standalone cluster $MASTER_URL"
