"""The application settings (Spark, lake, training, scoring, tracking) as frozen dataclasses.

Pure data: ``credit_spark.config.loader`` builds them from the YAML files and validates cross-field
rules; every other module only reads them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from credit_spark.config.spec import DatasetSpec
from credit_spark.config.typed import Bool, Float, Int, Text

ALGORITHMS = ("logistic_regression", "random_forest", "gradient_boosted_trees", "xgboost", "scorecard",
              "neural_network")
#: what a registered model can be: a trained algorithm, or the stack of a run's models
ENSEMBLE = "ensemble"
MODEL_NAMES = (*ALGORITHMS, ENSEMBLE)
BINARY_ONLY = ("gradient_boosted_trees",)
#: the traditional model every other is compared with
BASELINE = "scorecard"


# --------------------------------------------------------------------------- application config
@dataclass(frozen=True)
class SparkSettings:
    #: null leaves the master to spark-submit / the cluster
    master: Text | None = "local[*]"
    #: a Spark Connect server to run every command through (``sc://host:15002``; ``local[N]``
    #: starts one in this process): master and static settings are then the server's. Also
    #: ``--remote`` and pyspark's ``SPARK_REMOTE``
    remote: Text | None = None
    app_name: Text = "credit_spark"
    log_level: Text = "WARN"
    conf: dict[Text, Text] = field(default_factory=dict)


@dataclass(frozen=True)
class LakeSettings:
    #: root folder (or URI) of the Delta tables; relative paths are taken from the working dir
    root: Text = "lake"
    #: set to keep the tables in a metastore schema instead of paths (Databricks / Unity Catalog):
    #: tables are then ``[catalog.]schema.<table>``; ``root`` still holds local side files
    schema: Text | None = None
    catalog: Text | None = None


#: a tuning grid: settings key -> candidate values, e.g. {"reg_param": [0.001, 0.01]}
Grid = dict[Text, list[Float]]


@dataclass(frozen=True)
class LogisticRegressionSettings:
    max_iter: Int = 100
    reg_param: Float = 0.0
    elastic_net_param: Float = 0.0     # 0 = ridge (L2), 1 = lasso (L1), between = elastic net
    #: "auto" = binomial for two classes, multinomial otherwise
    family: Literal["auto", "multinomial", "binomial"] = "auto"
    grid: Grid = field(default_factory=dict)


@dataclass(frozen=True)
class RandomForestSettings:
    num_trees: Int = 50
    max_depth: Int = 8
    min_instances_per_node: Int = 1
    seed: Int = 42
    grid: Grid = field(default_factory=dict)


@dataclass(frozen=True)
class GradientBoostedTreesSettings:
    """Binary labels only (MLlib's GBTClassifier)."""

    max_iter: Int = 50
    max_depth: Int = 5
    step_size: Float = 0.1
    seed: Int = 42
    grid: Grid = field(default_factory=dict)


@dataclass(frozen=True)
class XGBoostSettings:
    """Gradient-boosted trees for any number of classes (``xgboost.spark.SparkXGBClassifier``),
    trained by ``num_workers`` Spark tasks, early stopping on the validation split's log-loss."""

    n_estimators: Int = 400          # most boosting rounds; early stopping picks the best
    early_stopping_rounds: Int = 30  # rounds without a better validation log-loss before stopping
    max_depth: Int = 4
    learning_rate: Float = 0.05
    min_child_weight: Float = 5.0
    subsample: Float = 0.8
    colsample_bytree: Float = 0.8
    reg_lambda: Float = 1.0
    #: training tasks; "auto" = the executors' task slots (Spark's default parallelism), at most 32
    num_workers: Int | Literal["auto"] = "auto"
    #: auto = cuda when Spark schedules GPUs (spark.task.resource.gpu.amount >= 1), else cpu
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: Int = 42
    grid: Grid = field(default_factory=dict)


@dataclass(frozen=True)
class NeuralNetworkSettings:
    """The PyTorch network, trained data-parallel on the executors (docs/neural-network.md)."""

    hidden_layers: list[Int] = field(default_factory=lambda: [128, 64])
    dropout: Float = 0.4
    embedding_dim: Int = 8          # largest embedding width per categorical column
    #: mlp | resnet (a residual stream of hidden_layers[0] units, one block per entry)
    architecture: Literal["mlp", "resnet"] = "mlp"
    #: standard | piecewise_linear (a component per quantile bin) | quantile (normal scores)
    numeric_encoding: Literal["standard", "piecewise_linear", "quantile"] = "piecewise_linear"
    num_bins: Int = 8               # quantile bins per numeric input (piecewise_linear, quantile)
    ensemble_size: Int = 3          # networks trained side by side, probabilities averaged
    #: constant | cosine (linear warm-up over the first epoch, then cosine decay to max_epochs)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    learning_rate: Float = 0.001
    weight_decay: Float = 0.01
    #: rows per step and process; auto = a power of two near a 32nd of each process's training
    #: rows, within [64, 1024]
    batch_size: Int | Literal["auto"] = "auto"
    max_epochs: Int = 30
    patience: Int = 6               # epochs without a better validation loss before stopping
    seed: Int = 42
    #: torch_distributor (Spark's TorchDistributor, DDP) | horovod (horovod.spark.run)
    backend: Literal["torch_distributor", "horovod"] = "torch_distributor"
    num_processes: Int = 2          # training processes = Spark tasks (one GPU each on a GPU cluster)
    #: TorchDistributor: false = processes run on the executors; true = on the driver node
    local_mode: Bool = False
    #: auto = use GPUs when Spark schedules them (spark.task.resource.gpu.amount >= 1)
    use_gpu: Bool | Literal["auto"] = "auto"
    #: training shards and checkpoints; null = <lake.root>/_staging, <lake.root>/_checkpoints
    staging_dir: Text | None = None
    checkpoint_dir: Text | None = None
    #: candidates chosen by the primary metric on the validation rows (each stops early on them)
    grid: dict[Text, list[Float | Text | list[Int]]] = field(default_factory=dict)


#: the network's settings a grid may search
NETWORK_TUNABLE = ("hidden_layers", "dropout", "embedding_dim", "architecture", "numeric_encoding", "num_bins",
                   "ensemble_size", "lr_schedule", "learning_rate", "weight_decay")


@dataclass(frozen=True)
class ScorecardSettings:
    """The traditional baseline: binning, WOE, IV filter, logistic regression, points."""

    num_bins: Int = 10
    #: "quantile" bins, or "monotonic": quantile bins merged until the adverse rate is monotonic
    binning: Literal["quantile", "monotonic"] = "monotonic"
    min_iv: Float = 0.02          # features with a lower information value are dropped
    pdo: Float = 20.0             # points to double the odds
    base_score: Float = 600.0     # score at the base odds
    base_odds: Float = 50.0       # non-adverse : adverse odds at the base score
    reg_param: Float = 0.001


@dataclass(frozen=True)
class TuningSettings:
    """Hyperparameter search over each algorithm's ``grid`` (an empty grid = no search)."""

    #: cross_validation: k folds of the training customers (CrossValidator with a customer foldCol);
    #: train_validation_split: fit on train, pick on the customer-grouped validation split
    method: Literal["none", "cross_validation", "train_validation_split"] = "train_validation_split"
    num_folds: Int = 3
    #: models fitted at the same time
    parallelism: Int = 2


@dataclass(frozen=True)
class SelectionSettings:
    """How each model is tuned, calibrated and given its decision rule, and on which rows it is fitted.

    ``holdout``: fitted on the training customers; grid, calibration and decision rule on the
    validation customers. ``kfold``: customer-grouped ``folds``-fold over training + validation
    customers; every grid point is judged on out-of-fold predictions, which also fit the calibrator
    and the decision rule, and the chosen model is refitted on training + validation (more rows
    to learn from, less noise in the choices: what a few thousand labelled customers need). ``auto``:
    kfold up to ``kfold_max_rows`` training + validation rows, holdout above (k times the fits)."""

    method: Literal["auto", "holdout", "kfold"] = "auto"
    folds: Int = 5
    kfold_max_rows: Int = 10_000


@dataclass(frozen=True)
class CalibrationSettings:
    """Probability calibration fitted on the validation split (before the decision rule).

    ``auto`` chooses per model among none, isotonic and Platt by the log-loss of calibrators
    cross-fitted on two halves of the validation customers, among those whose cross-fitted AUC is
    within ``auc_tolerance`` of the uncalibrated one (isotonic steps tie scores, which costs ranking)."""

    method: Literal["auto", "none", "isotonic", "platt"] = "auto"
    auc_tolerance: Float = 0.002


@dataclass(frozen=True)
class DecisionSettings:
    """How a class is chosen from the calibrated probabilities (learned on the validation split)."""

    #: macro_f1: per-class weights that maximise macro-F1; expected_cost: weights that minimise the
    #: cost of ``cost_matrix`` (Bayes rule at w = 1); argmax: the most probable class
    objective: Literal["macro_f1", "expected_cost", "argmax"] = "macro_f1"
    #: k x k, rows = true class, columns = predicted class, in label.classes order (expected_cost only)
    cost_matrix: list[list[Float]] | None = None


@dataclass(frozen=True)
class EnsembleSettings:
    """The combined model: a multinomial logistic regression over the calibrated members'
    log-probabilities, fitted on held-out predictions (validation or out of fold), never on test."""

    enabled: Bool = True
    #: stacked: a coefficient per member and class; mean: one shared weight per member (the
    #: members' mean log-probability per class, recalibrated); auto: both tried (stacked at every
    #: ``reg_params`` value, mean at the smallest), the lowest cross-fitted log-loss wins
    combiner: Literal["auto", "stacked", "mean"] = "auto"
    #: L2 strengths of the stacked combiner's logistic regression tried (the mean combiner, with
    #: k x k coefficients only, takes the smallest)
    reg_params: list[Float] = field(default_factory=lambda: [0.001, 0.01, 0.1])


@dataclass(frozen=True)
class ComparisonSettings:
    """Paired bootstrap of each model's difference from the scorecard on the test set."""

    bootstrap_samples: Int = 1000
    confidence: Float = 0.95
    seed: Int = 7


@dataclass(frozen=True)
class PromotionSettings:
    """A challenger becomes champion only if it beats the champion on ``primary_metric`` by ``margin``
    on the same (this run's) test set."""

    margin: Float = 0.005
    alias: Text = "champion"


@dataclass(frozen=True)
class TrainSettings:
    #: customer: train/validation/test by a seeded hash of the customer id (no customer in two sets);
    #: out_of_time: the last ``out_of_time_test_periods`` labelled periods are the test set
    split: Literal["customer", "out_of_time"] = "customer"
    test_fraction: Float = 0.2
    validation_fraction: Float = 0.2
    out_of_time_test_periods: Int = 1
    seed: Int = 42
    algorithms: list[Text] = field(default_factory=lambda: ["logistic_regression", "random_forest", "scorecard"])
    #: metric that picks the best model of a run (on validation) and decides promotion (on test)
    primary_metric: Literal["macro_f1", "accuracy", "auc"] = "macro_f1"
    #: "balanced": each class weighs n / (k * n_class) in training (weightCol); "none": all 1
    class_weight: Literal["balanced", "none"] = "balanced"
    tuning: TuningSettings = field(default_factory=TuningSettings)
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    calibration: CalibrationSettings = field(default_factory=CalibrationSettings)
    decision: DecisionSettings = field(default_factory=DecisionSettings)
    ensemble: EnsembleSettings = field(default_factory=EnsembleSettings)
    comparison: ComparisonSettings = field(default_factory=ComparisonSettings)
    promotion: PromotionSettings = field(default_factory=PromotionSettings)
    logistic_regression: LogisticRegressionSettings = field(default_factory=LogisticRegressionSettings)
    random_forest: RandomForestSettings = field(default_factory=RandomForestSettings)
    gradient_boosted_trees: GradientBoostedTreesSettings = field(default_factory=GradientBoostedTreesSettings)
    xgboost: XGBoostSettings = field(default_factory=XGBoostSettings)
    scorecard: ScorecardSettings = field(default_factory=ScorecardSettings)
    neural_network: NeuralNetworkSettings = field(default_factory=NeuralNetworkSettings)


@dataclass(frozen=True)
class TrackingSettings:
    """MLflow. Embedded default: a SQLite store and artifact folder inside a local lake folder."""

    #: tracking URI; null = sqlite:///<lake>/mlflow/mlflow.db (local lakes only), or e.g.
    #: http://mlflow:5000 or "databricks"
    uri: Text | None = None
    #: model registry URI; null = the tracking URI (Databricks Unity Catalog: "databricks-uc")
    registry_uri: Text | None = None
    experiment: Text = "credit_spark"
    #: registered model name; null = credit_spark_<dataset>
    registered_model: Text | None = None


@dataclass(frozen=True)
class MonitoringSettings:
    """Population stability of the score (PSI) and of every model input (CSI) against training."""

    psi_watch: Float = 0.1
    psi_act: Float = 0.25
    #: "act" / "watch": exit non-zero (after writing) when a PSI reaches that level; null = never
    fail_on: Literal["watch", "act"] | None = None


@dataclass(frozen=True)
class ScoreSettings:
    #: "champion" = the registered version holding the promotion alias; or an algorithm name
    #: (its latest registered version)
    model: Text = "champion"
    #: adverse-action reasons per scored record (at most)
    max_reasons: Int = 4
    #: Delta history (log and deleted files) kept for the scores table, in months
    retention_months: Int = 25
    #: retries of a write that lost a race with a concurrent run (other run dates)
    write_retries: Int = 5
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)


@dataclass(frozen=True)
class PrivacySettings:
    """What the spec's ``pii`` columns hold at rest (docs/operations.md, "Personal data")."""

    #: drop = null in raw_records; hash = HMAC-SHA256 under the key in key_env (records of one
    #: person still join)
    pii: Literal["drop", "hash"] = "drop"
    #: environment variable holding the HMAC key (at least 16 bytes), read at ingest
    key_env: Text = "CREDIT_SPARK_PII_KEY"


@dataclass(frozen=True)
class MaintainSettings:
    """``credit-spark maintain``: compaction and how long removed files stay (docs/operations.md)."""

    #: days a file removed from a table is kept (time travel reaches this far back), per table;
    #: scores and monitoring keep score.retention_months instead
    retention_days: dict[Text, Float] = field(default_factory=lambda: {"raw_records": 30.0, "quarantine": 30.0})
    #: days for the tables retention_days does not name (features, data_quality, scorecard)
    default_retention_days: Float = 7.0
    #: hours after which a data file no commit names (a killed write's) is deleted; a write still
    #: running has newer files
    orphan_hours: Float = 24.0
    #: columns OPTIMIZE Z-orders each table's files by (within each partition)
    zorder: dict[Text, list[Text]] = field(default_factory=lambda: {"scores": ["customer_id"]})


@dataclass(frozen=True)
class Config:
    dataset: Text
    spec: DatasetSpec
    spark: SparkSettings = field(default_factory=SparkSettings)
    lake: LakeSettings = field(default_factory=LakeSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    score: ScoreSettings = field(default_factory=ScoreSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    maintain: MaintainSettings = field(default_factory=MaintainSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)

    def table_path(self, name: str) -> str:
        """A table's reference: its path under the lake root, or its metastore name."""
        if self.lake.schema:
            return ".".join(p for p in (self.lake.catalog, self.lake.schema, name) if p)
        return f"{self.lake.root.rstrip('/')}/{name}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
