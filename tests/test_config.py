from pathlib import Path

import pytest

from credit_spark.config import Config, deep_merge, load_config, load_dataset_spec
from credit_spark.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "overlay.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_base_config_loads_with_shipped_spec():
    cfg = load_config(env="local")
    assert isinstance(cfg, Config)
    assert cfg.spec.name == "credit_score"
    assert cfg.spec.label.classes == ["Good", "Standard", "Poor"]
    assert cfg.spark.master == "local[*]"
    assert Path(cfg.lake.root).is_absolute()


def test_cluster_overlay_leaves_master_to_spark_submit():
    cfg = load_config(env="cluster")
    assert cfg.spark.master is None
    assert cfg.spark.conf["spark.sql.shuffle.partitions"] == "200"
    # keys the overlay does not name keep the base values
    assert cfg.spark.conf["spark.sql.session.timeZone"] == "UTC"


def test_user_overlay_and_lake_override(tmp_path):
    overlay = write(tmp_path, "train:\n  test_fraction: 0.3\n  random_forest:\n    num_trees: 7\n")
    cfg = load_config([overlay], env="local", lake=str(tmp_path / "mylake"))
    assert cfg.train.test_fraction == 0.3
    assert cfg.train.random_forest.num_trees == 7
    assert cfg.train.random_forest.max_depth == 8          # untouched sibling key
    assert cfg.lake.root == str(tmp_path / "mylake")


def test_env_var_selects_overlay(monkeypatch):
    monkeypatch.setenv("CREDIT_SPARK_ENV", "cluster")
    assert load_config().spark.master is None


def test_unknown_key_is_named(tmp_path):
    overlay = write(tmp_path, "train:\n  test_fracton: 0.3\n")
    with pytest.raises(ConfigError, match=r"train: unknown key 'test_fracton'"):
        load_config([overlay], env="local")


def test_wrong_type_is_named(tmp_path):
    overlay = write(tmp_path, "train:\n  random_forest:\n    num_trees: many\n")
    with pytest.raises(ConfigError, match=r"train\.random_forest\.num_trees: expected an integer"):
        load_config([overlay], env="local")


def test_invalid_choice_is_named(tmp_path):
    overlay = write(tmp_path, "train:\n  primary_metric: auc\n")
    with pytest.raises(ConfigError, match=r"train\.primary_metric: must be one of"):
        load_config([overlay], env="local")


@pytest.mark.parametrize("text, message", [
    ("train:\n  algorithms: [svm]\n", r"train\.algorithms: unknown \['svm'\]"),
    ("train:\n  test_fraction: 1.5\n", r"train\.test_fraction must be between 0 and 1"),
    ("score:\n  model: xgboost\n", r"score\.model must be 'selected'"),
])
def test_semantic_checks(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config([write(tmp_path, text)], env="local")


def test_missing_overlay_file_and_unknown_env(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config([str(tmp_path / "nope.yaml")], env="local")
    with pytest.raises(ConfigError, match="no shipped config 'staging.yaml'"):
        load_config(env="staging")


def test_deep_merge_replaces_lists_and_merges_mappings():
    merged = deep_merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}


SPEC = """
name: tiny
record_id: id
customer_id: cust
period: {column: month}
label: {column: y, classes: [good, bad]}
numeric:
  income: {min: 0, max: 10}
"""


def test_spec_from_file(tmp_path):
    spec = load_dataset_spec(write(tmp_path, SPEC, "tiny.yaml"))
    assert spec.required_columns() == ["id", "cust", "month", "income"]
    assert spec.feature_columns() == ["income"]


@pytest.mark.parametrize("change, message", [
    (SPEC.replace("record_id: id\n", ""), r"record_id: required key is missing"),
    (SPEC.replace("{min: 0, max: 10}", "{min: 10, max: 0}"), r"numeric\.income: min 10\.0 is greater than max 0\.0"),
    (SPEC.replace("{min: 0, max: 10}", "{min: 0, lo: 10}"), r"numeric\.income: unknown key 'lo'"),
    (SPEC.replace("{column: month}", "{column: month, format: julian}"), r"period\.format: must be one of"),
    (SPEC + "categorical: [income]\n", r"column 'income' is given two roles"),
    (SPEC.replace("[good, bad]", "[good]"), r"label\.classes must list at least two"),
    (SPEC + "cleaning: {trim: true}\n", r"unknown key 'cleaning'"),
])
def test_bad_spec_names_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset_spec(write(tmp_path, change, "bad.yaml"))


def test_unknown_shipped_dataset():
    with pytest.raises(ConfigError, match="no shipped config 'datasets/nope.yaml'"):
        load_dataset_spec("nope")
