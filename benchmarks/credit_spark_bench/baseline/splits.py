"""The pandas transcription of :mod:`credit_spark.transforms.splits`: the customer-grouped train, validation and
test split, by the same seeded ``xxhash64`` buckets as Spark, reproduced bit for bit (so both
systems train and test on the same customers)."""
from __future__ import annotations

import pandas as pd
import xxhash

from credit_spark.transforms.features import CUSTOMER_ID

SPLIT_BUCKETS = 10_000            # credit_spark.transforms.splits.SPLIT_BUCKETS (not imported: that module imports Spark)
SPARK_HASH_SEED = 42              # Spark's xxhash64() starts from seed 42


def customer_bucket(customer_id: str | None, seed: int) -> int:
    """``splits.customer_bucket``: ``pmod(xxhash64(customer_id, lit(seed)), 10000)`` in Spark.

    Spark folds its arguments into one XXH64 chain starting from seed 42: the string's UTF-8
    bytes, then ``seed`` as a 4-byte little-endian int (8 bytes if it does not fit an int), each
    hashed with the previous hash as its seed; a null argument leaves the hash unchanged. The
    result is a signed long, and ``pmod`` makes it non-negative.
    """
    h = SPARK_HASH_SEED
    if customer_id is not None:
        h = xxhash.xxh64_intdigest(customer_id.encode("utf-8"), seed=h)
    if -2**31 <= seed < 2**31:
        h = xxhash.xxh64_intdigest(int(seed).to_bytes(4, "little", signed=True), seed=h)
    else:
        h = xxhash.xxh64_intdigest(int(seed).to_bytes(8, "little", signed=True), seed=h)
    signed = h - (1 << 64) if h >= (1 << 63) else h
    return signed % SPLIT_BUCKETS             # Python's % with a positive modulus is Spark's pmod


def customer_buckets(customers: pd.Series, seed: int) -> pd.Series:
    """:func:`customer_bucket` for a column, hashing each distinct customer once."""
    distinct = {c: customer_bucket(c, seed) for c in customers.dropna().unique()}
    null_bucket = customer_bucket(None, seed)
    return customers.map(lambda c: distinct.get(c, null_bucket)).astype(int)


def split_by_customer(features: pd.DataFrame, test_fraction: float, validation_fraction: float,
                      seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test): disjoint sets of customers, by the same hash buckets as Spark."""
    bucket = customer_buckets(features[CUSTOMER_ID], seed)
    test_end = int(round(test_fraction * SPLIT_BUCKETS))
    validation_end = test_end + int(round(validation_fraction * SPLIT_BUCKETS))
    return (features[bucket >= validation_end],
            features[(bucket >= test_end) & (bucket < validation_end)],
            features[bucket < test_end])
