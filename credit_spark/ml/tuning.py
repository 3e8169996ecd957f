"""Hyperparameter search over the config's grids, with customers never split across folds.

* ``cross_validation`` — MLlib's ``CrossValidator`` with ``foldCol`` = a hash of the customer id
  (its own random folds would put one customer's months in two folds), ``parallelism`` models at
  a time; the best params are refitted on all training customers.
* ``train_validation_split`` — each grid point is fitted on the training split and scored on the
  customer-grouped validation split (MLlib's ``TrainValidationSplit`` splits rows at random, so
  the grouped split is done here, with the same thread-pool parallelism).

The metric is the run's ``primary_metric`` computed by :mod:`credit_spark.ml.metrics` (MLlib's
evaluators have no macro-F1), through :class:`MetricEvaluator`.
"""
from __future__ import annotations

import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyspark import keyword_only
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import Evaluator
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasLabelCol, HasPredictionCol, HasProbabilityCol
from pyspark.ml.tuning import CrossValidator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credit_spark.config.loader import CalibrationSettings, TuningSettings
from credit_spark.lake.session import in_session
from credit_spark.ml.calibration import ProbabilityCalibrator
from credit_spark.ml.metrics import CONFUSION_METRICS, confusion_matrix, confusion_metrics, evaluate, log_loss_and_auc
from credit_spark.ml.models import CLASS_WEIGHT, param_grid, params_as_settings
from credit_spark.transforms.splits import CV_FOLD, with_cv_fold

logger = logging.getLogger(__name__)

#: marks the validation rows of an early-stopping fit (the estimator's ``validationIndicatorCol``)
VALIDATION_INDICATOR = "is_validation"


class MetricEvaluator(Evaluator, HasLabelCol, HasPredictionCol, HasProbabilityCol):
    """One of credit_spark's metrics (macro_f1, accuracy, auc, ...) as an MLlib Evaluator."""

    metricName = Param(Params._dummy(), "metricName", "ModelMetrics field to maximise",
                       typeConverter=TypeConverters.toString)
    classes = Param(Params._dummy(), "classes", "class names in label-index order",
                    typeConverter=TypeConverters.toListString)

    @keyword_only
    def __init__(self, *, metricName: str = "macro_f1", classes: list[str] | None = None,
                 labelCol: str = "label", predictionCol: str = "prediction", probabilityCol: str = "probability"):
        super().__init__()
        self._setDefault(metricName="macro_f1", labelCol="label", predictionCol="prediction",
                         probabilityCol="probability")
        self._set(**self._input_kwargs)

    def _evaluate(self, dataset: DataFrame) -> float:
        name = self.getOrDefault("metricName")
        if name in CONFUSION_METRICS:   # one aggregation instead of the full set's five or six
            classes = self.getOrDefault("classes")
            confusion = confusion_matrix(dataset, len(classes), self.getLabelCol(), self.getPredictionCol())
            return float(confusion_metrics(confusion, classes)[name])
        metrics = evaluate(dataset, self.getOrDefault("classes"), label_col=self.getLabelCol(),
                           probability_col=self.getProbabilityCol(), prediction_col=self.getPredictionCol())
        return float(getattr(metrics, name))

    def isLargerBetter(self) -> bool:
        return self.getOrDefault("metricName") not in ("log_loss", "brier", "ece")


def fit_with_validation(pipeline: Pipeline, train: DataFrame, validation: DataFrame, label_col: str,
                        weight_col: str | None, param_maps: list[dict] | None = None) -> list[PipelineModel]:
    """Fit the preprocessing on the training rows only, then the last stage (which stops early:
    the network, XGBoost) on the training rows with the preprocessed validation rows marked by
    its ``validationIndicatorCol``, once per param map (in turn: each fit already uses every task
    slot). Validation rows get the training split's class weights, so the watched loss is the
    loss being minimised."""
    *front, last = pipeline.getStages()
    prep = Pipeline(stages=front).fit(train)
    if weight_col and weight_col in train.columns:
        weights = {r[0]: r[1] for r in train.select(label_col, weight_col).distinct().collect()}
        mapping = F.create_map(*[x for k, w in sorted(weights.items()) for x in (F.lit(k), F.lit(w))])
        validation = validation.withColumn(weight_col, F.coalesce(F.element_at(mapping, F.col(label_col)), F.lit(1.0)))
    elif weight_col:
        validation = validation.withColumn(weight_col, F.lit(1.0))
    marked = (prep.transform(train).withColumn(VALIDATION_INDICATOR, F.lit(False))
              .unionByName(prep.transform(validation).withColumn(VALIDATION_INDICATOR, F.lit(True)),
                           allowMissingColumns=True))
    return [PipelineModel(stages=[*prep.stages,
                                  last.copy({**pm, last.validationIndicatorCol: VALIDATION_INDICATOR}).fit(marked)])
            for pm in (param_maps or [{}])]


def boosting_rounds(model: PipelineModel) -> int:
    """The rounds an early-stopped XGBoost model predicts with (its best iteration + 1)."""
    booster = model.stages[-1].get_booster()
    best = booster.attr("best_iteration")
    return int(best) + 1 if best is not None else booster.num_boosted_rounds()


@dataclass
class TuningResult:
    model: PipelineModel
    method: str
    metric_name: str
    best_params: dict = field(default_factory=dict)
    grid: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"method": self.method, "metric_name": self.metric_name, "best_params": self.best_params,
                "grid": self.grid}


def fit_tuned(pipeline: Pipeline, algorithm: str, settings, train: DataFrame, validation: DataFrame,
              evaluator: MetricEvaluator) -> TuningResult:
    """Fit ``pipeline``, searching its grid when tuning is on and the algorithm has one."""
    tuning: TuningSettings = settings.tuning
    grid = param_grid(pipeline, algorithm, settings) if tuning.method != "none" else []
    metric = evaluator.getOrDefault("metricName")
    pick = max if evaluator.isLargerBetter() else min
    weight = CLASS_WEIGHT if CLASS_WEIGHT in train.columns else None
    if algorithm == "xgboost":          # early stopping on the validation split for every grid point
        candidates = fit_with_validation(pipeline, train, validation, evaluator.getLabelCol(), weight, grid)
        # a single candidate has nothing to be picked against: no prediction pass over validation for it
        scores = [evaluator.evaluate(m.transform(validation)) for m in candidates] if grid else [float("nan")]
        best = scores.index(pick(scores)) if grid else 0
        rounds = [boosting_rounds(m) for m in candidates]
        table = [{"params": {**params_as_settings(pm), "rounds": r}, "metric": float(sc)}
                 for pm, r, sc in zip(grid or [{}], rounds, scores)]
        best_params = {**params_as_settings((grid or [{}])[best]), "rounds": rounds[best]}
        if grid:
            logger.info("%s: early stopping over %d grid points, best %s = %.4f with %s", algorithm,
                        len(table), metric, scores[best], best_params)
        else:
            logger.info("%s: early stopping at %s", algorithm, best_params)
        return TuningResult(model=candidates[best], method="early_stopping" + (" + " + tuning.method if grid else ""),
                            metric_name=metric, best_params=best_params, grid=table if grid else [])
    if algorithm == "neural_network":   # every candidate stops early on the validation split
        candidates = fit_with_validation(pipeline, train, validation, evaluator.getLabelCol(), weight, grid)
        scores = [evaluator.evaluate(m.transform(validation)) for m in candidates] if grid else [float("nan")]
        best = scores.index(pick(scores)) if grid else 0
        model = candidates[best]
        info = model.stages[-1].fit_info()
        summary = {k: info[k] for k in ("backend", "world_size", "device", "epochs", "best_epoch")}
        summary["samples_per_second"] = round(info["samples_per_second"], 1)
        if grid:
            summary.update(params_as_settings(grid[best]))
            table = [{"params": {**params_as_settings(pm), "best_epoch": m.stages[-1].fit_info()["best_epoch"]},
                      "metric": float(sc)} for pm, m, sc in zip(grid, candidates, scores)]
            logger.info("%s: early stopping over %d grid point(s), best %s = %.4f with %s", algorithm, len(grid),
                        metric, scores[best], params_as_settings(grid[best]))
            return TuningResult(model=model, method="early_stopping + " + tuning.method, metric_name=metric,
                                best_params=summary, grid=table)
        history = [{"params": {"epoch": h["epoch"], "train_loss": round(h["train_loss"], 5)},
                    "metric": h.get("validation_loss", float("nan"))} for h in info["history"]]
        return TuningResult(model=model, method="early_stopping", metric_name="validation_loss",
                            best_params=summary, grid=history)
    if not grid:
        return TuningResult(model=pipeline.fit(train), method="none", metric_name=metric)
    if tuning.method == "cross_validation":
        cv = CrossValidator(estimator=pipeline, estimatorParamMaps=grid, evaluator=evaluator,
                            numFolds=tuning.num_folds, foldCol=CV_FOLD, parallelism=tuning.parallelism,
                            seed=settings.seed)
        folded = train.transform(with_cv_fold(tuning.num_folds, settings.seed))
        fitted = cv.fit(folded)
        scores = list(fitted.avgMetrics)
        model = fitted.bestModel
    else:
        def fit_and_score(param_map: dict) -> tuple[PipelineModel, float]:
            model = pipeline.copy(param_map).fit(train)
            return model, evaluator.evaluate(model.transform(validation))
        with ThreadPoolExecutor(max_workers=min(tuning.parallelism, len(grid))) as pool:
            results = list(pool.map(in_session(train.sparkSession, fit_and_score), grid))
        scores = [score for _, score in results]
        model = results[scores.index(pick(scores))][0]
    best = grid[scores.index(pick(scores))]
    table = [{"params": params_as_settings(pm), "metric": float(s)} for pm, s in zip(grid, scores)]
    logger.info("%s: %s over %d grid points, best %s = %.4f with %s", algorithm, tuning.method, len(grid),
                metric, pick(scores), params_as_settings(best))
    return TuningResult(model=model, method=tuning.method, metric_name=metric,
                        best_params=params_as_settings(best), grid=table)


# --------------------------------------------------------------------------- k-fold selection
@dataclass
class FoldedFit:
    #: the chosen grid point refitted on every row
    model: PipelineModel
    tuning: TuningResult
    #: the chosen grid point's predictions of every row by the fold model that did not see it
    out_of_fold: DataFrame


def fit_kfold(pipeline: Pipeline, algorithm: str, settings, data: DataFrame, evaluator: MetricEvaluator,
              folds: int, keep: list[str]) -> FoldedFit:
    """Customer-grouped k-fold (``cv_fold`` = a hash of the customer, as in cross-validation):
    each grid point is fitted on k - 1 folds and predicts the remaining one; the grid point with
    the best metric over all out-of-fold predictions is refitted on ``data``. XGBoost stops early
    on the held-out fold and is refitted with the mean of its folds' best rounds. ``keep``: the
    columns of ``data`` carried into the out-of-fold predictions (next to prediction and probability)."""
    grid = param_grid(pipeline, algorithm, settings) if settings.tuning.method != "none" else []
    maps = grid or [{}]
    metric = evaluator.getOrDefault("metricName")
    pick = max if evaluator.isLargerBetter() else min
    label = evaluator.getLabelCol()
    weight = CLASS_WEIGHT if CLASS_WEIGHT in data.columns else None
    folded = data.transform(with_cv_fold(folds, settings.seed))
    parts: list[list[DataFrame]] = [[] for _ in maps]
    rounds: list[list[int]] = [[] for _ in maps]
    for fold in range(folds):
        fit_rows, held = folded.where(F.col(CV_FOLD) != fold), folded.where(F.col(CV_FOLD) == fold)
        if algorithm == "xgboost":
            models = fit_with_validation(pipeline, fit_rows, held, label, weight, grid)
            for i, m in enumerate(models):
                rounds[i].append(boosting_rounds(m))
        else:
            with ThreadPoolExecutor(max_workers=min(settings.tuning.parallelism, len(maps))) as pool:
                fit = in_session(data.sparkSession, lambda pm: pipeline.copy(pm).fit(fit_rows))
                models = list(pool.map(fit, maps))
        for i, m in enumerate(models):
            parts[i].append(m.transform(held).select(*keep, "prediction", "probability"))
    # the union has every fold's partitions: coalesced, or each pass over it (an MLlib iteration of
    # the calibrator) pays k times the tasks
    partitions = int(data.sparkSession.conf.get("spark.sql.shuffle.partitions") or 8)
    out_of_fold = [functools.reduce(DataFrame.unionByName, p).coalesce(partitions) for p in parts]
    scores = [evaluator.evaluate(o) for o in out_of_fold]
    best = scores.index(pick(scores))
    final = pipeline.copy(maps[best])
    best_params = params_as_settings(maps[best])
    if algorithm == "xgboost":
        stage = final.getStages()[-1]
        best_params["rounds"] = max(1, round(sum(rounds[best]) / len(rounds[best])))
        stage.set(stage.n_estimators, best_params["rounds"])
        stage.clear(stage.early_stopping_rounds)      # no validation rows in the refit
    model = final.fit(data)
    table = [{"params": {**params_as_settings(pm), **({"rounds": round(sum(r) / len(r))} if r else {})},
              "metric": float(sc)} for pm, r, sc in zip(maps, rounds, scores)]
    logger.info("%s: %d-fold out-of-fold %s over %d grid point(s), best %.4f with %s", algorithm, folds, metric,
                len(maps), scores[best], best_params)
    tuning = TuningResult(model=model, method=f"kfold ({folds} folds, out of fold)", metric_name=metric,
                          best_params=best_params, grid=table if grid else [])
    return FoldedFit(model=model, tuning=tuning, out_of_fold=out_of_fold[best])


# --------------------------------------------------------------------------- calibration choice
CALIBRATIONS = ("none", "isotonic", "platt")


@dataclass
class CalibrationChoice:
    method: str
    #: per candidate: cross-fitted validation log_loss (over both halves) and auc (mean of the halves')
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"method": self.method, "candidates": self.candidates}


def choose_calibration(predictions: DataFrame, classes: list[str], label_col: str, half: Column,
                       settings: CalibrationSettings) -> CalibrationChoice:
    """The calibration method for one model's validation ``predictions`` (see CalibrationSettings).

    ``half`` (0 or 1 per row, by customer) splits the validation rows: each candidate is fitted on
    one half and applied to the other, both ways, so its log-loss and AUC are measured on rows it
    did not see (fitted and judged on the same rows, the isotonic steps would always win)."""
    if settings.method != "auto":
        return CalibrationChoice(settings.method)
    k = len(classes)
    marked = predictions.withColumn("__half", half).persist()
    try:
        halves = [marked.where(F.col("__half") == i) for i in (0, 1)]
        if any(h.isEmpty() for h in halves):
            logger.warning("calibration: too few validation customers to cross-fit; none chosen")
            return CalibrationChoice("none")
        scored = {"none": halves}
        for method in CALIBRATIONS[1:]:
            scored[method] = [ProbabilityCalibrator(method=method, labelCol=label_col, numClasses=k)
                              .fit(halves[1 - i]).transform(halves[i]) for i in (0, 1)]
        table = {}
        for method, parts in scored.items():
            # per half, then combined: two halves' curves differ, so a pooled AUC would mix two rankings
            m = [log_loss_and_auc(part, k, label_col) for part in parts]     # (log-loss, AUC, rows)
            table[method] = {"log_loss": sum(loss * n for loss, _, n in m) / sum(n for _, _, n in m),
                             "auc": sum(auc for _, auc, _ in m) / 2}
    finally:
        marked.unpersist()
    floor = table["none"]["auc"] - settings.auc_tolerance
    eligible = [m for m in CALIBRATIONS if m == "none" or table[m]["auc"] >= floor]
    chosen = min(eligible, key=lambda m: table[m]["log_loss"])
    logger.info("calibration: %s chosen by cross-fitted validation log-loss %s", chosen,
                {m: {k: round(v, 4) for k, v in t.items()} for m, t in table.items()})
    return CalibrationChoice(chosen, table)
