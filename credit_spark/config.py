"""Configuration: YAML files in ``conf/`` parsed into validated, frozen dataclasses.

Resolution order (later wins, dictionaries merge key by key):

1. ``conf/base.yaml`` shipped with the package (the embedded default),
2. the environment overlay ``conf/<env>.yaml`` (``--env`` or ``CREDIT_SPARK_ENV``, default ``local``),
3. user overlays given with ``--conf FILE`` (any number, in order),
4. explicit overrides such as ``--lake DIR``.

Every key is checked: an unknown key, a missing required key or a value of the wrong type stops
with a :class:`ConfigError` naming the dotted key (``train.test_fraction``), so a typo in a
config never silently falls back to a default.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from credit_spark.errors import ConfigError

logger = logging.getLogger(__name__)

ENV_VAR = "CREDIT_SPARK_ENV"
DEFAULT_ENV = "local"


# --------------------------------------------------------------------------- dataset spec
@dataclass(frozen=True)
class NumericRule:
    """How to read one numeric column and which values are plausible."""

    min: float | None = None      # smallest plausible value (null: no lower bound)
    max: float | None = None      # largest plausible value (null: no upper bound)
    #: values outside [min, max] become null ("null") or are clipped to the bound ("cap")
    out_of_range: Literal["null", "cap"] = "null"
    description: str = ""         # the feature catalog's text (and the default reason text)


@dataclass(frozen=True)
class PeriodSpec:
    """The column that places a record in time, and how its text is written."""

    column: str                   # the period column's name
    #: ``month_name``: "January".."December" (no year; period = month 1..12);
    #: ``year_month``: "2024-03" and ``date``: "2024-03-31" (period = yyyymm)
    format: Literal["month_name", "year_month", "date"] = "month_name"


@dataclass(frozen=True)
class LabelSpec:
    """The label column and its classes, ordered from best to worst credit (the last is "bad")."""

    column: str                   # the label column's name
    #: the classes as written in the data (numbers too: [0, 1]), best credit first; the last is
    #: the adverse class; probability columns are named prob_<class>
    classes: list[str]


@dataclass(frozen=True)
class ListRule:
    """A column holding a list of items in text ("A, B, and C")."""

    separator: str = ","          # between items; a final "and" is understood
    #: known items: one count column each (``<column>__<item>``), plus ``<column>_count`` in total
    items: list[str] = field(default_factory=list)
    description: str = ""         # the count's catalog text


@dataclass(frozen=True)
class SplitRule:
    """A composite category ("High_spent_Small_value_payments") split into its parts."""

    #: a regular expression with one capturing group per part
    pattern: str
    #: output column names, one per group (categorical features)
    parts: list[str]


@dataclass(frozen=True)
class StableRule:
    """An attribute that should not change for a customer across periods, repaired from its other periods."""

    #: ``mode``: the customer's most frequent valid value; ``near_mode``: keep the value when it is
    #: within ``tolerance`` of that mode (e.g. age, which grows by one a year), else the mode
    method: Literal["mode", "near_mode"] = "mode"
    tolerance: float = 0.0        # near_mode: the largest distance from the mode that is kept


@dataclass(frozen=True)
class DerivedFeature:
    """An engineered feature as a Spark SQL expression over cleaned columns."""

    expr: str                     # Spark SQL over cleaned columns and earlier derived features
    description: str              # the feature catalog's text


@dataclass(frozen=True)
class TemporalSpec:
    """Per-customer history features over *earlier* periods only (no look-ahead)."""

    #: numeric, duration or derived columns to give a previous value, change, rolling mean and max
    columns: list[str] = field(default_factory=list)
    #: rolling mean/max over the last ``window`` earlier periods
    window: int = 3


@dataclass(frozen=True)
class ReasonCode:
    """An adverse-action reason: the code and customer-facing text for one feature."""

    code: str                     # e.g. R01
    text: str                     # what the customer reads


@dataclass(frozen=True)
class DatasetSpec:
    """Which column plays which role. Nothing about a dataset's column names lives in Python."""

    name: str                     # names the registered model (credit_spark_<name>) and the reports
    label: LabelSpec              # the label column and its classes
    #: null: the record id is a hash of the row's content
    record_id: str | None = None
    #: null: every record is its own customer
    customer_id: str | None = None
    #: null: records have no period; a run date scores all of them
    period: PeriodSpec | None = None
    #: personal identifiers and protected attributes: read into raw_records, never features,
    #: scores, quarantine or model inputs
    pii: list[str] = field(default_factory=list)
    #: canonical column name -> the input file's header text for it (any text: dots, spaces), for
    #: extracts whose headers cannot be spec names; unmapped columns are found by their own name.
    #: Either way headers match trimmed and case-insensitively
    source_columns: dict[str, str] = field(default_factory=dict)
    #: numeric columns: stray underscores stripped ("52312.68_"), plausible range
    numeric: dict[str, NumericRule] = field(default_factory=dict)
    #: text categories (one-hot or embedded; the scorecard bins them by value)
    categorical: list[str] = field(default_factory=list)
    #: "N Years and M Months" columns, read as months
    duration_months: list[str] = field(default_factory=list)
    #: columns holding a list of items, read as counts
    lists: dict[str, ListRule] = field(default_factory=dict)
    #: composite categories split into their parts by a regular expression
    splits: dict[str, SplitRule] = field(default_factory=dict)
    #: tokens that mean "no value" wherever they appear (compared after trimming)
    placeholders: list[str] = field(default_factory=list)
    #: attributes that should not change for a customer, repaired from the customer's other periods
    stable: dict[str, StableRule] = field(default_factory=dict)
    #: which of a customer's periods the ``stable`` repair may use: ``all_periods`` (every month of
    #: the customer, the most information; a record's repaired value can change when later months
    #: arrive) or ``past_periods`` (up to the record's own period: strictly point-in-time)
    repair_scope: Literal["all_periods", "past_periods"] = "all_periods"
    #: engineered features: name -> Spark SQL expression over the cleaned columns
    derived: dict[str, DerivedFeature] = field(default_factory=dict)
    #: per-customer history features over earlier periods
    temporal: TemporalSpec = field(default_factory=TemporalSpec)
    #: feature (catalog name) -> adverse-action reason code and text; a feature without an entry
    #: gets code "R-<feature>" and its catalog description
    reason_codes: dict[str, ReasonCode] = field(default_factory=dict)
    #: column used for the fairness view (adverse share by age band); null = no age column
    age_column: str | None = None

    def required_columns(self) -> list[str]:
        """Columns every input file must have (the label is optional: unlabelled files are scored)."""
        keys = [c for c in (self.record_id, self.customer_id, self.period and self.period.column) if c]
        cols = [*keys, *self.pii, *self.numeric, *self.categorical, *self.duration_months,
                *self.lists, *self.splits]
        return list(dict.fromkeys(cols))

    def all_columns(self) -> list[str]:
        return [*self.required_columns(), self.label.column]

    @property
    def record_key(self) -> str:
        """The raw column that identifies a record (generated at ingest when the data has none)."""
        return self.record_id or GENERATED_RECORD_ID


# --------------------------------------------------------------------------- application config
@dataclass(frozen=True)
class SparkSettings:
    #: null leaves the master to spark-submit / the cluster
    master: str | None = "local[*]"
    app_name: str = "credit_spark"
    log_level: str = "WARN"
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LakeSettings:
    #: root folder (or URI) of the Delta tables; relative paths are taken from the working dir
    root: str = "lake"
    #: set to keep the tables in a metastore schema instead of paths (Databricks / Unity Catalog):
    #: tables are then ``[catalog.]schema.<table>``; ``root`` still holds local side files
    schema: str | None = None
    catalog: str | None = None


#: a tuning grid: settings key -> candidate values, e.g. {"reg_param": [0.001, 0.01]}
Grid = dict[str, list[float]]


@dataclass(frozen=True)
class LogisticRegressionSettings:
    max_iter: int = 100
    reg_param: float = 0.0
    elastic_net_param: float = 0.0     # 0 = ridge (L2), 1 = lasso (L1), between = elastic net
    #: "auto" = binomial for two classes, multinomial otherwise
    family: Literal["auto", "multinomial", "binomial"] = "auto"
    grid: Grid = field(default_factory=dict)


@dataclass(frozen=True)
class RandomForestSettings:
    num_trees: int = 50
    max_depth: int = 8
    min_instances_per_node: int = 1
    seed: int = 42
    grid: Grid = field(default_factory=dict)


@dataclass(frozen=True)
class GradientBoostedTreesSettings:
    """Binary labels only (MLlib's GBTClassifier)."""

    max_iter: int = 50
    max_depth: int = 5
    step_size: float = 0.1
    seed: int = 42
    grid: Grid = field(default_factory=dict)


@dataclass(frozen=True)
class XGBoostSettings:
    """Gradient-boosted trees for any number of classes (``xgboost.spark.SparkXGBClassifier``),
    trained by ``num_workers`` Spark tasks, early stopping on the validation split's log-loss."""

    n_estimators: int = 400          # most boosting rounds; early stopping picks the best
    early_stopping_rounds: int = 30  # rounds without a better validation log-loss before stopping
    max_depth: int = 4
    learning_rate: float = 0.05
    min_child_weight: float = 5.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    #: training tasks; "auto" = the executors' task slots (Spark's default parallelism), at most 32
    num_workers: int | Literal["auto"] = "auto"
    #: auto = cuda when Spark schedules GPUs (spark.task.resource.gpu.amount >= 1), else cpu
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 42
    grid: Grid = field(default_factory=dict)


@dataclass(frozen=True)
class NeuralNetworkSettings:
    """The PyTorch network, trained data-parallel on the executors (README, "Neural network")."""

    hidden_layers: list[int] = field(default_factory=lambda: [128, 64])
    dropout: float = 0.4
    embedding_dim: int = 8          # largest embedding width per categorical column
    #: mlp | resnet (a residual stream of hidden_layers[0] units, one block per entry)
    architecture: Literal["mlp", "resnet"] = "mlp"
    #: standard | piecewise_linear (a component per quantile bin) | quantile (normal scores)
    numeric_encoding: Literal["standard", "piecewise_linear", "quantile"] = "piecewise_linear"
    num_bins: int = 8               # quantile bins per numeric input (piecewise_linear, quantile)
    ensemble_size: int = 3          # networks trained side by side, probabilities averaged
    #: constant | cosine (linear warm-up over the first epoch, then cosine decay to max_epochs)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    learning_rate: float = 0.001
    weight_decay: float = 0.01
    #: rows per step and process; auto = a power of two near a 32nd of each process's training
    #: rows, within [64, 1024]
    batch_size: int | Literal["auto"] = "auto"
    max_epochs: int = 30
    patience: int = 6               # epochs without a better validation loss before stopping
    seed: int = 42
    #: torch_distributor (Spark's TorchDistributor, DDP) | horovod (horovod.spark.run)
    backend: Literal["torch_distributor", "horovod"] = "torch_distributor"
    num_processes: int = 2          # training processes = Spark tasks (one GPU each on a GPU cluster)
    #: TorchDistributor: false = processes run on the executors; true = on the driver node
    local_mode: bool = False
    #: auto = use GPUs when Spark schedules them (spark.task.resource.gpu.amount >= 1)
    use_gpu: bool | Literal["auto"] = "auto"
    #: training shards and checkpoints; null = <lake.root>/_staging, <lake.root>/_checkpoints
    staging_dir: str | None = None
    checkpoint_dir: str | None = None
    #: candidates chosen by the primary metric on the validation rows (each stops early on them)
    grid: dict[str, list[float | str | list[int]]] = field(default_factory=dict)


#: the network's settings a grid may search
NETWORK_TUNABLE = ("hidden_layers", "dropout", "embedding_dim", "architecture", "numeric_encoding", "num_bins",
                   "ensemble_size", "lr_schedule", "learning_rate", "weight_decay")


@dataclass(frozen=True)
class ScorecardSettings:
    """The traditional baseline: binning, WOE, IV filter, logistic regression, points."""

    num_bins: int = 10
    #: "quantile" bins, or "monotonic": quantile bins merged until the adverse rate is monotonic
    binning: Literal["quantile", "monotonic"] = "monotonic"
    min_iv: float = 0.02          # features with a lower information value are dropped
    pdo: float = 20.0             # points to double the odds
    base_score: float = 600.0     # score at the base odds
    base_odds: float = 50.0       # non-adverse : adverse odds at the base score
    reg_param: float = 0.001


@dataclass(frozen=True)
class TuningSettings:
    """Hyperparameter search over each algorithm's ``grid`` (an empty grid = no search)."""

    #: cross_validation: k folds of the training customers (CrossValidator with a customer foldCol);
    #: train_validation_split: fit on train, pick on the customer-grouped validation split
    method: Literal["none", "cross_validation", "train_validation_split"] = "train_validation_split"
    num_folds: int = 3
    #: models fitted at the same time
    parallelism: int = 2


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
    folds: int = 5
    kfold_max_rows: int = 10_000


@dataclass(frozen=True)
class CalibrationSettings:
    """Probability calibration fitted on the validation split (before the decision rule).

    ``auto`` chooses per model among none, isotonic and Platt by the log-loss of calibrators
    cross-fitted on two halves of the validation customers, among those whose cross-fitted AUC is
    within ``auc_tolerance`` of the uncalibrated one (isotonic steps tie scores, which costs ranking)."""

    method: Literal["auto", "none", "isotonic", "platt"] = "auto"
    auc_tolerance: float = 0.002


@dataclass(frozen=True)
class DecisionSettings:
    """How a class is chosen from the calibrated probabilities (learned on the validation split)."""

    #: macro_f1: per-class weights that maximise macro-F1; expected_cost: weights that minimise the
    #: cost of ``cost_matrix`` (Bayes rule at w = 1); argmax: the most probable class
    objective: Literal["macro_f1", "expected_cost", "argmax"] = "macro_f1"
    #: k x k, rows = true class, columns = predicted class, in label.classes order (expected_cost only)
    cost_matrix: list[list[float]] | None = None


@dataclass(frozen=True)
class EnsembleSettings:
    """The combined model: a multinomial logistic regression over the calibrated members'
    log-probabilities, fitted on held-out predictions (validation or out of fold), never on test."""

    enabled: bool = True
    reg_param: float = 0.01


@dataclass(frozen=True)
class ComparisonSettings:
    """Paired bootstrap of each model's difference from the scorecard on the test set."""

    bootstrap_samples: int = 1000
    confidence: float = 0.95
    seed: int = 7


@dataclass(frozen=True)
class PromotionSettings:
    """A challenger becomes champion only if it beats the champion on ``primary_metric`` by ``margin``
    on the same (this run's) test set."""

    margin: float = 0.005
    alias: str = "champion"


@dataclass(frozen=True)
class TrainSettings:
    #: customer: train/validation/test by a seeded hash of the customer id (no customer in two sets);
    #: out_of_time: the last ``out_of_time_test_periods`` labelled periods are the test set
    split: Literal["customer", "out_of_time"] = "customer"
    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    out_of_time_test_periods: int = 1
    seed: int = 42
    algorithms: list[str] = field(default_factory=lambda: ["logistic_regression", "random_forest", "scorecard"])
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
    uri: str | None = None
    #: model registry URI; null = the tracking URI (Databricks Unity Catalog: "databricks-uc")
    registry_uri: str | None = None
    experiment: str = "credit_spark"
    #: registered model name; null = credit_spark_<dataset>
    registered_model: str | None = None


@dataclass(frozen=True)
class MonitoringSettings:
    """Population stability of the score (PSI) and of every model input (CSI) against training."""

    psi_watch: float = 0.1
    psi_act: float = 0.25
    #: "act" / "watch": exit non-zero (after writing) when a PSI reaches that level; null = never
    fail_on: Literal["watch", "act"] | None = None


@dataclass(frozen=True)
class ScoreSettings:
    #: "champion" = the registered version holding the promotion alias; or an algorithm name
    #: (its latest registered version)
    model: str = "champion"
    #: adverse-action reasons per scored record (at most)
    max_reasons: int = 4
    #: Delta history (log and deleted files) kept for the scores table, in months
    retention_months: int = 25
    #: retries of a write that lost a race with a concurrent run (other run dates)
    write_retries: int = 5
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)


@dataclass(frozen=True)
class Config:
    dataset: str
    spec: DatasetSpec
    spark: SparkSettings = field(default_factory=SparkSettings)
    lake: LakeSettings = field(default_factory=LakeSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    score: ScoreSettings = field(default_factory=ScoreSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)

    def table_path(self, name: str) -> str:
        """A table's reference: its path under the lake root, or its metastore name."""
        if self.lake.schema:
            return ".".join(p for p in (self.lake.catalog, self.lake.schema, name) if p)
        return f"{self.lake.root.rstrip('/')}/{name}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


GENERATED_RECORD_ID = "_record_id"
ALGORITHMS = ("logistic_regression", "random_forest", "gradient_boosted_trees", "xgboost", "scorecard",
              "neural_network")
#: what a registered model can be: a trained algorithm, or the stack of a run's models
ENSEMBLE = "ensemble"
MODEL_NAMES = (*ALGORITHMS, ENSEMBLE)
BINARY_ONLY = ("gradient_boosted_trees",)
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")


# --------------------------------------------------------------------------- loading
def _conf_dir():
    """The shipped conf folder (``conf/`` in the source tree, ``credit_spark/conf`` in a wheel)."""
    return resources.files("credit_spark.conf")


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    return data


def _read_shipped(name: str) -> dict[str, Any]:
    resource = _conf_dir().joinpath(name)
    if not resource.is_file():
        raise ConfigError(f"no shipped config '{name}' in conf/")
    return _read_yaml(resource.read_text(encoding="utf-8"), f"conf/{name}")


def _read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    return _read_yaml(p.read_text(encoding="utf-8"), str(p))


def check_keys(data: Mapping[str, Any], cls: type, source: str, key: str = "") -> Mapping[str, Any]:
    """Stop on a key that ``cls`` does not have, naming the file it came from (after the merge,
    the file is no longer known). Types are checked later, on the merged config."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "spec"]
    for name, value in data.items():
        sub = f"{key}.{name}" if key else name
        if name not in names:
            raise ConfigError(f"{source}: unknown key '{sub}' (known keys{f' of {key}' if key else ''}: "
                              f"{', '.join(names)})")
        inner = [t for t in (hints[name], *typing.get_args(hints[name])) if dataclasses.is_dataclass(t)]
        if inner and isinstance(value, Mapping):
            check_keys(value, inner[0], source, sub)
    return data


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``overlay`` into a copy of ``base``: nested mappings merge, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_dataset_spec(ref: str) -> DatasetSpec:
    """A spec by shipped name (``credit_score`` → ``conf/datasets/credit_score.yaml``) or by file path."""
    if ref.endswith((".yaml", ".yml")) or os.sep in ref:
        raw = _read_file(ref)
        source = ref
    else:
        raw = _read_shipped(f"datasets/{ref}.yaml")
        source = f"conf/datasets/{ref}.yaml"
    spec = build(DatasetSpec, raw, source)
    validate_spec(spec, source)
    return spec


def validate_spec(spec: DatasetSpec, source: str) -> None:
    """Cross-field checks that types alone cannot express; each error names the key."""
    roles: dict[str, str] = {}

    def claim(column: str, role: str) -> None:
        if column in roles and roles[column] != role:
            raise ConfigError(f"{source}: column '{column}' is given two roles: "
                              f"{roles[column]} and {role}")
        roles[column] = role

    for column in [*spec.all_columns(), *spec.derived, *(p for r in spec.splits.values() for p in r.parts)]:
        if not column or re.search(r"[ ,;{}()\n\t=.`]", column):
            raise ConfigError(f"{source}: column name {column!r} contains a character Delta tables or "
                              f"Spark column references cannot take (space , ; {{ }} ( ) = . `)")
    keys = [(spec.record_id, "record_id"), (spec.customer_id, "customer_id"),
            (spec.period.column if spec.period else None, "period.column"), (spec.label.column, "label.column")]
    for column, role in keys:
        if column:
            claim(column, role)
    for role in ("pii", "numeric", "categorical", "duration_months", "lists", "splits"):
        for column in getattr(spec, role):
            claim(column, role)
    for column, rule in spec.numeric.items():
        if rule.min is not None and rule.max is not None and rule.min > rule.max:
            raise ConfigError(f"{source}: numeric.{column}: min {rule.min} is greater than max {rule.max}")
    if len(spec.label.classes) < 2 or len(set(spec.label.classes)) != len(spec.label.classes):
        raise ConfigError(f"{source}: label.classes must list at least two distinct classes, "
                          f"got {spec.label.classes}")
    for column, rule in spec.splits.items():
        try:
            groups = re.compile(rule.pattern).groups
        except re.error as exc:
            raise ConfigError(f"{source}: splits.{column}.pattern: invalid regular expression: {exc}") from exc
        if groups != len(rule.parts):
            raise ConfigError(f"{source}: splits.{column}: pattern has {groups} group(s) but "
                              f"{len(rule.parts)} part name(s)")
    unknown = [c for c in spec.source_columns if c not in spec.all_columns()]
    if unknown:
        raise ConfigError(f"{source}: source_columns: {unknown} are not columns of the spec (map a spec column "
                          f"to its header text in the file: {{canonical_name: 'Header text'}})")
    headers = [h.strip().lower() for h in spec.source_columns.values()]
    if any(not h for h in headers) or len(set(headers)) != len(headers):
        raise ConfigError(f"{source}: source_columns: header texts must be non-empty and distinct "
                          f"(compared trimmed, ignoring case), got {list(spec.source_columns.values())}")
    parsed = set(spec.numeric) | set(spec.categorical) | set(spec.duration_months)
    for column in spec.stable:
        if column not in parsed:
            raise ConfigError(f"{source}: stable.{column}: not a numeric, categorical or duration column")
        if spec.customer_id is None:
            raise ConfigError(f"{source}: stable.{column}: repair needs customer_id")
    for column, rule in spec.stable.items():
        if rule.method == "near_mode" and column in spec.categorical:
            raise ConfigError(f"{source}: stable.{column}.method: near_mode needs a numeric column")
    numeric_like = set(spec.numeric) | set(spec.duration_months) | set(spec.derived)
    for column in spec.temporal.columns:
        if column not in numeric_like:
            raise ConfigError(f"{source}: temporal.columns: '{column}' is not a numeric, duration or "
                              f"derived feature")
    if spec.temporal.columns and (spec.customer_id is None or spec.period is None):
        raise ConfigError(f"{source}: temporal: history features need customer_id and period")
    if spec.temporal.window < 1:
        raise ConfigError(f"{source}: temporal.window must be at least 1, got {spec.temporal.window}")
    for name in spec.derived:
        if name in roles:
            raise ConfigError(f"{source}: derived.{name}: the name is already a column of the dataset")


def load_config(overlays: list[str] | None = None, env: str | None = None,
                lake: str | None = None) -> Config:
    """Resolve the layered config (see module docstring) into a validated :class:`Config`."""
    env = env or os.environ.get(ENV_VAR) or DEFAULT_ENV
    data = _read_shipped("base.yaml")
    data = deep_merge(data, check_keys(_read_shipped(f"{env}.yaml"), Config, f"conf/{env}.yaml"))
    for path in overlays or []:
        data = deep_merge(data, check_keys(_read_file(path), Config, str(path)))
    if lake:
        data = deep_merge(data, {"lake": {"root": lake}})
    return config_from_dict(data, source=f"config (env={env})")


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> Config:
    data = dict(data)
    dataset = data.get("dataset")
    if not isinstance(dataset, str) or not dataset:
        raise ConfigError(f"{source}: key 'dataset' must name a dataset spec (e.g. credit_score)")
    if "spec" in data:
        raise ConfigError(f"{source}: unknown key 'spec' (the spec is read from 'dataset')")
    spec = load_dataset_spec(dataset)
    cfg = build(Config, {**data, "spec": spec}, source)
    unknown = [a for a in cfg.train.algorithms if a not in ALGORITHMS]
    if unknown or not cfg.train.algorithms:
        raise ConfigError(f"{source}: train.algorithms: unknown {unknown}; choose from {list(ALGORITHMS)}")
    validate_train(cfg.train, cfg.spec, source)
    validate_score(cfg.score, cfg.spec, source)
    if cfg.score.model not in ("champion", *MODEL_NAMES):
        raise ConfigError(f"{source}: score.model must be 'champion' or one of {list(MODEL_NAMES)}, "
                          f"got '{cfg.score.model}'")
    name = registered_model_base(cfg)
    if not name.strip() or re.search(r"[/:]", name):
        key = "tracking.registered_model" if cfg.tracking.registered_model else f"dataset spec name ({cfg.spec.name!r})"
        raise ConfigError(f"{source}: {key}: the MLflow registered model name {name!r} cannot contain '/' or ':'")
    root = cfg.lake.root
    if "://" not in root and not root.startswith(("dbfs:", "file:")):
        cfg = dataclasses.replace(cfg, lake=dataclasses.replace(cfg.lake, root=str(Path(root).resolve())))
    return cfg


def registered_model_base(cfg: Config) -> str:
    """``tracking.registered_model``, else ``credit_spark_<spec name>``: the spec's ``name``, never
    the ``dataset`` value, which may be a path to the spec file."""
    return cfg.tracking.registered_model or f"credit_spark_{cfg.spec.name}"


def validate_score(score: ScoreSettings, spec: DatasetSpec, source: str) -> None:
    from credit_spark.features import feature_catalog   # features imports this module

    names = {f.name for f in feature_catalog(spec)}
    unknown = sorted(set(spec.reason_codes) - names)
    if unknown:
        raise ConfigError(f"{source}: dataset {spec.name}: reason_codes: unknown feature(s) {unknown} "
                          f"(see `credit-spark catalog`)")
    if spec.age_column and spec.age_column not in names:
        raise ConfigError(f"{source}: dataset {spec.name}: age_column '{spec.age_column}' is not a feature")
    if not 1 <= score.max_reasons <= 10 or score.retention_months < 1 or score.write_retries < 0:
        raise ConfigError(f"{source}: score.max_reasons must be 1..10, score.retention_months >= 1, "
                          f"score.write_retries >= 0")
    m = score.monitoring
    if not 0 < m.psi_watch <= m.psi_act:
        raise ConfigError(f"{source}: score.monitoring: need 0 < psi_watch <= psi_act, "
                          f"got {m.psi_watch} and {m.psi_act}")


def validate_train(train: TrainSettings, spec: DatasetSpec, source: str) -> None:
    """Cross-field rules the types cannot express; each error names its key."""
    unknown = [a for a in train.algorithms if a not in ALGORITHMS]
    if unknown or not train.algorithms:
        raise ConfigError(f"{source}: train.algorithms: unknown {unknown}; choose from {list(ALGORITHMS)}")
    if len(spec.label.classes) > 2:
        binary_only = [a for a in train.algorithms if a in BINARY_ONLY]
        if binary_only:
            raise ConfigError(f"{source}: train.algorithms: {binary_only} needs a binary label, but "
                              f"{spec.name} has {len(spec.label.classes)} classes {spec.label.classes}")
    for key in ("test_fraction", "validation_fraction"):
        if not 0.0 < getattr(train, key) < 1.0:
            raise ConfigError(f"{source}: train.{key} must be between 0 and 1, got {getattr(train, key)}")
    if train.split == "customer" and train.test_fraction + train.validation_fraction >= 1.0:
        raise ConfigError(f"{source}: train.test_fraction + train.validation_fraction must leave customers "
                          f"to train on, got {train.test_fraction} + {train.validation_fraction}")
    if train.split == "out_of_time" and spec.period is None:
        raise ConfigError(f"{source}: train.split 'out_of_time' needs a period column, and dataset "
                          f"{spec.name} has none: use train.split 'customer'")
    if train.out_of_time_test_periods < 1:
        raise ConfigError(f"{source}: train.out_of_time_test_periods must be at least 1")
    if train.selection.folds < 2 or train.selection.kfold_max_rows < 0:
        raise ConfigError(f"{source}: train.selection.folds must be >= 2 and kfold_max_rows >= 0")
    if not 0 <= train.calibration.auc_tolerance < 1:
        raise ConfigError(f"{source}: train.calibration.auc_tolerance must be in [0, 1)")
    if train.tuning.num_folds < 2 or train.tuning.parallelism < 1:
        raise ConfigError(f"{source}: train.tuning.num_folds must be >= 2 and parallelism >= 1")
    if train.comparison.bootstrap_samples < 100 or not 0.5 < train.comparison.confidence < 1.0:
        raise ConfigError(f"{source}: train.comparison needs bootstrap_samples >= 100 and 0.5 < confidence < 1")
    nn = train.neural_network
    if (not nn.hidden_layers or min(nn.hidden_layers) < 1 or not 0 <= nn.dropout < 1
            or nn.max_epochs < 1 or nn.patience < 1 or nn.num_processes < 1 or nn.learning_rate <= 0
            or nn.num_bins < 1 or nn.ensemble_size < 1 or (nn.batch_size != "auto" and nn.batch_size < 1)):
        raise ConfigError(f"{source}: train.neural_network needs hidden_layers of positive widths, 0 <= dropout < 1, "
                          f"learning_rate > 0, batch_size 'auto' or >= 1 and max_epochs, patience, "
                          f"num_processes, num_bins, ensemble_size >= 1")
    check_grid(nn, "neural_network", list(NETWORK_TUNABLE), source)
    decision, k = train.decision, len(spec.label.classes)
    if decision.objective == "expected_cost":
        matrix = decision.cost_matrix
        if (matrix is None or len(matrix) != k or any(len(row) != k for row in matrix)
                or any(c < 0 for row in matrix for c in row)):
            raise ConfigError(f"{source}: train.decision.cost_matrix: objective expected_cost needs a {k} x {k} "
                              f"matrix of costs >= 0 (rows = true class, columns = predicted class, in the order "
                              f"{spec.label.classes}), got {matrix}")
    elif decision.cost_matrix is not None:
        raise ConfigError(f"{source}: train.decision.cost_matrix is used by objective expected_cost only, "
                          f"but objective is {decision.objective}")
    xgb = train.xgboost
    if (xgb.n_estimators < 1 or xgb.early_stopping_rounds < 1 or xgb.max_depth < 1 or xgb.learning_rate <= 0
            or not 0 < xgb.subsample <= 1 or not 0 < xgb.colsample_bytree <= 1
            or (xgb.num_workers != "auto" and xgb.num_workers < 1)):
        raise ConfigError(f"{source}: train.xgboost needs n_estimators, early_stopping_rounds, max_depth >= 1, "
                          f"learning_rate > 0, 0 < subsample, colsample_bytree <= 1 and num_workers 'auto' or >= 1")
    for algorithm in ("logistic_regression", "random_forest", "gradient_boosted_trees", "xgboost"):
        settings = getattr(train, algorithm)
        tunable = [f.name for f in dataclasses.fields(settings)
                   if f.name not in ("grid", "seed", "family", "num_workers", "device")]
        check_grid(settings, algorithm, tunable, source)


def check_grid(settings: Any, algorithm: str, tunable: list[str], source: str) -> None:
    """Every grid key is a tunable setting, and every candidate a valid value of it (a YAML
    ``[3, 5]`` reads as numbers: whole ones may tune an integer setting)."""
    hints = typing.get_type_hints(type(settings))
    for key, values in settings.grid.items():
        if key not in tunable:
            raise ConfigError(f"{source}: train.{algorithm}.grid: unknown parameter '{key}' "
                              f"(tunable: {', '.join(tunable)})")
        if not values:
            raise ConfigError(f"{source}: train.{algorithm}.grid.{key}: list at least one value")
        for i, value in enumerate(values):
            whole = int(value) if isinstance(value, float) and value.is_integer() else value
            try:
                _coerce(hints[key], whole, f"train.{algorithm}.grid.{key}[{i}]")
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from exc


# --------------------------------------------------------------------------- typed building
def build(cls: type, data: Any, key: str) -> Any:
    """Build dataclass ``cls`` from ``data``, checking every key and type; errors name the key."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {type(data).__name__} ({data!r})")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{key}: unknown key '{unknown[0]}' (known keys: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        sub = f"{key}.{name}" if key else name
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: required key is missing")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for option in non_none:
            try:
                return _coerce(option, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} ({value!r})")
        return [_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} ({value!r})")
        return {_coerce(args[0], k, key): _coerce(args[1], {} if v is None else v, f"{key}.{k}")
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if isinstance(value, bool):  # YAML reads `false` as a bool; Spark settings want "false"
            return "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - programming error
