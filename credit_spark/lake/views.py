"""Downstream SQL views shipped with the project (``conf/sql/*.sql``) as Spark temp views.

Each file holds one query (a ``SELECT``, possibly with a ``WITH`` clause); the view's name is the
file name without ``.sql``. The queries read the temp views ``scores``, ``monitoring`` and
``runs`` (``SOURCES``), which the caller registers first (e.g.
:func:`credit_spark.lake.tables.register_views` for the lake tables). Each keeps only the nights
recorded in ``runs`` (written last by the scorer), so a reader never sees a night's scores
without its monitoring.
A query may use the placeholder ``{class_order}``: it is replaced by a SQL array literal of the
label classes from best to worst, e.g. ``array('Good', 'Standard', 'Poor')``.

The files are read through ``importlib.resources`` from ``credit_spark.conf`` (``conf/`` in the
source tree, packaged into the wheel), like the shipped YAML config.
"""
from __future__ import annotations

import logging
import re
from importlib import resources

from pyspark.errors import AnalysisException
from pyspark.sql import SparkSession

from credit_spark.errors import ConfigError
from credit_spark.lake.sqltext import sql_string

#: views registered first, in this order (a later view may read an earlier one); any other
#: shipped file follows in name order
VIEW_ORDER = ("latest_scores", "daily_class_distribution", "class_worsened", "drift_by_feature")
#: the tables the shipped queries read
SOURCES = ("scores", "monitoring", "runs")
CLASS_ORDER = "{class_order}"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

logger = logging.getLogger(__name__)


def sources_ready(available: set[str] | list[str]) -> bool:
    """Whether the tables the shipped views read are all there; when ``scores`` is but another
    is not (``runs`` before the first night of a release that writes it), a warning names it."""
    missing = sorted(set(SOURCES) - set(available))
    if missing and "scores" in available:
        logger.warning("the shipped views (conf/sql) need the tables %s; missing: %s (the next `credit-spark "
                       "score` writes them)", ", ".join(SOURCES), ", ".join(missing))
    return not missing


def _sql_dir():
    return resources.files("credit_spark.conf") / "sql"


def shipped_sql() -> dict[str, str]:
    """{view name: query text} of every ``conf/sql/*.sql``, in registration order."""
    folder = _sql_dir()
    texts = {}
    for entry in folder.iterdir() if folder.is_dir() else []:
        if entry.is_file() and entry.name.endswith(".sql"):
            name = entry.name[: -len(".sql")]
            if not _NAME.match(name):
                raise ConfigError(f"conf/sql/{entry.name}: the file name must be a SQL identifier")
            texts[name] = entry.read_text(encoding="utf-8")
    order = [n for n in VIEW_ORDER if n in texts] + sorted(n for n in texts if n not in VIEW_ORDER)
    return {n: texts[n] for n in order}


def class_order_literal(classes: list[str]) -> str:
    """["Good", "Standard", "Poor"] -> ``array('Good', 'Standard', 'Poor')`` (best to worst)."""
    if not classes:
        raise ValueError("classes must list at least one class (best to worst)")
    return "array(" + ", ".join(sql_string(str(c)) for c in classes) + ")"


def render(query: str, classes: list[str]) -> str:
    """The query with ``{class_order}`` filled in and a trailing ``;`` removed."""
    text = query.replace(CLASS_ORDER, class_order_literal(classes)).strip()
    return text[:-1].rstrip() if text.endswith(";") else text


def register_sql_views(spark: SparkSession, classes: list[str]) -> list[str]:
    """Create (or replace) a temp view per shipped SQL file, in a fixed order; returns the names.

    ``classes``: the label classes from best to worst. The views of ``SOURCES`` must already be
    registered; a query that fails to parse or resolve raises a
    :class:`ConfigError` naming its file.
    """
    class_order_literal(classes)   # fail early on an empty class list
    registered = []
    for name, query in shipped_sql().items():
        try:
            spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW `{name}` AS\n{render(query, classes)}\n")
        except AnalysisException as exc:   # ParseException included
            raise ConfigError(f"conf/sql/{name}.sql: {str(exc).strip().splitlines()[0]}") from exc
        registered.append(name)
    return registered
