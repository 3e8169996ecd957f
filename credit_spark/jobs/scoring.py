"""The nightly batch scorer: one run date's records, scored by the champion, into ``scores``.

Run date -> records: a run date scores the records of its calendar month. For the public schema,
whose period is a month name without a year, ``--run-date 2026-09-30`` scores the September
records; for ``year_month``/``date`` periods it scores yyyymm = 202609; a dataset without a
period has all its records scored.

Order of a run, so that nothing is written unless it can all be written:
resolve and load the model (a missing or unreadable one fails here) -> read the features at one
Delta version -> no records: stop with a message -> score (class, probabilities, points, reasons)
-> replace the run date's partition of ``scores`` in one commit (retried if a concurrent run for
another date commits first; a killed run leaves the previous version) -> population stability
and run statistics into ``monitoring`` (same run date, same rules) -> if configured, exit 3 when
the drift threshold is reached (the scores are already written: a breach is a signal, not a
reason to withhold the night's scores).
"""
from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from credit_spark.config.loader import Config, DatasetSpec, ScorecardSettings
from credit_spark.errors import DriftAlert, ModelNotFoundError, NoRecordsError
from credit_spark.evaluation import monitoring
from credit_spark.lake.session import is_connect
from credit_spark.lake.sqltext import sql_string
from credit_spark.lake.tables import (CHANGE_FEED, FEATURES, MONITORING, RUNS, SCORES, commit_tagged, merge_into,
                                 ensure_table, read_delta, read_snapshot, read_table, replace_where, with_retries)
from credit_spark.ml.reasons import ReasonCodesModel
from credit_spark.ml.scorecard import points_scale
from credit_spark.tracking import registry
from credit_spark.transforms.features import (CUSTOMER_ID, HISTORY_SUFFIXES, PERIOD, RECORD_ID, Transform, feature_catalog,
                                   period_for_run_date, require_feature_columns, slug)

logger = logging.getLogger(__name__)

SCORE_POINTS = "score_points"
PREDICTED_CLASS = "predicted_class"
STATUS_ORDER = ("ok", "watch", "act")
#: prefix of the score's PSI bucket counts among the night's aggregates
SCORE_BUCKETS = "score_bucket"
#: how long the driver waits for the observed statistics once the write has finished; they come
#: with the job's end event, within milliseconds normally: past this, they are recomputed
OBSERVED_WAIT_S = 120.0


@dataclass(frozen=True)
class ScoreResult:
    run_date: date
    rows: int
    model_name: str
    model_version: int
    features_version: int
    scores_version: int
    run_id: str = ""
    status: str = "ok"
    drift: dict[str, float] = field(default_factory=dict)


def probability_column(label_class: str) -> str:
    """``prob_<class>`` in snake case: "Standard" -> prob_standard."""
    return "prob_" + slug(label_class)


# --------------------------------------------------------------------------- schema contract
def _field(name: str, dtype: T.DataType, comment: str, nullable: bool = True) -> T.StructField:
    return T.StructField(name, dtype, nullable, metadata={"comment": comment})


REASON_TYPE = T.ArrayType(T.StructType([
    T.StructField("rank", T.IntegerType()), T.StructField("code", T.StringType()),
    T.StructField("feature", T.StringType()), T.StructField("text", T.StringType()),
    T.StructField("impact", T.DoubleType())]))


def scores_schema(classes: list[str]) -> T.StructType:
    return T.StructType([
        _field(CUSTOMER_ID, T.StringType(), "customer id (no names or SSNs in this table)"),
        _field(RECORD_ID, T.StringType(), "record id of the scored monthly record"),
        _field("run_date", T.DateType(), "run date of the nightly job (partition)"),
        _field(PREDICTED_CLASS, T.StringType(), f"predicted class, one of {classes} (best to worst)"),
        *[_field(probability_column(c), T.DoubleType(), f"calibrated probability of class {c}") for c in classes],
        _field(SCORE_POINTS, T.DoubleType(), "score in points on the scorecard scale (higher = safer)"),
        _field("reasons", REASON_TYPE, "up to N adverse-action reasons: rank, code, feature, text, impact "
                                       "(points lost or log-odds added), largest first"),
        _field("model_name", T.StringType(), "algorithm of the scoring model"),
        _field("model_version", T.IntegerType(), "MLflow registered-model version used"),
        _field("features_version", T.LongType(), "Delta version of the features table read"),
        _field("run_id", T.StringType(), "id of the scoring run (also in the monitoring table)"),
        _field("scored_at", T.TimestampType(), "when the row was scored (UTC)"),
    ])


def table_properties(retention_months: int) -> dict[str, str]:
    """Change Data Feed on; history (log and removed files) kept for the retention period."""
    days = math.ceil(retention_months * 365.25 / 12)
    return {CHANGE_FEED: "true",
            "delta.logRetentionDuration": f"interval {days} days",
            "delta.deletedFileRetentionDuration": f"interval {days} days"}


# --------------------------------------------------------------------------- transforms
def with_score_points(classes: list[str], settings: ScorecardSettings) -> Transform:
    """``score_points`` and ``predicted_class``. A scorecard model's own points are kept (they are
    the sum of its card's points, which its reasons refer to); any other model's P(adverse) is put
    on the same scale: offset + factor × ln((1 − p) / p)."""
    factor, offset = points_scale(settings.pdo, settings.base_score, settings.base_odds)

    def transform(predictions: DataFrame) -> DataFrame:
        out = predictions.withColumn(PREDICTED_CLASS, F.element_at(F.array(*[F.lit(c) for c in classes]),
                                                                   F.col("prediction").cast("int") + 1))
        if SCORE_POINTS in predictions.columns:
            return out
        p = F.least(F.greatest(vector_to_array(F.col("probability"))[len(classes) - 1], F.lit(1e-6)),
                    F.lit(1 - 1e-6))
        return out.withColumn(SCORE_POINTS, F.lit(offset) + F.lit(factor) * F.log((1 - p) / p))
    return transform


def reason_lookup(spec: DatasetSpec) -> tuple[dict[str, str], dict[str, str]]:
    """Feature -> code and feature -> text.

    A feature's code is its own ``reason_codes`` entry, else that of the feature its history is
    built from (``Outstanding_Debt__prev`` -> ``Outstanding_Debt``): one factor, one code. A
    feature with neither is never given as a reason (no internal names or sensitive attributes
    such as age in a customer letter) — unless the spec configures no codes at all, when every
    feature gets ``R-<feature>`` and its catalog description.
    """
    catalog = {f.name: f.description for f in feature_catalog(spec)}
    codes: dict[str, str] = {}
    texts: dict[str, str] = {}
    for name, description in catalog.items():
        base = next((name[: -len(s)] for s in HISTORY_SUFFIXES if name.endswith(s)), name)
        reason = spec.reason_codes.get(name) or spec.reason_codes.get(base)
        if reason is not None:
            codes[name], texts[name] = reason.code, reason.text
        elif not spec.reason_codes:
            codes[name], texts[name] = f"R-{name}", description
    return codes, texts


def with_coded_reasons(model: PipelineModel, spec: DatasetSpec, max_reasons: int) -> PipelineModel:
    """The model with its reasons stage writing ``reasons`` (rank, code, feature, text, impact)
    directly: features without a code left out, one reason per code (its largest impact), at
    most ``max_reasons`` — all in built-in expressions of the stage (a Python pick over the
    stage's ranked features cost most of a night's scoring time at millions of records).

    A model from before reasons existed gets ``reasons`` = null."""
    codes, texts = reason_lookup(spec)
    stages = [s.with_codes({f: (c, texts[f]) for f, c in codes.items()}, max_reasons, "reasons")
              if isinstance(s, ReasonCodesModel) else s for s in model.stages]
    return PipelineModel(stages=stages)


def _with_reasons_column(df: DataFrame) -> DataFrame:
    return df if "reasons" in df.columns else df.withColumn("reasons", F.lit(None).cast(REASON_TYPE))


def to_scores(classes: list[str], model: registry.ModelRecord, run_date: date, features_version: int,
              run_id: str) -> Transform:
    """The ``scores`` contract (see :func:`scores_schema`), in its column order."""
    schema = scores_schema(classes)

    def transform(scored: DataFrame) -> DataFrame:
        probs = vector_to_array(F.col("probability"))
        columns = {
            CUSTOMER_ID: F.col(CUSTOMER_ID), RECORD_ID: F.col(RECORD_ID),
            "run_date": F.lit(run_date), PREDICTED_CLASS: F.col(PREDICTED_CLASS),
            **{probability_column(c): probs[i] for i, c in enumerate(classes)},
            SCORE_POINTS: F.col(SCORE_POINTS), "reasons": F.col("reasons"),
            "model_name": F.lit(model.model_name), "model_version": F.lit(model.model_version),
            "features_version": F.lit(features_version), "run_id": F.lit(run_id),
            "scored_at": F.current_timestamp(),
        }
        return scored.select(*[columns[f.name].cast(f.dataType).alias(f.name) for f in schema.fields])
    return transform


# --------------------------------------------------------------------------- monitoring
RUNS_SCHEMA = T.StructType([
    _field("run_date", T.DateType(), "run date scored"),
    _field("run_id", T.StringType(), "scoring run id (as in scores.run_id and monitoring.run_id)"),
    _field("model_name", T.StringType(), "algorithm of the scoring model"),
    _field("model_version", T.IntegerType(), "MLflow registered-model version"),
    _field("features_version", T.LongType(), "Delta version of the features table read"),
    _field("scores_version", T.LongType(), "Delta version of scores this run committed"),
    _field("monitoring_version", T.LongType(), "Delta version of monitoring this run committed"),
    _field("rows", T.LongType(), "records scored"),
    _field("status", T.StringType(), "the run's monitoring status: ok / watch / act"),
    _field("finished_at", T.TimestampType(), "when the run completed (UTC)"),
])


def record_run(spark: SparkSession, cfg: Config, row: tuple, properties: dict[str, str]) -> None:
    """Record the night in ``runs``, last: a run id there means its scores and its monitoring
    are both committed (a night killed in between has scores but no row here, and the rerun
    adds it). One MERGE that inserts the run ids not there yet: this night's, and any earlier
    night whose monitoring committed without its ``runs`` row (:func:`earlier_runs`: a night
    killed just before it, or a lake scored before ``runs`` existed), so the shipped views, which
    read only nights in ``runs``, miss no completed night. Idempotent, so two nights recording
    at once (concurrent dates) add each run id once."""
    path = cfg.table_path(RUNS)
    with_retries(lambda: ensure_table(spark, path, RUNS_SCHEMA, [], "one row per completed scoring run, written "
                                      "after its scores and monitoring (credit_spark score)", properties),
                 "create runs", cfg.score.write_retries)
    frame = (spark.createDataFrame([row], T.StructType(RUNS_SCHEMA.fields[:-1]))
             .withColumn("finished_at", F.current_timestamp())
             .unionByName(earlier_runs(spark, cfg, exclude=row[1])))

    def merge() -> None:
        merge_into(spark, path, frame, "t.run_id = s.run_id")
    with_retries(merge, "runs", cfg.score.write_retries)


def earlier_runs(spark: SparkSession, cfg: Config, exclude: str) -> DataFrame:
    """Completed nights as ``runs`` rows: one per run id with a ``run_status`` row in
    ``monitoring`` (written after that night's scores), but ``exclude`` (this night); the versions
    and row count are null (not recorded), ``finished_at`` is the monitoring's time. Reads only
    the small ``monitoring`` table."""
    return (read_delta(spark, cfg.table_path(MONITORING))
            .where((F.col("metric") == "run_status") & (F.col("run_id") != exclude))
            .dropDuplicates(["run_id"])
            .select("run_date", "run_id", "model_name", "model_version",
                    *(F.lit(None).cast(T.LongType()).alias(c)
                      for c in ("features_version", "scores_version", "monitoring_version", "rows")),
                    "status", F.col("computed_at").alias("finished_at")))


MONITORING_SCHEMA = T.StructType([
    _field("run_date", T.DateType(), "run date (partition)"),
    _field("run_id", T.StringType(), "scoring run id (as in scores.run_id)"),
    _field("model_name", T.StringType(), "algorithm of the scoring model"),
    _field("model_version", T.IntegerType(), "MLflow registered-model version"),
    _field("metric", T.StringType(), "psi (score), csi (an input), rows_in, rows_out, class_share, "
                                     "adverse_share_by_age_band, run_status, baseline_missing"),
    _field("name", T.StringType(), "what the metric is about: score_points, a feature, a class, an age band"),
    _field("value", T.DoubleType(), "the metric's value"),
    _field("threshold_watch", T.DoubleType(), "PSI threshold for watch"),
    _field("threshold_act", T.DoubleType(), "PSI threshold for act"),
    _field("status", T.StringType(), "ok / watch / act for psi, csi and run_status"),
    _field("computed_at", T.TimestampType(), "when computed (UTC)"),
])


def night_aggregates(cfg: Config, baseline: dict | None, columns: list[str]) -> dict[str, Column]:
    """What the monitoring needs from the scored rows, as aggregates the scores write computes on
    its way (``DataFrame.observe``): class counts, adverse predictions per age band, and the
    score's PSI buckets."""
    spec = cfg.spec
    aggregates = monitoring.class_share_aggregates(PREDICTED_CLASS, spec.label.classes)
    if spec.age_column and spec.age_column in columns:
        aggregates.update(monitoring.age_band_aggregates(spec.age_column, PREDICTED_CLASS, spec.label.classes[-1],
                                                         monitoring.DEFAULT_AGE_BANDS))
    score_profile = ((baseline or {}).get("features") or {}).get(SCORE_POINTS)
    if score_profile is not None:
        aggregates.update(monitoring.bucket_aggregates(SCORE_POINTS, score_profile, prefix=SCORE_BUCKETS))
    return aggregates


def observed_metrics(observation: Observation, timeout_s: float) -> dict | None:
    """``observation.get``, waiting at most ``timeout_s``; None when the metrics do not come
    (``get`` itself would block for ever)."""
    box: dict = {}
    waiter = threading.Thread(target=lambda: box.update(value=observation.get), daemon=True,
                              name="observed-metrics")
    waiter.start()
    waiter.join(timeout_s)
    return box.get("value")


def monitoring_rows(observed: dict, records: DataFrame, baseline: dict | None, cfg: Config, rows_in: int,
                    rows_out: int) -> tuple[list[tuple], str, dict[str, float]]:
    """(metric, name, value, status) rows of one run, its overall status and the PSI values.

    ``observed`` holds :func:`night_aggregates` of the scored rows; the inputs' CSI is read from
    ``records`` (the features the model scored: the pipeline passes its input columns through
    unchanged), in one more pass over only the profiled columns."""
    spec, m = cfg.spec, cfg.score.monitoring
    rows: list[tuple] = [("rows_in", "records", float(rows_in), None), ("rows_out", "scores", float(rows_out), None)]
    rows += [("class_share", c, v, None)
             for c, v in monitoring.class_shares_of(observed, spec.label.classes).items()]
    rows += [("adverse_share_by_age_band", b["band"], float(b["adverse_share"]), None)
             for b in monitoring.age_band_shares_of(observed, monitoring.DEFAULT_AGE_BANDS)]  # none without age
    drift: dict[str, float] = {}
    if baseline is None:      # no reference: say so in the table, and do not report "ok"
        rows.append(("baseline_missing", "score_points", 0.0, "watch"))
    else:
        features = baseline["features"]
        inputs = [c for c in features if c != SCORE_POINTS and c in records.columns]
        missing = sorted(set(features) - set(inputs) - {SCORE_POINTS})
        if missing:
            logger.warning("monitoring: baseline columns absent from the features: %s", missing)
        drift = monitoring.population_stability(records, {**baseline, "features": {c: features[c] for c in inputs}})
        if SCORE_POINTS in features:
            drift[SCORE_POINTS] = monitoring.psi(features[SCORE_POINTS]["shares"], monitoring.bucket_shares_of(
                observed, features[SCORE_POINTS], prefix=SCORE_BUCKETS))
        for name, value in sorted(drift.items()):
            rows.append(("psi" if name == SCORE_POINTS else "csi", name, float(value),
                         monitoring.status(value, m.psi_watch, m.psi_act)))
    statuses = [r[3] for r in rows if r[3]]
    overall = max(statuses, key=STATUS_ORDER.index) if statuses else "ok"
    rows.append(("run_status", overall, max(drift.values(), default=0.0), overall))
    return rows, overall, drift


def load_baseline(cfg: Config, model: registry.ModelRecord) -> dict | None:
    """The training-time reference distributions logged with the model's training run."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = registry.download_artifacts(model.run_id, f"baseline/{model.model_name}.json", tmp)
            return json.loads(path.read_text())
    except Exception as exc:  # a model from before monitoring existed: score, but say so
        logger.warning("no monitoring baseline for %s v%d (%s): PSI/CSI skipped", model.model_name,
                       model.model_version, str(exc).splitlines()[0])
        return None


# --------------------------------------------------------------------------- job
def score_run_date(spark: SparkSession, cfg: Config, run_date: date) -> ScoreResult:
    """Score the run date's records into ``scores`` and its statistics into ``monitoring``."""
    from credit_spark.lake.session import make_active

    try:
        return _score_run_date(spark, cfg, run_date)
    finally:   # the night's own session must not stay the active one (see below)
        make_active(spark)


def _score_run_date(spark: SparkSession, cfg: Config, run_date: date) -> ScoreResult:
    spec = cfg.spec
    classes = spec.label.classes
    record = registry.resolve(cfg, cfg.score.model)      # fail before reading or writing
    # the night runs in a session of its own (same SparkContext, catalog and configuration): in
    # Spark 4.0 a session that has used an Observation holds an unserializable ObservationManager,
    # and any later task capturing that session fails with "Task not serializable" (e.g. a
    # LogisticRegressionModel fitted in it keeps its training summary, which holds the session)
    spark = spark if is_connect(spark) else spark.newSession()   # (a Connect session has no such JVM state)
    if record.classes != classes:
        raise ModelNotFoundError(f"{record.model_name} v{record.model_version} of '{record.registered_model}' "
                                 f"predicts {record.classes}, but dataset {spec.name} has classes {classes}: "
                                 f"train a model for this dataset (or set tracking.registered_model)")
    model = with_coded_reasons(registry.load_model(cfg, record), spec, cfg.score.max_reasons)
    baseline = load_baseline(cfg, record)
    records, features_version = read_snapshot(spark, cfg, FEATURES)
    require_feature_columns(records, spec, features_version)
    period = period_for_run_date(spec.period, run_date)
    if period is not None:
        records = records.where(F.col(PERIOD) == period)
    rows_in = records.count()
    if rows_in == 0:
        raise NoRecordsError(f"no records for run date {run_date} (period {period}) in "
                             f"features v{features_version}: nothing was written")
    run_id = uuid.uuid4().hex
    scored = (model.transform(records).transform(with_score_points(classes, cfg.train.scorecard))
              .transform(_with_reasons_column))
    # no persist: the monitoring's statistics of the scored rows are aggregates observed during
    # the write, and the inputs' CSI reads the features table again (only the profiled columns).
    # A DISK_ONLY persist of the ~80 columns both passes read cost about as much as scoring the
    # rows (1M records, same session: 63 s for persist + noop sink against 30 s for the noop sink
    # alone; the Delta write itself ~11 s)
    aggregates = night_aggregates(cfg, baseline, scored.columns)
    day = f"run_date = {sql_string(run_date.isoformat())}"
    path = cfg.table_path(SCORES)
    properties = table_properties(cfg.score.retention_months)
    with_retries(lambda: ensure_table(spark, path, scores_schema(classes), ["run_date"],
                                      "credit classes, probabilities, points and adverse-action reasons "
                                      "per record and run date (credit_spark score)", properties),
                 "create scores", cfg.score.write_retries)

    def write_scores() -> Observation:
        observation = Observation()       # one per attempt: a retried write recomputes the rows
        out = (scored.observe(observation, *monitoring.named(aggregates))
               .transform(to_scores(classes, record, run_date, features_version, run_id)))
        # one run date = one partition value: the scored partitions write their own files
        # (at most MAX_RECORDS_PER_FILE rows each), without a shuffle of the whole night
        replace_where(out, path, day, ["run_date"], user_metadata=run_id, optimize_write=False)
        return observation

    logger.info("writing scores for run date %s (run %s)", run_date, run_id)
    observation = with_retries(write_scores, f"scores {run_date}", cfg.score.write_retries)
    version, metrics = commit_tagged(spark, path, run_id)
    rows_out = int(metrics.get("numOutputRows", -1))
    observed = observed_metrics(observation, OBSERVED_WAIT_S)
    if observed is None or int(observed[monitoring.AGGREGATE_ROWS]) != rows_out:
        logger.warning("scores v%d: the statistics observed during the write are %s; recomputing them from "
                       "the written rows", version, "missing" if observed is None else
                       f"of {observed[monitoring.AGGREGATE_ROWS]} rows, not {rows_out}")
        written = read_table(spark, cfg, SCORES, version=version).where(F.col("run_id") == run_id)
        if spec.age_column and spec.age_column in records.columns:
            written = written.join(records.select(RECORD_ID, spec.age_column), RECORD_ID, "left")
        observed = monitoring.aggregate(written, aggregates)
    logger.info("scores v%d committed (%d rows); computing monitoring", version, rows_out)
    rows, status, drift = monitoring_rows(observed, records, baseline, cfg, rows_in=rows_in, rows_out=rows_out)
    thresholds = cfg.score.monitoring
    frame = spark.createDataFrame(
        [(run_date, run_id, record.model_name, record.model_version, metric, name, value, thresholds.psi_watch,
          thresholds.psi_act, state, None) for metric, name, value, state in rows],
        MONITORING_SCHEMA).withColumn("computed_at", F.current_timestamp())
    mpath = cfg.table_path(MONITORING)
    with_retries(lambda: ensure_table(spark, mpath, MONITORING_SCHEMA, ["run_date"],
                                      "per scoring run: PSI of the score, CSI of every input, row counts, class "
                                      "shares, adverse share by age band, run status", properties),
                 "create monitoring", cfg.score.write_retries)
    with_retries(lambda: replace_where(frame, mpath, day, ["run_date"], user_metadata=run_id),
                 f"monitoring {run_date}", cfg.score.write_retries)
    record_run(spark, cfg, (run_date, run_id, record.model_name, record.model_version, features_version, version,
                            commit_tagged(spark, mpath, run_id)[0], rows_out, status), properties)
    logger.info("scored %d records for %s with %s v%d (features v%d) -> scores v%d; monitoring status %s",
                rows_out, run_date, record.model_name, record.model_version, features_version, version, status)
    result = ScoreResult(run_date=run_date, rows=rows_out, model_name=record.model_name,
                         model_version=record.model_version, features_version=features_version,
                         scores_version=version, run_id=run_id, status=status, drift=drift)
    fail_on = thresholds.fail_on
    if fail_on and STATUS_ORDER.index(status) >= STATUS_ORDER.index(fail_on):
        worst = sorted(drift.items(), key=lambda kv: -kv[1])[:5]
        raise DriftAlert(f"run {run_date}: population stability reached '{status}' (score.monitoring.fail_on="
                         f"{fail_on}); scores were written (scores v{version}); largest PSI: "
                         + ", ".join(f"{k} {v:.3f}" for k, v in worst))
    return result

