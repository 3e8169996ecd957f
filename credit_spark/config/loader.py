"""Configuration: YAML files in ``conf/`` parsed into validated, frozen dataclasses.

Resolution order (later wins, dictionaries merge key by key; an empty mapping ``{}`` in an
overlay replaces the mapping below it, so ``spark: {conf: {}}`` clears the base's Spark settings
and ``grid: {}`` a model's tuning grid):

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
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from credit_spark.config.catalog import feature_catalog
from credit_spark.errors import ConfigError
# The dataclasses live in credit_spark.config.spec (the dataset spec) and credit_spark.config.settings (the
# application settings); they are re-exported here, where callers have always imported them.
from credit_spark.config.settings import (ALGORITHMS, BINARY_ONLY, ENSEMBLE, MODEL_NAMES, NETWORK_TUNABLE,  # noqa: F401
                                   CalibrationSettings, ComparisonSettings, Config, DecisionSettings,
                                   EnsembleSettings, GradientBoostedTreesSettings, LakeSettings,
                                   LogisticRegressionSettings, MonitoringSettings, NeuralNetworkSettings,
                                   MaintainSettings, PrivacySettings, PromotionSettings, RandomForestSettings,
                                   ScorecardSettings, ScoreSettings,
                                   SelectionSettings, SparkSettings, TrackingSettings, TrainSettings,
                                   TuningSettings, XGBoostSettings)
from credit_spark.config.spec import (GENERATED_RECORD_ID, MONTH_NAMES, DatasetSpec, DerivedFeature,  # noqa: F401
                               LabelSpec, ListRule, NumericRule, PeriodSpec, ReasonCode, SplitRule,
                               StableRule, TemporalSpec)
from credit_spark.config.typed import coerce, build  # noqa: F401

logger = logging.getLogger(__name__)

ENV_VAR = "CREDIT_SPARK_ENV"
DEFAULT_ENV = "local"


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
    """Merge ``overlay`` into a copy of ``base``: nested mappings merge, anything else replaces,
    and so does an empty mapping (the only way an overlay can clear a mapping: merged, ``{}``
    would change nothing)."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and value and isinstance(out.get(key), Mapping):
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
                lake: str | None = None, remote: str | None = None) -> Config:
    """Resolve the layered config (see module docstring) into a validated :class:`Config`;
    ``lake`` and ``remote`` (the CLI's options) win over every file."""
    env = env or os.environ.get(ENV_VAR) or DEFAULT_ENV
    data = _read_shipped("base.yaml")
    data = deep_merge(data, check_keys(_read_shipped(f"{env}.yaml"), Config, f"conf/{env}.yaml"))
    for path in overlays or []:
        data = deep_merge(data, check_keys(_read_file(path), Config, str(path)))
    if lake:
        data = deep_merge(data, {"lake": {"root": lake}})
    remote = remote or os.environ.get("SPARK_REMOTE")    # pyspark's own variable for it
    if remote:
        data = deep_merge(data, {"spark": {"remote": remote}})
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
    validate_maintain(cfg.maintain, source)
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


def validate_maintain(maintain: MaintainSettings, source: str) -> None:
    """Retention days are not negative; table names are checked by ``maintain`` itself (the lake's
    tables are :mod:`credit_spark.lake.tables`' to name)."""
    if "scores" in maintain.retention_days or "monitoring" in maintain.retention_days:
        raise ConfigError(f"{source}: maintain.retention_days: the history of scores and monitoring is kept for "
                          f"score.retention_months; set that instead")
    days = {**maintain.retention_days, "default_retention_days": maintain.default_retention_days,
            "orphan_hours": maintain.orphan_hours}
    negative = {k: v for k, v in days.items() if v < 0}
    if negative:
        raise ConfigError(f"{source}: maintain: retention days and orphan_hours must be >= 0, got {negative}")


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
    if not train.ensemble.reg_params or any(r < 0 for r in train.ensemble.reg_params):
        raise ConfigError(f"{source}: train.ensemble.reg_params needs one or more values >= 0, "
                          f"got {train.ensemble.reg_params}")
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
                coerce(hints[key], whole, f"train.{algorithm}.grid.{key}[{i}]")
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from exc


