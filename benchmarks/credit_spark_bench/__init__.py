"""The benchmark of credit_spark (:mod:`credit_spark_bench.bench`) and the single-machine
pandas + scikit-learn baseline it runs against (:mod:`credit_spark_bench.baseline`).

Why this lives outside the runtime package: nothing that trains or scores needs it. A job on a
cluster, a scoring run or a wheel shipped to Databricks installs ``credit_spark`` alone; the
benchmark is a measuring tool for the people who develop credit_spark, with its own dependencies
(psutil, xxhash, a second copy of the pipeline in pandas). It is its own distribution,
``benchmarks/setup.py``, installed with ``bash scripts/setup.sh bench`` (or
``pip install -e ./benchmarks`` after credit_spark). ``credit-spark bench`` imports it when
run, and says how to install it when it is missing.
"""
