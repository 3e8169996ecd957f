"""A registered model loads where this repository never was: in a fresh virtual environment that
installs only the model's own ``requirements.txt`` (which points at the credit_spark wheel the
model carries), from the registry alone, and scores exactly as here.

Slow (a fresh venv installs pyspark, mlflow, xgboost... from pip's cache: about two minutes):
marked e2e."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from pyspark.ml import PipelineModel

from credit_spark.tracking import registry

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "saved_models"
MODEL = "scorecard"      # custom stages only (scorecard, calibration, decision rule, reasons)
# a guard against a hung install, not a speed target
INSTALL_TIMEOUT_S = int(os.environ.get("PORTABILITY_INSTALL_TIMEOUT_S", 20 * 60))

LOAD_AND_SCORE = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    import credit_spark
    import mlflow.spark
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import SparkSession, types as T

    tracking_uri, model_uri, fixture, out = sys.argv[1:]
    mlflow.set_tracking_uri(tracking_uri)
    spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    schema = T.StructType.fromJson(json.loads(Path(fixture, "rows.schema.json").read_text()))
    rows = spark.read.schema(schema).json(str(Path(fixture, "rows.json")))
    model = mlflow.spark.load_model(model_uri)
    scored = model.transform(rows).select("record_id", "prediction",
                                          vector_to_array("probability").alias("probability"))
    result = {"credit_spark": credit_spark.__file__,
              "stages": [type(s).__module__ + "." + type(s).__name__ for s in model.stages],
              "rows": [r.asDict() for r in scored.orderBy("record_id").collect()]}
    Path(out).write_text(json.dumps(result))
    from credit_spark.tracking.wheel import repack_installed
    print(repack_installed(Path(out).parent / "repacked"))
""")


def _pip(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_the_champion_loads_and_scores_in_a_fresh_venv_from_the_registry_alone(tmp_path, spark, cfg):
    import mlflow

    with mlflow.start_run(experiment_id=registry.configure(cfg)):
        version = registry.log_spark_model(PipelineModel.load(str(FIXTURE / MODEL / "model")), MODEL, cfg,
                                           tags={"classes": json.dumps(["Good", "Poor", "Standard"])})
    registry.set_champion(cfg, version)
    model_uri = f"models:/{registry.registered_model_name(cfg)}@{cfg.train.promotion.alias}"

    # what a user on another machine does (docs/models.md): download the model, install its
    # requirements in its folder
    model_dir = tmp_path / "model"
    subprocess.run([sys.executable, "-m", "mlflow", "artifacts", "download", "-u", model_uri, "-d", str(model_dir)],
                   env={**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri(cfg)}, check=True, timeout=300)
    requirements = (model_dir / "requirements.txt").read_text().split()
    [wheel_line] = [r for r in requirements if r.endswith(".whl")]
    assert re.fullmatch(r"code/credit_spark-[\d.]+-py3-none-any\.whl", wheel_line)
    assert not any(r.startswith("credit-spark") for r in requirements)
    logged_wheel = model_dir / wheel_line

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = _pip(venv, "install", "-r", "requirements.txt", cwd=model_dir)
    warnings = [line for line in (installed.stdout + installed.stderr).splitlines()
                if re.search(r"warning", line, re.I)]
    assert warnings == []

    script = tmp_path / "load_and_score.py"
    script.write_text(LOAD_AND_SCORE)
    out = tmp_path / "out" / "scored.json"
    out.parent.mkdir()
    # a neutral working folder and no PYTHONPATH: nothing of this checkout is importable there
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPARK_HOME", "PYSPARK_PYTHON")}
    proc = subprocess.run([str(venv / "bin" / "python"), str(script), registry.tracking_uri(cfg), model_uri,
                           str(FIXTURE), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert Path(result["credit_spark"]).is_relative_to(venv)
    assert any(s.startswith("credit_spark.ml.scorecard.") for s in result["stages"])

    expected = json.loads((FIXTURE / MODEL / "expected.json").read_text())
    assert [r["record_id"] for r in result["rows"]] == [r["record_id"] for r in expected]
    for got, want in zip(result["rows"], expected):
        assert got["prediction"] == want["prediction"], got["record_id"]
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-12), got["record_id"]

    # the installed wheel, repacked there, is the wheel the model carries, file for file
    repacked = Path(proc.stdout.strip().splitlines()[-1])
    assert _contents(repacked) == _contents(logged_wheel)


def _contents(wheel: Path) -> dict[str, bytes]:
    """A wheel's files (RECORD aside: the order of its lines is the builder's)."""
    with zipfile.ZipFile(wheel) as archive:
        return {n: archive.read(n) for n in archive.namelist() if not n.endswith("/RECORD")}
