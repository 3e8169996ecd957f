from pathlib import Path

import pytest

from credit_spark.config.loader import Config, deep_merge, load_config, load_dataset_spec
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


def test_a_spark_connect_server_comes_from_the_option_the_environment_or_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    assert load_config().spark.remote is None
    overlay = write(tmp_path, "spark:\n  remote: sc://from-file:15002\n")
    assert load_config([overlay]).spark.remote == "sc://from-file:15002"
    monkeypatch.setenv("SPARK_REMOTE", "sc://from-env:15002")       # pyspark's own variable
    assert load_config().spark.remote == "sc://from-env:15002"
    assert load_config([overlay], remote="sc://option:1").spark.remote == "sc://option:1"
    connect = load_config(env="connect", remote="sc://option:1")
    assert connect.spark.master is None and "xgboost" not in connect.train.algorithms


def test_env_var_selects_overlay(monkeypatch):
    monkeypatch.setenv("CREDIT_SPARK_ENV", "cluster")
    assert load_config().spark.master is None


def test_unknown_key_is_named(tmp_path):
    overlay = write(tmp_path, "train:\n  test_fracton: 0.3\n")
    with pytest.raises(ConfigError, match=r"overlay\.yaml: unknown key 'train\.test_fracton' \(known keys of train: "):
        load_config([overlay], env="local")


def test_wrong_type_is_named(tmp_path):
    overlay = write(tmp_path, "train:\n  random_forest:\n    num_trees: many\n")
    with pytest.raises(ConfigError, match=r"train\.random_forest\.num_trees: expected an integer"):
        load_config([overlay], env="local")


def test_invalid_choice_is_named(tmp_path):
    overlay = write(tmp_path, "train:\n  primary_metric: f1\n")
    with pytest.raises(ConfigError, match=r"train\.primary_metric: must be one of"):
        load_config([overlay], env="local")


@pytest.mark.parametrize("text, message", [
    ("train:\n  algorithms: [svm]\n", r"train\.algorithms: unknown \['svm'\]"),
    ("train:\n  test_fraction: 1.5\n", r"train\.test_fraction must be between 0 and 1"),
    ("score:\n  model: catboost\n", r"score\.model must be 'champion'"),
    ("train:\n  algorithms: [gradient_boosted_trees]\n",
     r"train\.algorithms: \['gradient_boosted_trees'\] needs a binary label, but credit_score has 3 classes"),
    ("train:\n  random_forest:\n    grid: {max_dept: [3]}\n",
     r"train\.random_forest\.grid: unknown parameter 'max_dept' \(tunable: num_trees, max_depth"),
    ("train:\n  test_fraction: 0.5\n  validation_fraction: 0.5\n",
     r"train\.test_fraction \+ train\.validation_fraction must leave customers to train on"),
    ("train:\n  calibration: {method: beta}\n", r"train\.calibration\.method: must be one of"),
    ("train:\n  ensemble: {reg_params: []}\n", r"train\.ensemble\.reg_params needs one or more values >= 0"),
    ("train:\n  ensemble: {combiner: median}\n", r"train\.ensemble\.combiner: must be one of"),
    ("train:\n  comparison: {bootstrap_samples: 10}\n", r"bootstrap_samples >= 100"),
    ("train:\n  neural_network: {backend: mpi}\n", r"train\.neural_network\.backend: must be one of"),
    ("train:\n  neural_network: {grid: {patience: [2]}}\n", r"train\.neural_network\.grid: unknown parameter 'patience'"),
    ("train:\n  neural_network: {grid: {numeric_encoding: [standard, splines]}}\n",
     r"train\.neural_network\.grid\.numeric_encoding\[1\]: must be one of"),
    ("train:\n  neural_network: {grid: {num_bins: [8.5]}}\n", r"train\.neural_network\.grid\.num_bins\[0\]: expected an integer"),
    ("train:\n  neural_network: {architecture: transformer}\n", r"train\.neural_network\.architecture: must be one of"),
    ("train:\n  neural_network: {ensemble_size: 0}\n", r"train\.neural_network needs .*ensemble_size >= 1"),
    ("train:\n  neural_network: {dropout: 1.0}\n", r"train\.neural_network needs .*0 <= dropout < 1"),
    ("train:\n  neural_network: {use_gpu: maybe}\n", r"train\.neural_network\.use_gpu"),
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


def test_an_empty_mapping_in_an_overlay_clears_the_one_below(tmp_path):
    assert deep_merge({"a": {"b": {"x": 1}, "c": 2}}, {"a": {"b": {}}}) == {"a": {"b": {}, "c": 2}}
    overlay = tmp_path / "o.yaml"
    overlay.write_text("train:\n  xgboost:\n    grid: {}\n")
    assert load_config().train.xgboost.grid and not load_config([str(overlay)]).train.xgboost.grid


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
    assert spec.record_key == "id"
    from credit_spark.transforms.features import categorical_features, numeric_features
    assert (numeric_features(spec), categorical_features(spec)) == (["income"], [])


def test_a_spec_given_by_path_names_the_registered_model_by_its_name(tmp_path):
    """The worked example of docs/spec.md names the spec by path: the MLflow name must come from the
    spec's `name` (MLflow refuses '/' and ':'), checked when the config loads, not after training."""
    from credit_spark.tracking.registry import registered_model_name

    spec_path = write(tmp_path, SPEC, "my_spec.yaml")
    cfg = load_config([write(tmp_path, f"dataset: {spec_path}\n")], env="local")
    assert registered_model_name(cfg) == "credit_spark_tiny"
    bad = write(tmp_path, f"dataset: {spec_path}\ntracking: {{registered_model: 'team/models'}}\n", "bad.yaml")
    with pytest.raises(ConfigError, match=r"tracking\.registered_model: the MLflow registered model name "
                                          r"'team/models' cannot contain"):
        load_config([bad], env="local")


@pytest.mark.parametrize("change, message", [
    (SPEC.replace("name: tiny\n", ""), r"name: required key is missing"),
    (SPEC.replace("{min: 0, max: 10}", "{min: 10, max: 0}"), r"numeric\.income: min 10\.0 is greater than max 0\.0"),
    (SPEC.replace("{min: 0, max: 10}", "{min: 0, lo: 10}"), r"numeric\.income: unknown key 'lo'"),
    (SPEC.replace("{column: month}", "{column: month, format: julian}"), r"period\.format: must be one of"),
    (SPEC + "categorical: [income]\n", r"column 'income' is given two roles"),
    (SPEC.replace("[good, bad]", "[good]"), r"label\.classes must list at least two"),
    (SPEC + "cleaning: {trim: true}\n", r"unknown key 'cleaning'"),
    (SPEC + "categorical: [home region]\n", r"column name 'home region' contains a character"),
    (SPEC + "stable: {income: {method: median}}\n", r"stable\.income\.method: must be one of \['mode', 'near_mode'\]"),
    (SPEC + "stable: {wealth: {method: mode}}\n", r"stable\.wealth: not a numeric, categorical or duration column"),
    (SPEC + "splits: {beh: {pattern: '^(a)_(b)$', parts: [x]}}\n", r"splits\.beh: pattern has 2 group\(s\) but 1 part"),
    (SPEC + "splits: {beh: {pattern: '(a', parts: [x]}}\n", r"splits\.beh\.pattern: invalid regular expression"),
    (SPEC + "temporal: {columns: [wealth]}\n", r"temporal\.columns: 'wealth' is not a numeric"),
    (SPEC + "temporal: {columns: [income], window: 0}\n", r"temporal\.window must be at least 1"),
    (SPEC + "derived: {income: {expr: '1', description: d}}\n", r"derived\.income: the name is already a column"),
    (SPEC + "derived: {ratio: {expr: '1'}}\n", r"derived\.ratio\.description: required key is missing"),
])
def test_bad_spec_names_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset_spec(write(tmp_path, change, "bad.yaml"))


def test_shipped_specs_load():
    german = load_dataset_spec("german_credit")
    assert german.record_id is None and german.customer_id is None and german.period is None
    assert german.label.classes == ["good", "bad"]
    from credit_spark.transforms.features import categorical_features, numeric_features
    assert "personal_status_and_sex" in german.required_columns()       # read from the file ...
    assert "personal_status_and_sex" not in categorical_features(german) + numeric_features(german)  # ... never a feature
    credit = load_dataset_spec("credit_score")
    assert credit.splits["Payment_Behaviour"].parts == ["Spending_Level", "Payment_Value"]


def test_unknown_shipped_dataset():
    with pytest.raises(ConfigError, match="no shipped config 'datasets/nope.yaml'"):
        load_dataset_spec("nope")


#: the top-level keys a Databricks Asset Bundle configuration may have
BUNDLE_KEYS = {"bundle", "include", "artifacts", "variables", "targets", "resources", "workspace", "permissions",
               "sync", "run_as", "presets", "experimental", "scripts", "python"}


def test_databricks_overlay_is_valid():
    cfg = load_config(env="databricks")
    assert cfg.spark.master is None and cfg.table_path("scores") == "main.credit.scores"
    assert cfg.spark.conf == {}   # the cluster's settings stand: none of base.yaml's local tuning
    assert cfg.tracking.uri == "databricks" and cfg.tracking.registry_uri == "databricks-uc"


def test_the_asset_bundle_job_is_valid_for_databricks_and_for_the_cli():
    """databricks.yml and its resources: every job validates against the Databricks SDK's own job
    model (unknown or misspelt keys and wrong types fail), installs the wheel the bundle builds,
    and each task's parameters are CLI arguments the CLI accepts as written."""
    import re

    import yaml
    from databricks.bundles.jobs import Job

    from credit_spark.cli import parse_args

    root = Path(__file__).resolve().parents[1]
    bundle = yaml.safe_load((root / "databricks.yml").read_text())
    assert set(bundle) <= BUNDLE_KEYS, set(bundle) - BUNDLE_KEYS
    assert bundle["artifacts"]["credit_spark_wheel"]["type"] == "whl"
    variables = {name: v["default"] for name, v in bundle["variables"].items()}
    jobs = {}
    for pattern in bundle["include"]:
        for file in sorted(root.glob(pattern)):
            jobs.update(yaml.safe_load(file.read_text())["resources"]["jobs"])
    assert set(jobs) == {"credit_spark_nightly"}
    for job in jobs.values():
        Job.from_dict(job)
        for task in job["tasks"]:
            assert task["libraries"] == [{"whl": "../dist/*.whl"}]   # what the artifact's build writes
            wheel = task["python_wheel_task"]
            assert (wheel["package_name"], wheel["entry_point"]) == ("credit_spark", "credit-spark")
            used = {m for p in wheel["parameters"] for m in re.findall(r"\$\{var\.(\w+)\}", p)}
            assert used <= set(variables), used - set(variables)
            # the bundle fills in its variables, Databricks the dynamic value; the CLI must accept the rest
            resolved = [re.sub(r"\$\{var\.(\w+)\}", lambda m: variables[m[1]], p)
                        .replace("{{job.start_time.iso_date}}", "2026-09-30") for p in wheel["parameters"]]
            args = parse_args(resolved)
            assert args.env == "databricks" and args.command in {"ingest", "features", "train", "score"}
    with pytest.raises(ValueError, match="Unexpected field 'taks'"):
        Job.from_dict({"name": "x", "taks": []})


def test_neural_network_overlay_and_gpu_switch(tmp_path):
    cfg = load_config([str(Path(__file__).resolve().parents[1] / "conf" / "nn.yaml"), write(tmp_path, "train:\n  neural_network: {use_gpu: true}\n")], env="local")
    assert cfg.train.algorithms[-1] == "neural_network"
    assert cfg.train.neural_network.use_gpu is True and cfg.train.neural_network.backend == "torch_distributor"
    assert load_config(env="local").train.neural_network.use_gpu == "auto"


def test_an_unknown_key_names_the_overlay_file_it_came_from(tmp_path):
    good = write(tmp_path, "train:\n  random_forest: {num_trees: 5}\n", "good.yaml")
    bad = write(tmp_path, "train:\n  randm_forest: {num_trees: 5}\n", "typo.yaml")
    with pytest.raises(ConfigError, match=r"typo\.yaml: unknown key 'train\.randm_forest' \(known keys of train: "):
        load_config([good, bad], env="local")
    deep = write(tmp_path, "train:\n  xgboost: {n_estimator: 5}\n", "deep.yaml")
    with pytest.raises(ConfigError, match=r"deep\.yaml: unknown key 'train\.xgboost\.n_estimator'"):
        load_config([good, deep], env="local")


def test_commands_keep_spark_warehouse_out_of_the_working_folder(tmp_path, monkeypatch):
    import dataclasses

    from pyspark.sql import SparkSession

    from credit_spark.cli import with_scratch_warehouse

    cfg = load_config(env="local", lake=str(tmp_path / "lake"))
    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: object()))
    assert with_scratch_warehouse(cfg) is cfg     # a running session keeps its warehouse (a static setting)
    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))
    warehouse = with_scratch_warehouse(cfg).spark.conf["spark.sql.warehouse.dir"]
    assert not warehouse.startswith(str(Path.cwd())) and warehouse.endswith("credit_spark-warehouse")
    own = dataclasses.replace(cfg, spark=dataclasses.replace(cfg.spark, conf={"spark.sql.warehouse.dir": "/w"}))
    assert with_scratch_warehouse(own).spark.conf["spark.sql.warehouse.dir"] == "/w"
    metastore = dataclasses.replace(cfg, lake=dataclasses.replace(cfg.lake, schema="credit"))
    assert "spark.sql.warehouse.dir" not in with_scratch_warehouse(metastore).spark.conf


def test_version_and_schema_commands_need_no_spark(capsys):
    import json

    from credit_spark.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    from credit_spark._version import __version__
    assert done.value.code == 0 and capsys.readouterr().out == f"credit-spark {__version__}\n"
    assert main(["schema", "spec"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "credit_spark dataset spec" and "source_columns" in schema["properties"]


def test_a_lake_that_cannot_be_created_stops_the_command_before_spark_starts(tmp_path, capsys):
    from credit_spark.cli import main

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["--lake", str(blocker / "lake"), "features"]) == 2
    err = capsys.readouterr().err
    assert f"lake.root {blocker / 'lake'}: cannot be created: {blocker} is a file" in err


def test_values_are_checked_as_a_yaml_author_writes_them():
    """pydantic validates the models (``config.typed``): numbers never come from text or booleans,
    text takes a YAML number or boolean as written, a bare entry name takes every default, and the
    first problem is named by its dotted key, through lists and union members."""
    from credit_spark.config.settings import NeuralNetworkSettings, SparkSettings
    from credit_spark.config.spec import DatasetSpec, NumericRule
    from credit_spark.config.typed import build, coerce

    spark = build(SparkSettings, {"conf": {"spark.sql.shuffle.partitions": 8, "spark.ui.enabled": False}}, "spark")
    assert spark.conf == {"spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false"}
    spec = build(DatasetSpec, {"name": 2024, "label": {"column": "y", "classes": ["a", "b"]},
                               "numeric": {"age": None, "income": {"min": 0}}}, "s.yaml")
    assert spec.name == "2024" and spec.numeric == {"age": NumericRule(), "income": NumericRule(min=0.0)}
    assert isinstance(spec.numeric["income"].min, float)
    for value, message in [({"max_epochs": True}, r"^nn\.max_epochs: expected an integer, got True$"),
                           ({"max_epochs": "30"}, r"^nn\.max_epochs: expected an integer, got '30'$"),
                           ({"dropout": "0.4"}, r"^nn\.dropout: expected a number, got '0.4'$"),
                           ({"local_mode": 1}, r"^nn\.local_mode: expected true or false, got 1$"),
                           ({"hidden_layers": [64, 32.5]}, r"^nn\.hidden_layers\[1\]: expected an integer, got 32\.5$"),
                           ({"hidden_layers": 64}, r"^nn\.hidden_layers: expected a list, got int \(64\)$"),
                           ({"grid": {"num_bins": [{"a": 1}]}}, r"^nn\.grid\.num_bins\[0\]: expected a number"),
                           ({"use_gpu": "maybe"}, r"^nn\.use_gpu: expected true or false, got 'maybe'$"),
                           ({"epochs": 3}, r"^nn: unknown key 'epochs' \(known keys: hidden_layers, dropout, ")]:
        with pytest.raises(ConfigError, match=message):
            build(NeuralNetworkSettings, value, "nn")
    with pytest.raises(ConfigError, match=r"^s\.yaml\.numeric\.age: expected a mapping, got list \(\[1\]\)$"):
        build(DatasetSpec, {"name": "x", "label": {"column": "y", "classes": ["a", "b"]}, "numeric": {"age": [1]}},
              "s.yaml")
    assert coerce(list[float], [1, 2.5], "k") == [1.0, 2.5]
