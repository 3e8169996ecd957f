"""Column helpers shared by the transforms and the pipeline stages."""
from __future__ import annotations

from pyspark.sql import Column, DataFrame


def with_columns(df: DataFrame, columns: dict[str, Column]) -> DataFrame:
    """``df.withColumns(columns)``, or ``df`` itself when there is nothing to add: a spec or stage
    with no column of a kind builds an empty mapping, which a classic session accepts and Spark
    Connect refuses."""
    return df.withColumns(columns) if columns else df
