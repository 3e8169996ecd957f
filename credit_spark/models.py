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
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credit_spark.config import DatasetSpec, TrainSettings
from credit_spark.features import categorical_features, numeric_features
from credit_spark.scorecard import Scorecard, ScorecardModel
from credit_spark.stages import MedianImputer

LABEL_INDEX = "label_index"
CLASS_WEIGHT = "class_weight"
FEATURES_RAW = "features_raw"


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


def scorecard_estimator(spec: DatasetSpec, settings: TrainSettings, weighted: bool) -> Scorecard:
    s = settings.scorecard
    return Scorecard(numericCols=numeric_features(spec), categoricalCols=categorical_features(spec),
                     labelCol=LABEL_INDEX, numClasses=len(spec.label.classes), numBins=s.num_bins,
                     binning=s.binning, minIV=s.min_iv, pdo=s.pdo, baseScore=s.base_score,
                     baseOdds=s.base_odds, regParam=s.reg_param, weightCol=CLASS_WEIGHT if weighted else None)


def neural_network_pipeline(spec: DatasetSpec, settings: TrainSettings, weighted: bool,
                            staging_dir: str | None = None, checkpoint_dir: str | None = None) -> Pipeline:
    from credit_spark.neural import TorchClassifier, preprocessing_stages as nn_preprocessing

    s = settings.neural_network
    front, indexed = nn_preprocessing(numeric_features(spec), categorical_features(spec), FEATURES_RAW)
    network = TorchClassifier(
        featuresCol="features", categoricalCols=indexed, labelCol=LABEL_INDEX,
        weightCol=CLASS_WEIGHT if weighted else None, numClasses=len(spec.label.classes),
        hiddenLayers=s.hidden_layers, dropout=s.dropout, embeddingDim=s.embedding_dim, learningRate=s.learning_rate,
        weightDecay=s.weight_decay, batchSize=s.batch_size, maxEpochs=s.max_epochs, patience=s.patience, seed=s.seed,
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
    """Every combination of the algorithm's configured grid, as param maps on its last stage."""
    grid = getattr(settings, algorithm).grid if algorithm != "scorecard" else {}
    if not grid:
        return []
    stage = pipeline.getStages()[-1]
    keys = sorted(grid)
    params = [stage.getParam(camel(k)) for k in keys]
    return [{p: p.typeConverter(v) for p, v in zip(params, combo)}
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


# --------------------------------------------------------------------------- introspection
def fitted_classifier(model: PipelineModel):
    """The stage that predicts (skipping the calibrator and reasons stages appended after it)."""
    from credit_spark.calibration import ProbabilityCalibratorModel
    from credit_spark.reasons import ReasonCodesModel
    stages = [s for s in model.stages if not isinstance(s, (ProbabilityCalibratorModel, ReasonCodesModel))]
    return stages[-1]


def vector_slot_names(model: PipelineModel, sample: DataFrame) -> list[str]:
    """Readable names of the assembled vector's slots, from the assembler's ML attribute metadata
    (only the plan is built: no job runs)."""
    meta = model.transform(sample).schema[FEATURES_RAW].metadata.get("ml_attr", {})
    slots: dict[int, str] = {}
    for group in meta.get("attrs", {}).values():
        for attr in group:
            name = attr.get("name", f"slot_{attr['idx']}")
            slots[attr["idx"]] = name.replace("__imputed", "").replace("__onehot_", " = ")
    return [slots.get(i, f"slot_{i}") for i in range(meta.get("num_attrs", len(slots)))]


def importance(model: PipelineModel, sample: DataFrame) -> dict:
    """What drives the model: tree importances, |coefficients| on standardised inputs, or IV."""
    stage = fitted_classifier(model)
    if isinstance(stage, ScorecardModel):
        return {"kind": "information value (adverse class card)",
                "items": [{"feature": r["feature"], "value": r["iv"]} for r in stage.iv_table()]}
    names = vector_slot_names(model, sample)
    if hasattr(stage, "input_importance"):
        items = sorted(stage.input_importance(names), key=lambda r: -r["value"])
        return {"kind": "first-layer weight norm on standardised inputs (indicative)", "items": items[:30]}
    if hasattr(stage, "featureImportances"):
        values = stage.featureImportances.toArray().tolist()
        kind = "feature importance (impurity decrease)"
    else:
        matrix = stage.coefficientMatrix.toArray()
        values = abs(matrix).max(axis=0).tolist()
        kind = "|coefficient| on standardised inputs (max over classes)"
    items = sorted(({"feature": n, "value": float(v)} for n, v in zip(names, values)), key=lambda r: -r["value"])
    return {"kind": kind, "items": items[:30]}
