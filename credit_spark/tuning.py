"""Hyperparameter search over the config's grids, with customers never split across folds.

* ``cross_validation`` — MLlib's ``CrossValidator`` with ``foldCol`` = a hash of the customer id
  (its own random folds would put one customer's months in two folds), ``parallelism`` models at
  a time; the best params are refitted on all training customers.
* ``train_validation_split`` — each grid point is fitted on the training split and scored on the
  customer-grouped validation split (MLlib's ``TrainValidationSplit`` splits rows at random, so
  the grouped split is done here, with the same thread-pool parallelism).

The metric is the run's ``primary_metric`` computed by :mod:`credit_spark.metrics` (MLlib's
evaluators have no macro-F1), through :class:`MetricEvaluator`.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pyspark import keyword_only
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import Evaluator
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasLabelCol, HasPredictionCol, HasProbabilityCol
from pyspark.ml.tuning import CrossValidator
from pyspark.sql import DataFrame

from credit_spark.config import TuningSettings
from credit_spark.metrics import CONFUSION_METRICS, confusion_matrix, confusion_metrics, evaluate
from credit_spark.models import CLASS_WEIGHT, param_grid, params_as_settings
from credit_spark.splits import CV_FOLD, with_cv_fold

logger = logging.getLogger(__name__)


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
    if algorithm == "neural_network":   # no grid: early stopping on the validation split instead
        from credit_spark.neural import fit_with_validation
        weight = CLASS_WEIGHT if CLASS_WEIGHT in train.columns else None
        model = fit_with_validation(pipeline, train, validation, evaluator.getLabelCol(), weight)
        info = model.stages[-1].fit_info()
        summary = {k: info[k] for k in ("backend", "world_size", "device", "epochs", "best_epoch")}
        summary["samples_per_second"] = round(info["samples_per_second"], 1)
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
            results = list(pool.map(fit_and_score, grid))
        scores = [score for _, score in results]
        model = results[scores.index(pick(scores))][0]
    best = grid[scores.index(pick(scores))]
    table = [{"params": params_as_settings(pm), "metric": float(s)} for pm, s in zip(grid, scores)]
    logger.info("%s: %s over %d grid points, best %s = %.4f with %s", algorithm, tuning.method, len(grid),
                metric, pick(scores), params_as_settings(best))
    return TuningResult(model=model, method=tuning.method, metric_name=metric,
                        best_params=params_as_settings(best), grid=table)
