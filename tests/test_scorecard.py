import math
import re

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from credit_spark.scorecard import Scorecard, ScorecardModel, monotonic_merge, woe_iv


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
