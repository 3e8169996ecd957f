"""The pandas + scikit-learn baseline must do the same work as the Spark pipeline.

The hash split and the features are compared with Spark itself, value by value, so a drift in
either implementation fails here rather than quietly skewing a benchmark.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("xxhash")

from pyspark.sql import functions as F  # noqa: E402

from credit_spark.config.loader import PeriodSpec, load_config, load_dataset_spec  # noqa: E402
from credit_spark.jobs.generate import generate_records, write_records  # noqa: E402
from credit_spark.transforms import features as spark_features  # noqa: E402
from credit_spark.transforms.features import CUSTOMER_ID, LABEL, PERIOD, RECORD_ID, categorical_features, numeric_features  # noqa: E402
from credit_spark.transforms.splits import customer_bucket, split_by_customer  # noqa: E402
from credit_spark_bench import baseline  # noqa: E402

# the baseline and the Spark pipeline run side by side on generated files
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def spec():
    return load_dataset_spec("credit_score")


def _ids() -> list[str]:
    """Customer ids like the generator's, plus lengths across XXH64's code paths (0..>32 bytes)
    and non-ASCII text."""
    ids = [f"CUS_0x{n:x}" for n in range(4096, 4096 + 400)]
    ids += ["x" * n for n in range(0, 70)]
    ids += [f"client-{n}-ünïcødé-€-{'z' * (n % 40)}" for n in range(60)]
    ids += [str(n * 7919) for n in range(40)]
    return ids


@pytest.mark.parametrize("seed", [42, 7, -3, 2**33 + 5])
def test_customer_bucket_matches_spark(spark, seed):
    ids = _ids()
    assert len(ids) >= 500
    rows = (spark.createDataFrame([(i,) for i in ids], "customer_id string")
            .select("customer_id", customer_bucket(F.col("customer_id"), seed).alias("bucket")).collect())
    expected = {r["customer_id"]: int(r["bucket"]) for r in rows}
    actual = {i: baseline.customer_bucket(i, seed) for i in ids}
    assert actual == expected
    assert len(set(actual.values())) > 400          # not a degenerate hash


def test_split_matches_spark(spark):
    ids = _ids()
    sdf = spark.createDataFrame([(i, n) for n, i in enumerate(ids)], f"{CUSTOMER_ID} string, n int")
    spark_sides = [sorted(r[CUSTOMER_ID] for r in side.collect())
                   for side in split_by_customer(sdf, 0.2, 0.15, 42)]
    pdf = pd.DataFrame({CUSTOMER_ID: ids, "n": range(len(ids))})
    sides = [sorted(side[CUSTOMER_ID]) for side in baseline.split_by_customer(pdf, 0.2, 0.15, 42)]
    assert sides == spark_sides
    assert all(sides)


# --------------------------------------------------------------------------- features
def _year_month_raw(raw):
    """Month names -> "yyyy-MM" crossing a year end (January -> 2023-09 ... May -> 2024-01)."""
    month = F.array_position(F.array(*[F.lit(m) for m in
                                       ("January", "February", "March", "April", "May", "June", "July", "August")]),
                             F.col("Month")).cast("int")
    serial = month + 8                              # 9..16 = Sep 2023 .. Apr 2024
    text = F.format_string("%04d-%02d", F.when(serial > 12, 2024).otherwise(2023),
                           F.when(serial > 12, serial - 12).otherwise(serial))
    return raw.withColumn("Month", text)


def _compare(expected: pd.DataFrame, actual: pd.DataFrame, spec) -> None:
    assert list(actual.columns) == list(expected.columns)
    expected = expected.sort_values(RECORD_ID).reset_index(drop=True)
    actual = actual.sort_values(RECORD_ID).reset_index(drop=True)
    assert actual[RECORD_ID].tolist() == expected[RECORD_ID].tolist()
    assert actual[CUSTOMER_ID].tolist() == expected[CUSTOMER_ID].tolist()
    assert actual[PERIOD].astype(int).tolist() == expected[PERIOD].astype(int).tolist()
    mismatched = []
    for c in numeric_features(spec):
        a = actual[c].to_numpy(dtype=float)
        e = pd.to_numeric(expected[c]).to_numpy(dtype=float)
        if not np.allclose(a, e, rtol=1e-9, atol=0.0, equal_nan=True):
            bad = ~np.isclose(a, e, rtol=1e-9, atol=0.0, equal_nan=True)
            mismatched.append(f"{c}: {int(bad.sum())} rows, e.g. record {actual[RECORD_ID][bad].iloc[0]}: "
                              f"baseline {a[bad][0]!r} vs spark {e[bad][0]!r}")
    for c in [*categorical_features(spec), LABEL]:
        a = [None if pd.isna(v) else v for v in actual[c]]
        e = [None if pd.isna(v) else v for v in expected[c]]
        if a != e:
            i = next(n for n, (x, y) in enumerate(zip(a, e)) if x != y)
            mismatched.append(f"{c}: record {actual[RECORD_ID][i]}: baseline {a[i]!r} vs spark {e[i]!r}")
    assert not mismatched, "\n".join(mismatched)


@pytest.mark.parametrize("variant", ["shipped", "past_periods", "year_month"])
def test_build_features_equals_spark(spark, spec, variant):
    raw = generate_records(spark, 400, seed=3)
    # drop about a tenth of the records: gaps in customers' months exercise the period-range frames
    raw = raw.where(F.pmod(F.xxhash64("ID"), F.lit(10)) != 0)
    if variant == "past_periods":
        spec = dataclasses.replace(spec, repair_scope="past_periods")
    if variant == "year_month":
        spec = dataclasses.replace(spec, period=PeriodSpec(column="Month", format="year_month"))
        raw = _year_month_raw(raw)
    raw_pd = raw.toPandas()
    assert 300 < len(raw_pd) < 400

    expected = spark_features.build_features(raw, spec).toPandas()
    actual = baseline.build_features(raw_pd, spec)

    assert len(actual) == len(expected) == len(raw_pd)
    _compare(expected, actual, spec)
    # the comparison means something: dirt was cleaned, history and repairs were computed
    assert actual["Age"].notna().mean() > 0.9 and actual["Outstanding_Debt__prev"].isna().any()
    assert actual["Outstanding_Debt__prev"].notna().mean() > 0.5


def test_row_hash_and_ingest_match_spark(spark, spec):
    """Duplicate record ids keep the copy with the smallest row hash, as ingest does."""
    from credit_spark.jobs.ingest import row_hash

    raw = generate_records(spark, 16, seed=5).toPandas()
    odd = raw.iloc[0].copy()
    odd["Name"] = 'Zoë "Quote" \\ back\x01'
    odd["Occupation"] = " Lawyer "
    dup = raw.iloc[1].copy()
    dup["Annual_Income"] = "1.0"
    blank = raw.iloc[2].copy()
    blank["Customer_ID"] = "  "
    bad_label = raw.iloc[3].copy()
    bad_label["Credit_Score"] = "Excellent"
    bad_month = raw.iloc[4].copy()
    bad_month["Month"] = "Smarch"
    rows = pd.concat([raw.iloc[5:], pd.DataFrame([odd, dup, blank, bad_label, bad_month]), raw.iloc[1:2]],
                     ignore_index=True)
    as_strings = rows.where(rows.notna(), None)
    columns = spec.all_columns()
    sdf = spark.createDataFrame(as_strings[columns].values.tolist(), ", ".join(f"{c} string" for c in columns))
    spark_hashes = [r[0] for r in sdf.select(row_hash(spec)).collect()]
    assert baseline.row_hashes(as_strings.fillna(""), columns).tolist() == spark_hashes

    kept = baseline.ingest_rows(as_strings.fillna(""), spec)
    assert len(kept) == len(rows) - 4                  # 3 quarantined, 1 duplicate
    assert kept["ID"].is_unique
    pair = [h for h, rid in zip(spark_hashes, rows["ID"]) if rid == raw["ID"][1]]
    winner = kept.loc[kept["ID"] == raw["ID"][1], "Annual_Income"].item()
    assert winner == (dup["Annual_Income"] if pair[0] == min(pair) else raw["Annual_Income"][1])
    assert kept.loc[kept["ID"] == odd["ID"], "Occupation"].item() == "Lawyer"    # trimmed


# --------------------------------------------------------------------------- models
def test_fit_and_evaluate(spark, spec):
    settings = load_config().train
    raw = generate_records(spark, 2000, seed=11).toPandas()
    feats = baseline.build_features(raw, spec)
    train, validation, test = baseline.split_by_customer(feats, settings.test_fraction,
                                                         settings.validation_fraction, settings.seed)
    sides = [set(s[CUSTOMER_ID]) for s in (train, validation, test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert len(train) + len(validation) + len(test) == len(feats)
    assert len(test) > 100

    models = baseline.fit_models(train, spec, settings)
    assert set(models) == {"logistic_regression", "random_forest"}
    metrics = baseline.evaluate(models, test, spec)
    for name, m in metrics.items():
        assert m["macro_f1"] > 0.5, (name, m)
        assert 0.5 < m["accuracy"] <= 1.0 and 0.5 < m["auc"] <= 1.0, (name, m)
        assert m["test_rows"] == len(test)


def test_main_writes_result_json(spark, tmp_path):
    data = tmp_path / "input"
    write_records(generate_records(spark, 1200, seed=2), str(data))
    out = tmp_path / "result.json"
    assert baseline.main(["--input", str(data), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["rows"] == result["rows_ingested"] == 1200
    assert sum(result["split_rows"].values()) == result["rows_labelled"] == 1200
    assert {"read", "features", "split", "train:logistic_regression", "train:random_forest",
            "evaluate", "total"} <= set(result["seconds"])
    assert result["metrics"]["random_forest"]["macro_f1"] > 0.4
    assert result["peak_rss_mb"] > 50


def test_main_reports_memory_error(spark, tmp_path, monkeypatch):
    data = tmp_path / "input"
    write_records(generate_records(spark, 80, seed=2), str(data))

    def out_of_memory(raw, spec):
        raise MemoryError

    monkeypatch.setattr(baseline, "build_features", out_of_memory)
    out = tmp_path / "result.json"
    assert baseline.main(["--input", str(data), "--out", str(out)]) == baseline.EXIT_MEMORY_ERROR
    result = json.loads(out.read_text())
    assert result["error"] == "MemoryError" and result["stage"] == "features"


# --------------------------------------------------------------------------- expressions
def test_expression_evaluator():
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, 6.0], "b": [0.0, 4.0, 1.0, np.nan], "c": [5.0, np.nan, 3.0, 1.0]})
    out = baseline.evaluate_expression("try_divide(a, b)", frame)
    assert np.isnan(out[0]) and out[1] == 0.5 and np.isnan(out[2]) and np.isnan(out[3])
    assert baseline.evaluate_expression("coalesce(c, a / 2)", frame).tolist()[:2] == [5.0, 1.0]
    g = baseline.evaluate_expression("greatest(b, 1) / 12 + -a * 2", frame)
    assert g[1] == pytest.approx(4 / 12 - 4) and np.isnan(g[2])
    assert baseline.evaluate_expression("least(a, c)", frame).tolist()[1] == 2.0      # nulls are skipped
    assert baseline.evaluate_expression("GREATEST(A, 10)", frame).tolist() == [10.0] * 4   # case-insensitive

    with pytest.raises(ValueError, match=r"derived\.x\.expr: 'log\(a\)'.*unsupported function"):
        baseline.evaluate_expression("log(a)", frame, key="derived.x.expr")
    with pytest.raises(ValueError, match=r"'a / b'.*division by zero"):
        baseline.evaluate_expression("a / b", frame)
    for bad in ("a ** 2", "a if b else c", "`a` + 1", "'text'", "nope + 1", "try_divide(a)"):
        with pytest.raises(ValueError, match="expression"):
            baseline.evaluate_expression(bad, frame)
