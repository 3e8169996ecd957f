"""The neural network as a pyspark.ml stage, trained data-parallel on the executors.

``TorchClassifier`` (Estimator) -> ``TorchClassifierModel`` (Model) is the last stage of the
``neural_network`` pipeline, after the same fitted preprocessing family as the MLlib models
(median imputation, category indexing, assembling, standardisation), so one saved
``PipelineModel`` trains, registers and scores like every other model.

Fitting, without the rows ever reaching the driver:

1. for the ``piecewise_linear`` and ``quantile`` numeric encodings, the quantile edges of each
   numeric input over the training rows, in one Spark aggregation (``percentile_approx``); they
   travel in the network's spec, so scoring encodes exactly as training did;
2. the preprocessed training rows (and, for early stopping, the validation rows, marked by
   ``validationIndicatorCol``) are written by the executors as Parquet files to a staging folder
   on the lake's storage (one file per Spark partition, ``2 x numProcesses`` files);
3. a launcher starts ``numProcesses`` training processes on the executors: Spark's
   ``TorchDistributor`` (``torch.distributed`` + DDP, Gloo on CPU, NCCL on GPU) or
   ``horovod.spark.run`` (Horovod with Gloo). Each process reads its own files with pyarrow and
   runs :func:`credit_spark.ml.torch_train.fit`, the one training body of both backends;
4. rank 0 returns the best epoch's weights (a few hundred kB) and what happened; they are kept
   in the model's params, so the model saves and loads inside its ``PipelineModel``.

Scoring is one Arrow-batched ``pandas_udf``: the network is built once per executor Python
process and applied to whole batches (on the executor's GPU when it has one).
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import uuid

import numpy as np
import pandas as pd
from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.feature import StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (HasFeaturesCol, HasLabelCol, HasPredictionCol, HasProbabilityCol,
                                     HasSeed, HasValidationIndicatorCol, HasWeightCol)
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credit_spark.errors import ConfigError, NoRecordsError
from credit_spark.lake.session import is_connect

logger = logging.getLogger(__name__)

BACKENDS = ("torch_distributor", "horovod")
IS_VALIDATION = "is_validation"

HOROVOD_HELP = ("install it with `scripts/build_horovod.sh` (or `scripts/setup.sh nn,horovod`): it builds "
                "Horovod 0.28.1 with Gloo against the installed torch and caches the wheel")
TORCH_HELP = "install the neural-network extra: `scripts/setup.sh nn` (pip install -e '.[nn]')"


def require_backend(backend: str, spark: SparkSession | None = None) -> None:
    """Stop before any work when the chosen backend cannot run here, saying how to install it."""
    if backend not in BACKENDS:
        raise ConfigError(f"train.neural_network.backend must be one of {list(BACKENDS)}, got {backend!r}")
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"train.algorithms includes neural_network but torch is not installed: {TORCH_HELP}") \
            from exc
    if backend == "horovod":
        try:
            import horovod.spark  # noqa: F401
            import horovod.torch  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f"train.neural_network.backend is 'horovod' but Horovod is not installed "
                              f"({exc}): {HOROVOD_HELP}") from exc
        if spark is not None and is_connect(spark):
            raise ConfigError("train.neural_network.backend is 'horovod', which needs a classic Spark session "
                              "(horovod.spark.run starts its workers through the SparkContext, which a Spark Connect "
                              "client has not): use backend torch_distributor, or train without --remote")


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


# --------------------------------------------------------------------------- params
class _TorchParams(HasFeaturesCol, HasLabelCol, HasPredictionCol, HasProbabilityCol):
    categoricalCols = Param(Params._dummy(), "categoricalCols",
                            "category index columns (StringIndexer output), one embedding each",
                            typeConverter=TypeConverters.toListString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(categoricalCols=[], featuresCol="features", labelCol="label",
                         predictionCol="prediction", probabilityCol="probability")


class TorchClassifier(Estimator, _TorchParams, HasWeightCol, HasValidationIndicatorCol, HasSeed):
    """A tabular MLP trained by ``numProcesses`` processes on the executors (see module docs)."""

    numClasses = Param(Params._dummy(), "numClasses", "number of classes", TypeConverters.toInt)
    hiddenLayers = Param(Params._dummy(), "hiddenLayers", "widths of the hidden layers", TypeConverters.toListInt)
    dropout = Param(Params._dummy(), "dropout", "dropout after each hidden layer", TypeConverters.toFloat)
    embeddingDim = Param(Params._dummy(), "embeddingDim", "largest embedding width", TypeConverters.toInt)
    learningRate = Param(Params._dummy(), "learningRate", "AdamW learning rate", TypeConverters.toFloat)
    weightDecay = Param(Params._dummy(), "weightDecay", "AdamW weight decay", TypeConverters.toFloat)
    batchSize = Param(Params._dummy(), "batchSize", "rows per step and process (0 = auto: from the training rows)",
                      TypeConverters.toInt)
    maxEpochs = Param(Params._dummy(), "maxEpochs", "most epochs", TypeConverters.toInt)
    patience = Param(Params._dummy(), "patience", "epochs without a better validation loss before stopping",
                     TypeConverters.toInt)
    backend = Param(Params._dummy(), "backend", "torch_distributor | horovod", TypeConverters.toString)
    numProcesses = Param(Params._dummy(), "numProcesses", "training processes (Spark tasks)", TypeConverters.toInt)
    localMode = Param(Params._dummy(), "localMode",
                      "TorchDistributor: true = processes on the driver node, false = on the executors",
                      TypeConverters.toBoolean)
    useGpu = Param(Params._dummy(), "useGpu", "auto | true | false", TypeConverters.toString)
    stagingDir = Param(Params._dummy(), "stagingDir",
                       "folder on storage every executor can read (the lake's) for the training shards",
                       TypeConverters.toString)
    checkpointDir = Param(Params._dummy(), "checkpointDir", "where rank 0 writes best.pt ('' = nowhere)",
                          TypeConverters.toString)
    architecture = Param(Params._dummy(), "architecture", "mlp | resnet", TypeConverters.toString)
    numericEncoding = Param(Params._dummy(), "numericEncoding", "standard | piecewise_linear | quantile",
                            TypeConverters.toString)
    numBins = Param(Params._dummy(), "numBins", "quantile bins per numeric input (piecewise_linear, quantile)",
                    TypeConverters.toInt)
    ensembleSize = Param(Params._dummy(), "ensembleSize", "networks trained side by side, probabilities averaged",
                         TypeConverters.toInt)
    lrSchedule = Param(Params._dummy(), "lrSchedule", "constant | cosine (warm-up, then cosine decay)",
                       TypeConverters.toString)

    @keyword_only
    def __init__(self, *, featuresCol: str = "features", categoricalCols: list[str] | None = None,
                 labelCol: str = "label", weightCol: str | None = None, validationIndicatorCol: str | None = None,
                 predictionCol: str = "prediction", probabilityCol: str = "probability", numClasses: int = 2,
                 hiddenLayers: list[int] | None = None, dropout: float = 0.2, embeddingDim: int = 8,
                 learningRate: float = 1e-3, weightDecay: float = 1e-5, batchSize: int = 512, maxEpochs: int = 30,
                 patience: int = 4, seed: int = 42, backend: str = "torch_distributor", numProcesses: int = 2,
                 localMode: bool = False, useGpu: str = "auto", stagingDir: str = "/tmp/credit_spark_staging",
                 checkpointDir: str = "", architecture: str = "mlp", numericEncoding: str = "standard",
                 numBins: int = 16, ensembleSize: int = 1, lrSchedule: str = "constant"):
        super().__init__()
        self._setDefault(numClasses=2, hiddenLayers=[128, 64], dropout=0.2, embeddingDim=8, learningRate=1e-3,
                         weightDecay=1e-5, batchSize=512, maxEpochs=30, patience=4, seed=42,
                         backend="torch_distributor", numProcesses=2, localMode=False, useGpu="auto",
                         stagingDir="/tmp/credit_spark_staging", checkpointDir="", architecture="mlp",
                         numericEncoding="standard", numBins=16, ensembleSize=1, lrSchedule="constant")
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None}
        self._set(**kwargs)

    # ------------------------------------------------------------------ fitting
    def _gpu_wanted(self, spark) -> bool:
        choice = self.getOrDefault("useGpu").lower()
        if choice in ("true", "false"):
            return choice == "true"
        if choice != "auto":
            raise ConfigError(f"train.neural_network.use_gpu must be auto, true or false, got {choice!r}")
        from credit_spark.lake.session import spark_schedules_gpus
        return spark_schedules_gpus(spark, "spark.driver.resource.gpu.amount" if self.getOrDefault("localMode")
                                    else "spark.task.resource.gpu.amount")

    def _cardinalities(self, dataset: DataFrame) -> list[int]:
        """Per category index column: its labels + 1 (StringIndexer's "unseen" index), read from
        the column's ML attribute metadata (no job), or from its largest index."""
        out = []
        for column in self.getOrDefault("categoricalCols"):
            attrs = dataset.schema[column].metadata.get("ml_attr", {})
            values = attrs.get("vals")
            if values is None:
                largest = dataset.agg(F.max(F.col(column))).first()[0]
                out.append(int(largest or 0) + 2)
            else:
                out.append(len(values) + 1)
        return out

    def _bin_edges(self, prepared: DataFrame, width: int) -> list[list[float]]:
        """Per numeric input, the distinct quantile edges of its training rows (one aggregation;
        the driver receives ``width x (numBins + 1)`` numbers)."""
        from credit_spark.ml.torch_net import quantile_edges

        if self.getOrDefault("numericEncoding") == "standard" or width == 0:
            return []
        bins = self.getOrDefault("numBins")
        if bins < 1:
            raise ConfigError(f"train.neural_network.num_bins must be >= 1, got {bins}")
        training = prepared.where(~F.col(IS_VALIDATION)) if IS_VALIDATION in prepared.columns else prepared
        levels = [i / bins for i in range(bins + 1)]
        row = training.agg(*[F.percentile_approx(F.col("numeric")[i], levels, 10000).alias(f"q{i}")
                             for i in range(width)]).first()
        return [quantile_edges(row[f"q{i}"] or []) for i in range(width)]

    def _prepared(self, dataset: DataFrame) -> DataFrame:
        """The schema contract of a training shard: numeric, categorical, label, weight."""
        cats = self.getOrDefault("categoricalCols")
        weight = self.getOrDefault("weightCol") if self.isSet("weightCol") else None
        categorical = F.array(*[F.col(c).cast("int") for c in cats]) if cats else F.array().cast("array<int>")
        return dataset.select(
            vector_to_array(F.col(self.getFeaturesCol()), "float32").alias("numeric"),
            categorical.alias("categorical"),
            F.col(self.getLabelCol()).cast("long").alias("label"),
            (F.col(weight) if weight else F.lit(1.0)).cast("float").alias("weight"),
            *([F.col(self.getOrDefault("validationIndicatorCol")).cast("boolean").alias(IS_VALIDATION)]
              if self.isSet("validationIndicatorCol") else []))

    def _fit(self, dataset: DataFrame) -> "TorchClassifierModel":
        from credit_spark.ml.torch_net import LR_SCHEDULES, FitParams, NetSpec, auto_batch_size

        backend = self.getOrDefault("backend")
        spark = dataset.sparkSession
        require_backend(backend, spark)
        processes = self.getOrDefault("numProcesses")
        first = dataset.select(F.size(vector_to_array(F.col(self.getFeaturesCol())))).first()
        if first is None:
            raise NoRecordsError("neural_network: no rows to train on")
        prepared = self._prepared(dataset)
        width = int(first[0])
        try:
            spec = NetSpec(num_numeric=width, cardinalities=self._cardinalities(dataset),
                           num_classes=self.getOrDefault("numClasses"),
                           hidden_layers=list(self.getOrDefault("hiddenLayers")), dropout=self.getOrDefault("dropout"),
                           embedding_dim=self.getOrDefault("embeddingDim"),
                           architecture=self.getOrDefault("architecture"),
                           numeric_encoding=self.getOrDefault("numericEncoding"),
                           bin_edges=self._bin_edges(prepared, width), ensemble_size=self.getOrDefault("ensembleSize"))
        except ValueError as exc:
            raise ConfigError(f"train.neural_network: {exc}") from exc
        use_gpu = self._gpu_wanted(spark)
        local_mode = self.getOrDefault("localMode")
        threads = (max(1, (os.cpu_count() or 1) // processes) if local_mode
                   else int(spark.conf.get("spark.task.cpus", "1") or 1))
        checkpoint = self.getOrDefault("checkpointDir") or None
        params = FitParams(learning_rate=self.getOrDefault("learningRate"), weight_decay=self.getOrDefault("weightDecay"),
                           batch_size=self.getOrDefault("batchSize"), max_epochs=self.getOrDefault("maxEpochs"),
                           patience=self.getOrDefault("patience"), seed=self.getOrDefault("seed"),
                           lr_schedule=self.getOrDefault("lrSchedule"), use_gpu=use_gpu,
                           threads=threads, checkpoint_dir=checkpoint)
        if params.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"train.neural_network.lr_schedule must be one of {list(LR_SCHEDULES)}, "
                              f"got {params.lr_schedule!r}")
        staging = f"{self.getOrDefault('stagingDir').rstrip('/')}/{uuid.uuid4().hex}"
        try:
            shards = write_shards(prepared, staging, processes)
            if params.batch_size <= 0:
                params = dataclasses.replace(params, batch_size=auto_batch_size(shards["train_rows"], processes))
            job = {"net_spec": spec.to_json(), "fit_params": vars(params), **shards}
            logger.info("neural_network: %s with %d process(es)%s, %s %s with %s inputs, %d member(s)", backend,
                        processes, " on GPU" if use_gpu else "", spec.architecture, spec.hidden_layers,
                        spec.numeric_encoding, spec.ensemble_size)
            if backend == "horovod":
                result = run_horovod(job, processes)
            else:
                result = run_torch_distributor(job, f"{staging}/result.json", processes, local_mode, use_gpu)
        finally:
            remove_tree(staging)
        info = {k: v for k, v in result.items() if k != "state"}
        info["batch_size"] = params.batch_size
        logger.info("neural_network: %d epochs (best %d), batches of %d, %.0f samples/s, %s", info["epochs"],
                    info["best_epoch"], params.batch_size, info["samples_per_second"], info["device"])
        model = TorchClassifierModel(netSpec=spec.to_json(), state=base64.b64encode(result["state"]).decode(),
                                     fitInfo=json.dumps(info))
        return self._copyValues(model)


def write_shards(prepared: DataFrame, staging: str, processes: int) -> dict:
    """Write the training (and validation) rows as Parquet files for the ranks to share out.

    ``2 x processes`` files of equal row counts (round-robin repartition): rank r reads files
    r, r + processes, ..., so every rank gets rows; an empty file list is an error here, not a
    hang in a collective later."""
    has_validation = IS_VALIDATION in prepared.columns
    training = prepared.where(~F.col(IS_VALIDATION)) if has_validation else prepared
    columns = ["numeric", "categorical", "label", "weight"]
    rows = training.count()
    if rows < 2 * processes:
        raise NoRecordsError(f"neural_network: {rows} training row(s) cannot feed {processes} processes")
    training.select(*columns).repartition(2 * processes).write.mode("overwrite").parquet(f"{staging}/train")
    job = {"train_dir": f"{staging}/train", "validation_dir": None, "train_rows": rows}
    if has_validation:
        validation = prepared.where(F.col(IS_VALIDATION)).select(*columns)
        validation.repartition(processes).write.mode("overwrite").parquet(f"{staging}/validation")
        job["validation_dir"] = f"{staging}/validation"
    return job


def remove_tree(uri: str) -> None:
    """Delete a staging folder (local path or a pyarrow-supported URI); best effort."""
    try:
        if "://" not in uri or uri.startswith("file:"):
            shutil.rmtree(uri.removeprefix("file://").removeprefix("file:"), ignore_errors=True)
            return
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(uri)
        filesystem.delete_dir(path)
    except Exception as exc:   # a leftover staging folder is untidy, not wrong
        logger.warning("could not remove staging folder %s: %s", uri, exc)


def run_torch_distributor(job: dict, result_path: str, processes: int, local_mode: bool, use_gpu: bool) -> dict:
    """Train through TorchDistributor; rank 0 leaves its result in ``result_path`` (shared storage,
    beside the shards) rather than in the distributor's return value, which is not reliably rank 0's.
    The file is JSON (:func:`credit_spark.ml.torch_train.result_to_json`), never pickle."""
    from pyspark.ml.torch.distributor import TorchDistributor

    from credit_spark.ml.torch_net import read_bytes
    from credit_spark.ml.torch_train import result_from_json, torch_distributor_main

    distributor = TorchDistributor(num_processes=processes, local_mode=local_mode, use_gpu=use_gpu)
    distributor.run(torch_distributor_main, {**job, "result_path": result_path})
    return result_from_json(read_bytes(result_path))


def run_horovod(job: dict, processes: int) -> dict:
    import horovod.spark

    from credit_spark.ml.torch_train import horovod_main

    results = horovod.spark.run(horovod_main, args=(job,), num_proc=processes, use_gloo=True, verbose=1)
    return results[0]          # rank 0 holds the weights; every rank reports its checksum in it


# --------------------------------------------------------------------------- fitted model
class TorchClassifierModel(Model, _TorchParams, DefaultParamsReadable, DefaultParamsWritable):
    """Class probabilities and the predicted class from the trained network, in Arrow batches."""

    netSpec = Param(Params._dummy(), "netSpec", "architecture (JSON)", TypeConverters.toString)
    state = Param(Params._dummy(), "state", "trained weights (torch.save, base64)", TypeConverters.toString)
    fitInfo = Param(Params._dummy(), "fitInfo", "training history (JSON)", TypeConverters.toString)

    @keyword_only
    def __init__(self, *, netSpec: str = "{}", state: str = "", fitInfo: str = "{}",
                 featuresCol: str = "features", categoricalCols: list[str] | None = None,
                 predictionCol: str = "prediction", probabilityCol: str = "probability"):
        super().__init__()
        self._setDefault(netSpec="{}", state="", fitInfo="{}")
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def fit_info(self) -> dict:
        return json.loads(self.getOrDefault("fitInfo"))

    def state_bytes(self) -> bytes:
        return base64.b64decode(self.getOrDefault("state"))

    def network(self):
        """The trained torch module (on the CPU), e.g. for direct inference."""
        from credit_spark.ml.torch_net import NetSpec, build_net, load_state

        net = build_net(NetSpec.from_json(self.getOrDefault("netSpec")))
        net.load_state_dict(load_state(self.state_bytes()))
        return net.eval()

    def _transform(self, dataset: DataFrame) -> DataFrame:
        net_spec, state = self.getOrDefault("netSpec"), self.state_bytes()
        key = hashlib.sha256(net_spec.encode() + state).hexdigest()[:16]
        width = len(self.getOrDefault("categoricalCols"))

        @F.pandas_udf("array<double>")
        def predict(numeric: pd.Series, categorical: pd.Series) -> pd.Series:
            from credit_spark.ml.torch_net import cached_model, predict_proba

            model = cached_model(key, net_spec, state)
            num = np.stack(numeric.to_numpy()).astype(np.float32) if len(numeric) else np.zeros((0, 0), np.float32)
            cat = (np.stack(categorical.to_numpy()).astype(np.int64) if width and len(categorical)
                   else np.zeros((len(numeric), 0), np.int64))
            return pd.Series(list(predict_proba(model, num, cat)))

        cats = self.getOrDefault("categoricalCols")
        categorical = F.array(*[F.col(c).cast("int") for c in cats]) if cats else F.array().cast("array<int>")
        probs = "__nn_probs"
        out = dataset.withColumn(probs, predict(vector_to_array(F.col(self.getFeaturesCol()), "float32"),
                                                categorical))
        return (out.withColumn(self.getPredictionCol(),
                               (F.array_position(F.col(probs), F.array_max(F.col(probs))) - 1).cast("double"))
                   .withColumn(self.getProbabilityCol(), array_to_vector(F.col(probs)))
                   .drop(probs))

    def input_importance(self, slot_names: list[str]) -> list[dict]:
        """An indicative importance per input: the norm of the first layer's weights on it
        (numeric inputs are standardised or encoded on a common scale, so the norms compare; a
        piecewise-linear input's block of bin columns counts as one); for a categorical column
        the mean norm of its embeddings pushed through those weights; averaged over members."""
        import torch

        from credit_spark.ml.torch_net import NetSpec, members

        spec = NetSpec.from_json(self.getOrDefault("netSpec"))
        d = spec.num_numeric
        per = spec.num_bins if spec.numeric_encoding == "piecewise_linear" else 1
        columns = self.getOrDefault("categoricalCols")
        totals = [0.0] * (d + len(columns))
        nets = members(self.network())
        for net in nets:
            first = net.mlp[0].weight.detach()
            for i in range(d):
                totals[i] += float(first[:, i * per:(i + 1) * per].norm()) / len(nets)
            offset = d * per
            for j, emb in enumerate(net.embeddings):
                block = first[:, offset:offset + emb.embedding_dim]
                with torch.no_grad():
                    totals[d + j] += float((emb.weight @ block.T).norm(dim=1).mean()) / len(nets)
                offset += emb.embedding_dim
        names = [*slot_names[:d], *(c.replace("__index", "") for c in columns)]
        return [{"feature": n, "value": v} for n, v in zip(names, totals)]


# --------------------------------------------------------------------------- pipeline
def preprocessing_stages(numeric: list[str], categorical: list[str], features_raw: str) -> tuple[list, list[str]]:
    """Imputation, indexing (categories stay indices: the network embeds them), assembling and
    standardisation with the mean removed (what an MLP wants, unlike sparse one-hot inputs)."""
    from credit_spark.ml.stages import MedianImputer

    imputed = [f"{c}__imputed" for c in numeric]
    indexed = [f"{c}__index" for c in categorical]
    stages: list = [MedianImputer(inputCols=numeric, outputCols=imputed)]
    if categorical:
        stages.append(StringIndexer(inputCols=categorical, outputCols=indexed, handleInvalid="keep",
                                    stringOrderType="frequencyDesc"))
    stages += [VectorAssembler(inputCols=imputed, outputCol=features_raw, handleInvalid="keep"),
               StandardScaler(inputCol=features_raw, outputCol="features", withMean=True, withStd=True)]
    return stages, indexed
