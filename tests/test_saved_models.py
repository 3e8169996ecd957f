"""Models saved by an earlier release keep loading and scoring identically.

A ``PipelineModel`` saves each custom stage by its Python class path (``credit_spark.ml.scorecard.
ScorecardModel``, ``credit_spark.ml.calibration.ProbabilityCalibratorModel``, ...), so moving or
renaming a stage class would make every registered model unloadable. ``tests/fixtures/
saved_models`` holds small models of every algorithm saved by the commit in its manifest, with
input rows and the outputs those models gave (made by ``scripts/make_model_fixture.py``); here
today's code loads them the way the nightly scorer does and must give the same outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F
from pyspark.sql import types as T

from credit_spark.config.loader import load_dataset_spec
from credit_spark.jobs.scoring import with_coded_reasons

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "saved_models"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text())


@pytest.fixture(scope="module")
def rows(spark):
    schema = T.StructType.fromJson(json.loads((FIXTURE / "rows.schema.json").read_text()))
    return spark.read.schema(schema).json(str(FIXTURE / "rows.json")).cache()


def test_the_fixture_covers_every_kind_of_saved_stage():
    assert set(MANIFEST["models"]) >= {"logistic_regression", "random_forest", "xgboost", "scorecard",
                                       "neural_network", "ensemble"}
    assert len(MANIFEST["made_by_commit"]) == 40


@pytest.mark.parametrize("name", MANIFEST["models"])
def test_a_model_saved_before_loads_and_scores_identically(spark, rows, name):
    if name == "neural_network" or name == "ensemble":
        pytest.importorskip("torch", reason="the network needs torch (scripts/setup.sh nn)")
    expected = json.loads((FIXTURE / name / "expected.json").read_text())
    assert len(expected) == rows.count() > 0
    model = PipelineModel.load(str(FIXTURE / name / "model"))
    spec = load_dataset_spec(MANIFEST["dataset"])
    scored = with_coded_reasons(model, spec, MANIFEST["max_reasons"]).transform(rows)
    actual = [r.asDict() for r in scored.select(
        "record_id", "prediction", vector_to_array("probability").alias("probability"),
        F.to_json("reasons").alias("reasons")).orderBy("record_id").collect()]
    assert [r["record_id"] for r in actual] == [r["record_id"] for r in expected]
    for got, want in zip(actual, expected):
        assert got["prediction"] == want["prediction"], got["record_id"]
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-12), got["record_id"]
        assert got["reasons"] == want["reasons"], got["record_id"]


def test_the_old_flat_module_names_are_the_new_modules():
    """``credit_spark.scorecard`` (0.2) is ``credit_spark.ml.scorecard``: the same module object, so a
    stage class loaded by its old path is the class today's code checks with ``isinstance``."""
    import importlib

    import credit_spark
    from credit_spark.ml.scorecard import ScorecardModel

    for old, new in credit_spark.OLD_MODULES.items():
        if old != "config":   # a package of its own now
            assert importlib.import_module(f"credit_spark.{old}") is importlib.import_module(f"credit_spark.{new}"), old
    assert importlib.import_module("credit_spark.scorecard").ScorecardModel is ScorecardModel
    from credit_spark.config import load_config, loader
    assert load_config is loader.load_config
