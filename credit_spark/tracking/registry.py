"""Experiment tracking and the model registry, both MLflow.

Embedded default (``tracking.uri: null``): a SQLite tracking store and an artifact folder inside
the lake folder (``<lake>/mlflow/``) — nothing to start, and it travels with the lake. Point
``tracking.uri`` at a tracking server (``http://...``) or ``databricks`` (and
``tracking.registry_uri`` at ``databricks-uc`` for Unity Catalog) to use a shared one.

Every algorithm of a training run becomes a version of one registered model (default
``credit_spark_<spec name>``) tagged with its algorithm, classes and the features Delta version.
The alias ``champion`` (``train.promotion.alias``) marks the version the batch scorer uses; it
moves only by the promotion rule in :mod:`credit_spark.jobs.train`.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pyspark.ml import PipelineModel
from pyspark.sql.utils import is_remote

from credit_spark._version import __version__
from credit_spark.config.loader import ENSEMBLE, MODEL_NAMES, Config, registered_model_base
from credit_spark.errors import ConfigError, ModelNotFoundError
from credit_spark.tracking.wheel import own_wheel

logger = logging.getLogger(__name__)

TRAIN_RUN_TAG = "credit_spark.kind"
ALGORITHM_TAG = "algorithm"
# what loading a logged pipeline imports: its custom stages live in credit_spark and use
# numpy/pandas/pyarrow (Arrow UDFs); the network's stage adds torch
OWN_PACKAGE = "credit-spark"
MODEL_PACKAGES = ("mlflow", "numpy", "pandas", "pyarrow", "pyspark")
#: what one algorithm's model needs beside them to load and score
ALGORITHM_PACKAGES = {"neural_network": ("torch",), "xgboost": ("xgboost", "scikit-learn")}


@dataclass(frozen=True)
class ModelRecord:
    """A registered model version, as the scorer needs it."""

    model_name: str        # the algorithm
    model_version: int     # the MLflow registered-model version
    registered_model: str
    classes: list[str]
    features_version: int
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.registered_model}/{self.model_version}"


def local_lake(cfg: Config) -> Path | None:
    root = cfg.lake.root
    if root.startswith("file:"):
        return Path(root.removeprefix("file://").removeprefix("file:"))
    return None if "://" in root or root.startswith("dbfs:") else Path(root)


def tracking_uri(cfg: Config) -> str:
    if cfg.tracking.uri:
        return cfg.tracking.uri
    lake = local_lake(cfg)
    if lake is None:
        raise ConfigError(f"tracking.uri must be set when lake.root ({cfg.lake.root}) is not a local folder "
                          f"(e.g. databricks or http://mlflow:5000)")
    return f"sqlite:///{lake / 'mlflow' / 'mlflow.db'}"


def registered_model_name(cfg: Config) -> str:
    """``tracking.registered_model``, else ``credit_spark_<spec name>`` (inside the lake's
    catalog.schema for Unity Catalog, whose model names have three parts)."""
    if cfg.tracking.registered_model:
        return cfg.tracking.registered_model
    name = registered_model_base(cfg)
    if (cfg.tracking.registry_uri or "").startswith("databricks-uc") and cfg.lake.schema:
        return ".".join(p for p in (cfg.lake.catalog, cfg.lake.schema, name) if p)
    return name


def configure(cfg: Config, create: bool = True) -> str:
    """Point MLflow at the configured stores and return the experiment id (created on first use).
    ``create=False`` is for commands that only read (score, report): where nothing was trained
    yet they stop, naming what is missing, and leave no store or experiment behind."""
    import mlflow

    uri = tracking_uri(cfg)
    hint = "run `credit-spark train` first"
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        if not create and not database.is_file():
            raise ModelNotFoundError(f"no MLflow store at {database} (lake {cfg.lake.root}): {hint}")
        database.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(cfg.tracking.registry_uri or uri)
    experiment = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is not None:
        return experiment.experiment_id
    if not create:
        raise ModelNotFoundError(f"no MLflow experiment '{cfg.tracking.experiment}' in {uri}: {hint}")
    artifacts = None
    if not cfg.tracking.uri:    # embedded default: artifacts beside the database, in the lake
        artifacts = (local_lake(cfg) / "mlflow" / "artifacts").resolve().as_uri()
    return mlflow.create_experiment(cfg.tracking.experiment, artifact_location=artifacts)


def training_runs(experiment_id: str, **kwargs) -> list:
    """The experiment's training runs (MLflow Run objects); kwargs go to ``mlflow.search_runs``."""
    import mlflow

    return mlflow.search_runs([experiment_id], filter_string=f"tags.`{TRAIN_RUN_TAG}` = 'train'",
                              output_format="list", **kwargs)


def client():
    import mlflow
    return mlflow.MlflowClient()


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Nested settings as MLflow params: {"train.tuning.method": "none", ...}."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: json.dumps(value) if isinstance(value, (list, dict)) else value}


def log_spark_model(model: PipelineModel, algorithm: str, cfg: Config, tags: dict[str, str],
                    signature=None) -> int:
    """Log a fitted pipeline to the active run and register it; returns the new version.
    ``signature`` (inputs -> outputs) is required by Unity Catalog's registry."""
    import mlflow
    import mlflow.spark

    name = registered_model_name(cfg)
    wheel = own_wheel()
    with staged_by_the_server() if is_remote() else contextlib.nullcontext():
        info = mlflow.spark.log_model(model, algorithm, registered_model_name=name, signature=signature,
                                      pip_requirements=model_requirements(algorithm, cfg.train.algorithms, wheel),
                                      code_paths=[str(wheel)] if wheel else None, dfs_tmpdir=dfs_tmpdir(cfg),
                                      await_registration_for=60)
    version = int(info.registered_model_version)
    c = client()
    for key, value in {**tags, ALGORITHM_TAG: algorithm}.items():
        c.set_model_version_tag(name, str(version), key, value)
    return version


@contextlib.contextmanager
def staged_by_the_server() -> Iterator[None]:
    """MLflow's Spark flavor on a Spark Connect client. It has the model saved to ``dfs_tmpdir``
    (the server writes it: beside the lake when the lake is local) and then copies that folder into
    the MLflow model through the driver's JVM (Hadoop's FileSystem), which a Connect client has not.
    Here that copy is a move of the folder, which must be visible to this client too (a local lake,
    or a shared mount): otherwise the error says so."""
    import shutil

    import mlflow.spark

    hadoop = getattr(mlflow.spark, "_HadoopFileSystem", None)
    if hadoop is None or "copy_to_local_file" not in vars(hadoop):
        raise ConfigError(f"MLflow {mlflow.__version__}'s Spark flavor changed: it cannot log a model "
                          "from a Spark Connect client here; train with a classic session")
    original = vars(hadoop)["copy_to_local_file"]

    def move(cls, src: str, dst: str, remove_src: bool) -> None:
        staged = Path(src.removeprefix("file:"))
        if not staged.is_dir():
            raise ConfigError(f"the Spark Connect server saved the model to {src}, which this client cannot "
                              "see: keep the lake on a filesystem both share (lake.root), or train with a "
                              "classic session")
        (shutil.move if remove_src else shutil.copytree)(str(staged), dst)

    hadoop.copy_to_local_file = classmethod(move)
    try:
        yield
    finally:
        hadoop.copy_to_local_file = original


def model_requirements(algorithm: str, cfg_algorithms: list[str] | tuple[str, ...] = (),
                       wheel: Path | None = None) -> list[str]:
    """The logged model's pip requirements, pinned to what is installed here. Given explicitly
    because MLflow's inference reloads every model in a subprocess to see what it imports: ~25 s
    per model, most of a small training run's MLflow time. The ensemble needs its members' packages
    (``cfg_algorithms``: the run's algorithms). credit_spark itself is the ``wheel`` logged in the
    model's ``code/`` folder (a path relative to the model folder, MLflow's convention), else
    its version, which only an index of your own can serve."""
    members = cfg_algorithms if algorithm == ENSEMBLE else [algorithm]
    packages = [*MODEL_PACKAGES, *dict.fromkeys(p for m in members for p in ALGORITHM_PACKAGES.get(m, ()))]
    pins = [f"code/{wheel.name}" if wheel else f"{OWN_PACKAGE}=={__version__}"]
    for package in packages:
        try:
            pins.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            logger.warning("%s is not installed: left out of the %s model's requirements", package, algorithm)
    return pins


def dfs_tmpdir(cfg: Config) -> str | None:
    """Where MLflow stages a Spark model on the cluster filesystem: next to the lake when local."""
    lake = local_lake(cfg)
    return str(lake / "mlflow" / "tmp") if lake is not None else None


def champion_version(cfg: Config) -> int | None:
    """The version holding the promotion alias, or None before the first promotion."""
    from mlflow.exceptions import MlflowException

    try:
        return int(client().get_model_version_by_alias(registered_model_name(cfg), cfg.train.promotion.alias).version)
    except MlflowException as exc:
        # no registered model yet, or no alias on it: no champion; anything else (permissions,
        # an unreachable server) must not read as "no champion" and trigger a promotion
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def set_champion(cfg: Config, version: int) -> None:
    client().set_registered_model_alias(registered_model_name(cfg), cfg.train.promotion.alias, str(version))


def record(cfg: Config, version: int) -> ModelRecord:
    mv = client().get_model_version(registered_model_name(cfg), str(version))
    tags = mv.tags or {}
    return ModelRecord(model_name=tags.get(ALGORITHM_TAG, "unknown"), model_version=int(mv.version),
                       registered_model=registered_model_name(cfg), classes=json.loads(tags.get("classes", "[]")),
                       features_version=int(tags.get("features_version", -1)), run_id=mv.run_id or "")


def resolve(cfg: Config, choice: str = "champion") -> ModelRecord:
    """The model version to score with: the alias holder, or an algorithm's latest version."""
    from mlflow.exceptions import MlflowException

    configure(cfg, create=False)
    name = registered_model_name(cfg)
    hint = "run `credit-spark train` first"
    try:
        if choice == "champion":
            version = champion_version(cfg)
            if version is None:
                raise ModelNotFoundError(f"registered model '{name}' has no '{cfg.train.promotion.alias}' "
                                         f"alias in {tracking_uri(cfg)}: {hint}")
            return record(cfg, version)
        if choice not in MODEL_NAMES:
            raise ModelNotFoundError(f"score.model '{choice}' is neither 'champion' nor an algorithm")
        # filter the algorithm tag here: Unity Catalog's search accepts only name / run_id filters
        versions = [v for v in client().search_model_versions(f"name = '{name}'")
                    if (v.tags or {}).get(ALGORITHM_TAG) == choice]
    except MlflowException as exc:
        raise ModelNotFoundError(f"cannot read registered model '{name}' from {tracking_uri(cfg)}: "
                                 f"{str(exc).splitlines()[0]}; {hint}") from exc
    if not versions:
        raise ModelNotFoundError(f"no version of '{name}' was trained with {choice} "
                                 f"(score.model='{choice}'): add it to train.algorithms and {hint}")
    return record(cfg, max(int(v.version) for v in versions))


def load_model(cfg: Config, model: ModelRecord) -> PipelineModel:
    """Load a registered pipeline; a missing or unreadable one fails naming it."""
    import mlflow.spark
    from pyspark.sql.utils import is_remote

    try:
        if is_remote():
            return load_through_connect(cfg, model)
        return mlflow.spark.load_model(model.uri, dfs_tmpdir=dfs_tmpdir(cfg))
    except Exception as exc:  # MLflow / Py4J / IO errors vary by store; the message is what matters
        raise ModelNotFoundError(f"cannot load model {model.model_name} ({model.uri}) from "
                                 f"{tracking_uri(cfg)}: {str(exc).splitlines()[0]}") from exc


def load_through_connect(cfg: Config, model: ModelRecord) -> PipelineModel:
    """On a Spark Connect client MLflow's Spark flavor cannot load (it copies the model through
    the driver's JVM, which the client does not have): download the model's files, next to the
    lake where the lake is a local folder (which the server reads anyway), and load its saved
    pipeline from there, on the server; the copy is removed once loaded."""
    import shutil
    import tempfile
    import uuid

    import mlflow

    target = Path(dfs_tmpdir(cfg) or tempfile.gettempdir()) / f"connect-{uuid.uuid4().hex}"
    target.mkdir(parents=True)
    try:
        local = Path(mlflow.artifacts.download_artifacts(model.uri, dst_path=str(target)))
        return PipelineModel.load(str((local / "sparkml").resolve()))
    finally:
        shutil.rmtree(target, ignore_errors=True)


def download_artifacts(run_id: str, path: str, dst: str | os.PathLike[str]) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst)))
