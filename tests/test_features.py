import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from credit_spark.config.loader import DatasetSpec, LabelSpec, ListRule, NumericRule, PeriodSpec
from credit_spark.transforms.columns import with_columns
from credit_spark.transforms.features import (apply_range, build_features, clean_text, duration_months, list_count,
                                   parse_number, period_index)

PLACEHOLDERS = ["_", "_______", "NM", "!@9#%8", "#F%$D@*&8", "__10000__", "__-333333333333333333333333333__"]


def one_column(spark, values, expr, out_type="double"):
    df = spark.createDataFrame([(v,) for v in values], "v string")
    return df.select(expr(F.col("v")).cast(out_type).alias("v"))


def expected(spark, values, out_type="double"):
    return spark.createDataFrame([(v,) for v in values], f"v {out_type}")


def test_numbers_with_stray_characters_and_placeholders(spark):
    raw = ["52312.68_", "_32", "__10000__", "__-333333333333333333333333333__", "_", "", None,
           " 17 ", "-100", "2022.0", "12a", "1e3", "113781.38999999998"]
    out = one_column(spark, raw, lambda c: parse_number(c, PLACEHOLDERS))
    assertDataFrameEqual(out, expected(spark, [52312.68, 32.0, None, None, None, None, None,
                                               17.0, -100.0, 2022.0, None, 1000.0, 113781.38999999998]),
                         checkRowOrder=True)


def test_text_placeholders_become_null(spark):
    raw = ["_______", "NM", "!@9#%8", "#F%$D@*&8", " Lawyer ", "", "Yes"]
    out = one_column(spark, raw, lambda c: clean_text(c, PLACEHOLDERS), "string")
    assertDataFrameEqual(out, expected(spark, [None, None, None, None, "Lawyer", None, "Yes"], "string"),
                         checkRowOrder=True)


@pytest.mark.parametrize("rule, result", [
    (NumericRule(min=0, max=10), [None, 0.0, 10.0, None, None]),
    (NumericRule(min=0, max=10, out_of_range="cap"), [0.0, 0.0, 10.0, 10.0, None]),
    (NumericRule(min=0), [None, 0.0, 10.0, 1798.0, None]),
])
def test_out_of_range_values(spark, rule, result):
    df = spark.createDataFrame([(-5.0,), (0.0,), (10.0,), (1798.0,), (None,)], "v double")
    out = df.select(apply_range(F.col("v"), rule).alias("v"))
    assertDataFrameEqual(out, expected(spark, result), checkRowOrder=True)


def test_duration_text_to_months(spark):
    raw = ["22 Years and 9 Months", "0 Years and 1 Months", "1 Year and 0 Months", "7 Months", "NA", None]
    out = one_column(spark, raw, duration_months)
    assertDataFrameEqual(out, expected(spark, [273.0, 1.0, 12.0, 7.0, None, None]), checkRowOrder=True)


def test_list_text_item_count(spark):
    raw = ["Auto Loan, Personal Loan, and Home Equity Loan", "Not Specified", "Auto Loan, and Payday Loan",
           "", None, "_"]
    out = one_column(spark, raw, lambda c: list_count(c, ",", PLACEHOLDERS))
    assertDataFrameEqual(out, expected(spark, [3.0, 1.0, 2.0, 0.0, 0.0, 0.0]), checkRowOrder=True)


def test_month_names_to_period(spark):
    out = one_column(spark, ["January", "September", " December ", "Smarch", None],
                     lambda c: period_index(c, PeriodSpec(column="v", format="month_name")), "int")
    assertDataFrameEqual(out, expected(spark, [1, 9, 12, None, None], "int"), checkRowOrder=True)


@pytest.mark.parametrize("fmt, values", [
    ("year_month", ["2024-03", "2023-12", "2024-13", "March"]),
    ("date", ["2024-03-31", "2023-12-01", "2024-02-30", "31/03/2024"]),
])
def test_dated_periods_to_yyyymm(spark, fmt, values):
    out = one_column(spark, values, lambda c: period_index(c, PeriodSpec(column="v", format=fmt)), "int")
    assertDataFrameEqual(out, expected(spark, [202403, 202312, None, None], "int"), checkRowOrder=True)


SPEC = DatasetSpec(
    name="tiny", record_id="ID", customer_id="Cust", period=PeriodSpec(column="Month"),
    label=LabelSpec(column="Score", classes=["Good", "Poor"]), pii=["Name", "SSN"],
    numeric={"Age": NumericRule(min=14, max=100)}, categorical=["Job"],
    duration_months=["History"], lists={"Loans": ListRule()}, placeholders=["_", "_______"],
)


def test_build_features_contract_drops_pii(spark):
    raw = spark.createDataFrame(
        [("0x1", "C1", "March", "Ann Lee", "123-45-6789", "34_", "_______", "2 Years and 3 Months",
          "Auto Loan, and Student Loan", "Good"),
         ("0x2", "C2", "April", "Bo Kim", "#F%$D@*&8", "-500", "Lawyer", None, None, "Meh")],
        "ID string, Cust string, Month string, Name string, SSN string, Age string, Job string, "
        "History string, Loans string, Score string")
    out = build_features(raw, SPEC)
    assert not {"Name", "SSN"} & set(out.columns)
    want = spark.createDataFrame(
        [("0x1", "C1", 3, 34.0, 27.0, 2.0, None, "Good"),
         ("0x2", "C2", 4, None, None, 0.0, "Lawyer", None)],
        "record_id string, customer_id string, period int, Age double, History double, "
        "Loans_count double, Job string, label string")
    assertDataFrameEqual(out, want)


def test_a_wide_spec_compiles_without_falling_back(spark):
    """30 numeric columns with placeholders and ranges: the cleaning plan must fit Java's method
    limit (it once fell back with a 250-line ERROR). With the fallback off, a failed compile raises."""
    names = [f"x{i}" for i in range(30)]
    spec = DatasetSpec(name="wide", record_id="id", label=LabelSpec(column="y", classes=["0", "1"]),
                       placeholders=["NA", "_"], numeric={n: NumericRule(min=-4, max=5) for n in names})
    rows = [(str(r), *[("NA" if (r + i) % 7 == 0 else f"{(r * i) % 11 - 5}_") for i in range(30)], str(r % 2))
            for r in range(50)]
    raw = spark.createDataFrame(rows, ", ".join(["id string", *[f"{n} string" for n in names], "y string"]))
    previous = spark.conf.get("spark.sql.codegen.fallback")
    spark.conf.set("spark.sql.codegen.fallback", "false")
    try:
        out = build_features(raw, spec).where(F.col("record_id") == "3").first()
    finally:
        spark.conf.set("spark.sql.codegen.fallback", previous)
    assert out["x0"] is None and out["x4"] is None             # "-5_" is out of range, "NA" a placeholder
    assert out["x1"] == pytest.approx(-2.0) and out["x2"] == pytest.approx(1.0)


def test_with_columns_adds_columns_and_leaves_a_frame_alone_when_there_are_none(spark):
    df = spark.createDataFrame([(1,)], "a int")
    assert with_columns(df, {}) is df            # no empty withColumns: Spark Connect refuses one
    assertDataFrameEqual(with_columns(df, {"b": F.col("a") + 1}), spark.createDataFrame([(1, 2)], "a int, b int"))
