"""Issue 'clean real-world credit data': per-item lists, composite categories, per-customer repair,
derived ratios, history over earlier periods only, data quality, catalog, train/serve consistency."""
import dataclasses
from datetime import date

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from credit_spark.config.loader import (DatasetSpec, DerivedFeature, LabelSpec, ListRule, NumericRule, PeriodSpec,
                                 SplitRule, StableRule, TemporalSpec)
from credit_spark.errors import ConfigError
from credit_spark.jobs.features_job import run_features
from credit_spark.transforms.features import (CUSTOMER_ID, PERIOD, build_features, clean_columns, feature_catalog,
                                   repair_stable, with_derived, with_history)
from credit_spark.transforms.quality import column_quality

BASE = DatasetSpec(name="t", record_id="ID", customer_id="Cust", period=PeriodSpec(column="Month"),
                   label=LabelSpec(column="Score", classes=["Good", "Poor"]), placeholders=["_", "NM"])


def test_list_items_become_per_item_counts_and_a_total(spark):
    spec = dataclasses.replace(BASE, lists={"Loans": ListRule(items=["Auto Loan", "Payday Loan", "Not Specified"])})
    raw = spark.createDataFrame([("Auto Loan, Payday Loan, and Auto Loan",), ("Not Specified",),
                                 ("Payday Loan and Student Loan",), ("",), (None,)], "Loans string")
    out = raw.transform(clean_columns(spec)).drop("Loans")
    want = spark.createDataFrame(
        [(3.0, 2.0, 1.0, 0.0), (1.0, 0.0, 0.0, 1.0), (2.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0)],
        "Loans_count double, Loans__auto_loan double, Loans__payday_loan double, Loans__not_specified double")
    assertDataFrameEqual(out, want, checkRowOrder=True)


def test_composite_category_is_split_into_parts(spark):
    spec = dataclasses.replace(BASE, splits={"Beh": SplitRule(
        pattern=r"^(Low|High)_spent_(Small|Medium|Large)_value_payments$", parts=["Spend", "Value"])})
    raw = spark.createDataFrame([("High_spent_Small_value_payments",), ("!@9#%8",), (None,)], "Beh string")
    out = raw.transform(clean_columns(spec)).select("Spend", "Value")
    want = spark.createDataFrame([("High", "Small"), (None, None), (None, None)], "Spend string, Value string")
    assertDataFrameEqual(out, want, checkRowOrder=True)


STABLE_ROWS = [("A", 1, "Lawyer", 100.0, 30.0), ("A", 2, None, 1000.0, 31.0), ("A", 3, "Lawyer", 100.0, 500.0),
               ("A", 4, "Doctor", None, None), ("B", 1, None, None, 40.0),
               ("C", 1, None, None, None), ("C", 2, "Teacher", 50.0, 45.0)]
STABLE_SCHEMA = f"{CUSTOMER_ID} string, {PERIOD} int, Job string, Income double, Age double"


def stable_spec(scope):
    return dataclasses.replace(BASE, categorical=["Job"], numeric={"Income": NumericRule(), "Age": NumericRule()},
                               stable={"Job": StableRule(method="mode"), "Income": StableRule(method="mode"),
                                       "Age": StableRule(method="near_mode", tolerance=1)}, repair_scope=scope)


def test_stable_attributes_are_repaired_from_all_periods(spark):
    out = spark.createDataFrame(STABLE_ROWS, STABLE_SCHEMA).transform(repair_stable(stable_spec("all_periods")))
    want = spark.createDataFrame(
        [("A", 1, "Lawyer", 100.0, 30.0), ("A", 2, "Lawyer", 100.0, 31.0), ("A", 3, "Lawyer", 100.0, 30.0),
         ("A", 4, "Lawyer", 100.0, 30.0), ("B", 1, None, None, 40.0),
         ("C", 1, "Teacher", 50.0, 45.0), ("C", 2, "Teacher", 50.0, 45.0)],   # C1 repaired from C2
        STABLE_SCHEMA)
    assertDataFrameEqual(out, want)


def test_stable_attributes_point_in_time(spark):
    out = spark.createDataFrame(STABLE_ROWS, STABLE_SCHEMA).transform(repair_stable(stable_spec("past_periods")))
    want = spark.createDataFrame(
        [("A", 1, "Lawyer", 100.0, 30.0), ("A", 2, "Lawyer", 100.0, 31.0), ("A", 3, "Lawyer", 100.0, 30.0),
         ("A", 4, "Lawyer", 100.0, 30.0), ("B", 1, None, None, 40.0),
         ("C", 1, None, None, None), ("C", 2, "Teacher", 50.0, 45.0)],        # no look-ahead: C1 stays empty
        STABLE_SCHEMA)
    assertDataFrameEqual(out, want)


def test_derived_features_and_a_bad_expression_names_its_key(spark):
    spec = dataclasses.replace(BASE, derived={
        "dti": DerivedFeature(expr="try_divide(Debt, Income)", description="d"),
        "dti_pct": DerivedFeature(expr="dti * 100", description="uses an earlier derived feature")})
    df = spark.createDataFrame([(50.0, 200.0), (10.0, 0.0), (None, 10.0)], "Debt double, Income double")
    out = df.transform(with_derived(spec)).select("dti", "dti_pct")
    assertDataFrameEqual(out, spark.createDataFrame([(0.25, 25.0), (None, None), (None, None)],
                                                    "dti double, dti_pct double"), checkRowOrder=True)
    broken = dataclasses.replace(BASE, derived={"x": DerivedFeature(expr="Debt / Salary", description="d")})
    with pytest.raises(ConfigError, match=r"derived\.x\.expr 'Debt / Salary'.*Salary"):
        df.transform(with_derived(broken))


def test_history_uses_earlier_periods_only(spark):
    spec = dataclasses.replace(BASE, numeric={"Debt": NumericRule()}, temporal=TemporalSpec(columns=["Debt"], window=2))
    rows = [("A", 3, 30.0), ("A", 1, 10.0), ("A", 2, None), ("A", 4, 70.0), ("B", 1, 5.0),
            ("C", 1, 4.0), ("C", 3, 6.0),          # a missing month is a gap, not "the previous row"
            ("D", 1, 1.0), ("D", 1, 2.0)]          # two records of one period never see each other
    df = spark.createDataFrame(rows, f"{CUSTOMER_ID} string, {PERIOD} int, Debt double")
    out = df.transform(with_history(spec))
    want = spark.createDataFrame([
        ("A", 1, 10.0, None, None, None, None, 0.0),
        ("A", 2, None, 10.0, None, 10.0, 10.0, 1.0),
        ("A", 3, 30.0, None, None, 10.0, 10.0, 1.0),      # the window holds periods 1 and 2 only
        ("A", 4, 70.0, 30.0, 40.0, 30.0, 30.0, 1.0),      # periods 2 and 3: nothing from period 4 itself
        ("B", 1, 5.0, None, None, None, None, 0.0),
        ("C", 1, 4.0, None, None, None, None, 0.0),
        ("C", 3, 6.0, None, None, 4.0, 4.0, 1.0),
        ("D", 1, 1.0, None, None, None, None, 0.0),
        ("D", 1, 2.0, None, None, None, None, 0.0)],
        f"{CUSTOMER_ID} string, {PERIOD} int, Debt double, Debt__prev double, Debt__delta double, "
        "Debt__mean2 double, Debt__max2 double, Debt__history double")
    assertDataFrameEqual(out, want)
    # changing a later period never changes an earlier record's features
    changed = df.withColumn("Debt", F.when(F.col(PERIOD) == 4, 9999.0).otherwise(F.col("Debt")))
    early = lambda d: d.transform(with_history(spec)).where(f"{PERIOD} < 4")  # noqa: E731
    assertDataFrameEqual(early(changed), early(df))


def test_data_quality_counts(spark):
    spec = dataclasses.replace(BASE, numeric={"Age": NumericRule(min=14, max=100)}, categorical=["Job"])
    raw = spark.createDataFrame(
        [("1", "C", "May", "33_", "Lawyer", "Good"), ("2", "C", "May", "-500", "_", None),
         ("3", "C", "May", "", "NM", None), ("4", "C", "May", "abc", None, None)],
        "ID string, Cust string, Month string, Age string, Job string, Score string")
    quality = {q.column: q for q in column_quality(raw, build_features(raw, spec), spec)}
    age, job = quality["Age"], quality["Job"]
    assert (age.rows, age.null_before, age.placeholders, age.unparseable, age.out_of_range, age.null_after) == \
           (4, 1, 0, 1, 1, 3)
    assert (job.null_before, job.placeholders, job.unparseable, job.out_of_range, job.null_after) == (1, 2, 0, 0, 3)


def test_catalog_lists_exactly_the_feature_columns(spark, cfg):
    spec = cfg.spec
    from credit_spark.jobs.generate import generate_records
    out = build_features(generate_records(spark, 40, seed=1), spec)
    catalog = feature_catalog(spec)
    assert [f.name for f in catalog] == [c for c in out.columns if c not in ("record_id", "customer_id", "period", "label")]
    assert all(f.description for f in catalog)
    required = {"debt_to_income", "emi_to_income", "invested_share", "balance_share", "Credit_History_Age",
                "Type_of_Loan__auto_loan", "delayed_payment_rate", "credit_utilization",
                "Outstanding_Debt__prev", "Outstanding_Debt__delta", "Outstanding_Debt__mean3",
                "Outstanding_Debt__max3"}
    assert required <= {f.name for f in catalog}


@pytest.mark.e2e   # generate -> ingest -> features, the jobs themselves
def test_features_run_records_data_quality(spark, cfg, tmp_path):
    from credit_spark.jobs.generate import generate_records
    from credit_spark.jobs.ingest import ingest
    generate_records(spark, 400, seed=2).write.option("header", True).csv(str(tmp_path / "in"))
    ingest(spark, cfg, str(tmp_path / "in"))
    result = run_features(spark, cfg)
    dq = spark.read.format("delta").load(cfg.table_path("data_quality"))
    stages = {r.stage.split(":")[0] for r in dq.select("stage").distinct().collect()}
    assert stages == {"ingest", "features"}
    occupation = {q.column: q for q in result.quality}["Occupation"]
    assert occupation.placeholders > 0                       # "_______" was seen ...
    assert occupation.null_after < occupation.placeholders    # ... and mostly repaired from other months
    features = spark.read.format("delta").load(cfg.table_path("features"))
    assert features.where(F.col("Occupation") == "_______").count() == 0


@pytest.mark.training
def test_training_and_scoring_paths_give_the_same_features_and_scores(spark, cfg, tmp_path):
    """The same records through the training path (features table -> fitted pipeline) and through
    the nightly scorer give identical probabilities."""
    from credit_spark.jobs.generate import generate_records
    from credit_spark.jobs.ingest import ingest
    from credit_spark.jobs.scoring import probability_column, score_run_date
    from credit_spark.jobs.train import train
    from credit_spark.tracking import registry

    rf = dataclasses.replace(cfg.train.random_forest, num_trees=3, max_depth=3)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, random_forest=rf, tuning=dataclasses.replace(cfg.train.tuning, method="none"),
        selection=dataclasses.replace(cfg.train.selection, method="holdout"),
        xgboost=dataclasses.replace(cfg.train.xgboost, n_estimators=40),
        comparison=dataclasses.replace(cfg.train.comparison, bootstrap_samples=100)))
    generate_records(spark, 800, seed=4).write.option("header", True).csv(str(tmp_path / "a"))
    ingest(spark, cfg, str(tmp_path / "a"))
    run_features(spark, cfg)
    train(spark, cfg)
    record = registry.resolve(cfg)
    model = registry.load_model(cfg, record)
    features = spark.read.format("delta").load(cfg.table_path("features"))
    august = features.where(f"{PERIOD} = 8")
    prob = probability_column(cfg.spec.label.classes[0])
    from pyspark.ml.functions import vector_to_array
    direct = model.transform(august).select("record_id", vector_to_array("probability")[0].alias(prob))
    score_run_date(spark, cfg, date(2026, 8, 31))
    scored = spark.read.format("delta").load(cfg.table_path("scores")).select("record_id", prob)
    assertDataFrameEqual(scored, direct)
    # with point-in-time repair, a record's features do not depend on later months: rebuild July
    # from the raw records without August and compare every column (repair and history included)
    raw = spark.read.format("delta").load(cfg.table_path("raw_records"))
    point_in_time = dataclasses.replace(cfg.spec, repair_scope="past_periods")
    rebuilt = build_features(raw.where("Month != 'August'"), point_in_time).where(f"{PERIOD} = 7")
    assertDataFrameEqual(rebuilt, build_features(raw, point_in_time).where(f"{PERIOD} = 7"))
    # history features never look ahead, whatever the repair scope
    history = [c for c in features.columns if c.endswith(("__prev", "__delta", "__mean3", "__max3", "__history"))
               and not c.startswith("debt_to_income")]   # debt_to_income uses repaired income
    assertDataFrameEqual(build_features(raw.where("Month != 'August'"), cfg.spec).where(f"{PERIOD} = 7")
                         .select("record_id", *history), features.where(f"{PERIOD} = 7").select("record_id", *history))
