"""SQL text for expressions built from code.

Wide expressions (a scorecard's lookups, an imputer's ~70 fills) are written as SQL text and
parsed once by the JVM: the same expressions built with the Column API cost a Py4J round trip
per node, seconds of driver time per transform on every training, test and night.
"""
from __future__ import annotations

import math


def sql_name(column: str) -> str:
    """A column name quoted for a SQL expression."""
    return "`" + column.replace("`", "``") + "`"


def sql_double(value: float) -> str:
    """A DOUBLE literal that parses back to exactly ``value`` (repr is the shortest round trip)."""
    value = float(value)
    if math.isnan(value):
        return "CAST('NaN' AS DOUBLE)"
    if math.isinf(value):
        return "CAST('Infinity' AS DOUBLE)" if value > 0 else "CAST('-Infinity' AS DOUBLE)"
    return f"{value!r}D"


def sql_string(value: str) -> str:
    """A Spark SQL string literal. Backslash escapes: Spark reads ``'a''b'`` as two adjacent
    literals ("ab"), not as an escaped quote."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
