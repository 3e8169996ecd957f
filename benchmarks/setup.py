"""Packaging for credit_spark_bench: the benchmark of credit_spark and its single-machine baseline.

A distribution of its own, next to (not inside) the runtime package: a cluster or a scoring job
installs ``credit_spark`` alone, without the benchmark's code or its extra dependencies. Install
it after credit_spark (``bash scripts/setup.sh bench``, or ``pip install -e ./benchmarks``);
``credit-spark bench`` then finds it.

The versions below are the ones the ``bench`` extra of the top-level setup.py used to carry.
"""
from setuptools import setup

setup(
    name="credit_spark_bench",
    version="0.1.0",
    description="Benchmark of credit_spark against a pandas + scikit-learn baseline of the same pipeline",
    python_requires=">=3.10",
    packages=["credit_spark_bench", "credit_spark_bench.baseline"],
    install_requires=[
        "credit_spark",
        # peak memory of the driver and the JVM, the baseline's memory cap
        "psutil>=5.9",
        # the baseline's models and metrics
        "scikit-learn>=1.4",
        # the baseline's customer split: Spark's xxhash64, bit for bit
        "xxhash>=3",
    ],
)
