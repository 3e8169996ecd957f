"""Packaging for credit_spark.

pyspark and delta-spark are pinned as a pair: each Delta release is built against one Spark
minor version, and `configure_spark_with_delta_pip` downloads the Delta JAR matching the
installed delta-spark version, so the two must move together.

The top-level ``conf/`` folder is shipped inside the wheel as the ``credit_spark.conf`` package,
so a job started from an installed wheel (spark-submit, Databricks) finds the same base config
and dataset specs as a run from the source tree.

The benchmark and its pandas + scikit-learn baseline are not part of this package: they are the
distribution ``benchmarks/`` (``credit_spark_bench``, with psutil and xxhash), installed after this
one by ``scripts/setup.sh bench``.
"""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))   # find_packages would search the working folder

SPARK_PINS = ["pyspark==4.0.1", "delta-spark==4.0.1"]

setup(
    name="credit_spark",
    version="0.1.0",
    description="Distributed credit-score classification on Spark, MLlib and Delta Lake",
    python_requires=">=3.10",
    # credit_spark and its subpackages (report/), and conf/ as credit_spark.conf
    packages=[*find_packages(where=HERE, include=["credit_spark", "credit_spark.*"]), "credit_spark.conf"],
    package_dir={"credit_spark": "credit_spark", "credit_spark.conf": "conf"},
    package_data={"credit_spark.conf": ["*.yaml", "datasets/*.yaml", "sql/*.sql"]},
    include_package_data=True,
    install_requires=[
        *SPARK_PINS,
        "pandas>=2.2,<3",
        "numpy>=1.26,<2.4",
        "pyarrow>=15",
        "PyYAML>=6.0",
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
        # test tools; pytest-xdist runs the suite in two workers; deltalake (delta-rs) and polars
        # are the other engines a test holds to reading the lake's tables as Spark wrote them;
        # PyHive is the Python DB-API client a test queries the SQL endpoint (serve-sql) with
        "dev": ["pytest>=8", "pytest-xdist>=3.5", "psutil>=5.9", "scikit-learn>=1.4", "xxhash>=3", "jsonschema>=4",
                "deltalake>=1.1", "polars>=1.30", "pyhive[hive_pure_sasl]>=0.7"],
        # The neural-network issue adds its own stack here; torch is several GB, so it stays
        # out of the default install.
        "nn": ["torch>=2.2"],
    },
    entry_points={"console_scripts": ["credit-spark=credit_spark.cli:main"]},
)
