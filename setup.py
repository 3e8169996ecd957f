"""Packaging for credit_spark.

Spark is an extra (``credit_spark[spark]``: pyspark and delta-spark over the range of pairs Delta
supports and the project is tested on), so installing the wheel where a runtime brings its own
PySpark and Delta (Databricks) never puts a second PySpark beside it. ``scripts/setup.sh`` installs
the extra with the exact default pair of ``constraints/default.txt`` (``SPARK_PAIR=newest``:
``constraints/newest.txt``, the newest pair the registries serve).

The version is written once, in ``credit_spark/_version.py``, read here as text (importing the
package would need its dependencies installed).

The top-level ``conf/`` folder is shipped inside the wheel as the ``credit_spark.conf`` package
(its ``datasets/`` and ``sql/`` folders as subpackages), so a job started from an installed wheel
(spark-submit, Databricks) finds the same base config and dataset specs as a run from the source
tree.

The benchmark and its pandas + scikit-learn baseline are not part of this package: they are the
distribution ``benchmarks/`` (``credit_spark_bench``, with psutil and xxhash), installed after this
one by ``scripts/setup.sh bench``.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))   # find_packages would search the working folder
with open(os.path.join(HERE, "credit_spark", "_version.py"), encoding="utf-8") as f:
    VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

#: the pairs Delta supports for Spark 4 (delta-spark 4.0 is built for Spark 4.0; 4.1+ for 4.0-4.2)
SPARK = ["pyspark>=4.0.1,<4.3", "delta-spark>=4.0.1,<4.5"]
#: what pyspark's `connect` extra adds, zstandard from Spark 4.2 on (named here: the extra would
#: pull pyspark itself in)
CONNECT = ["grpcio>=1.67", "grpcio-status>=1.67", "googleapis-common-protos>=1.65", "zstandard>=0.25"]

setup(
    name="credit_spark",
    version=VERSION,
    description="Distributed credit-score classification on Spark, MLlib and Delta Lake",
    python_requires=">=3.10",
    # credit_spark and its subpackages (report/), and conf/ as credit_spark.conf
    packages=[*find_packages(where=HERE, include=["credit_spark", "credit_spark.*"]),
              "credit_spark.conf", "credit_spark.conf.datasets", "credit_spark.conf.sql"],
    package_dir={"credit_spark": "credit_spark", "credit_spark.conf": "conf",
                 "credit_spark.conf.datasets": "conf/datasets", "credit_spark.conf.sql": "conf/sql"},
    package_data={"credit_spark.conf": ["*.yaml"], "credit_spark.conf.datasets": ["*.yaml"],
                  "credit_spark.conf.sql": ["*.sql"]},
    include_package_data=True,
    install_requires=[
        "pandas>=2.2,<3",
        "numpy>=1.26,<2.4",
        "pyarrow>=15",
        "PyYAML>=6.0",
        # validates config and spec files into their models and generates their JSON Schemas
        "pydantic>=2.7,<3",
        # experiment tracking and the model registry (champion alias); the full package brings
        # the SQLite tracking store used by the embedded default
        "mlflow>=3.5,<4",
        # PNG plots of the training report
        "matplotlib>=3.8",
        # gradient-boosted trees for any number of classes (xgboost.spark, which needs scikit-learn)
        "xgboost>=3.0,<4",
        "scikit-learn>=1.4",
    ],
    extras_require={
        # a local or cluster install; a runtime with its own Spark and Delta (Databricks) needs none
        "spark": SPARK,
        # a Spark Connect client (--remote): pyspark's own `connect` extra, gRPC
        "connect": CONNECT,
        # test tools (setuptools and wheel: a test builds the wheel); pytest-xdist runs the suite in two workers; deltalake (delta-rs) and polars
        # are the other engines a test holds to reading the lake's tables as Spark wrote them;
        # PyHive is the Python DB-API client a test queries the SQL endpoint (serve-sql) with;
        # databricks-bundles holds Databricks' own job model, which a test validates the Asset Bundle's job with;
        # the Spark Connect client's gRPC, for the test that runs the nightly path through a Connect server
        "dev": ["setuptools>=69", "wheel", "pytest>=8", "pytest-xdist>=3.5", "psutil>=5.9", "scikit-learn>=1.4", "xxhash>=3", "jsonschema>=4",
                "deltalake>=1.1", "polars>=1.30", "pyhive[hive_pure_sasl]>=0.7", "databricks-bundles>=1.22", *CONNECT],
        # The neural-network issue adds its own stack here; torch is several GB, so it stays
        # out of the default install.
        "nn": ["torch>=2.2"],
    },
    entry_points={"console_scripts": ["credit-spark=credit_spark.cli:main"]},
)
