"""The ``credit-spark`` command: one subcommand per job, each also a ``jobs/<name>.py`` for spark-submit.

Every subcommand parses its options, loads the layered config, builds or reuses the Spark
session, calls one library function and prints what it did. Any :class:`CreditSparkError`
becomes a one-line message on stderr and exit status 2; other failures exit 1 with a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Callable, Sequence

from credit_spark.config.loader import Config, load_config
from credit_spark.errors import CreditSparkError

logger = logging.getLogger("credit_spark.cli")

EXIT_USER_ERROR = 2
NO_SPARK = {"catalog", "report", "schema"}   # subcommands that only read config


# --------------------------------------------------------------------------- handlers
def _generate(spark, cfg: Config, args) -> None:
    from credit_spark.jobs.generate import generate

    result = generate(spark, rows=args.rows, seed=args.seed, out=args.out, fmt=args.format,
                      months=args.months, start_month=args.start_month, labeled=not args.unlabeled)
    print(f"generated {result.rows:,} rows ({result.customers:,} customers) -> {result.path} [{result.fmt}]")


def _ingest(spark, cfg: Config, args) -> None:
    from credit_spark.jobs.ingest import ingest

    r = ingest(spark, cfg, args.input, fmt=args.format)
    print(f"ingest batch {r.batch_id}: {r.files} file(s), read {r.rows_read:,} rows -> "
          f"raw_records {r.rows_ingested:,} ({r.rows_inserted:,} new, {r.rows_updated:,} updated), "
          f"quarantine {r.rows_quarantined:,}"
          + (f", left out as erased customers' {r.rows_erased:,}" if r.rows_erased else ""))
    if r.quarantine_reasons:
        print("  quarantined by reason:")
        for reason, n in r.quarantine_reasons.items():
            print(f"    {reason:<32} {n:>10,}")
    else:
        print("  quarantined by reason: none")


def _features(spark, cfg: Config, args) -> None:
    from credit_spark.jobs.features_job import run_features
    from credit_spark.transforms.quality import format_quality

    r = run_features(spark, cfg, full=getattr(args, "full", False))
    if r.mode == "unchanged":
        print(f"features: up to date, nothing written ({r.reason}); features v{r.features_version}")
        return
    print(f"features: {r.mode} build of {r.periods} ({r.reason}): {r.rows:,} rows from raw_records v{r.raw_version} "
          f"-> features v{r.features_version}")
    print("data quality (also in the data_quality table):")
    print(format_quality(r.quality))


def _catalog(spark, cfg: Config, args) -> None:
    from credit_spark.transforms.features import catalog_markdown

    print(f"Features of dataset spec '{cfg.spec.name}':\n")
    print(catalog_markdown(cfg.spec))


def _train(spark, cfg: Config, args) -> None:
    from credit_spark.jobs.train import train
    from credit_spark.report import load_results, verdict

    r = train(spark, cfg)
    print(f"training run {r.run_id} on features v{r.features_version}: {r.train_rows:,} train, "
          f"{r.validation_rows:,} validation, {r.test_rows:,} test rows ({cfg.train.split} split)")
    columns = ["accuracy", "macro_f1", "weighted_f1", "auc", "gini", "ks", "log_loss", "brier", "ece"]
    print(f"  test set: {'model':<24}" + "".join(f"{c:>12}" for c in columns))
    for name, m in r.metrics.items():
        mark = "  <- selected (validation)" if name == r.selected else ""
        values = m.headline()
        print(f"            {name + ' v' + str(r.versions[name]):<24}"
              + "".join(f"{values[c]:>12.4f}" for c in columns) + mark)
    for d in r.comparison:
        print(f"  {d.model} - {d.baseline} {d.metric}: {d.difference:+.4f} "
              f"({d.confidence:.0%} CI {d.ci_low:+.4f} to {d.ci_high:+.4f})")
    print(f"  promotion: {r.promotion.challenger} {r.promotion.decision} ({r.promotion.reason})")
    print(f"  report: {r.report_dir}/report.html")
    print(f"  verdict: {verdict(load_results(r.report_dir))}")


def _report(spark, cfg: Config, args) -> None:
    from credit_spark.evaluation.run_report import render_report
    from credit_spark.report import load_results, verdict

    out = render_report(cfg, run_id=args.run_id, out=args.out)
    print(f"report written to {out} (report.md, report.html, PNGs)")
    print(f"verdict: {verdict(load_results(out))}")


def _score(spark, cfg: Config, args) -> None:
    from credit_spark.jobs.scoring import score_run_date

    r = score_run_date(spark, cfg, args.run_date)
    print(f"scored {r.rows:,} records for run date {r.run_date} with {r.model_name} v{r.model_version} "
          f"(features v{r.features_version}) -> scores v{r.scores_version}")


def _maintain(spark, cfg: Config, args) -> None:
    from credit_spark.jobs.maintenance import maintain

    def size(n: int | None) -> str:
        return "-" if n is None else f"{n / 1e6:,.1f} MB"

    done = maintain(spark, cfg)
    print(f"maintained {len(done)} table(s) of {cfg.lake.root} (OPTIMIZE, then VACUUM past each retention):")
    print(f"  {'table':<14}{'files before':>14}{'after':>8}{'folder before':>16}{'after':>12}  retention")
    for t in done:
        print(f"  {t.table:<14}{t.before.files:>14,}{t.after.files:>8,}{size(t.before.folder_bytes):>16}"
              f"{size(t.after.folder_bytes):>12}  {t.retention_hours / 24:,.1f} days"
              + (f", Z-ordered by {', '.join(t.zorder_by)}" if t.zorder_by else ""))


def _forget(spark, cfg: Config, args) -> None:
    from credit_spark.jobs.erasure import forget

    r = forget(spark, cfg, args.customer, purge_files=args.purge)
    print(f"erasure request {r.request_id}: {len(r.customers)} customer(s); rows deleted: "
          + (", ".join(f"{t} {n:,}" for t, n in r.rows_deleted.items()) or "no table yet")
          + ("; files purged (no time travel before this point in those tables)" if r.purged else
             "; removed files stay until `credit-spark maintain` vacuums them past each retention (or use --purge)"))


def _serve_sql(spark, cfg: Config, args) -> None:
    from credit_spark.jobs.sql_server import serve_sql

    serve_sql(spark, cfg, schema=args.schema)


#: which command writes each lake table (named when a query reads one that is not there yet)
WRITTEN_BY = {"raw_records": "ingest", "quarantine": "ingest", "data_quality": "ingest / features",
              "features": "features", "scorecard": "train", "scores": "score", "monitoring": "score", "runs": "score",
              "erasure_requests": "forget"}


def _sql(spark, cfg: Config, args) -> None:
    from pyspark.errors import AnalysisException

    from credit_spark.errors import CreditSparkError
    from credit_spark.lake.tables import register_views

    tables = register_views(spark, cfg)
    logger.info("tables available to SQL: %s", ", ".join(tables) or "none")
    try:
        spark.sql(args.query).show(args.limit, truncate=False)
    except AnalysisException as exc:   # ParseException too: one line, exit 2, no traceback
        first = str(exc).strip().splitlines()[0]
        absent = [t for t in WRITTEN_BY if t not in tables and re.search(rf"\b{t}\b", args.query, re.I)]
        hint = "".join(f"; table {t} does not exist yet: `credit-spark {WRITTEN_BY[t]}` writes it" for t in absent)
        raise CreditSparkError(f"{first}{hint} (tables: {', '.join(tables) or 'none'})") from None


def _spec(spark, cfg: Config, args) -> None:
    from credit_spark.jobs.spec_draft import draft

    out = draft(spark, args.input, args.label, args.out, name=args.name)
    print(f"drafted {out}: review it, then train with an overlay `dataset: {out}`")


def _schema(spark, cfg: Config, args) -> None:
    from credit_spark.config.schema import schema_text

    text = schema_text(args.kind)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")


def _demo(spark, cfg: Config, args) -> None:
    """generate -> ingest -> features -> train -> score -> sql, timing each step."""
    work = Path(args.work).resolve()
    train_input, score_input = str(work / "jan_aug_labelled"), str(work / "september_unlabelled")
    customers = math.ceil(args.rows / 8)
    run_date = args.run_date
    steps: list[tuple[str, Callable[[], None]]] = [
        ("generate labelled Jan-Aug", lambda: _generate(spark, cfg, argparse.Namespace(
            rows=args.rows, seed=args.seed, out=train_input, format="csv", months=8, start_month=1,
            unlabeled=False))),
        ("generate unlabelled September", lambda: _generate(spark, cfg, argparse.Namespace(
            rows=customers, seed=args.seed, out=score_input, format="csv", months=1, start_month=9,
            unlabeled=True))),
        ("ingest labelled", lambda: _ingest(spark, cfg, argparse.Namespace(input=train_input, format="csv"))),
        ("ingest unlabelled", lambda: _ingest(spark, cfg, argparse.Namespace(input=score_input, format="csv"))),
        ("features", lambda: _features(spark, cfg, args)),
        ("train", lambda: _train(spark, cfg, args)),
        (f"score {run_date}", lambda: _score(spark, cfg, argparse.Namespace(run_date=run_date))),
    ]
    for title, step in steps:
        print(f"\n== {title}")
        start = time.perf_counter()
        step()
        print(f"   ({time.perf_counter() - start:.1f}s)")
    query = ("SELECT customer_id, record_id, run_date, model_name, model_version, predicted_class, "
             + ", ".join(f"round({c}, 3) AS {c}" for c in _probability_columns(cfg))
             + ", round(score_points, 1) AS points, transform(reasons, r -> r.code) AS reason_codes"
             + f" FROM scores WHERE run_date = DATE'{run_date}' ORDER BY record_id LIMIT 5")
    for q in (f"SELECT run_date, predicted_class, count(*) AS records FROM scores "
              f"WHERE run_date = DATE'{run_date}' GROUP BY run_date, predicted_class ORDER BY predicted_class",
              query,
              f"SELECT metric, name, round(value, 3) AS value, status FROM monitoring WHERE run_date = DATE'{run_date}' "
              "AND (metric IN ('psi', 'run_status') OR (metric = 'csi' AND status != 'ok'))"):
        print(f"\n== sql: {q}")
        _sql(spark, cfg, argparse.Namespace(query=q, limit=20))


def _require_bench() -> None:
    """The benchmark lives outside the runtime package (``benchmarks/``, ``credit_spark_bench``);
    checked before the config is read and Spark starts."""
    try:
        import credit_spark_bench.bench  # noqa: F401
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "credit_spark_bench":
            raise CreditSparkError("needs the benchmark package: bash scripts/setup.sh bench "
                                   "(or pip install -e ./benchmarks)") from None
        raise


def _bench(spark, cfg: Config, args) -> None:
    from credit_spark_bench.bench import STAGES, run_benchmark, to_markdown, write_outputs

    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        from credit_spark.errors import ConfigError
        raise ConfigError(f"--stages: unknown {unknown}; choose from {list(STAGES)}")
    sizes = [int(s) for s in args.sizes.split(",")]
    report = run_benchmark(spark, cfg, sizes, Path(args.work), stages, baseline=not args.no_baseline,
                           night_rows=args.night_rows, seed=args.seed,
                           baseline_memory_fraction=args.baseline_memory_fraction)
    paths = write_outputs(report, Path(args.out))
    print(to_markdown(report))
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def _probability_columns(cfg: Config) -> list[str]:
    from credit_spark.jobs.scoring import probability_column

    return [probability_column(c) for c in cfg.spec.label.classes]


# --------------------------------------------------------------------------- parser
def _run_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"run date must be YYYY-MM-DD, got {text!r}") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


COMMANDS: dict[str, tuple[Callable, str]] = {
    "generate": (_generate, "write synthetic raw records (the public dataset's schema, with its dirt)"),
    "ingest": (_ingest, "load a raw CSV/Parquet file or folder into raw_records; bad rows to quarantine"),
    "features": (_features, "update features from raw_records (cleaned, typed, no PII): the changed periods"),
    "catalog": (_catalog, "print the feature catalog of the dataset spec (name, type, description)"),
    "train": (_train, "tune, calibrate and compare the models with the scorecard; MLflow run, report, promotion"),
    "report": (_report, "re-render a training run's report (Markdown, HTML, PNG) from MLflow"),
    "score": (_score, "score the records of a run date into the scores table (rerun-safe)"),
    "sql": (_sql, "run Spark SQL over the lake; every table is queryable by its short name"),
    "forget": (_forget, "delete customers' rows from every table (an erasure request), recorded in erasure_requests"),
    "serve-sql": (_serve_sql, "serve the lake to JDBC/ODBC clients (Spark's Thrift server, HiveServer2 protocol)"),
    "maintain": (_maintain, "compact every table (OPTIMIZE) and delete files past its retention (VACUUM)"),
    "spec": (_spec, "draft a dataset spec from a file: `spec draft --input FILE --label COL [--out spec.yaml]`"),
    "schema": (_schema, "print the JSON Schema of a dataset spec or of a config file (for editors); needs no Spark"),
    "demo": (_demo, "generate -> ingest -> features -> train -> score -> sql, end to end"),
    "bench": (_bench, "time every stage at several sizes, side by side with a pandas + scikit-learn baseline"),
}


def _version() -> str:
    """The running code's version (``_version.py``, the one place it is written), not the
    installed metadata's, which an editable install leaves at the version it was installed at."""
    from credit_spark._version import __version__
    return __version__


def _global_options(for_subcommand: bool) -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand (``credit-spark --lake X score ...`` or
    ``credit-spark score --lake X ...``). On subcommands their defaults are suppressed so they do
    not overwrite a value given before the subcommand."""
    def default(value):
        return argparse.SUPPRESS if for_subcommand else value

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--conf", action="append", default=default([]), metavar="FILE",
                        dest="conf_after" if for_subcommand else "conf",
                        help="YAML overlay on the base config (repeatable; later files win)")
    common.add_argument("--env", default=default(None),
                        help="environment overlay conf/<ENV>.yaml (default: $CREDIT_SPARK_ENV or 'local')")
    common.add_argument("--lake", default=default(None), metavar="DIR", help="root folder of the Delta tables")
    common.add_argument("--remote", default=default(None), metavar="URL", help="Spark Connect server (sc://host:15002)")
    common.add_argument("-v", "--verbose", action="store_true", default=default(False), help="debug logging")
    return common


#: what --help says first (plain text: the module docstring is reST)
DESCRIPTION = ("credit_spark: credit-score classification on Spark, MLlib and Delta Lake. "
               "One subcommand per job, each also jobs/<name>.py for spark-submit.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="credit-spark", description=DESCRIPTION,
                                     parents=[_global_options(for_subcommand=False)])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = {name: sub.add_parser(name, help=text, description=text, parents=[_global_options(for_subcommand=True)])
         for name, (_, text) in COMMANDS.items()}

    p["generate"].add_argument("--rows", type=_positive_int, required=True, help="number of rows")
    p["generate"].add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    p["generate"].add_argument("--out", required=True, help="output folder")
    p["generate"].add_argument("--format", choices=["csv", "parquet"], default="csv")
    p["generate"].add_argument("--months", type=int, default=8, help="months per customer (default 8)")
    p["generate"].add_argument("--start-month", type=int, default=1, help="first month, 1=January")
    p["generate"].add_argument("--unlabeled", action="store_true", help="leave out the Credit_Score label")

    p["features"].add_argument("--full", action="store_true", help="rebuild every period, not only the changed ones")
    p["ingest"].add_argument("--input", required=True, help="a CSV/Parquet file or a folder of them")
    p["ingest"].add_argument("--format", choices=["csv", "parquet"], default=None,
                             help="input format (default: from the path, else csv)")

    p["score"].add_argument("--run-date", type=_run_date, required=True, metavar="YYYY-MM-DD",
                            help="scores the records of this date's month")

    p["report"].add_argument("--run-id", default=None, help="MLflow run id (default: the latest training run)")
    p["report"].add_argument("--out", default=None, help="output folder (default: <lake>/reports/run-N-<id>)")

    p["spec"].add_argument("action", choices=["draft"], help="draft: profile --input and write a commented spec")
    p["spec"].add_argument("--input", required=True, help="a CSV (plain or compressed) or Parquet file or folder")
    p["spec"].add_argument("--label", required=True, help="the label column (its header text)")
    p["spec"].add_argument("--out", default="spec.yaml", help="where to write the spec (default spec.yaml)")
    p["spec"].add_argument("--name", default=None, help="the spec's name (default: the file name of --out)")
    p["schema"].add_argument("kind", choices=["spec", "config"], help="which file the schema describes")
    p["schema"].add_argument("--out", default=None, help="write it here instead of printing it")
    p["forget"].add_argument("--customer", action="append", required=True, metavar="ID",
                             help="a customer id (repeatable)")
    p["forget"].add_argument("--purge", action="store_true",
                             help="also delete the removed files now (VACUUM with no retention)")
    p["serve-sql"].add_argument("--host", default="127.0.0.1",
                                help="address to listen on (default 127.0.0.1: this machine only)")
    p["serve-sql"].add_argument("--port", type=_positive_int, default=10000, help="port (default 10000)")
    p["serve-sql"].add_argument("--schema", default="credit", help="schema the tables and views are published in")
    p["sql"].add_argument("query", help='e.g. "SELECT count(*) FROM scores"')
    p["sql"].add_argument("--limit", type=int, default=20, help="rows to print")

    p["demo"].add_argument("--rows", type=_positive_int, default=20_000, help="labelled rows to generate")
    p["demo"].add_argument("--seed", type=int, default=42)
    p["demo"].add_argument("--work", default="data/demo", help="folder for the generated input files")
    p["demo"].add_argument("--run-date", type=_run_date, default=date(date.today().year, 9, 30),
                           metavar="YYYY-MM-DD", help="run date to score (default: 30 September this year)")

    p["bench"].add_argument("--sizes", default="100000,1000000,10000000", help="comma-separated row counts")
    p["bench"].add_argument("--stages", default="generate,ingest,features,train,nn,score",
                            help="comma-separated, in order (each needs the ones before it)")
    p["bench"].add_argument("--night-rows", type=_positive_int, default=None,
                            help="records in the scored night (default: one month of the training customers)")
    p["bench"].add_argument("--no-baseline", action="store_true", help="skip the pandas + scikit-learn baseline")
    p["bench"].add_argument("--baseline-memory-fraction", type=float, default=0.6,
                            help="the baseline's address-space cap, as a share of the machine's memory")
    p["bench"].add_argument("--seed", type=int, default=42)
    p["bench"].add_argument("--work", default="bench_results/work", help="scratch folder (deleted per size)")
    p["bench"].add_argument("--out", default="bench_results", help="folder for benchmark.json/.md/.png")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.conf = [*args.conf, *getattr(args, "conf_after", [])]   # before and after the subcommand
    return args


def configure_logging(verbose: bool) -> None:
    # force: under spark-submit pyspark may already have put a handler on the root logger
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # xgboost.spark logs each training and inference call at INFO on its own handler
    logging.getLogger("XGBoost-PySpark").setLevel(logging.DEBUG if verbose else logging.WARNING)
    # PySpark logs every analysis error with its JVM stack as one JSON line on its own handler;
    # the CLI reports the error itself, in one line (main), so these stay quiet unless --verbose
    from pyspark.logger import PySparkLogger
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.DEBUG if verbose else logging.CRITICAL)


#: subcommands that write to the lake (its folder must be creatable and writable before any work)
WRITES_LAKE = {"ingest", "features", "train", "score", "demo", "maintain", "forget"}


def check_lake_writable(cfg: Config) -> None:
    """A local lake folder that cannot be created or written stops the command before Spark starts,
    not at the first Delta commit after the work. Remote lakes are checked by their first write."""
    import os

    from credit_spark.errors import ConfigError
    from credit_spark.tracking.registry import local_lake

    lake = local_lake(cfg)
    if lake is None or cfg.lake.schema:
        return
    existing = lake.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"lake.root {lake}: cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"lake.root {lake}: cannot be written: no write permission on {existing}")


def with_scratch_warehouse(cfg: Config) -> Config:
    """Without a metastore schema (``lake.schema``) nothing is a managed table, yet Spark makes
    an empty ``spark-warehouse/`` in the working folder at start: point it at a temporary folder
    instead, unless the config sets ``spark.sql.warehouse.dir`` itself, or a session is already
    running or is a Spark Connect server's (its warehouse is set; a static setting)."""
    import dataclasses
    import tempfile

    from pyspark.sql import SparkSession

    if cfg.lake.schema or "spark.sql.warehouse.dir" in cfg.spark.conf or cfg.spark.remote or SparkSession.getActiveSession():
        return cfg
    scratch = str(Path(tempfile.gettempdir()) / "credit_spark-warehouse")
    return dataclasses.replace(cfg, spark=dataclasses.replace(
        cfg.spark, conf={**cfg.spark.conf, "spark.sql.warehouse.dir": scratch}))


def require_spark() -> None:
    """PySpark and Delta Lake's Python package are the ``spark`` extra (a Databricks runtime brings
    its own): without them a user gets the install line, not an import traceback."""
    import importlib.util

    missing = [name for module, name in (("pyspark", "pyspark"), ("delta", "delta-spark"))
               if importlib.util.find_spec(module) is None]
    if missing:
        raise CreditSparkError(f"{' and '.join(missing)} not installed: pip install 'credit_spark[spark]' "
                               f"(Spark and Delta Lake; a Databricks runtime brings its own)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose)
    handler, _ = COMMANDS[args.command]
    try:
        if args.command == "bench":
            _require_bench()
        cfg = load_config(args.conf, env=args.env, lake=args.lake, remote=args.remote)
        where = f"remote {cfg.spark.remote}" if cfg.spark.remote else f"master {cfg.spark.master or 'of spark-submit'}"
        logger.info("command %s; dataset %s; lake %s%s", args.command, cfg.dataset, cfg.lake.root,
                    "" if args.command in NO_SPARK else f"; {where}")
        logger.debug("resolved config: %s", json.dumps(asdict(cfg), default=str))
        if args.command not in NO_SPARK:
            require_spark()
        from credit_spark.lake.session import get_spark

        if args.command in WRITES_LAKE:
            check_lake_writable(cfg)
        if args.command == "serve-sql":   # static settings: before the session starts
            from credit_spark.jobs.sql_server import with_server_conf
            cfg = with_server_conf(cfg, args.host, args.port)
        spark = None if args.command in NO_SPARK else get_spark(with_scratch_warehouse(cfg).spark)
        if spark is not None:
            from credit_spark.lake.tables import ensure_schema
            ensure_schema(spark, cfg)
        handler(spark, cfg, args)
        return 0
    except CreditSparkError as exc:
        print(f"credit-spark {args.command}: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", EXIT_USER_ERROR)


def run_job(command: str) -> int:
    """Entry for ``jobs/<command>.py`` under spark-submit: the same CLI, subcommand fixed."""
    return main([command, *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
