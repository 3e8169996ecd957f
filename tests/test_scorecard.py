import math
import re
from fractions import Fraction

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from credit_spark.ml.binning import cut_between, few_distinct_values, isolate_values, monotonic_merge, woe_iv
from credit_spark.ml.scorecard import Scorecard, ScorecardModel


def test_woe_and_iv_by_hand():
    # A: 3 good, 1 bad; B: 1 good, 3 bad; smoothing 0.5 per cell, 2 bins -> totals 5 and 5
    woe, iv = woe_iv({"A": (3, 1), "B": (1, 3)})
    assert woe["A"] == pytest.approx(math.log(0.7 / 0.3))
    assert woe["B"] == pytest.approx(math.log(0.3 / 0.7))
    assert iv == pytest.approx(2 * 0.4 * math.log(0.7 / 0.3))


@pytest.fixture()
def toy(spark):
    rows = ([("A", 1.0, 0)] * 30 + [("A", 2.0, 1)] * 10 + [("B", 8.0, 0)] * 10 + [("B", 9.0, 1)] * 30
            + [(None, None, 1)] * 4)
    return spark.createDataFrame(rows, "grade string, debt double, label int")


def test_fitted_card_has_the_hand_computed_woe(spark, toy):
    model = Scorecard(categoricalCols=["grade"], numClasses=2, minIV=0.0).fit(toy)
    table = {(r["feature"], r["bin"]): r for r in model.scorecard_table()}
    # grade A: 30 good / 10 bad, B: 10 / 30, missing: 0 / 4; 3 bins -> totals 41.5 and 45.5
    assert table[("grade", "A")]["woe"] == pytest.approx(math.log((30.5 / 41.5) / (10.5 / 45.5)))
    assert table[("grade", "missing")]["woe"] == pytest.approx(math.log((0.5 / 41.5) / (4.5 / 45.5)))
    assert model.iv_table()[0]["feature"] == "grade" and model.iv_table()[0]["iv"] > 0.5


def test_points_scale_exactly_and_sum_to_the_score(spark, toy):
    # some regularisation: the toy data is almost separable, and probabilities of 1 - 1e-12
    # cannot carry the log-odds to six decimals
    model = Scorecard(numericCols=["debt"], categoricalCols=["grade"], numClasses=2, numBins=4, minIV=0.0,
                      pdo=20.0, baseScore=600.0, baseOdds=50.0, regParam=0.05).fit(toy)
    factor = 20 / math.log(2)
    offset = 600 - factor * math.log(50)
    out = model.transform(toy).select("grade", "debt", "score_points",
                                      vector_to_array("probability").alias("p")).collect()
    card = model.scorecard_table()
    for row in out:
        p_good, p_bad = row.p
        assert row.score_points == pytest.approx(offset + factor * math.log(p_good / p_bad), abs=1e-6)
    # the points of a row's bins add up to its score: check the best and the worst row
    by_bin = {(r["feature"], r["bin"]): r["points"] for r in card}
    debt_bins = [b for f, b in by_bin if f == "debt"]

    def points_for(grade, debt):
        debt_bin = next(b for b in debt_bins if b != "missing" and _in_bin(debt, b)) if debt is not None else "missing"
        return by_bin[("grade", grade or "missing")] + by_bin[("debt", debt_bin)]
    for row in out:
        assert points_for(row.grade, row.debt) == pytest.approx(row.score_points, abs=1e-6)
    # higher points = safer: an A row outscores a B row
    a = next(r.score_points for r in out if r.grade == "A")
    b = next(r.score_points for r in out if r.grade == "B")
    assert a > b


def _in_bin(value, label):
    low, high = label.strip("[)").split(", ")
    return float(low) <= value < float(high)


def test_round_trip_in_a_saved_pipeline(spark, toy, tmp_path):
    fitted = Pipeline(stages=[Scorecard(numericCols=["debt"], categoricalCols=["grade"], numBins=3)]).fit(toy)
    fitted.write().overwrite().save(str(tmp_path / "card"))
    loaded = PipelineModel.load(str(tmp_path / "card"))
    assert isinstance(loaded.stages[0], ScorecardModel)
    cols = ["grade", "debt", "prediction", "score_points", vector_to_array("probability").alias("p")]
    assertDataFrameEqual(loaded.transform(toy).select(*cols), fitted.transform(toy).select(*cols))


def test_multiclass_probabilities_sum_to_one(spark):
    rows = [("A", 0)] * 20 + [("B", 1)] * 20 + [("C", 2)] * 20 + [("A", 1)] * 5 + [("C", 1)] * 5
    df = spark.createDataFrame(rows, "grade string, label int")
    model = Scorecard(categoricalCols=["grade"], numClasses=3, minIV=0.0).fit(df)
    out = model.transform(df).select("grade", "prediction", vector_to_array("probability").alias("p"))
    sums = out.select(F.aggregate("p", F.lit(0.0), lambda acc, x: acc + x).alias("s"))
    assert sums.where(F.abs(F.col("s") - 1.0) > 1e-9).count() == 0
    predicted = {r.grade: r.prediction for r in out.distinct().collect()}
    assert predicted == {"A": 0.0, "B": 1.0, "C": 2.0}


def test_bad_params_are_named(spark, toy):
    with pytest.raises(ValueError, match="at least one numeric or categorical input"):
        Scorecard().fit(toy)
    with pytest.raises(ValueError, match="numBins must be at least 2, got 1"):
        Scorecard(numericCols=["debt"], numBins=1).fit(toy)
    with pytest.raises(ValueError, match=re.escape("binning must be one of 'quantile', 'monotonic', got 'isotonic'")):
        Scorecard(numericCols=["debt"], binning="isotonic").fit(toy)
    with pytest.raises(ValueError, match="weightCol 'w' is not a column of the dataset"):
        Scorecard(numericCols=["debt"], weightCol="w").fit(toy)


def test_monotonic_merge_pools_the_violating_bin():
    # edges 1, 2, 3 -> bins 0..3; adverse (class 1) rates 0.1, 0.4, 0.2, 0.8: bin 2 breaks the
    # increasing trend, so bins 1 and 2 pool (6/20 = 0.3) and the edge 2 between them goes
    counts = {"0": {0: 9, 1: 1}, "1": {0: 6, 1: 4}, "2": {0: 8, 1: 2}, "3": {0: 2, 1: 8}, "missing": {0: 5, 1: 5}}
    edges, merged = monotonic_merge([1.0, 2.0, 3.0], counts, adverse=1)
    assert edges == [1.0, 3.0]
    assert merged == {"0": {0: 9, 1: 1}, "1": {0: 14, 1: 6}, "2": {0: 2, 1: 8}, "missing": {0: 5, 1: 5}}
    # the mirror image is decreasing and pools the same pair; no "missing" in, none out
    mirror = {"0": {0: 2, 1: 8}, "1": {0: 8, 1: 2}, "2": {0: 6, 1: 4}, "3": {0: 9, 1: 1}}
    assert monotonic_merge([1.0, 2.0, 3.0], mirror, adverse=1) == (
        [1.0, 3.0], {"0": {0: 2, 1: 8}, "1": {0: 14, 1: 6}, "2": {0: 9, 1: 1}})
    # pooling cascades: 0.5 then 0.3 then 0.2 -> one block of 10/30; an empty bin 0 joins the next
    cascade = {"1": {0: 9, 1: 1}, "2": {0: 5, 1: 5}, "3": {0: 7, 1: 3}, "4": {0: 8, 1: 2}, "5": {0: 1, 1: 9}}
    assert monotonic_merge([0.0, 1.0, 2.0, 3.0, 4.0], cascade, adverse=1) == (
        [1.0, 4.0], {"0": {0: 9, 1: 1}, "1": {0: 20, 1: 10}, "2": {0: 1, 1: 9}})
    # already monotonic: nothing changes; the adverse class of a 3-class label is 2
    three = {"0": {0: 5, 1: 4, 2: 1}, "1": {0: 1, 1: 4, 2: 5}}
    assert monotonic_merge([5.0], three, adverse=2) == ([5.0], three)


def _numeric_woe(model, feature):
    rows = [r for r in model.scorecard_table() if r["feature"] == feature and r["bin"] != "missing"]
    return [r["bin"] for r in rows], [r["woe"] for r in rows]


def test_monotonic_binning_removes_a_blip(spark):
    # x = 0..99 in five bands of 20; adverse counts per band 2, 10, 4, 14, 18 (bad rows in the
    # middle of each band, so approximate quantile edges cannot move them): band 1 is a blip
    rows = []
    for band, n_bad in enumerate([2, 10, 4, 14, 18]):
        start = (20 - n_bad) // 2
        rows += [(float(band * 20 + i), int(start <= i < start + n_bad)) for i in range(20)]
    rows += [(None, 1)] * 3 + [(None, 0)] * 2
    df = spark.createDataFrame(rows, "x double, label int")
    params = dict(numericCols=["x"], numBins=5, minIV=0.0)
    q_bins, q_woe = _numeric_woe(Scorecard(**params).fit(df), "x")
    model = Scorecard(binning="monotonic", **params).fit(df)
    m_bins, m_woe = _numeric_woe(model, "x")
    assert len(q_bins) == 5 and any(a < b for a, b in zip(q_woe, q_woe[1:]))  # the blip is there
    assert len(m_bins) == 4 and all(a > b for a, b in zip(m_woe, m_woe[1:]))  # gone: WOE falls with x
    assert m_bins[0].startswith("[-inf, ") and m_bins[-1].endswith(", +inf)")
    assert any(r["bin"] == "missing" for r in model.scorecard_table())
    # the scoring side uses the merged edges: every non-null row lands in one of the four bins
    woe_keys = set(model._state()["cards"]["1"]["woe"]["x"])
    assert woe_keys == {"0", "1", "2", "3", "missing"}
    assert model.getOrDefault("binning") == "monotonic"


def test_weights_move_the_regression_not_the_woe(spark):
    rows = [("A", 0)] * 30 + [("A", 1)] * 10 + [("B", 0)] * 10 + [("B", 1)] * 30
    df = spark.createDataFrame(rows, "grade string, label int").withColumn(
        "w", F.when(F.col("label") == 1, F.lit(3.0)).otherwise(F.lit(1.0)))
    params = dict(categoricalCols=["grade"], minIV=0.0)
    plain = Scorecard(**params).fit(df)
    weighted = Scorecard(weightCol="w", **params).fit(df)

    def mean_p_bad(model):
        return model.transform(df).select(F.avg(vector_to_array("probability")[1])).first()[0]
    p_plain, p_weighted = mean_p_bad(plain), mean_p_bad(weighted)
    assert p_plain == pytest.approx(0.5, abs=1e-4)  # the unweighted MLE matches the base rate
    assert p_weighted > p_plain + 0.1
    assert ([(r["feature"], r["bin"], r["woe"], r["iv"]) for r in weighted.scorecard_table()]
            == [(r["feature"], r["bin"], r["woe"], r["iv"]) for r in plain.scorecard_table()])


def test_cut_between_is_a_midpoint_strictly_above_the_lower_value():
    assert (cut_between(0.0, 1.0), cut_between(2.0, 3.0), cut_between(-1.0, 2.0)) == (0.5, 2.5, 0.5)
    assert cut_between(1.0, math.nextafter(1.0, 2.0)) == math.nextafter(1.0, 2.0)  # nothing lies between
    assert cut_between(-math.inf, 0.0) == 0.0 and cut_between(0.0, math.inf) == math.inf


def test_isolate_values_by_hand():
    # fine bins of the quantile edges 0 and 10 (edges 0, nextafter(0), 10, nextafter(10)): below 0,
    # exactly 0, between, exactly 10, above; zero holds 52 of 100 rows, ten holds 6
    counts = {"0": {0: 5, 1: 1}, "1": {0: 50, 1: 2}, "2": {0: 10, 1: 10}, "3": {0: 3, 1: 3}, "4": {0: 8, 1: 8},
              "missing": {0: 1, 1: 1}}
    ranges = {"0": (-3.0, -1.0), "1": (0.0, 0.0), "2": (2.0, 7.0), "3": (10.0, 10.0), "4": (12.0, 40.0)}
    # share 1/5: zero is cut midway to its neighbours -1 and 2 (the edge 0 goes), ten keeps its edge
    assert isolate_values([0.0, 10.0], counts, ranges, Fraction(1, 5)) == (
        [-0.5, 1.0, 10.0], {"0": {0: 5, 1: 1}, "1": {0: 50, 1: 2}, "2": {0: 10, 1: 10}, "3": {0: 11, 1: 11},
                            "missing": {0: 1, 1: 1}})
    # share 1/20: ten too (6 rows); its upper cut is midway to 12
    assert isolate_values([0.0, 10.0], counts, ranges, Fraction(1, 20))[0] == [-0.5, 1.0, 8.5, 11.0]
    # quantile edges 0 and 1 of a zero-inflated count (0: 60 rows, 1: 10, 2..9: 30): zero is the
    # minimum (no lower cut) and its upper neighbour 1 is an edge: both edges give way to 0.5
    counts = {"1": {0: 57, 1: 3}, "3": {0: 7, 1: 3}, "4": {0: 16, 1: 14}}
    ranges = {"1": (0.0, 0.0), "3": (1.0, 1.0), "4": (2.0, 9.0)}
    assert isolate_values([0.0, 1.0], counts, ranges, Fraction(1, 5)) == (
        [0.5], {"0": {0: 57, 1: 3}, "1": {0: 23, 1: 17}})
    assert isolate_values([0.0, 1.0], counts, ranges, Fraction(1, 10)) == (
        [0.5, 1.5], {"0": {0: 57, 1: 3}, "1": {0: 7, 1: 3}, "2": {0: 16, 1: 14}})
    # share 0 (few distinct values): every value alone, cut midway between the exact values, whatever
    # the approximate cuts the count pass used; no value is isolated without a single-valued bin
    exact = {"0": {0: 4}, "1": {1: 4}, "2": {0: 1, 1: 1}}
    assert isolate_values([0.5000000000000001, 2.0], exact, {"0": (0.0, 0.0), "1": (1.0, 1.0), "2": (3.0, 3.0)},
                          Fraction(0)) == ([0.5, 2.0], exact)
    assert isolate_values([0.5], {"0": {0: 4}, "1": {1: 4}}, {"0": (0.0, 0.0), "1": (1.0, 3.0)},
                          Fraction(1, 10)) == ([0.5], {"0": {0: 4}, "1": {1: 4}})
    assert isolate_values([7.0], {"1": {0: 3}}, {"1": (7.0, 7.0)}, Fraction(1, 2)) == ([], {"0": {0: 3}})


def test_few_distinct_values_are_exact_up_to_the_limit(spark):
    rows = ([(0, 0.25)] * 30 + [(1, 0.5)] * 3 + [(2, float("nan"))] * 30 + [(5, None)] * 2 + [(None, 0.5)])
    df = spark.createDataFrame(rows, "n int, r double")
    assert few_distinct_values(df, ["n", "r"], 4) == {"n": [0.0, 1.0, 2.0, 5.0], "r": [0.25, 0.5]}
    # one more value than the limit: None (the histogram has limit + 1 centres, so it cannot
    # average 4 values into 3 and pass them off as exact); null and NaN are no value
    assert few_distinct_values(df, ["n", "r"], 3) == {"n": None, "r": [0.25, 0.5]}
    assert few_distinct_values(df, ["r"], 1) == {"r": None}


def test_few_distinct_integer_values_get_one_bin_each(spark):
    # 0 and 2 hold 30 rows each, 1 and 5 a few: the quartiles are 0, 2, 2, so quantile edges would
    # put 1 in the bin of 0 and 5 in the bin of 2; four values <= numBins = 4: one bin each
    rows = [(0, 0)] * 30 + [(1, 1)] * 3 + [(2, 0)] * 30 + [(5, 1)] * 2 + [(None, 0)]
    df = spark.createDataFrame(rows, "n int, label int")
    model = Scorecard(numericCols=["n"], numBins=4, minIV=0.0).fit(df)
    assert model.bin_edges() == {"n": [0.5, 1.5, 3.5]}
    assert [r["bin"] for r in model.scorecard_table()] == [
        "[-inf, 0.5)", "[0.5, 1.5)", "[1.5, 3.5)", "[3.5, +inf)", "missing"]
    assert model.iv_table()[0]["iv"] == pytest.approx(
        woe_iv({"0": (30, 0), "1": (0, 3), "2": (30, 0), "3": (0, 2), "missing": (1, 0)})[1])


def test_zero_inflated_count_keeps_its_signal(spark):
    # "times 90 days late": 95% zeros with a bad rate of 17/380 (4.5%), 40% bad above zero. Every
    # decile is 0, so quantile edges were [0.0]: one bin, an IV of ~0, the feature dropped.
    # Four distinct values: one bin each, zero on its own
    rows = ([(0, 1)] * 17 + [(0, 0)] * 363 + [(1, 1)] * 3 + [(1, 0)] * 7 + [(2, 1)] * 3 + [(2, 0)] * 3
            + [(3, 1)] * 2 + [(3, 0)] * 2)
    df = spark.createDataFrame(rows, "late_90 int, label int")
    model = Scorecard(numericCols=["late_90"], numBins=10, minIV=0.1).fit(df)
    assert model.bin_edges() == {"late_90": [0.5, 1.5, 2.5]}
    table = {r["bin"]: r for r in model.scorecard_table()}
    assert list(table) == ["[-inf, 0.5)", "[0.5, 1.5)", "[1.5, 2.5)", "[2.5, +inf)"]
    # zero bin: 363 good / 17 bad; 4 bins -> smoothed totals 375 + 2 and 25 + 2
    assert table["[-inf, 0.5)"]["woe"] == pytest.approx(math.log((363.5 / 377) / (17.5 / 27)))
    iv = woe_iv({"0": (363, 17), "1": (7, 3), "2": (3, 3), "3": (2, 2)})[1]
    assert iv > 0.1 and model.iv_table() == [{"feature": "late_90", "iv": pytest.approx(iv), "kept": True}]


def test_a_dominant_value_gets_its_own_bin_and_the_rest_keeps_quantiles(spark):
    # balance overdue: 55 zeros (3 bad), then 1..45 once each (bad when even or above 30); y: 0..99
    rows = ([(0.0, float(i), int(i < 3)) for i in range(55)]
            + [(float(v), float(54 + v), int(v % 2 == 0 or v > 30)) for v in range(1, 46)])
    df = spark.createDataFrame(rows, "overdue double, y double, label int")
    model = Scorecard(numericCols=["overdue", "y"], numBins=5, minIV=0.0).fit(df)
    # quintile edges of overdue: 0, 0, 5, 25 (the 60th and 80th values); zero holds 55% >= 1/5, so
    # it is cut midway to its upper neighbour 1 (it is the minimum: no lower cut), 5 and 25 stay
    assert model.bin_edges()["overdue"] == [0.5, 5.0, 25.0]
    # y has 100 distinct values, none dominant: exactly the quantile edges
    assert model.bin_edges()["y"] == sorted(set(df.approxQuantile("y", [0.2, 0.4, 0.6, 0.8], 0.001)))
    assert len(model.bin_edges()["y"]) == 4
    # counts per bin: 0 -> 52 good / 3 bad; 1..4 -> 2 / 2; 5..24 -> 10 / 10; 25..45 -> 3 / 18
    iv = {r["feature"]: r["iv"] for r in model.iv_table()}
    assert iv["overdue"] == pytest.approx(woe_iv({"0": (52, 3), "1": (2, 2), "2": (10, 10), "3": (3, 18)})[1])
    assert iv["overdue"] > 0.1


def test_a_wide_card_fits_without_a_codegen_fallback(spark):
    """Ninety numeric features with ten bins each (fewer than spark.sql.codegen.maxFields columns,
    so the plan is whole-stage code): the one counting pass (an explode of a struct per feature)
    outgrew Java's 64 KB method, and every training run logged a 250-line ERROR before Spark fell
    back. With the fallback off, such a failed compile raises."""
    names = [f"x{i}" for i in range(90)]
    df = spark.range(400).select(*[((F.col("id") * (i + 3)) % 97).cast("double").alias(n) for i, n in enumerate(names)],
                                 (F.col("id") % 3 == 0).cast("int").alias("label"))
    previous = spark.conf.get("spark.sql.codegen.fallback")
    spark.conf.set("spark.sql.codegen.fallback", "false")
    try:
        model = Scorecard(numericCols=names, numClasses=2, minIV=0.0).fit(df)
    finally:
        spark.conf.set("spark.sql.codegen.fallback", previous)
    assert len(model.bin_edges()) == 90
    assert spark.conf.get("spark.sql.codegen.wholeStage") == "true"      # the session's setting is back
