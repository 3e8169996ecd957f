import math

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from credit_spark.scorecard import Scorecard, ScorecardModel, woe_iv


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
