"""Shipped inside the wheel as ``credit_spark.conf`` (see setup.py) so installed jobs find their YAML."""
