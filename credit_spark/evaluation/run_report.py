"""A training run's report: the JSON-able results dict the trainer hands to
:mod:`credit_spark.report`, where its pages go, and the re-rendering of a stored run from MLflow
(``credit-spark report``)."""
from __future__ import annotations

import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from credit_spark.config.loader import Config
from credit_spark.config.settings import BASELINE
from credit_spark.errors import NoRecordsError
from credit_spark.ml.metrics import ModelMetrics
from credit_spark.report import write_report
from credit_spark.tracking import registry

if TYPE_CHECKING:   # annotations only
    from credit_spark.evaluation.comparison import Difference
    from credit_spark.ml.scorecard import ScorecardModel
    from credit_spark.ml.tuning import CalibrationChoice, TuningResult
    from credit_spark.tracking.promotion import Promotion

def report_root(cfg: Config) -> Path:
    lake = registry.local_lake(cfg)
    return (lake / "reports") if lake is not None else Path("reports")


def _json_metrics(metrics: ModelMetrics) -> dict:
    return {"metrics": metrics.headline(), "metrics_uncalibrated": metrics.uncalibrated,
            "per_class": metrics.per_class, "confusion": metrics.confusion, "roc": metrics.roc,
            "reliability": metrics.reliability, "score_distribution": metrics.score_distribution,
            "bad_rate_by_band": metrics.bad_rate_by_band}


def report_results(cfg: Config, *, run_id: str, run_number: int, features_version: int, rows: dict[str, int],
                   split_description: str, metrics: dict[str, ModelMetrics], tuning: dict[str, TuningResult],
                   importances: dict[str, dict], comparison: list[Difference], selected: str,
                   promotion: Promotion, scorecard: ScorecardModel | None, versions: dict[str, int],
                   decisions: dict[str, str] | None = None,
                   calibration: dict[str, CalibrationChoice] | None = None) -> dict:
    classes = cfg.spec.label.classes
    models = {}
    for name, m in metrics.items():
        models[name] = {**_json_metrics(m), "importance": importances.get(name), "tuning": tuning[name].as_dict(),
                        "registered_version": versions.get(name), "decision_rule": (decisions or {}).get(name),
                        "calibration": calibration[name].as_dict() if calibration and name in calibration else None}
    return {
        "title": f"credit_spark training report — {cfg.dataset}, run {run_number}",
        "run": {"version": run_number, "mlflow_run_id": run_id,
                "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "dataset": cfg.dataset, "classes": classes, "adverse_class": classes[-1],
                "binary": len(classes) == 2, "features_version": features_version,
                "split": {"mode": cfg.train.split, **rows, "description": split_description},
                "primary_metric": cfg.train.primary_metric, "calibration": cfg.train.calibration.method,
                "baseline": BASELINE, "config": cfg.as_dict()},
        "models": models,
        "comparison": [d.__dict__ for d in comparison],
        "selected": selected,
        "promotion": {"decision": promotion.decision, "challenger": promotion.challenger,
                      "champion_before": promotion.champion_before, "reason": promotion.reason},
        "iv_table": scorecard.iv_table() if scorecard else [],
        "scorecard_table": scorecard.scorecard_table() if scorecard else [],
    }


def render_report(cfg: Config, run_id: str | None = None, out: str | None = None) -> Path:
    """Re-render a training run's report from its results stored in MLflow (latest run by default)."""
    experiment_id = registry.configure(cfg, create=False)
    if run_id is None:
        runs = registry.training_runs(experiment_id, order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            raise NoRecordsError(f"no training run in MLflow experiment '{cfg.tracking.experiment}' "
                                 f"({registry.tracking_uri(cfg)}): run `credit-spark train` first")
        run_id = runs[0].info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        try:
            stored = registry.download_artifacts(run_id, "report/results.json", tmp)
        except Exception as exc:
            raise NoRecordsError(f"run {run_id} has no stored report: {str(exc).splitlines()[0]}") from exc
        results = json.loads(stored.read_text())
    target = Path(out) if out else report_root(cfg) / f"run-{results['run']['version']}-{run_id[:8]}"
    write_report(results, target)
    return target
