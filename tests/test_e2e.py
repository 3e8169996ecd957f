"""End to end through the real CLI: every stage on a small generated dataset, then spark-submit."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from credit_spark.cli import COMMANDS, build_parser, main, parse_args
from credit_spark.lake.session import delta_maven_coordinate
from credit_spark.lake.tables import FEATURES, QUARANTINE, RAW_RECORDS, SCORES

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
PII = {"Name", "SSN"}


def cli(*args: str) -> int:
    return main(list(args))


def delta(spark, lake, name):
    return spark.read.format("delta").load(f"{lake}/{name}")


@pytest.fixture(scope="module")
def lake_after_demo(spark, tmp_path_factory):
    """generate -> ingest (twice) -> features -> train -> score (twice), through the CLI."""
    base = tmp_path_factory.mktemp("e2e")
    lake, labelled, later = str(base / "lake"), str(base / "labelled"), str(base / "september")
    small_rf = base / "small.yaml"
    # the CLI's stages are under test here, not the model search: three models on one validation
    # split (k-fold, grids and XGBoost are test_tuning's and test_xgboost's)
    small_rf.write_text("train:\n  algorithms: [logistic_regression, random_forest, scorecard]\n"
                        "  random_forest:\n    num_trees: 5\n    max_depth: 4\n    grid: {}\n"
                        "  selection:\n    method: holdout\n  ensemble:\n    enabled: false\n")
    common = ["--lake", lake, "--conf", str(small_rf)]
    assert cli("generate", "--rows", "1200", "--seed", "11", "--out", labelled) == 0
    assert cli("generate", "--rows", "150", "--seed", "11", "--months", "1", "--start-month", "9",
               "--unlabeled", "--format", "parquet", "--out", later) == 0
    # a malformed extra file: the quarantine path in the same run
    bad = base / "bad"
    bad.mkdir()
    header = (Path(labelled).glob("part-*.csv").__next__()).read_text().splitlines()[0]
    (bad / "bad.csv").write_text(header + "\n0xdead,CUS_0x1,January,oops\n")
    for src in (labelled, later, str(bad)):
        assert cli(*common, "ingest", "--input", src) == 0
    assert cli(*common, "ingest", "--input", labelled) == 0        # re-ingest: no duplicates
    assert cli(*common, "features") == 0
    assert cli(*common, "train") == 0
    assert cli(*common, "score", "--run-date", "2026-09-30") == 0
    assert cli(*common, "score", "--run-date", "2026-09-30") == 0  # rerun: same rows
    return lake, common


def test_row_counts_are_conserved(spark, lake_after_demo):
    lake, _ = lake_after_demo
    raw, quarantine = delta(spark, lake, RAW_RECORDS), delta(spark, lake, QUARANTINE)
    assert raw.count() == 1200 + 150
    assert raw.select("ID").distinct().count() == raw.count()
    assert quarantine.count() == 1 and quarantine.first().reason == "malformed_row"
    assert delta(spark, lake, FEATURES).count() == raw.count()


def test_scores_hold_one_row_per_record_of_the_date(spark, lake_after_demo):
    lake, _ = lake_after_demo
    scores = delta(spark, lake, SCORES)
    assert scores.count() == 150
    assert scores.select("record_id").distinct().count() == 150
    september = delta(spark, lake, FEATURES).where(F.col("period") == 9).count()
    assert september == 150


def test_no_personal_identifiers_downstream(spark, lake_after_demo):
    lake, _ = lake_after_demo
    assert not PII & set(delta(spark, lake, FEATURES).columns)
    assert not PII & set(delta(spark, lake, SCORES).columns)
    # and no value of an input Name shows up in features either
    labelled = str(Path(lake).parent / "labelled")
    names = spark.read.option("header", True).csv(labelled).where(F.col("Name").isNotNull()).select("Name").distinct()
    features = delta(spark, lake, FEATURES)
    text_cols = [c for c, t in features.dtypes if t == "string"]
    leaked = features.select(F.explode(F.array(*text_cols)).alias("v")).join(names, F.col("v") == F.col("Name"))
    assert leaked.count() == 0


def _input_identifiers(spark, lake) -> set[str]:
    """The names and social security numbers of the run's input files (not the dirt tokens)."""
    base = Path(lake).parent
    inputs = spark.read.option("header", True).csv(str(base / "labelled")).select("Name", "SSN").unionByName(
        spark.read.parquet(str(base / "september")).select("Name", "SSN"))
    values = {v for r in inputs.collect() for v in (r.Name, r.SSN) if v}
    return {v for v in values if re.fullmatch(r"\d{3}-\d{2}-\d{4}|[A-Z][a-z]+ [A-Z][a-z]+", v)}


def test_no_name_or_ssn_anywhere_in_the_lake_its_logs_or_artifacts(spark, lake_after_demo, capfd):
    """Every file under the lake (Delta logs with their statistics, data files, the MLflow store
    and artifacts, reports) and every row of every table, as text, and a verbose run's log."""
    lake, common = lake_after_demo
    identifiers = _input_identifiers(spark, lake)
    assert len(identifiers) > 200
    pattern = re.compile("|".join(re.escape(v) for v in sorted(identifiers, key=len, reverse=True)))
    assert pattern.search(next((Path(lake).parent / "labelled").glob("*.csv")).read_text())   # it finds them
    hits = []
    for path in Path(lake).rglob("*"):
        if path.is_file():
            found = pattern.search(path.read_bytes().decode("utf-8", errors="replace"))
            hits += [f"{path}: {found.group(0)}"] if found else []
    for table in (RAW_RECORDS, QUARANTINE, FEATURES, SCORES, "monitoring", "runs", "data_quality", "scorecard"):
        for row in delta(spark, lake, table).select(F.to_json(F.struct("*"))).collect():
            found = pattern.search(row[0])
            hits += [f"{table}: {found.group(0)}"] if found else []
    capfd.readouterr()
    assert cli("-v", *common, "ingest", "--input", str(Path(lake).parent / "labelled")) == 0
    logged = capfd.readouterr()
    found = pattern.search(logged.out + logged.err)
    hits += [f"log: {found.group(0)}"] if found else []
    assert hits == []


def test_sql_command_sees_tables_by_short_name(spark, lake_after_demo, capsys):
    _, common = lake_after_demo
    assert cli(*common, "sql", "SELECT count(*) AS n FROM scores") == 0
    out = capsys.readouterr().out
    assert "|150|" in out.replace(" ", "")


def test_sql_errors_are_one_line_and_name_the_command_that_writes_a_missing_table(lake_after_demo, tmp_path,
                                                                                 capsys):
    _, common = lake_after_demo
    def errors() -> list[str]:      # stderr also holds the log lines: the error is one line of its own
        err = capsys.readouterr().err
        assert "Traceback" not in err and "SQLQueryContextLogger" not in err
        return [line for line in err.splitlines() if line.startswith("credit-spark sql: error:")]

    assert cli(*common, "sql", "SELEC count(*) FROM scores") == 2
    [line] = errors()
    assert line.startswith("credit-spark sql: error: [PARSE_SYNTAX_ERROR]")
    assert cli(*common, "sql", "SELECT nope FROM scores") == 2
    [line] = errors()
    assert "nope" in line
    empty = ["--lake", str(tmp_path / "fresh")]
    assert cli(*empty, "sql", "SELECT * FROM scores") == 2
    [line] = errors()
    assert "table scores does not exist yet: `credit-spark score` writes it" in line


def test_train_writes_a_report_and_the_report_command_rerenders_it(lake_after_demo, tmp_path, capsys):
    lake, common = lake_after_demo
    written = sorted((Path(lake) / "reports").glob("run-1-*"))
    assert len(written) == 1
    assert {"report.md", "report.html", "results.json", "roc.png", "reliability.png"} <= \
        {p.name for p in written[0].iterdir()}
    assert cli(*common, "report", "--out", str(tmp_path / "again")) == 0
    out = capsys.readouterr().out
    assert "verdict: " in out and "scorecard" in out
    assert (tmp_path / "again" / "report.md").read_text() == (written[0] / "report.md").read_text()


def test_user_errors_exit_2_with_a_message(spark, lake_after_demo, tmp_path, capsys):
    _, common = lake_after_demo
    assert cli(*common, "score", "--run-date", "2026-12-31") == 2
    assert "no records for run date 2026-12-31" in capsys.readouterr().err
    empty_lake = ["--lake", str(tmp_path / "empty")]
    assert cli(*empty_lake, "train") == 2
    assert "table 'features' does not exist" in capsys.readouterr().err
    bad_conf = tmp_path / "bad.yaml"
    bad_conf.write_text("lake:\n  rooot: x\n")
    assert cli("--conf", str(bad_conf), "features") == 2
    assert "bad.yaml: unknown key 'lake.rooot'" in capsys.readouterr().err


def test_every_subcommand_has_help_and_a_job_file(capsys):
    parser = build_parser()
    for name in ["", *COMMANDS]:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"] if name else ["--help"])
        assert exit_info.value.code == 0
        shown = capsys.readouterr().out
        assert shown.startswith("usage: credit-spark") and "``" not in shown and ":class:" not in shown, shown
        if not name:
            continue
        job = ROOT / "jobs" / f"{name}.py"
        assert job.is_file() and f'run_job("{name}")' in job.read_text()


def test_global_options_before_or_after_the_subcommand():
    assert parse_args(["--lake", "/x", "features"]).lake == "/x"
    assert parse_args(["features", "--lake", "/y"]).lake == "/y"
    assert parse_args(["--conf", "a.yaml", "features"]).conf == ["a.yaml"]
    assert parse_args(["--conf", "a.yaml", "features", "--conf", "b.yaml"]).conf == ["a.yaml", "b.yaml"]


def test_spark_submit_runs_a_job_file(lake_after_demo):
    """The jobs/ files are real spark-submit entry points (a new JVM, Delta via --packages)."""
    lake, _ = lake_after_demo
    bin_dir = Path(sys.executable).parent
    package = delta_maven_coordinate()
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    proc = subprocess.run(
        [str(bin_dir / "spark-submit"), "--master", "local[1]", "--packages", package,
         "--conf", "spark.ui.enabled=false", str(ROOT / "jobs" / "sql.py"),
         "--lake", lake, "SELECT count(*) AS n FROM scores"],
        capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    # spark-submit's Python runner merges the driver's stderr into its stdout
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "running under spark-submit" in output
    assert "|150|" in proc.stdout.replace(" ", "")


# --------------------------------------------------------------------------- other engines
def _plain(value):
    """A value as both engines' Python rows can be compared: timestamps as naive UTC, nested
    rows and structs as dicts, arrays as lists."""
    import datetime

    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _sorted_rows(rows: list[dict]) -> list[dict]:
    return sorted((_plain(r) for r in rows), key=repr)


@pytest.mark.parametrize("table", [SCORES, "monitoring", FEATURES])
def test_delta_rs_and_polars_read_the_tables_spark_wrote(spark, lake_after_demo, table):
    """Analysts' other engines: delta-rs (``deltalake``, also behind DuckDB's and pandas' Delta
    readers) and polars read every row and value Spark wrote, the scores' nested reasons included.
    A table feature they cannot read (deletion vectors, column mapping, ...) fails here."""
    deltalake = pytest.importorskip("deltalake")
    polars = pytest.importorskip("polars")
    lake, _ = lake_after_demo
    path = f"{lake}/{table}"
    expected = _sorted_rows([r.asDict(recursive=True) for r in delta(spark, lake, table).collect()])
    assert expected, table

    arrow = deltalake.DeltaTable(path).to_pyarrow_table()
    assert _sorted_rows(arrow.to_pylist()) == expected

    frame = polars.read_delta(path)
    assert frame.height == len(expected) and set(frame.columns) == set(expected[0])
    assert _sorted_rows(frame.to_dicts()) == expected
    if table == SCORES:
        assert frame.schema["reasons"].__class__.__name__ == "List" and frame["reasons"].list.len().max() > 0


def test_maintain_through_the_cli_compacts_and_keeps_every_row(spark, lake_after_demo, capsys):
    lake, common = lake_after_demo
    names = (RAW_RECORDS, QUARANTINE, FEATURES, SCORES, "monitoring", "runs")
    counts = {t: delta(spark, lake, t).count() for t in names}
    files = spark.sql(f"DESCRIBE DETAIL delta.`{lake}/{SCORES}`").first().numFiles
    assert cli(*common, "maintain") == 0
    out = capsys.readouterr().out
    assert "maintained 8 table(s)" in out and "Z-ordered by customer_id" in out, out
    assert {t: delta(spark, lake, t).count() for t in names} == counts
    assert spark.sql(f"DESCRIBE DETAIL delta.`{lake}/{SCORES}`").first().numFiles <= files
    first_night = spark.read.format("delta").option("versionAsOf", 1).load(f"{lake}/{SCORES}")
    assert first_night.count() == counts[SCORES]    # the history before the rerun is still there


# --------------------------------------------------------------------------- SQL endpoint
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise AssertionError(f"serve-sql did not listen on {port} within {timeout_s} s")


def test_sql_endpoint_serves_beeline_and_a_python_client_read_only(spark, lake_after_demo, tmp_path):
    """serve-sql publishes the lake in schema `credit`; beeline (shipped with pyspark) and PyHive
    run the shipped views with Spark's own rows; a DELETE through the endpoint changes nothing;
    SIGTERM stops the server cleanly."""
    import signal

    from credit_spark.config.loader import load_config
    from credit_spark.lake.tables import register_views

    lake, common = lake_after_demo
    register_views(spark, load_config([common[3]], lake=lake))
    queries = {
        "SELECT customer_id, predicted_class FROM latest_scores ORDER BY customer_id": None,
        "SELECT run_date, predicted_class, records FROM daily_class_distribution ORDER BY 1, 2": None,
        "SELECT count(*) FROM drift_by_feature": None,
    }
    expected = {q: [tuple(str(v) for v in r) for r in spark.sql(q).collect()] for q in queries}
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "credit_spark.cli", *common, "serve-sql", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        _wait_for_port(port, proc)
        beeline = str(Path(sys.executable).parent / "beeline")
        url = f"jdbc:hive2://127.0.0.1:{port}/credit"
        for query, rows in expected.items():
            out = subprocess.run([beeline, "-u", url, "--silent=true", "--showHeader=false", "--outputformat=csv2",
                                  "-e", query], capture_output=True, text=True, timeout=300,
                                 env={**os.environ, "PYSPARK_PYTHON": sys.executable})
            assert out.returncode == 0, out.stderr[-3000:]
            # beeline may echo its prompt before the first row when its input is not a terminal
            lines = [re.sub(r"^\d+: jdbc:hive2://\S+> ", "", line) for line in out.stdout.splitlines()]
            assert [tuple(line.split(",")) for line in lines if line] == rows, query

        from pyhive import hive
        with hive.connect("127.0.0.1", port=port, database="credit", auth="NONE", username="analyst") as conn:
            cursor = conn.cursor()
            for query, rows in expected.items():
                cursor.execute(query)
                assert [tuple(str(v) for v in r) for r in cursor.fetchall()] == rows, query
            with pytest.raises(Exception):
                cursor.execute("DELETE FROM scores WHERE true")
        assert delta(spark, lake, SCORES).count() == 150
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=180)[0]
    assert proc.returncode == 0, output[-3000:]
    assert f"serving jdbc:hive2://127.0.0.1:{port}/credit" in output and "SQL server stopped" in output
