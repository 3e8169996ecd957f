"""Custom pyspark.ml stages. Fitted state lives in params, so they save and load inside a PipelineModel.

``MedianImputer`` replaces ``pyspark.ml.feature.Imputer`` because Spark's imputer refuses to fit
when a column holds no value at all in the training data ("surrogate cannot be computed"). That
is normal for history features when every labelled record is a customer's first period (the
real August sample), so a column with nothing to learn from gets an explicit fallback instead.
"""
from __future__ import annotations

import json
import math

from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCols, HasOutputCols
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from credit_spark.lake.sqltext import sql_double, sql_name
from credit_spark.transforms.columns import with_columns


class AfterPrediction:
    """Marker of the stages appended after a pipeline's classifier (calibrator, decision rule,
    reason codes): :func:`credit_spark.ml.introspection.fitted_classifier` skips them by this marker,
    so finding the classifier needs no import of the modules that define them."""

    after_prediction = True


class _MedianImputerParams(HasInputCols, HasOutputCols):
    fallback = Param(Params._dummy(), "fallback",
                     "value used for a column that has no value at all in the training data",
                     typeConverter=TypeConverters.toFloat)
    accuracy = Param(Params._dummy(), "accuracy", "percentile_approx accuracy (higher = more exact)",
                     typeConverter=TypeConverters.toInt)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(fallback=0.0, accuracy=10000)

    def _check_columns(self) -> None:
        inputs, outputs = self.getInputCols(), self.getOutputCols()
        if len(inputs) != len(outputs):
            raise ValueError(f"inputCols ({len(inputs)}) and outputCols ({len(outputs)}) must have the same length")


class MedianImputer(Estimator, _MedianImputerParams, DefaultParamsReadable, DefaultParamsWritable):
    """Learns each column's (approximate) median on the training data in one aggregation.

    >>> imputer = MedianImputer(inputCols=["a"], outputCols=["a_imputed"])   # doctest: +SKIP
    >>> imputer.fit(train).transform(test)                                     # doctest: +SKIP
    """

    @keyword_only
    def __init__(self, *, inputCols: list[str] | None = None, outputCols: list[str] | None = None,
                 fallback: float = 0.0, accuracy: int = 10000):
        super().__init__()
        self._set(**self._input_kwargs)

    def _fit(self, dataset: DataFrame) -> "MedianImputerModel":
        if not isinstance(dataset, DataFrame):
            raise TypeError(f"dataset must be a DataFrame but got {type(dataset).__name__}")
        self._check_columns()
        inputs = self.getInputCols()
        valid = [F.nanvl(F.col(c).cast("double"), F.lit(None).cast("double")) for c in inputs]
        row = dataset.agg(*[F.percentile_approx(v, 0.5, self.getOrDefault("accuracy")).alias(f"m{i}")
                            for i, v in enumerate(valid)]).first()
        fallback = self.getOrDefault("fallback")
        surrogates = {}
        for i, c in enumerate(inputs):
            value = row[f"m{i}"]
            surrogates[c] = float(value) if value is not None and not math.isnan(value) else fallback
        model = MedianImputerModel(inputCols=inputs, outputCols=self.getOutputCols(),
                                   surrogates=json.dumps(surrogates))
        return self._copyValues(model)


class MedianImputerModel(Model, _MedianImputerParams, DefaultParamsReadable, DefaultParamsWritable):
    """Fills nulls and NaNs with the learned medians."""

    surrogates = Param(Params._dummy(), "surrogates", "JSON object: input column -> fill value",
                       typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, inputCols: list[str] | None = None, outputCols: list[str] | None = None,
                 surrogates: str = "{}", fallback: float = 0.0, accuracy: int = 10000):
        super().__init__()
        self._set(**self._input_kwargs)

    def surrogate_values(self) -> dict[str, float]:
        return json.loads(self.getOrDefault("surrogates"))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._check_columns()
        values = self.surrogate_values()
        missing = [c for c in self.getInputCols() if c not in values]
        if missing:
            raise ValueError(f"no fitted value for column(s) {missing}")
        # SQL text: one parse per column instead of six Py4J calls per column (~70 columns)
        filled = {out: F.expr(f"coalesce(nanvl(CAST({sql_name(inp)} AS DOUBLE), NULL), {sql_double(values[inp])})")
                  for inp, out in zip(self.getInputCols(), self.getOutputCols())}
        return with_columns(dataset, filled)
