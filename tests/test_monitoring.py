"""Monitoring functions on tiny explicit DataFrames: profiles, PSI, statuses, age bands, class mix."""
from __future__ import annotations

import json
import math
import statistics

import pytest

from credit_spark.evaluation import monitoring as M

NUM_SCHEMA = "x double, score_points double"
CAT_SCHEMA = "cat string"


@pytest.fixture()
def numeric_df(spark):
    rows = [(float(v), 500.0 + 10 * v) for v in range(1, 21)] + [(None, float("nan"))]
    return spark.createDataFrame(rows, NUM_SCHEMA)


@pytest.fixture()
def categorical_df(spark):
    return spark.createDataFrame([(v,) for v in ["a", "a", "a", "b", "b", "c", None]], CAT_SCHEMA)


def bucket_of(value, edges):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    return str(sum(1 for e in edges if value >= e))


# --------------------------------------------------------------------------- profile
def test_numeric_profile_buckets_match_a_recount_with_its_edges(numeric_df):
    profile = M.baseline_profile(numeric_df, ["x"], [], bins=4)
    assert profile["rows"] == 21
    x = profile["features"]["x"]
    assert x["kind"] == "numeric"
    assert x["edges"] == sorted(set(x["edges"])) and len(x["edges"]) == 3
    values = [float(v) for v in range(1, 21)] + [None]
    expected: dict[str, float] = {}
    for v in values:
        b = bucket_of(v, x["edges"])
        expected[b] = expected.get(b, 0) + 1 / 21
    assert x["shares"].keys() == expected.keys()
    assert all(math.isclose(x["shares"][k], expected[k]) for k in expected)
    assert x["shares"]["missing"] == pytest.approx(1 / 21)
    # the score column is profiled too; its NaN is "missing"
    assert profile["features"]["score_points"]["kind"] == "numeric"
    assert profile["features"]["score_points"]["shares"]["missing"] == pytest.approx(1 / 21)
    assert json.loads(json.dumps(profile)) == profile


def test_duplicate_quantiles_give_deduplicated_edges(spark):
    df = spark.createDataFrame([(1.0,)] * 8 + [(2.0,)] * 2, "x double")
    profile = M.baseline_profile(df, ["x"], [], score_col=None, bins=10)
    assert profile["features"]["x"]["edges"] == [1.0, 2.0]
    assert profile["features"]["x"]["shares"] == {"1": pytest.approx(0.8), "2": pytest.approx(0.2)}


def test_categorical_profile_keeps_top_categories(categorical_df):
    profile = M.baseline_profile(categorical_df, [], ["cat"], score_col=None, max_categories=2)
    assert profile == {"rows": 7, "features": {"cat": {"kind": "categorical", "shares": {
        "a": 3 / 7, "b": 2 / 7, "__other__": 1 / 7, "missing": 1 / 7}}}}


# --------------------------------------------------------------------------- PSI
def test_psi_of_a_distribution_against_itself_is_exactly_zero(spark, numeric_df):
    df = numeric_df.crossJoin(spark.createDataFrame([(c,) for c in ["a", "a", "b", None, "c"]], CAT_SCHEMA))
    profile = M.baseline_profile(df, ["x"], ["cat"], bins=4, max_categories=2)
    assert set(profile["features"]) == {"x", "score_points", "cat"}
    assert M.population_stability(df, profile) == {"x": 0.0, "score_points": 0.0, "cat": 0.0}
    # and after a JSON round trip (how the profile is stored)
    assert M.population_stability(df, json.loads(json.dumps(profile))) == {"x": 0.0, "score_points": 0.0, "cat": 0.0}


def test_shift_of_three_standard_deviations_exceeds_025(spark, numeric_df):
    profile = M.baseline_profile(numeric_df, ["x"], [], score_col=None, bins=4)
    sd = statistics.stdev(range(1, 21))
    shifted = numeric_df.selectExpr(f"x + {3 * sd} AS x")
    value = M.population_stability(shifted, profile)["x"]
    assert value > 0.25
    assert M.status(value, 0.1, 0.25) == "act"


def test_psi_by_hand():
    # (0.8 - 0.5) ln(0.8 / 0.5) + (0.2 - 0.5) ln(0.2 / 0.5) = 0.3 ln 4
    assert M.psi({"a": 0.5, "b": 0.5}, {"a": 0.8, "b": 0.2}) == pytest.approx(0.3 * math.log(4), abs=1e-12)
    # a bucket missing on one side is floored at 1e-4
    expected = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert M.psi({"a": 1.0}, {"a": 0.5, "b": 0.5}) == pytest.approx(expected, abs=1e-12)
    assert M.psi({"a": 0.3, "b": 0.7}, {"a": 0.3, "b": 0.7}) == 0.0


def test_unseen_category_goes_to_other(spark, categorical_df):
    profile = M.baseline_profile(categorical_df, [], ["cat"], score_col=None, max_categories=2)
    current = spark.createDataFrame([("a",), ("d",), (None,), ("c",)], CAT_SCHEMA)
    shares = M.current_shares(current, profile)
    assert shares == {"cat": {"a": 0.25, "__other__": 0.5, "missing": 0.25}}
    assert M.population_stability(current, profile) == {"cat": pytest.approx(M.psi(
        {"a": 3 / 7, "b": 2 / 7, "__other__": 1 / 7, "missing": 1 / 7},
        {"a": 0.25, "__other__": 0.5, "missing": 0.25}))}


def test_current_shares_by_hand_on_edges_nulls_nan_and_integer_columns(spark):
    """The nightly counting (numpy in Arrow batches) puts a value on an edge in the upper bucket,
    as the scorecard's bins do, null and NaN in missing, and compares integer columns as numbers."""
    profile = {"rows": 1, "features": {
        "x": {"kind": "numeric", "edges": [1.0, 2.5], "shares": {}},
        "n": {"kind": "numeric", "edges": [3.0], "shares": {}},
        "cat": {"kind": "categorical", "shares": {"a": 0.5, "b": 0.2, "__other__": 0.2, "missing": 0.1}}}}
    rows = [(0.5, 3, "a"), (1.0, 2, "b"), (2.5, None, "z"), (None, 4, None), (float("nan"), 3, "a")]
    current = spark.createDataFrame(rows, "x double, n int, cat string").repartition(2)
    shares = M.current_shares(current, profile)
    assert shares == {"x": {"0": 0.2, "1": 0.2, "2": 0.2, "missing": 0.4},
                      "n": {"0": 0.2, "1": 0.6, "missing": 0.2},
                      "cat": {"a": 0.4, "b": 0.2, "__other__": 0.2, "missing": 0.2}}
    for name in ("x", "n"):
        edges = profile["features"][name]["edges"]
        index = {"x": 0, "n": 1}[name]
        expected: dict[str, int] = {}
        for row in rows:
            key = bucket_of(None if row[index] is None else float(row[index]), edges)
            expected[key] = expected.get(key, 0) + 1
        assert shares[name] == {k: v / len(rows) for k, v in sorted(expected.items())}
    # the same buckets as aggregates (what the scorer observes during its write for the score)
    for name, feature in profile["features"].items():
        counted = current.agg(*[c.alias(n) for n, c in M.bucket_aggregates(name, feature).items()]).first()
        assert M.bucket_shares_of(counted.asDict(), feature) == shares[name]


def test_missing_column_is_named(spark, numeric_df):
    profile = M.baseline_profile(numeric_df, ["x"], [], bins=4)
    only_x = numeric_df.select("x")
    with pytest.raises(ValueError, match=r"population_stability: column\(s\) missing from the DataFrame: "
                                         r"\['score_points'\]"):
        M.population_stability(only_x, profile)
    with pytest.raises(ValueError, match=r"\['score_points'\]"):
        M.baseline_profile(only_x, ["x"], [])


# --------------------------------------------------------------------------- status
@pytest.mark.parametrize("value,expected", [
    (0.0, "ok"), (0.0999, "ok"), (0.1, "watch"), (0.2499, "watch"), (0.25, "act"), (3.0, "act")])
def test_status_thresholds(value, expected):
    assert M.status(value, watch=0.1, act=0.25) == expected


def test_status_rejects_inverted_thresholds():
    with pytest.raises(ValueError, match="above the act threshold"):
        M.status(0.2, watch=0.3, act=0.25)


# --------------------------------------------------------------------------- fairness and class mix
def test_adverse_share_by_age_band_by_hand(spark):
    rows = [(None, "Poor"), (None, "Good"), (float("nan"), "Poor"),
            (18.0, "Poor"), (24.9, "Good"),
            (25.0, "Poor"), (34.0, "Poor"), (34.5, "Standard"), (35.0, None),
            (64.0, "Good"), (65.0, "Poor"), (90.0, "Good")]
    df = spark.createDataFrame(rows, "age double, predicted_class string")
    result = M.adverse_share_by_age_band(df, "age", "predicted_class", "Poor")
    assert result == [
        {"band": "<25", "rows": 2, "adverse_share": 0.5},
        {"band": "25-34", "rows": 3, "adverse_share": pytest.approx(2 / 3)},
        {"band": "35-44", "rows": 1, "adverse_share": 0.0},
        {"band": "55-64", "rows": 1, "adverse_share": 0.0},
        {"band": "65+", "rows": 2, "adverse_share": 0.5},
        {"band": "unknown", "rows": 3, "adverse_share": pytest.approx(2 / 3)},
    ]
    assert M.age_band_labels((25, 35, 45, 55, 65)) == ["<25", "25-34", "35-44", "45-54", "55-64", "65+"]


def test_class_shares(spark):
    df = spark.createDataFrame([("Good",), ("Good",), ("Poor",), ("Good",)], "predicted_class string")
    assert M.class_shares(df, "predicted_class", ["Good", "Standard", "Poor"]) == {
        "Good": 0.75, "Standard": 0.0, "Poor": 0.25}
    empty = spark.createDataFrame([], "predicted_class string")
    assert M.class_shares(empty, "predicted_class", ["Good"]) == {"Good": 0.0}
