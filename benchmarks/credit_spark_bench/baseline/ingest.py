"""The pandas transcription of :mod:`credit_spark.jobs.ingest`: read every CSV file under the input
paths as strings and keep the rows that ``credit-spark ingest`` would store in ``raw_records``.

(CSV lines of the wrong width: see the known differences in :mod:`credit_spark_bench.baseline`.)
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import pandas as pd

from credit_spark.config.loader import GENERATED_RECORD_ID, DatasetSpec
from credit_spark.errors import MissingColumnError, NoRecordsError
from credit_spark_bench.baseline.features import period_index, trim


def _csv_files(path: str) -> list[str]:
    """The CSV files under ``path`` in a stable order, skipping names Spark's file index hides
    (``_SUCCESS``, ``.crc`` files and folders starting with ``_`` or ``.``)."""
    p = Path(path)
    if p.is_file():
        return [str(p)]
    if not p.is_dir():
        raise FileNotFoundError(f"cannot read input {path}: no such file or folder")
    files = []
    for root, dirs, names in os.walk(p):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        files += [os.path.join(root, n) for n in sorted(names)
                  if n.endswith(".csv") and not n.startswith(("_", "."))]
    return sorted(files)


def read_raw(paths: Sequence[str], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Every CSV file under each path, all values as strings (an empty cell is ``""``).

    Like ``ingest.read_raw``, columns are matched by each file's header, not by position, so files
    with the same columns in another order line up. ``columns`` (e.g. ``spec.all_columns()``)
    reads only those columns that a file has, which keeps memory down; the spec check is
    :func:`ingest_rows`' job.
    """
    files = [f for path in paths for f in _csv_files(path)]
    if not files:
        raise NoRecordsError(f"no *.csv files found at {', '.join(paths)}")
    wanted = set(columns) if columns is not None else None
    frames = []
    for file in files:
        usecols = (lambda c: c in wanted) if wanted is not None else None
        frames.append(pd.read_csv(file, dtype=str, keep_default_na=False, na_filter=False, usecols=usecols,
                                  on_bad_lines="skip", encoding="utf-8"))
    out = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
    return out


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | (trim(series.fillna("")) == "")


def row_hashes(raw: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """``ingest.row_hash``: SHA-256 of ``to_json(struct(columns))`` with the untrimmed values.

    Spark reads an empty CSV cell (quoted or not) as null and ``to_json`` leaves null fields out,
    so empty strings are left out here too. Python's ``json`` escapes like Jackson for quotes,
    backslashes and control characters."""
    records = raw[list(columns)].to_numpy(dtype=object)
    out = []
    for row in records:
        doc = {c: v for c, v in zip(columns, row) if isinstance(v, str) and v != ""}
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        out.append(hashlib.sha256(text.encode("utf-8")).hexdigest())
    return pd.Series(out, index=raw.index, dtype=object)


def ingest_rows(raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """What ``credit-spark ingest`` would store in ``raw_records`` from these rows.

    Stops on a missing required column; drops the rows it would quarantine (blank record or
    customer id, unreadable period, a label outside the classes) and all but one copy of a record
    id seen twice (the copy with the smallest row hash, as ingest picks); trims every value.
    """
    missing = [c for c in spec.required_columns() if c not in raw.columns]
    if missing:
        raise MissingColumnError(f"input is missing required column(s): {', '.join(missing)} "
                                 f"(dataset spec '{spec.name}')")
    columns = spec.all_columns()
    df = raw.reindex(columns=columns)        # an unlabelled file has no label column: all null
    if not spec.record_id:
        df[GENERATED_RECORD_ID] = row_hashes(df, columns).str[:20]
    ok = pd.Series(True, index=df.index)
    if spec.record_id:
        ok &= ~_blank(df[spec.record_id])
    if spec.customer_id:
        ok &= ~_blank(df[spec.customer_id])
    if spec.period:
        ok &= period_index(df[spec.period.column], spec.period).notna()
    label = trim(df[spec.label.column].fillna(""))
    ok &= (label == "") | label.isin(spec.label.classes)
    df = df[ok]
    rid = trim(df[spec.record_key])
    duplicated = rid.duplicated(keep=False)
    if duplicated.any():
        hashes = row_hashes(df[duplicated], columns)
        order = pd.DataFrame({"rid": rid[duplicated], "hash": hashes}).sort_values(["rid", "hash"], kind="mergesort")
        drop = order.index[order["rid"].duplicated(keep="first")]
        df = df.drop(index=drop)
    keep = ([] if spec.record_id else [GENERATED_RECORD_ID]) + columns
    out = pd.DataFrame({c: trim(df[c]) if df[c].dtype == object else df[c] for c in keep})
    return out.reset_index(drop=True)
