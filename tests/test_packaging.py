"""Packaging: one version source, a wheel that builds without warnings and carries the shipped
config, and the Delta JAR coordinate derived from the installed pair in one helper."""
from __future__ import annotations

import importlib.metadata
import re
import zipfile
from pathlib import Path

import pytest

from credit_spark._version import __version__
from credit_spark.lake.session import delta_maven_coordinate, ivy_jar_names
from credit_spark.tracking.wheel import build_from_source, repack_installed, source_tree

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
    """Built from a copy of the sources (no build/ left in the checkout), by setuptools itself: the
    build every logged model's wheel comes from (credit_spark.tracking.wheel)."""
    wheel, output = build_from_source(ROOT, tmp_path / "dist", verbose=True)
    warnings = [line for line in output.splitlines() if re.search(r"\w+Warning\b", line)]
    assert warnings == []
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


def test_an_editable_install_is_built_from_its_sources_not_repacked(tmp_path, monkeypatch):
    """In a source checkout the package is an editable install, whose installed files hold no
    code: models' wheels are built from the sources, and repacking it is refused, naming why."""
    assert source_tree() == ROOT

    class EditableInstall:
        version = "0.0.0"
        files = [importlib.metadata.PackagePath("__editable__.credit_spark-0.0.0.pth")]

    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: EditableInstall())
    with pytest.raises(RuntimeError, match="not installed from a wheel here"):
        repack_installed(tmp_path / "repacked")


def test_a_command_without_spark_installed_names_the_extra(monkeypatch, capsys):
    import importlib.util

    from credit_spark.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a))
    assert main(["--lake", "unused", "features"]) == 2
    err = capsys.readouterr().err
    assert "credit-spark features: error: pyspark not installed: pip install 'credit_spark[spark]'" in err

