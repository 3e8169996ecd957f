"""Packaging: one version source, a wheel that builds without warnings and carries the shipped
config, and the Delta JAR coordinate derived from the installed pair in one helper."""
from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from credit_spark._version import __version__
from credit_spark.lake.session import delta_maven_coordinate, ivy_jar_names

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("delta, spark, expected", [
    ("4.0.1", "4.0.1", "io.delta:delta-spark_2.13:4.0.1"),
    ("4.1.0", "4.1.3", "io.delta:delta-spark_4.1_2.13:4.1.0"),
    ("4.4.0", "4.2.0", "io.delta:delta-spark_4.2_2.13:4.4.0"),
])
def test_delta_coordinate_follows_deltas_naming(monkeypatch, delta, spark, expected):
    versions = {"delta-spark": delta, "pyspark": spark}
    monkeypatch.setattr(importlib.metadata, "version", lambda name: versions[name])
    assert delta_maven_coordinate() == expected


def test_delta_coordinate_is_what_the_session_fetched(spark):
    """The helper names the JAR ``configure_spark_with_delta_pip`` asked Ivy for, and Ivy's file
    names for it are among the session's JARs."""
    assert spark.sparkContext.getConf().get("spark.jars.packages") == delta_maven_coordinate()
    jars = [Path(j).name for j in spark.sparkContext.getConf().get("spark.jars", "").split(",") if j]
    assert set(ivy_jar_names(delta_maven_coordinate())) <= set(jars), jars


def test_the_version_is_written_once():
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert importlib.metadata.version("credit_spark") == __version__
    assert 'version="' not in (ROOT / "setup.py").read_text()


def test_wheel_builds_without_warnings_and_ships_the_config(tmp_path):
    """Built from a copy of the sources (no build/ left in the checkout), by setuptools itself."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("credit_spark", "conf"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    warnings = [line for line in (proc.stdout + proc.stderr).splitlines() if re.search(r"\w+Warning\b", line)]
    assert warnings == []
    [wheel] = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith(f"credit_spark-{__version__}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"credit_spark/conf/{p.relative_to(ROOT / 'conf')}" for p in (ROOT / "conf").rglob("*")
               if p.suffix in (".yaml", ".sql")}
    assert shipped and shipped <= names, shipped - names
    metadata = zipfile.ZipFile(wheel).read(f"credit_spark-{__version__}.dist-info/METADATA").decode()
    # Spark is an extra: a runtime's own PySpark (Databricks) is never replaced by the wheel's
    spark_requirements = [line for line in metadata.splitlines()
                          if line.startswith("Requires-Dist: pyspark") or line.startswith("Requires-Dist: delta-spark")]
    assert spark_requirements and all('extra == "spark"' in line for line in spark_requirements)


def test_a_command_without_spark_installed_names_the_extra(monkeypatch, capsys):
    import importlib.util

    from credit_spark.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a))
    assert main(["--lake", "unused", "features"]) == 2
    err = capsys.readouterr().err
    assert "credit-spark features: error: pyspark not installed: pip install 'credit_spark[spark]'" in err

