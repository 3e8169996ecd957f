"""What a fitted pipeline is made of: its classifier stage, the names of its assembled vector's
slots, a tree ensemble's importances. Read by training, reasons and the report; it imports no
stage module (the stages after the classifier carry :class:`credit_spark.ml.stages.AfterPrediction`).
"""
from __future__ import annotations

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame

#: the assembled (unscaled) input vector of every MLlib model
FEATURES_RAW = "features_raw"


def fitted_classifier(model: PipelineModel):
    """The stage that predicts (skipping the calibrator, decision-rule and reasons stages appended after it)."""
    stages = [s for s in model.stages if not getattr(s, "after_prediction", False)]
    return stages[-1]


def vector_slot_names(model: PipelineModel, sample: DataFrame) -> list[str]:
    """Readable names of the assembled vector's slots, from the assembler's ML attribute metadata
    (only the plan is built: no job runs)."""
    meta = model.transform(sample).schema[FEATURES_RAW].metadata.get("ml_attr", {})
    slots: dict[int, str] = {}
    for group in meta.get("attrs", {}).values():
        for attr in group:
            name = attr.get("name", f"slot_{attr['idx']}")
            slots[attr["idx"]] = name.replace("__imputed", "").replace("__onehot_", " = ")
    return [slots.get(i, f"slot_{i}") for i in range(meta.get("num_attrs", len(slots)))]


def tree_importances(stage, slots: int) -> list[float] | None:
    """Per input slot, a tree ensemble's importance normalised to sum to one (MLlib's impurity
    decrease, XGBoost's total gain); None for a model that is not a tree ensemble."""
    if hasattr(stage, "featureImportances"):
        return stage.featureImportances.toArray().tolist()
    if hasattr(stage, "get_booster"):      # xgboost.spark: {"f<slot>": gain}, unused slots absent
        gains = stage.get_booster().get_score(importance_type="total_gain")
        values = [float(gains.get(f"f{i}", 0.0)) for i in range(slots)]
        total = sum(values)
        return [v / total for v in values] if total > 0 else values
    return None
