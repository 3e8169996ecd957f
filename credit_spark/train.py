"""Train MLlib models on ``features``: customer-grouped split, one Pipeline per algorithm, metrics.

All fitted state (imputation medians, category indexes, scaling) lives in the saved
``PipelineModel``, so the scorer applies exactly what training learned.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from pyspark import StorageLevel
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from credit_spark.config import Config, DatasetSpec, TrainSettings
from credit_spark import registry
from credit_spark.errors import NoRecordsError
from credit_spark.metrics import ModelMetrics
from credit_spark.metrics import evaluate as metrics_evaluate
from credit_spark.scorecard import Scorecard, ScorecardModel
from credit_spark.stages import MedianImputer
from credit_spark.features import CUSTOMER_ID, LABEL, Transform, categorical_features, numeric_features
from credit_spark.tables import FEATURES, SCORECARD, append, read_snapshot

logger = logging.getLogger(__name__)

LABEL_INDEX = "label_index"
SPLIT_BUCKETS = 10_000


@dataclass(frozen=True)
class TrainResult:
    version: int
    features_version: int
    train_rows: int
    test_rows: int
    metrics: dict[str, ModelMetrics] = field(default_factory=dict)
    selected: str = ""


# --------------------------------------------------------------------------- transforms
def is_test_customer(customer_id: Column, test_fraction: float, seed: int) -> Column:
    """A seeded hash of the customer id: every record of a customer falls on the same side."""
    bucket = F.pmod(F.xxhash64(customer_id, F.lit(seed)), F.lit(SPLIT_BUCKETS))
    return bucket < int(round(test_fraction * SPLIT_BUCKETS))


def with_label_index(classes: list[str]) -> Transform:
    """Label text -> 0-based index in the spec's class order (so probability i is class i)."""
    def transform(df: DataFrame) -> DataFrame:
        idx = F.array_position(F.array(*[F.lit(c) for c in classes]), F.col(LABEL)) - 1
        return df.withColumn(LABEL_INDEX, idx.cast("double"))
    return transform


def split_by_customer(df: DataFrame, test_fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    test = is_test_customer(F.col(CUSTOMER_ID), test_fraction, seed)
    return df.where(~test), df.where(test)


# --------------------------------------------------------------------------- pipeline
def preprocessing_stages(spec: DatasetSpec) -> list:
    """Imputation, indexing/encoding, assembling and scaling: the shared front of every model."""
    numeric, categorical = numeric_features(spec), categorical_features(spec)
    imputed = [f"{c}__imputed" for c in numeric]
    indexed = [f"{c}__index" for c in categorical]
    encoded = [f"{c}__onehot" for c in categorical]
    stages = [MedianImputer(inputCols=numeric, outputCols=imputed)]
    if categorical:
        stages += [StringIndexer(inputCols=categorical, outputCols=indexed, handleInvalid="keep",
                                 stringOrderType="frequencyDesc"),
                   OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep")]
    stages += [VectorAssembler(inputCols=imputed + encoded, outputCol="features_raw", handleInvalid="keep"),
               StandardScaler(inputCol="features_raw", outputCol="features", withMean=False, withStd=True)]
    return stages


def classifier(name: str, settings: TrainSettings):
    if name == "logistic_regression":
        s = settings.logistic_regression
        return LogisticRegression(featuresCol="features", labelCol=LABEL_INDEX, family="multinomial",
                                  maxIter=s.max_iter, regParam=s.reg_param, elasticNetParam=s.elastic_net_param)
    if name == "random_forest":
        s = settings.random_forest
        return RandomForestClassifier(featuresCol="features", labelCol=LABEL_INDEX, numTrees=s.num_trees,
                                      maxDepth=s.max_depth, seed=s.seed)
    raise ValueError(f"unknown algorithm {name!r}")  # config validation stops this earlier


def scorecard_estimator(spec: DatasetSpec, settings: TrainSettings) -> Scorecard:
    """The scorecard bins raw features itself (a missing value is a bin of its own), so it needs
    no imputation, encoding or scaling in front of it."""
    s = settings.scorecard
    return Scorecard(numericCols=numeric_features(spec), categoricalCols=categorical_features(spec),
                     labelCol=LABEL_INDEX, numClasses=len(spec.label.classes), numBins=s.num_bins,
                     minIV=s.min_iv, pdo=s.pdo, baseScore=s.base_score, baseOdds=s.base_odds, regParam=s.reg_param)


def build_pipeline(spec: DatasetSpec, algorithm: str, settings: TrainSettings) -> Pipeline:
    if algorithm == "scorecard":
        return Pipeline(stages=[scorecard_estimator(spec, settings)])
    return Pipeline(stages=[*preprocessing_stages(spec), classifier(algorithm, settings)])


# --------------------------------------------------------------------------- metrics
def evaluate(predictions: DataFrame, classes: list[str]) -> ModelMetrics:
    """All test-set metrics of a fitted pipeline's predictions (see credit_spark.metrics)."""
    return metrics_evaluate(predictions, classes, label_col=LABEL_INDEX)


def export_scorecard(spark: SparkSession, cfg: Config, model: ScorecardModel, version: int) -> None:
    """Append the fitted card (feature, bin, WOE, points, IV) to the ``scorecard`` table."""
    rows = [(version, r["feature"], r["bin"], float(r["woe"]), float(r["points"]), float(r["iv"]))
            for r in model.scorecard_table()]
    frame = spark.createDataFrame(rows, "model_version int, feature string, bin string, woe double, "
                                        "points double, iv double")
    append(frame, cfg.table_path(SCORECARD))


# --------------------------------------------------------------------------- job
def train(spark: SparkSession, cfg: Config) -> TrainResult:
    """Fit every configured algorithm, evaluate on held-out customers, register the models."""
    spec, settings = cfg.spec, cfg.train
    features, features_version = read_snapshot(spark, cfg, FEATURES)
    labelled = (features.where(F.col(LABEL).isNotNull())
                .transform(with_label_index(spec.label.classes)))
    train_df, test_df = split_by_customer(labelled, settings.test_fraction, settings.seed)
    train_df = train_df.persist(StorageLevel.MEMORY_AND_DISK)   # every algorithm scans it
    test_df = test_df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        train_counts = {int(r[0]): int(r[1]) for r in train_df.groupBy(LABEL_INDEX).count().collect()}
        train_rows, test_rows = sum(train_counts.values()), test_df.count()
        if train_rows == 0:
            raise NoRecordsError(f"features v{features_version} has no labelled rows to train on")
        absent = [c for i, c in enumerate(spec.label.classes) if i not in train_counts]
        if absent:   # a model cannot learn (or output a probability for) a class it never saw
            raise NoRecordsError(f"the training split of features v{features_version} has no record of "
                                 f"class(es) {absent}: add labelled data or lower train.test_fraction")
        logger.info("training on %d rows, testing on %d rows (customer-grouped split, seed %d)",
                    train_rows, test_rows, settings.seed)
        version = registry.next_version(spark, cfg)
        fitted: dict[str, PipelineModel] = {}
        metrics: dict[str, ModelMetrics] = {}
        for algorithm in settings.algorithms:
            model = build_pipeline(spec, algorithm, settings).fit(train_df)
            metrics[algorithm] = evaluate(model.transform(test_df), spec.label.classes)
            fitted[algorithm] = model
            logger.info("%s: %s", algorithm, {k: round(v, 4) for k, v in metrics[algorithm].headline().items()})
    finally:
        train_df.unpersist()
        test_df.unpersist()

    selected = max(metrics, key=lambda a: getattr(metrics[a], settings.primary_metric))
    for algorithm, model in fitted.items():
        registry.register(spark, cfg, model, registry.ModelRecord(
            model_name=algorithm, model_version=version, features_version=features_version,
            train_rows=train_rows, test_rows=test_rows, metrics=metrics[algorithm].headline(),
            per_class=json.dumps(metrics[algorithm].per_class), confusion=json.dumps(metrics[algorithm].confusion),
            classes=spec.label.classes, selected=algorithm == selected,
            config=json.dumps(cfg.as_dict(), default=str)))
    if "scorecard" in fitted:
        export_scorecard(spark, cfg, fitted["scorecard"].stages[-1], version)
    logger.info("registered model version %d; selected %s by %s", version, selected, settings.primary_metric)
    return TrainResult(version=version, features_version=features_version, train_rows=train_rows,
                       test_rows=test_rows, metrics=metrics, selected=selected)
