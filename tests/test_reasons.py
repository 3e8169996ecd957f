"""The reasons stage by hand: ranking, ties, positive impacts only, one reason per code, the cap."""
from __future__ import annotations

import json

import pytest
from pyspark.ml.linalg import Vectors
from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual

from credit_spark.ml.reasons import ReasonCodesModel

# linear state: impact of feature f = w * (x[i] - mean) with w, mean chosen so impact = x[i] * w
STATE = {"input_col": "v", "features": {"a": [[0, 1.0, 0.0]], "b": [[1, 2.0, 0.0]],
                                        "b__prev": [[2, 1.0, 0.0]], "age": [[3, 1.0, 0.0]]}}
CODES = {"a": ("R1", "text a"), "b": ("R2", "text b"), "b__prev": ("R2", "text b")}   # age: no code


@pytest.fixture()
def rows(spark):
    return spark.createDataFrame([
        (1, Vectors.dense([3.0, 1.0, 5.0, 10.0])),   # impacts a 3, b 2, b__prev 5, age 10
        (2, Vectors.dense([-1.0, 0.0, 0.0, 0.0])),   # nothing positive
        (3, Vectors.dense([2.0, 1.0, 0.0, 0.0])),    # a 2 = b 2: tie, by name
    ], ["id", "v"])


def stage(max_reasons: int) -> ReasonCodesModel:
    return ReasonCodesModel(method="linear", state=json.dumps(STATE), maxReasons=max_reasons)


def test_uncoded_reasons_are_positive_impacts_largest_first_ties_by_name(spark, rows):
    out = stage(3).transform(rows)
    assert out.columns == ["id", "v", "reason_features"]     # no helper column left behind
    out = out.select("id", "reason_features")
    assertDataFrameEqual(out, [
        Row(id=1, reason_features=[Row(feature="age", impact=10.0), Row(feature="b__prev", impact=5.0),
                                   Row(feature="a", impact=3.0)]),
        Row(id=2, reason_features=[]),
        Row(id=3, reason_features=[Row(feature="a", impact=2.0), Row(feature="b", impact=2.0)]),
    ])


def test_coded_reasons_one_per_code_uncoded_features_left_out_capped(spark, rows):
    coded = stage(16).with_codes(CODES, max_reasons=1, output_col="reasons")
    out = coded.transform(rows)
    assert out.columns == ["id", "v", "reasons"]
    assertDataFrameEqual(out.select("id", "reasons"), [
        Row(id=1, reasons=[Row(rank=1, code="R2", feature="b__prev", text="text b", impact=5.0)]),
        Row(id=2, reasons=[]),
        Row(id=3, reasons=[Row(rank=1, code="R1", feature="a", text="text a", impact=2.0)]),
    ])
    wide = stage(16).with_codes(CODES, max_reasons=4, output_col="reasons").transform(rows)
    assertDataFrameEqual(wide.where("id = 1").select("reasons"), [Row(reasons=[
        Row(rank=1, code="R2", feature="b__prev", text="text b", impact=5.0),   # b (2) is the same code: dropped
        Row(rank=2, code="R1", feature="a", text="text a", impact=3.0)])])


def test_equal_impacts_under_one_code_name_the_feature_first_by_name(spark):
    rows = spark.createDataFrame([(1, Vectors.dense([0.0, 1.0, 2.0, 0.0]))], ["id", "v"])   # b 2 = b__prev 2
    out = stage(16).with_codes(CODES, max_reasons=4, output_col="reasons").transform(rows)
    assertDataFrameEqual(out.select("reasons"), [Row(reasons=[
        Row(rank=1, code="R2", feature="b", text="text b", impact=2.0)])])


def test_no_coded_feature_gives_empty_reasons(spark, rows):
    out = stage(4).with_codes({"other": ("R9", "x")}, max_reasons=4, output_col="reasons").transform(rows)
    assert [r.reasons for r in out.select("reasons").collect()] == [[], [], []]
    assert out.schema["reasons"].dataType.simpleString() == \
        "array<struct<rank:int,code:string,feature:string,text:string,impact:double>>"


def test_coded_stage_saves_and_loads(spark, rows, tmp_path):
    coded = stage(16).with_codes(CODES, max_reasons=2, output_col="reasons")
    coded.save(str(tmp_path / "stage"))
    loaded = ReasonCodesModel.load(str(tmp_path / "stage"))
    assertDataFrameEqual(loaded.transform(rows).select("id", "reasons"), coded.transform(rows).select("id", "reasons"))
