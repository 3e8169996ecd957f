"""A model registry kept as a Delta table (``model_registry``) beside the saved pipelines.

Each training run gets the next version number; every algorithm's fitted ``PipelineModel`` is
saved under ``<lake>/models/v<version>/<algorithm>`` and then described by one registry row
(metrics, data version, config). The row is written last, so a run interrupted while saving
leaves no registry entry pointing at half-written files.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from pyspark.ml import PipelineModel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from credit_spark.config import Config
from credit_spark.errors import ModelNotFoundError
from credit_spark.tables import MODEL_REGISTRY, append, table_exists

logger = logging.getLogger(__name__)

REGISTRY_SCHEMA = T.StructType([
    T.StructField("model_name", T.StringType(), False),
    T.StructField("model_version", T.IntegerType(), False),
    T.StructField("path", T.StringType(), False),
    T.StructField("features_version", T.LongType(), False),
    T.StructField("train_rows", T.LongType(), False),
    T.StructField("test_rows", T.LongType(), False),
    T.StructField("metrics", T.MapType(T.StringType(), T.DoubleType()), False),
    T.StructField("per_class", T.StringType(), True),
    T.StructField("confusion", T.StringType(), True),
    T.StructField("classes", T.ArrayType(T.StringType()), False),
    T.StructField("selected", T.BooleanType(), False),
    T.StructField("config", T.StringType(), True),
])


@dataclass(frozen=True)
class ModelRecord:
    model_name: str
    model_version: int
    features_version: int
    train_rows: int
    test_rows: int
    metrics: dict[str, float]
    per_class: str
    confusion: str
    classes: list[str]
    selected: bool
    config: str
    path: str = ""


def model_path(cfg: Config, version: int, name: str) -> str:
    return cfg.table_path(f"models/v{version}/{name}")


def next_version(spark: SparkSession, cfg: Config) -> int:
    path = cfg.table_path(MODEL_REGISTRY)
    if not table_exists(spark, path):
        return 1
    latest = spark.read.format("delta").load(path).agg(F.max("model_version")).first()[0]
    return int(latest or 0) + 1


def register(spark: SparkSession, cfg: Config, model: PipelineModel, record: ModelRecord) -> ModelRecord:
    """Save the pipeline, then append its registry row (in that order: see module docstring)."""
    path = model_path(cfg, record.model_version, record.model_name)
    model.write().overwrite().save(path)
    record = ModelRecord(**{**asdict(record), "path": path})
    row = {f.name: getattr(record, f.name) for f in REGISTRY_SCHEMA.fields}
    frame = spark.createDataFrame([row], REGISTRY_SCHEMA).withColumn("registered_at", F.current_timestamp())
    append(frame, cfg.table_path(MODEL_REGISTRY))
    return record


def resolve(spark: SparkSession, cfg: Config, choice: str = "selected") -> ModelRecord:
    """The registry row of the model to score with: the latest version's selected model, or by name."""
    path = cfg.table_path(MODEL_REGISTRY)
    if not table_exists(spark, path):
        raise ModelNotFoundError(f"no model registry at {path}: run `credit-spark train` first")
    rows = spark.read.format("delta").load(path)
    rows = rows.where(F.col("selected")) if choice == "selected" else rows.where(F.col("model_name") == choice)
    row = rows.orderBy(F.col("model_version").desc()).limit(1).collect()
    if not row:
        raise ModelNotFoundError(f"no registered model matches score.model='{choice}' in {path}: "
                                 f"train it first (train.algorithms)")
    data = row[0].asDict()
    data.pop("registered_at", None)
    return ModelRecord(**data)


def load_model(record: ModelRecord) -> PipelineModel:
    """Load a registered pipeline; a missing or unreadable one fails naming its path."""
    try:
        return PipelineModel.load(record.path)
    except Exception as exc:  # Py4J / IO errors vary by filesystem; the message is what matters
        raise ModelNotFoundError(f"cannot load model {record.model_name} v{record.model_version} "
                                 f"from {record.path}: {str(exc).splitlines()[0]}") from exc
