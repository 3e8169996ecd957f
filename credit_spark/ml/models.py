"""The estimators: one ``Pipeline`` per algorithm, with class weights and tuning grids from config.

Every MLlib model shares the same front (imputation, category indexing and one-hot encoding,
assembling, scaling) so all fitted state lives in one ``PipelineModel``; the scorecard bins raw
features itself (a missing value is a bin of its own) and needs none of it.
"""
from __future__ import annotations

import itertools
import re

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression, RandomForestClassifier
from pyspark.ml.feature import OneHotEncoder, StandardScaler, StringIndexer, VectorAssembler
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credit_spark.config.loader import DatasetSpec, TrainSettings
from credit_spark.lake.session import is_connect, spark_schedules_gpus
from credit_spark.ml.introspection import (FEATURES_RAW, fitted_classifier, tree_importances,  # noqa: F401
                                        vector_slot_names)
from credit_spark.ml.scorecard import Scorecard, ScorecardModel
from credit_spark.ml.stages import MedianImputer
from credit_spark.transforms.features import categorical_features, numeric_features

LABEL_INDEX = "label_index"
CLASS_WEIGHT = "class_weight"


def preprocessing_stages(spec: DatasetSpec) -> list:
    """Imputation, indexing/encoding, assembling and scaling: the shared front of every MLlib model."""
    numeric, categorical = numeric_features(spec), categorical_features(spec)
    imputed = [f"{c}__imputed" for c in numeric]
    indexed = [f"{c}__index" for c in categorical]
    encoded = [f"{c}__onehot" for c in categorical]
    stages = [MedianImputer(inputCols=numeric, outputCols=imputed)]
    if categorical:
        stages += [StringIndexer(inputCols=categorical, outputCols=indexed, handleInvalid="keep",
                                 stringOrderType="frequencyDesc"),
                   OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep")]
    stages += [VectorAssembler(inputCols=imputed + encoded, outputCol=FEATURES_RAW, handleInvalid="keep"),
               StandardScaler(inputCol=FEATURES_RAW, outputCol="features", withMean=False, withStd=True)]
    return stages


def classifier(name: str, settings: TrainSettings, num_classes: int, weighted: bool):
    """The MLlib classifier of ``name`` with the configured (untuned) settings."""
    weight = {"weightCol": CLASS_WEIGHT} if weighted else {}
    common = {"featuresCol": "features", "labelCol": LABEL_INDEX, **weight}
    if name == "logistic_regression":
        s = settings.logistic_regression
        family = s.family if s.family != "auto" else ("binomial" if num_classes == 2 else "multinomial")
        return LogisticRegression(family=family, maxIter=s.max_iter, regParam=s.reg_param,
                                  elasticNetParam=s.elastic_net_param, **common)
    if name == "random_forest":
        s = settings.random_forest
        return RandomForestClassifier(numTrees=s.num_trees, maxDepth=s.max_depth,
                                      minInstancesPerNode=s.min_instances_per_node, seed=s.seed, **common)
    if name == "gradient_boosted_trees":
        s = settings.gradient_boosted_trees
        return GBTClassifier(maxIter=s.max_iter, maxDepth=s.max_depth, stepSize=s.step_size, seed=s.seed, **common)
    raise ValueError(f"unknown algorithm {name!r}")  # config validation stops this earlier


#: the most XGBoost workers "auto" asks for (each is one Spark task holding a slice of the data)
MAX_XGBOOST_WORKERS = 32
XGBOOST_HELP = "install it with `pip install 'xgboost>=3.0,<4'` (a dependency of credit_spark since 0.2)"


def require_xgboost(spark: SparkSession | None = None) -> None:
    """Stop before any work when algorithm ``xgboost`` is chosen but cannot be imported."""
    from credit_spark.errors import ConfigError

    try:
        import xgboost.spark  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"train.algorithms includes xgboost but it cannot be imported ({exc}): {XGBOOST_HELP}") \
            from exc
    if spark is not None and is_connect(spark):
        raise ConfigError("train.algorithms includes xgboost, which needs a classic Spark session: xgboost.spark "
                          "trains in RDD barrier stages, which Spark Connect does not offer. Train without --remote, "
                          "or leave xgboost out (--env connect)")


#: the first Spark whose Connect server keeps fitted models by memory (offloading to disk), not by count
CONNECT_TRAIN_MIN_SPARK = (4, 1)


def require_connect_training(spark: SparkSession) -> None:
    """Stop before any work when ``train`` runs through a Spark Connect server that cannot hold its
    models. Spark 4.0's server keeps at most 100 fitted objects per session (a random forest takes
    about one per tree) and drops the least recently used; k-fold tuning fits hundreds and reads
    them again later, so the run fails midway with ``CONNECT_ML.CACHE_INVALID``. Spark 4.1+
    bounds the cache by memory, offloads to disk, and frees a model with its last client reference."""
    from credit_spark.errors import ConfigError

    if not is_connect(spark):
        return
    version = spark.version          # the server's
    major_minor = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
    if major_minor < CONNECT_TRAIN_MIN_SPARK:
        raise ConfigError(
            f"train through Spark Connect needs a Spark 4.1 or newer server; this one runs Spark {version}, "
            "whose Connect ML cache keeps at most 100 fitted objects (a random forest takes about one per "
            "tree) and evicts those tuning still needs (CONNECT_ML.CACHE_INVALID). Train with a classic "
            "session (without --remote: spark-submit, a job cluster, a local run) or through a 4.1+ server, "
            "then score through Connect")


def xgboost_workers(setting, spark) -> int:
    """``num_workers``: the configured count, or the executors' task slots for "auto"."""
    if setting != "auto":
        return int(setting)
    return max(1, min(MAX_XGBOOST_WORKERS, spark.sparkContext.defaultParallelism))


def xgboost_pipeline(spec: DatasetSpec, settings: TrainSettings, num_classes: int, weighted: bool) -> Pipeline:
    """Category indexing/one-hot and assembling, then ``SparkXGBClassifier``. No imputation and no
    scaling: the trees split on raw values and learn where a missing value goes (``missing`` = NaN,
    which the assembler writes for a null)."""
    from pyspark.sql import SparkSession
    from xgboost.spark import SparkXGBClassifier

    s = settings.xgboost
    spark = SparkSession.active()
    numeric, categorical = numeric_features(spec), categorical_features(spec)
    indexed = [f"{c}__index" for c in categorical]
    encoded = [f"{c}__onehot" for c in categorical]
    stages = []
    if categorical:
        stages += [StringIndexer(inputCols=categorical, outputCols=indexed, handleInvalid="keep",
                                 stringOrderType="frequencyDesc"),
                   OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep")]
    stages.append(VectorAssembler(inputCols=numeric + encoded, outputCol=FEATURES_RAW, handleInvalid="keep"))
    device = s.device if s.device != "auto" else ("cuda" if spark_schedules_gpus(spark) else "cpu")
    booster = SparkXGBClassifier(
        features_col=FEATURES_RAW, label_col=LABEL_INDEX, weight_col=CLASS_WEIGHT if weighted else None,
        num_workers=xgboost_workers(s.num_workers, spark), device=device, n_estimators=s.n_estimators,
        early_stopping_rounds=s.early_stopping_rounds, eval_metric="mlogloss" if num_classes > 2 else "logloss",
        max_depth=s.max_depth, learning_rate=s.learning_rate, min_child_weight=s.min_child_weight,
        subsample=s.subsample, colsample_bytree=s.colsample_bytree, reg_lambda=s.reg_lambda,
        random_state=s.seed, verbosity=0, verbose=False,
        # always shuffle into num_workers partitions: a barrier stage refuses a union (training +
        # early-stopping rows) that happens to arrive with exactly num_workers partitions already
        force_repartition=True)
    return Pipeline(stages=[*stages, booster])


def scorecard_estimator(spec: DatasetSpec, settings: TrainSettings, weighted: bool) -> Scorecard:
    s = settings.scorecard
    return Scorecard(numericCols=numeric_features(spec), categoricalCols=categorical_features(spec),
                     labelCol=LABEL_INDEX, numClasses=len(spec.label.classes), numBins=s.num_bins,
                     binning=s.binning, minIV=s.min_iv, pdo=s.pdo, baseScore=s.base_score,
                     baseOdds=s.base_odds, regParam=s.reg_param, weightCol=CLASS_WEIGHT if weighted else None)


def neural_network_pipeline(spec: DatasetSpec, settings: TrainSettings, weighted: bool,
                            staging_dir: str | None = None, checkpoint_dir: str | None = None) -> Pipeline:
    from credit_spark.ml.neural import TorchClassifier, preprocessing_stages as nn_preprocessing

    s = settings.neural_network
    front, indexed = nn_preprocessing(numeric_features(spec), categorical_features(spec), FEATURES_RAW)
    network = TorchClassifier(
        featuresCol="features", categoricalCols=indexed, labelCol=LABEL_INDEX,
        weightCol=CLASS_WEIGHT if weighted else None, numClasses=len(spec.label.classes),
        hiddenLayers=s.hidden_layers, dropout=s.dropout, embeddingDim=s.embedding_dim, learningRate=s.learning_rate,
        weightDecay=s.weight_decay, batchSize=0 if s.batch_size == "auto" else s.batch_size, maxEpochs=s.max_epochs, patience=s.patience, seed=s.seed,
        architecture=s.architecture, numericEncoding=s.numeric_encoding, numBins=s.num_bins,
        ensembleSize=s.ensemble_size, lrSchedule=s.lr_schedule,
        backend=s.backend, numProcesses=s.num_processes, localMode=s.local_mode, useGpu=str(s.use_gpu).lower(),
        stagingDir=s.staging_dir or staging_dir or "/tmp/credit_spark_staging",
        checkpointDir=s.checkpoint_dir or checkpoint_dir or "")
    return Pipeline(stages=[*front, network])


def build_pipeline(spec: DatasetSpec, algorithm: str, settings: TrainSettings, work_dir: str | None = None) -> Pipeline:
    """The unfitted pipeline of ``algorithm``; ``work_dir`` (the lake root) holds the network's
    training shards and checkpoints."""
    weighted = settings.class_weight == "balanced"
    if algorithm == "scorecard":
        return Pipeline(stages=[scorecard_estimator(spec, settings, weighted)])
    if algorithm == "xgboost":
        return xgboost_pipeline(spec, settings, len(spec.label.classes), weighted)
    if algorithm == "neural_network":
        root = work_dir.rstrip("/") if work_dir else None
        return neural_network_pipeline(spec, settings, weighted, root and f"{root}/_staging",
                                       root and f"{root}/_checkpoints/neural_network")
    return Pipeline(stages=[*preprocessing_stages(spec),
                            classifier(algorithm, settings, len(spec.label.classes), weighted)])


def camel(name: str) -> str:
    """Settings key -> MLlib param name: ``elastic_net_param`` -> ``elasticNetParam``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def param_grid(pipeline: Pipeline, algorithm: str, settings: TrainSettings) -> list[dict]:
    """Every combination of the algorithm's configured grid, as param maps on its last stage.
    Values take the type of the setting they tune (a YAML grid of depths ``[4, 6]`` stays integer:
    XGBoost, unlike MLlib's converters, would pass ``4.0`` on as is)."""
    algorithm_settings = getattr(settings, algorithm) if algorithm != "scorecard" else None
    grid = algorithm_settings.grid if algorithm_settings is not None else {}
    if not grid:
        return []
    stage = pipeline.getStages()[-1]
    keys = sorted(grid)
    # MLlib names its params in camelCase, XGBoost's Spark estimator like its settings
    params = [stage.getParam(k if stage.hasParam(k) else camel(k)) for k in keys]
    kinds = [type(getattr(algorithm_settings, k)) for k in keys]
    return [{p: p.typeConverter(kind(v) if kind in (int, float) else v) for p, kind, v in zip(params, kinds, combo)}
            for combo in itertools.product(*(grid[k] for k in keys))]


def params_as_settings(param_map: dict) -> dict[str, float]:
    """A param map back in the config's words (for reports and MLflow params)."""
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", p.name).lower(): v for p, v in param_map.items()}


# --------------------------------------------------------------------------- class weights
def balanced_weights(class_counts: dict[int, int], num_classes: int) -> dict[int, float]:
    """n / (k * n_c): every class carries the same total weight (sklearn's "balanced")."""
    total = sum(class_counts.values())
    return {c: total / (num_classes * n) for c, n in class_counts.items() if n}


def with_class_weights(weights: dict[int, float]):
    def transform(df: DataFrame) -> DataFrame:
        mapping = F.create_map(*[x for c, w in sorted(weights.items()) for x in (F.lit(float(c)), F.lit(w))])
        return df.withColumn(CLASS_WEIGHT, F.coalesce(F.element_at(mapping, F.col(LABEL_INDEX)), F.lit(1.0)))
    return transform


def importance(model: PipelineModel, sample: DataFrame) -> dict:
    """What drives the model: tree importances, |coefficients| on standardised inputs, or IV."""
    stage = fitted_classifier(model)
    if isinstance(stage, ScorecardModel):
        return {"kind": "information value (adverse class card)",
                "items": [{"feature": r["feature"], "value": r["iv"]} for r in stage.iv_table()]}
    if hasattr(stage, "member_weights"):
        return {"kind": "stacking weight (sum of |coefficients| on the member's log-probabilities)",
                "items": sorted(stage.member_weights(), key=lambda r: -r["value"])}
    names = vector_slot_names(model, sample)
    trees = tree_importances(stage, len(names))
    if trees is not None:
        kind = ("feature importance (total gain)" if hasattr(stage, "get_booster")
                else "feature importance (impurity decrease)")
        items = sorted(({"feature": n, "value": float(v)} for n, v in zip(names, trees)), key=lambda r: -r["value"])
        return {"kind": kind, "items": items[:30]}
    if hasattr(stage, "input_importance"):
        items = sorted(stage.input_importance(names), key=lambda r: -r["value"])
        return {"kind": "first-layer weight norm on standardised inputs (indicative)", "items": items[:30]}
    matrix = stage.coefficientMatrix.toArray()
    values = abs(matrix).max(axis=0).tolist()
    kind = "|coefficient| on standardised inputs (max over classes)"
    items = sorted(({"feature": n, "value": float(v)} for n, v in zip(names, values)), key=lambda r: -r["value"])
    return {"kind": kind, "items": items[:30]}
