"""Train, tune, calibrate and compare every configured model; log to MLflow; promote by rule.

One training run:

1. reads the ``features`` table at its current Delta version and splits the labelled rows into
   train / validation / test without splitting a customer (:mod:`credit_spark.transforms.splits`);
2. per algorithm, searches the configured grid (:mod:`credit_spark.ml.tuning`) with balanced class
   weights, then fits a probability calibrator on the validation split and appends it to the
   fitted ``PipelineModel`` (one saved model serves scoring);
3. evaluates every model on the test split (:mod:`credit_spark.ml.metrics`) and compares each with
   the scorecard baseline by a paired bootstrap (:mod:`credit_spark.evaluation.comparison`);
4. picks the run's best model on the *validation* split (the test split stays a fair judge), and
   promotes it to champion only if it beats the current champion on the primary metric by
   ``train.promotion.margin`` on this run's test split — the decision is logged;
5. logs params, metrics, models (registered) and the report to MLflow, writes the report folder
   and appends the scorecard to the ``scorecard`` Delta table.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credit_spark.config.loader import ENSEMBLE, Config, DecisionSettings, SelectionSettings
from credit_spark.config.settings import BASELINE
from credit_spark.errors import ModelNotFoundError, NoRecordsError
from credit_spark.evaluation.comparison import Difference, compare_with_baseline
from credit_spark.evaluation.monitoring import baseline_profile
from credit_spark.evaluation.run_report import report_results, report_root
from credit_spark.jobs.scoring import SCORE_POINTS, with_score_points
from credit_spark.lake.tables import FEATURES, SCORECARD, append, read_snapshot
from credit_spark.ml.calibration import ProbabilityCalibrator
from credit_spark.ml.decision import DecisionRule, DecisionRuleModel
from credit_spark.ml.ensemble import (CombinerChoice, candidate_label, choose_combiner, cross_fit, fit_stacker,
                                   stack_features, stacker_model)
from credit_spark.ml.metrics import ModelMetrics
from credit_spark.ml.metrics import evaluate as metrics_evaluate
from credit_spark.ml.models import (LABEL_INDEX, balanced_weights, build_pipeline, fitted_classifier, importance,
                                 require_connect_training, require_xgboost, with_class_weights)
from credit_spark.ml.reasons import (ReasonCodesModel, contribution_reasons, linear_reasons, points_reasons,
                                  used_features)
from credit_spark.ml.scorecard import ScorecardModel
from credit_spark.ml.tuning import (CalibrationChoice, MetricEvaluator, TuningResult, choose_calibration, fit_kfold,
                                 fit_tuned)
from credit_spark.report import load_results, verdict, write_report
from credit_spark.tracking import registry
from credit_spark.tracking.promotion import Promotion, decide_promotion
from credit_spark.transforms.features import (CUSTOMER_ID, LABEL, PERIOD, RECORD_ID, Transform, categorical_features,
                                   numeric_features, require_feature_columns)
from credit_spark.transforms.splits import customer_bucket, make_splits

logger = logging.getLogger(__name__)

RAW_PROBABILITY = "uncalibrated_probability"


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    features_version: int
    train_rows: int
    validation_rows: int
    test_rows: int
    metrics: dict[str, ModelMetrics]
    validation_metrics: dict[str, float]
    selected: str
    versions: dict[str, int]
    promotion: Promotion
    comparison: list[Difference] = field(default_factory=list)
    report_dir: str = ""
    #: wall-clock seconds per algorithm: grid search, final fit and calibration
    fit_seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- transforms
def with_label_index(classes: list[str]) -> Transform:
    """Label text -> 0-based index in the spec's class order (so probability i is class i)."""
    def transform(df: DataFrame) -> DataFrame:
        idx = F.array_position(F.array(*[F.lit(c) for c in classes]), F.col(LABEL)) - 1
        return df.withColumn(LABEL_INDEX, idx.cast("double"))
    return transform


def fit_ensemble(fitted: dict[str, PipelineModel], stack_inputs: dict[str, DataFrame], settings, classes: list[str],
                 evaluator: MetricEvaluator) -> tuple[PipelineModel, TuningResult, str, float]:
    """The stacked ensemble of the run's calibrated models (``credit_spark.ml.ensemble``), its decision
    rule and validation metric. The stacker is fitted on the members' held-out predictions; to
    choose its combiner and L2 strength (by log-loss), judge it and learn its decision rule, it is
    cross-fitted on two halves of those customers (each half predicted by a stacker fitted on the
    other), then refitted on all of them."""
    k = len(classes)
    names = list(stack_inputs)
    rows = stack_features(stack_inputs, [RECORD_ID, CUSTOMER_ID], LABEL_INDEX, k).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        half = customer_bucket(F.col(CUSTOMER_ID), settings.seed + 3) % 2
        ens = settings.ensemble
        # the mean combiner has k x k coefficients whatever the members: its weakest L2 only
        candidates = ([("mean", min(ens.reg_params))] if ens.combiner in ("auto", "mean") else []) + \
                     ([("stacked", r) for r in dict.fromkeys(ens.reg_params)] if ens.combiner in ("auto", "stacked")
                      else [])
        choice = (choose_combiner(rows, half, LABEL_INDEX, k, candidates) if len(candidates) > 1
                  else CombinerChoice(*candidates[0], {}, cross_fit(rows, half, LABEL_INDEX, k, *candidates[0])))
        held_out = choice.predictions.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            rule = decision_rule(settings.decision, k).fit(held_out)
            metric = evaluator.evaluate(rule.transform(held_out))
        finally:
            held_out.unpersist()
        state = fit_stacker(rows, LABEL_INDEX, k, choice.reg_param, choice.combiner)
    finally:
        rows.unpersist()
    # copies of the stages: the reasons step later sets XGBoost's own stage to write SHAP values
    members = [PipelineModel(stages=[s.copy() for s in fitted[n].stages
                                     if not isinstance(s, (DecisionRuleModel, ReasonCodesModel))])
               for n in names]
    model = PipelineModel(stages=[stacker_model(names, members, k, state), rule])
    chosen = {"combiner": choice.combiner, "reg_param": choice.reg_param}
    tuned = TuningResult(model=model, method=f"stacking of {', '.join(names)}; combiner chosen by cross-fitted "
                                             f"log-loss on their held-out predictions",
                         metric_name="log_loss", best_params=chosen,
                         grid=[{"params": {"combiner": c, "reg_param": r}, "metric": choice.log_loss[candidate_label(c, r)]}
                               for c, r in candidates if candidate_label(c, r) in choice.log_loss])
    return model, tuned, rule.describe(classes), metric


def use_kfold(settings: SelectionSettings, rows: int) -> bool:
    """k-fold selection: chosen, or ``auto`` with at most ``kfold_max_rows`` train + validation rows."""
    return settings.method == "kfold" or (settings.method == "auto" and rows <= settings.kfold_max_rows)


def decision_rule(settings: DecisionSettings, num_classes: int) -> DecisionRule:
    """The unfitted decision rule of the config (fitted on a model's validation predictions)."""
    costs = json.dumps(settings.cost_matrix) if settings.cost_matrix is not None else ""
    return DecisionRule(numClasses=num_classes, objective=settings.objective, costMatrix=costs, labelCol=LABEL_INDEX)


def evaluate(predictions: DataFrame, classes: list[str], calibrated: bool = False) -> ModelMetrics:
    """All metrics of a fitted pipeline's predictions (see credit_spark.ml.metrics)."""
    return metrics_evaluate(predictions, classes, label_col=LABEL_INDEX,
                            raw_probability_col=RAW_PROBABILITY if calibrated else None)


# --------------------------------------------------------------------------- promotion
def evaluate_champion(cfg: Config, test: DataFrame) -> tuple[str | None, float | None, int | None]:
    """The current champion ("algorithm vN"), its primary metric on this run's test split, and
    its version. A champion that *cannot apply* to this data (other classes, or features it
    needs are gone) scores None and may be replaced; any other failure (store unreachable,
    files missing) stops the run rather than silently moving the alias."""
    from pyspark.errors import AnalysisException

    version = registry.champion_version(cfg)
    if version is None:
        return None, None, None
    record = registry.record(cfg, version)
    label = f"{record.model_name} v{version}"
    if record.classes != cfg.spec.label.classes:
        logger.warning("champion %s predicts %s, this run %s", label, record.classes, cfg.spec.label.classes)
        return label, None, version
    model = registry.load_model(cfg, record)
    try:
        metrics = evaluate(model.transform(test), cfg.spec.label.classes)
    except AnalysisException as exc:
        logger.warning("champion %s cannot score this run's test set: %s", label, str(exc).splitlines()[0])
        return label, None, version
    return label, float(getattr(metrics, cfg.train.primary_metric)), version


def export_scorecard(spark: SparkSession, cfg: Config, model: ScorecardModel, version: int) -> None:
    """Append the fitted card (feature, bin, WOE, points, IV) to the ``scorecard`` table."""
    rows = [(version, r["feature"], r["bin"], float(r["woe"]), float(r["points"]), float(r["iv"]))
            for r in model.scorecard_table()]
    frame = spark.createDataFrame(rows, "model_version int, feature string, bin string, woe double, "
                                        "points double, iv double")
    append(frame, cfg.table_path(SCORECARD))


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


# --------------------------------------------------------------------------- explanations, baselines
def reasons_stage(name: str, model: PipelineModel, card: ScorecardModel | None, train: DataFrame, adverse: int,
                  max_reasons: int) -> ReasonCodesModel:
    """The adverse-action reasons stage of a fitted model (see credit_spark.ml.reasons)."""
    if name == BASELINE:
        return points_reasons(fitted_classifier(model), None, max_reasons)
    if name == "logistic_regression":
        return linear_reasons(model, train, adverse, max_reasons)
    if name == "xgboost":
        return contribution_reasons(model, train.limit(0), adverse, adverse + 1, max_reasons)
    if name == ENSEMBLE and card is not None:   # the stack mixes every input: the whole card explains it
        return points_reasons(card, None, max_reasons)
    if card is None:
        logger.warning("%s: no scorecard in this run to explain it with; its scores will carry no reasons", name)
        return ReasonCodesModel(method="points", state=json.dumps({"points": {}, "edges": {}}))
    # trees: the card restricted to the features the trees use; the network uses every input
    return points_reasons(card, used_features(model, train.limit(0)), max_reasons)


def monitoring_reference(validation: DataFrame, test: DataFrame, has_period: bool) -> DataFrame:
    """The population a night is compared with: held-out customers (out of sample, so a model's
    scores are not sharper than on new data) of the latest labelled period (one month, like a
    night: history features such as ``__history`` differ between a customer's first and later
    months, so a profile over all months would alarm every night)."""
    held_out = validation.unionByName(test)
    if not has_period:
        return held_out
    latest = held_out.agg(F.max(PERIOD)).first()[0]
    return held_out.where(F.col(PERIOD) == latest)


def monitoring_baselines(fitted: dict[str, PipelineModel], reference: DataFrame, cfg: Config) -> dict[str, dict]:
    """Per model: the reference distribution of every input (profiled once) and of its score."""
    spec = cfg.spec
    inputs = baseline_profile(reference, numeric_features(spec), categorical_features(spec), score_col=None)
    out = {}
    for name, model in fitted.items():
        scored = (model.transform(reference).transform(with_score_points(spec.label.classes, cfg.train.scorecard))
                  .select(SCORE_POINTS).persist(StorageLevel.MEMORY_AND_DISK))   # one pass for edges and counts
        try:
            score = baseline_profile(scored, [], [], score_col=SCORE_POINTS)
        finally:
            scored.unpersist()
        out[name] = {**inputs, "features": {**inputs["features"], **score["features"]}}
    return out


def model_signature(sample, spec):
    """MLflow signature (feature columns -> predicted class index) from a few rows."""
    from mlflow.models import infer_signature

    inputs = sample[[*numeric_features(spec), *categorical_features(spec)]]
    return infer_signature(inputs, sample[LABEL_INDEX].rename("prediction"))


# --------------------------------------------------------------------------- job
def class_counts(df: DataFrame) -> dict[int, int]:
    return {int(r[0]): int(r[1]) for r in df.groupBy(LABEL_INDEX).count().collect()}


def train(spark: SparkSession, cfg: Config) -> TrainResult:
    """Fit, tune, calibrate and evaluate every configured algorithm; log, register and promote."""
    import mlflow

    spec, settings = cfg.spec, cfg.train
    classes = spec.label.classes
    experiment_id = registry.configure(cfg)        # a wrong tracking config fails before any work
    if "neural_network" in settings.algorithms:    # so does a backend that is not installed
        from credit_spark.ml.neural import require_backend
        require_backend(settings.neural_network.backend, spark)
    if "xgboost" in settings.algorithms:
        require_xgboost(spark)
    require_connect_training(spark)                 # so does a Connect server that cannot keep the models
    features, features_version = read_snapshot(spark, cfg, FEATURES)
    require_feature_columns(features, spec, features_version)
    labelled = features.where(F.col(LABEL).isNotNull()).transform(with_label_index(classes))
    splits = make_splits(labelled, settings)
    train_counts = class_counts(splits.train)
    if not train_counts:
        raise NoRecordsError(f"features v{features_version} has no labelled rows to train on")
    absent = [c for i, c in enumerate(classes) if i not in train_counts]
    if absent:   # a model cannot learn (or output a probability for) a class it never saw
        raise NoRecordsError(f"the training split of features v{features_version} has no record of class(es) "
                             f"{absent}: add labelled data or lower train.test_fraction")
    weights = (balanced_weights(train_counts, len(classes)) if settings.class_weight == "balanced" else {})
    persisted = [splits.train.transform(with_class_weights(weights)).persist(StorageLevel.MEMORY_AND_DISK),
                 splits.validation.persist(StorageLevel.MEMORY_AND_DISK),
                 splits.test.persist(StorageLevel.MEMORY_AND_DISK)]
    train_df, validation_df, test_df = persisted
    predictions: dict[str, DataFrame] = {}
    try:
        rows = {"train_rows": sum(train_counts.values()), "validation_rows": validation_df.count(),
                "test_rows": test_df.count()}
        for name, key in (("validation", "validation_fraction"), ("test", "test_fraction")):
            if rows[f"{name}_rows"] == 0:
                raise NoRecordsError(f"the {name} split of features v{features_version} is empty: "
                                     f"raise train.{key} or add customers")
        logger.info("split %s: %s", splits.description, rows)
        evaluator = MetricEvaluator(metricName=settings.primary_metric, classes=classes, labelCol=LABEL_INDEX)
        calibration: dict[str, CalibrationChoice] = {}
        fitted: dict[str, PipelineModel] = {}
        tuning: dict[str, TuningResult] = {}
        metrics: dict[str, ModelMetrics] = {}
        validation_metric: dict[str, float] = {}
        fit_seconds: dict[str, float] = {}
        decisions: dict[str, str] = {}
        stack_inputs: dict[str, DataFrame] = {}
        kfold = use_kfold(settings.selection, rows["train_rows"] + rows["validation_rows"])
        if kfold:   # training + validation customers, weighted by their own class counts
            development = splits.train.unionByName(splits.validation)
            dev_weights = (balanced_weights(class_counts(development), len(classes))
                           if settings.class_weight == "balanced" else {})
            development = development.transform(with_class_weights(dev_weights)).persist(StorageLevel.MEMORY_AND_DISK)
            persisted.append(development)
        selection = (f"models tuned, calibrated and given their decision rule on {settings.selection.folds}-fold "
                     f"out-of-fold predictions over train + validation customers, then refitted on both"
                     if kfold else "models tuned, calibrated and given their decision rule on the validation split")
        logger.info("selection: %s", selection)
        fit_rows = development if kfold else train_df
        for algorithm in settings.algorithms:
            started = time.perf_counter()
            pipeline = build_pipeline(spec, algorithm, settings, cfg.lake.root)
            if kfold and algorithm != "neural_network":   # the network keeps its early-stopping holdout
                folded = fit_kfold(pipeline, algorithm, settings, development, evaluator, settings.selection.folds,
                                   [RECORD_ID, CUSTOMER_ID, LABEL_INDEX])
                tuned, model = folded.tuning, folded.model
                held_out = folded.out_of_fold.persist(StorageLevel.MEMORY_AND_DISK)
            else:
                tuned = fit_tuned(pipeline, algorithm, settings, train_df, validation_df, evaluator)
                model = tuned.model
                held_out = model.transform(validation_df).persist(StorageLevel.MEMORY_AND_DISK)
            try:
                calibration[algorithm] = choose_calibration(
                    held_out, classes, LABEL_INDEX, customer_bucket(F.col(CUSTOMER_ID), settings.seed + 2) % 2,
                    settings.calibration)
                after = []   # fitted on the held-out predictions: calibrator, then decision rule
                if calibration[algorithm].method != "none":
                    after.append(ProbabilityCalibrator(method=calibration[algorithm].method, labelCol=LABEL_INDEX,
                                                       numClasses=len(classes)).fit(held_out))
                calibrated_held_out = PipelineModel(stages=after).transform(held_out)
                if settings.ensemble.enabled:   # the stack learns from these; materialised before held_out goes
                    stack_inputs[algorithm] = calibrated_held_out.select(
                        RECORD_ID, CUSTOMER_ID, LABEL_INDEX, "probability").persist(StorageLevel.MEMORY_AND_DISK)
                    stack_inputs[algorithm].count()
                rule = decision_rule(settings.decision, len(classes)).fit(calibrated_held_out)
                after.append(rule)
                decisions[algorithm] = rule.describe(classes)
                validation_metric[algorithm] = evaluator.evaluate(PipelineModel(stages=after).transform(held_out))
            finally:
                held_out.unpersist()
            model = PipelineModel(stages=[*model.stages, *after])
            fitted[algorithm], tuning[algorithm] = model, tuned
            fit_seconds[algorithm] = time.perf_counter() - started
            calibrated = calibration[algorithm].method != "none"
            keep = [RECORD_ID, LABEL_INDEX, "prediction", "probability", *([RAW_PROBABILITY] if calibrated else [])]
            predictions[algorithm] = (model.transform(test_df).select(*keep)
                                      .persist(StorageLevel.MEMORY_AND_DISK))
            metrics[algorithm] = evaluate(predictions[algorithm], classes, calibrated)
            logger.info("%s: validation %s %.4f; test %s", algorithm, settings.primary_metric,
                        validation_metric[algorithm], {k: round(v, 4) for k, v in metrics[algorithm].headline().items()})

        if len(stack_inputs) >= 2:
            started = time.perf_counter()
            ensemble, tuning[ENSEMBLE], decisions[ENSEMBLE], validation_metric[ENSEMBLE] = fit_ensemble(
                fitted, stack_inputs, settings, classes, evaluator)
            fitted[ENSEMBLE], calibration[ENSEMBLE] = ensemble, CalibrationChoice("stacked")
            fit_seconds[ENSEMBLE] = time.perf_counter() - started
            predictions[ENSEMBLE] = (ensemble.transform(test_df).select(RECORD_ID, LABEL_INDEX, "prediction",
                                                                         "probability")
                                     .persist(StorageLevel.MEMORY_AND_DISK))
            metrics[ENSEMBLE] = evaluate(predictions[ENSEMBLE], classes)
            logger.info("%s of %s: validation %s %.4f; test %s", ENSEMBLE, list(stack_inputs), settings.primary_metric,
                        validation_metric[ENSEMBLE], {k: round(v, 4) for k, v in metrics[ENSEMBLE].headline().items()})

        # monitoring baselines and explanations travel with each model (the baselines first: a
        # score's distribution does not need its reasons computed)
        baselines = monitoring_baselines(
            fitted, monitoring_reference(validation_df, test_df, spec.period is not None), cfg)
        card = fitted_classifier(fitted[BASELINE]) if BASELINE in fitted else None
        for name in list(fitted):
            # uncoded output (for inspection) keeps a few candidates per reason; the scorer sets the
            # dataset's codes and score.max_reasons on the stage (ReasonCodesModel.with_codes)
            stage = reasons_stage(name, fitted[name], card, fit_rows, len(classes) - 1, 4 * cfg.score.max_reasons)
            fitted[name] = PipelineModel(stages=[*fitted[name].stages, stage])

        comparison: list[Difference] = []
        if BASELINE in fitted:
            adverse = classes[-1]
            for name in fitted:
                if name == BASELINE:
                    continue
                comparison += compare_with_baseline(
                    name, predictions[name], BASELINE, predictions[BASELINE], metrics[name].headline(),
                    metrics[BASELINE].headline(),
                    (metrics[name].per_class[adverse]["auc"], metrics[BASELINE].per_class[adverse]["auc"]),
                    classes, RECORD_ID, LABEL_INDEX, settings.comparison.bootstrap_samples,
                    settings.comparison.confidence, settings.comparison.seed)
        importances = {name: importance(model, test_df.limit(0)) for name, model in fitted.items()}
        selected = max(validation_metric, key=validation_metric.get)
        champion, champion_value, champion_before = evaluate_champion(cfg, test_df)
        signature_sample = test_df.limit(5).toPandas()     # five rows: the model's input schema
        promotion = decide_promotion(selected, float(getattr(metrics[selected], settings.primary_metric)),
                                     champion, champion_value, settings.primary_metric, settings.promotion.margin)
    finally:
        for df in [*persisted, *predictions.values(), *stack_inputs.values()]:
            df.unpersist()

    run_number = len(registry.training_runs(experiment_id)) + 1
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{run_number}",
                          tags={registry.TRAIN_RUN_TAG: "train", "dataset": cfg.dataset}) as run:
        run_id = run.info.run_id
        params = {"dataset": cfg.dataset, "features_version": features_version, "split.description":
                  splits.description, **rows, **registry.flatten("train", cfg.as_dict()["train"])}
        mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
        for name, m in metrics.items():
            mlflow.log_metrics(_finite({f"{name}.test.{k}": v for k, v in m.headline().items()}))
            mlflow.log_metrics(_finite({f"{name}.test.uncalibrated_{k}": v for k, v in m.uncalibrated.items()}))
            mlflow.log_metric(f"{name}.validation.{settings.primary_metric}", validation_metric[name])
            if tuning[name].best_params:
                mlflow.log_params({f"{name}.best.{k}": v for k, v in tuning[name].best_params.items()})
        for d in comparison:
            mlflow.log_metrics(_finite({f"{d.model}.vs_{d.baseline}.{d.metric}.diff": d.difference,
                                        f"{d.model}.vs_{d.baseline}.{d.metric}.ci_low": d.ci_low,
                                        f"{d.model}.vs_{d.baseline}.{d.metric}.ci_high": d.ci_high}))
        for name, baseline in baselines.items():
            mlflow.log_dict(baseline, f"baseline/{name}.json")
        signature = model_signature(signature_sample, spec)
        versions = {}
        for name, model in fitted.items():
            versions[name] = registry.log_spark_model(model, name, cfg, signature=signature, tags={
                "classes": json.dumps(classes), "features_version": str(features_version), "training_run": run_id,
                f"test_{settings.primary_metric}": f"{getattr(metrics[name], settings.primary_metric):.6f}"})
        mlflow.set_tags({"selected": selected, "promotion.decision": promotion.decision,
                         "promotion.reason": promotion.reason[:5000]})

        scorecard = fitted_classifier(fitted[BASELINE]) if BASELINE in fitted else None
        results = report_results(cfg, run_id=run_id, run_number=run_number, features_version=features_version,
                                 rows=rows, split_description=f"{splits.description}; {selection}",
                                 metrics=metrics, tuning=tuning,
                                 importances=importances, comparison=comparison, selected=selected,
                                 promotion=promotion, scorecard=scorecard, versions=versions,
                                 decisions=decisions, calibration=calibration)
        out = report_root(cfg) / f"run-{run_number}-{run_id[:8]}"
        write_report(results, out)
        mlflow.log_artifacts(str(out), "report")
    logger.info("report: %s — %s", out, verdict(load_results(out)))
    if scorecard is not None:
        export_scorecard(spark, cfg, scorecard, versions[BASELINE])
    # the alias moves last, once the run is complete, and only if no one moved it meanwhile
    if promotion.decision == "promoted":
        if registry.champion_version(cfg) != champion_before:
            raise ModelNotFoundError(f"the '{settings.promotion.alias}' alias moved while this run trained "
                                     f"(another training run?): {selected} v{versions[selected]} was registered "
                                     f"but not promoted; rerun `credit-spark train` to compare again")
        registry.set_champion(cfg, versions[selected])
    with mlflow.start_run(run_id=run_id):
        mlflow.set_tag("champion_version", str(registry.champion_version(cfg)))
    logger.info("promotion: %s %s (%s)", selected, promotion.decision, promotion.reason)
    return TrainResult(run_id=run_id, features_version=features_version, train_rows=rows["train_rows"],
                       validation_rows=rows["validation_rows"], test_rows=rows["test_rows"], metrics=metrics,
                       validation_metrics=validation_metric, selected=selected, versions=versions,
                       promotion=promotion, comparison=comparison, report_dir=str(out), fit_seconds=fit_seconds)
