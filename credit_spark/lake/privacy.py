"""Personal identifiers at rest: a spec's ``pii`` columns never land in the lake in clear.

At ingest every ``pii`` column is either dropped (``privacy.pii: drop``, the default: the column
stays in ``raw_records`` as null) or replaced by a keyed hash (``privacy.pii: hash``): the
HMAC-SHA256 of its trimmed text under a secret key read from an environment variable
(``privacy.key_env``), as 64 hex digits. The same value under the same key gives the same hash,
so records of one person still join (across batches, or with another system that holds the key),
while nobody without the key can tell whose they are or test a guess.

The key travels to the executors inside the Arrow UDF's closure, never as a literal in a query
plan (plans are shown in the Spark UI and written to event logs).
"""
from __future__ import annotations

import hashlib
import hmac
import os

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F

from credit_spark.config.settings import PrivacySettings
from credit_spark.errors import ConfigError

#: shortest key accepted (bytes of its UTF-8 text): a short key can be guessed, and then every hash
MIN_KEY_BYTES = 16


def pii_key(settings: PrivacySettings) -> bytes | None:
    """The HMAC key when ``privacy.pii`` is ``hash`` (checked before any work), else None."""
    if settings.pii != "hash":
        return None
    text = os.environ.get(settings.key_env, "")
    if not text:
        raise ConfigError(f"privacy.pii is 'hash' but the environment variable {settings.key_env} "
                          f"(privacy.key_env) holding the key is not set")
    key = text.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"privacy.key_env: the key in {settings.key_env} has {len(key)} bytes; use at "
                          f"least {MIN_KEY_BYTES} (e.g. 32 random bytes as hex: openssl rand -hex 32)")
    return key


def keyed_hash(value: str, key: bytes) -> str:
    """HMAC-SHA256 of ``value``'s UTF-8 text under ``key``, as 64 hex digits."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def keyed_hash_column(col: Column, key: bytes) -> Column:
    """:func:`keyed_hash` of a string column in Arrow batches; null and blank stay null."""
    @F.pandas_udf("string")
    def hmac_sha256(values: pd.Series) -> pd.Series:
        return values.map(lambda v: None if v is None or v == "" else keyed_hash(v, key))

    return hmac_sha256(col)


def masked_pii(col: Column, key: bytes | None) -> Column:
    """What a ``pii`` column holds at rest: null without a key, else its trimmed text's keyed hash."""
    if key is None:
        return F.lit(None).cast("string")
    return keyed_hash_column(F.trim(col), key)
