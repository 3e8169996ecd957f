"""Train / validation / test splits that never put one customer on two sides.

A customer's monthly records are near copies of each other, so a row-level random split would
let a model recognise customers it was trained on and overstate its accuracy. Every split here
is a pure function of a seeded hash of the customer id (``xxhash64``): reproducible, computed
on the executors, and stable when new customers arrive (existing customers keep their side).

* ``customer`` — hash buckets: ``test_fraction`` of the customers are test, ``validation_fraction``
  validation, the rest train.
* ``out_of_time`` — the last ``out_of_time_test_periods`` labelled periods are the test set (the
  model is judged on months after the ones it learned from); the earlier periods are split into
  train and validation by customer. Test customers also appear in the earlier periods: that is
  what an out-of-time test measures (the same book, later).

Cross-validation folds (``with_cv_fold``) are groups of customers too.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credit_spark.config.loader import TrainSettings
from credit_spark.errors import NoRecordsError
from credit_spark.transforms.features import CUSTOMER_ID, PERIOD

logger = logging.getLogger(__name__)

SPLIT_BUCKETS = 10_000
CV_FOLD = "cv_fold"


@dataclass(frozen=True)
class Splits:
    train: DataFrame
    validation: DataFrame
    test: DataFrame
    description: str


def customer_bucket(customer_id: Column, seed: int) -> Column:
    """0..SPLIT_BUCKETS-1 from a seeded hash: every record of a customer gets the same bucket."""
    return F.pmod(F.xxhash64(customer_id, F.lit(seed)), F.lit(SPLIT_BUCKETS))


def _threshold(fraction: float) -> int:
    return int(round(fraction * SPLIT_BUCKETS))


def split_by_customer(df: DataFrame, test_fraction: float, validation_fraction: float,
                      seed: int) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(train, validation, test): disjoint sets of customers, by hash bucket."""
    bucket = customer_bucket(F.col(CUSTOMER_ID), seed)
    test_end = _threshold(test_fraction)
    validation_end = test_end + _threshold(validation_fraction)
    return (df.where(bucket >= validation_end),
            df.where((bucket >= test_end) & (bucket < validation_end)),
            df.where(bucket < test_end))


def out_of_time_test_periods(df: DataFrame, count: int) -> list[int]:
    """The last ``count`` labelled periods (a handful of distinct values reach the driver)."""
    periods = sorted(r[0] for r in df.select(PERIOD).where(F.col(PERIOD).isNotNull()).distinct().collect())
    if len(periods) <= count:
        raise NoRecordsError(f"train.split 'out_of_time' needs more than {count} labelled period(s) to "
                             f"keep some for training; the features have {len(periods)}: {periods}")
    return periods[-count:]


def make_splits(labelled: DataFrame, settings: TrainSettings) -> Splits:
    """The configured split of the labelled feature rows."""
    if settings.split == "out_of_time":
        test_periods = out_of_time_test_periods(labelled, settings.out_of_time_test_periods)
        in_test = F.col(PERIOD).isin(test_periods)
        earlier = labelled.where(~in_test)
        # validation takes the same share of the *earlier* customers as in the customer split
        train, validation, _ = split_by_customer(earlier, 0.0, settings.validation_fraction, settings.seed)
        return Splits(train=train, validation=validation, test=labelled.where(in_test),
                      description=f"out of time: test = period(s) {test_periods}; earlier periods split "
                                  f"by customer into train / validation ({settings.validation_fraction:.0%} "
                                  f"of customers), seed {settings.seed}")
    train, validation, test = split_by_customer(labelled, settings.test_fraction, settings.validation_fraction,
                                                settings.seed)
    return Splits(train=train, validation=validation, test=test,
                  description=f"by customer: {settings.test_fraction:.0%} of customers test, "
                              f"{settings.validation_fraction:.0%} validation, the rest train; seed {settings.seed}")


def with_cv_fold(num_folds: int, seed: int):
    """Add ``cv_fold`` = a customer's fold (0..num_folds-1) for CrossValidator's ``foldCol``."""
    def transform(df: DataFrame) -> DataFrame:
        # a different seed from the split's, so folds are not correlated with the split buckets
        return df.withColumn(CV_FOLD, F.pmod(F.xxhash64(F.col(CUSTOMER_ID), F.lit(seed + 1)),
                                             F.lit(num_folds)).cast("int"))
    return transform
