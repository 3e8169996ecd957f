"""credit_spark: distributed credit-score classification on Spark, MLlib and Delta Lake.

The package is laid out by role, in the order data flows through it (``docs/architecture.md``):
``config`` (YAML layers, dataset specs and their feature catalog, the JSON Schemas), ``lake``
(the Spark session, Delta tables, SQL views, keyed hashes), ``transforms`` (pure ``DataFrame ->
DataFrame`` cleaning, features, data quality, splits), ``ml`` (estimators and pipeline stages,
calibration, decision rules, reasons, the network, metrics, tuning), ``tracking`` (MLflow
registry, promotion), ``report`` (the report pages, no Spark), ``evaluation`` (comparison with
the scorecard, monitoring, a run's results for the report) and ``jobs`` (one library function per
job, read - transform - write), with ``cli`` on top. Each package imports only those before it in
this list (``tests/test_layout.py``).

Releases up to 0.2 had one flat module per role (``credit_spark.scorecard``, ...). A saved
``PipelineModel`` names each custom stage by its Python class path, so the models those releases
registered say ``credit_spark.scorecard.ScorecardModel``; the old module names stay importable as
aliases of the new modules (``OLD_MODULES``), resolved lazily, so such models load and score as
before and importing the package starts nothing.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

#: the 0.2 flat module -> the module that holds its code now
OLD_MODULES: dict[str, str] = {
    "config": "config.loader", "settings": "config.settings", "spec": "config.spec", "typed": "config.typed",
    "schema": "config.schema", "catalog": "config.catalog",
    **{m: f"lake.{m}" for m in ("session", "tables", "views", "sqltext", "privacy")},
    **{m: f"transforms.{m}" for m in ("features", "quality", "splits")},
    **{m: f"ml.{m}" for m in ("models", "stages", "scorecard", "binning", "neural", "torch_net", "torch_train",
                              "calibration", "decision", "reasons", "ensemble", "introspection", "tuning",
                              "metrics")},
    **{m: f"evaluation.{m}" for m in ("comparison", "monitoring", "run_report")},
    **{m: f"tracking.{m}" for m in ("registry", "promotion")},
    **{m: f"jobs.{m}" for m in ("generate", "ingest", "features_job", "train", "scoring", "maintenance", "erasure",
                                "sql_server", "spec_draft")},
}


class _OldModuleAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import credit_spark.scorecard`` gives ``credit_spark.ml.scorecard`` (the same module object,
    so classes compare equal). ``credit_spark.config`` is a package now: it hands out its old
    names (``load_config``, ...) from ``config.loader`` itself."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in OLD_MODULES or name == "config":
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec) -> ModuleType:
        return importlib.import_module(f"{__name__}.{OLD_MODULES[spec.name.rpartition('.')[2]]}")

    def exec_module(self, module: ModuleType) -> None:
        """The target module ran when it was imported."""


if not any(isinstance(f, _OldModuleAlias) for f in sys.meta_path):
    sys.meta_path.insert(0, _OldModuleAlias())   # before any finder that could still see an old file
