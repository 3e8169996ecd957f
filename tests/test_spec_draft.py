"""`credit-spark spec draft`: the pure drafting rules, then a drafted spec that ingests and builds
features unedited (the real samples' end-to-end runs are in test_real_data.py)."""
import pytest
import yaml
from pyspark.sql import functions as F

from credit_spark.config.loader import load_dataset_spec
from credit_spark.jobs.spec_draft import (ColumnProfile, Profile, canonical, draft_spec, is_placeholder, numeric_range,
                                     order_classes, render_yaml)


def test_classes_are_ordered_best_to_worst_with_the_adverse_class_last():
    assert order_classes(["Poor", "Good", "Standard"]) == ["Good", "Standard", "Poor"]
    assert order_classes(["bad", "good"]) == ["good", "bad"]
    assert order_classes(["1", "0"]) == ["0", "1"]
    assert order_classes(["Yes", "No"]) == ["No", "Yes"]                 # "defaulted?" yes is adverse


def test_placeholders_are_sentinels_not_values():
    for token in ("_", "_______", "!@9#%8", "#F%$D@*&8", "NA", "nan", "?"):
        assert is_placeholder(token), token
    for token in ("none", "Good", "52312.68_", "__10000__", "-5", "Auto Loan", "yes, registered"):
        assert not is_placeholder(token), token


def test_headers_that_cannot_be_spec_names_get_canonical_names():
    assert canonical("default.payment.next.month") == "default_payment_next_month"
    assert canonical(" Annual Income ($) ") == "Annual_Income"
    assert canonical("2nd_loan") == "c_2nd_loan"


def test_ranges_keep_the_real_tail_and_drop_impossible_values():
    age = ColumnProfile("Age", nonblank=1000, distinct=80, numeric=1000, integer=1000,
                        quantiles=[18, 25, 33, 42, 53], minimum=-500, maximum=8547)
    assert numeric_range(age) == (0.0, 158.0)                            # -500 and 8,547 become null
    change = ColumnProfile("Changed", nonblank=1000, distinct=900, numeric=1000, integer=10,
                           quantiles=[0.5, 5.0, 9.0, 14.0, 22.0], minimum=-6.49, maximum=33.9)
    low, high = numeric_range(change)
    assert low < -6.49 and high > 33.9                                   # legitimate negatives kept
    counts = ColumnProfile("n", nonblank=1000, distinct=5, numeric=1000, integer=1000,
                           quantiles=[1, 1, 2, 3, 4], minimum=1, maximum=4)
    assert numeric_range(counts)[0] == 0.0                               # no negative values: floor 0


def _profile() -> Profile:
    def col(name, **kw):
        return ColumnProfile(name=name, **{"nonblank": 100, "distinct": 100, **kw})
    return Profile(rows=100, label="default.payment.next.month", classes=["1", "0"], columns=[
        col("ID", numeric=100, integer=100, quantiles=[5, 25, 50, 75, 95], minimum=1, maximum=100),
        col("client_id", distinct=60),
        col("Full Name"),
        col("email", emails=95),
        col("SEX", distinct=2, frequent={"1": 60, "2": 40}),
        col("AGE", distinct=40, numeric=100, integer=100, quantiles=[22, 28, 34, 41, 55], minimum=21, maximum=79),
        col("LIMIT_BAL", distinct=70, numeric=98, integer=98, quantiles=[1e4, 5e4, 1.4e5, 2.4e5, 4.3e5],
            minimum=1e4, maximum=1e6, frequent={"NA": 2, "50000": 5}),
        col("EDUCATION", distinct=5, frequent={"university": 50, "_______": 4, "graduate school": 46}),
        col("notes", distinct=97),
        col("default.payment.next.month", distinct=2),
    ])


def test_a_draft_names_roles_and_maps_headers_it_cannot_use_as_names():
    draft = draft_spec(_profile(), "bank")
    spec = draft.spec
    assert (spec["record_id"], spec["customer_id"]) == ("ID", "client_id")
    assert spec["label"] == {"column": "default_payment_next_month", "classes": ["0", "1"]}
    assert spec["source_columns"] == {"Full_Name": "Full Name", "default_payment_next_month": "default.payment.next.month"}
    assert spec["pii"] == ["Full_Name", "email", "SEX"]                   # identifiers and a protected attribute
    assert "REVIEW" in draft.notes["SEX"]
    assert list(spec["numeric"]) == ["AGE", "LIMIT_BAL"] and spec["age_column"] == "AGE"
    assert spec["categorical"] == ["EDUCATION"]
    assert spec["placeholders"] == ["NA", "_______"]
    assert "notes" in draft.skipped and "ID" not in spec["numeric"]
    assert {r["code"] for r in spec["reason_codes"].values()} == {"R01", "R02", "R03"}


def test_the_rendered_draft_is_a_valid_spec_with_its_notes(tmp_path):
    draft = draft_spec(_profile(), "bank")
    text = render_yaml(draft, "extract.csv", 100)
    assert yaml.safe_load(text) == draft.spec                             # comments only around the data
    assert "# protected attribute: REVIEW" in text and "# Left out:" in text
    path = tmp_path / "bank.yaml"
    path.write_text(text)
    spec = load_dataset_spec(str(path))
    assert spec.name == "bank" and spec.label.classes == ["0", "1"]


@pytest.mark.e2e   # draft -> ingest -> features, the jobs themselves
def test_a_drafted_spec_ingests_and_builds_features_unedited(spark, cfg, tmp_path):
    """A small dirty extract (lower-case, dotted headers, sentinels, impossible ages, durations)."""
    import dataclasses

    from credit_spark.config.loader import load_config
    from credit_spark.jobs.features_job import run_features
    from credit_spark.jobs.ingest import ingest
    from credit_spark.jobs.spec_draft import draft
    from credit_spark.lake.tables import FEATURES

    lines = ["loan id,customer_id,month,name,age,income,history,job,default.next"]
    jobs = ["clerk", "teacher", "_______", "nurse"]
    for i in range(300):
        age = "8000" if i % 50 == 0 else f"{20 + i % 45}{'_' if i % 7 == 0 else ''}"
        income = "NA" if i % 40 == 0 else f"{1000 + 37 * i}"
        lines.append(f"L{i},C{i % 120},{['June', 'July'][i % 2]},Person {i},{age},{income},"
                     f"{i % 20} Years and {i % 12} Months,{jobs[i % 4]},{['good', 'bad'][i % 3 == 0]}")
    src = tmp_path / "extract.csv"
    src.write_text("\n".join(lines) + "\n")
    out = draft(spark, str(src), "default.next", str(tmp_path / "bank.yaml"))
    spec = load_dataset_spec(str(out))
    assert (spec.record_id, spec.customer_id, spec.period.column) == ("loan_id", "customer_id", "month")
    assert spec.pii == ["name"] and spec.duration_months == ["history"] and spec.categorical == ["job"]
    assert spec.numeric["age"].max < 8000 and "NA" in spec.placeholders and "_______" in spec.placeholders
    assert spec.label.classes == ["good", "bad"]

    overlay = tmp_path / "my.yaml"
    overlay.write_text(f"dataset: {out}\n")
    bank = dataclasses.replace(load_config([str(overlay)], env="local", lake=cfg.lake.root), spark=cfg.spark)
    result = ingest(spark, bank, str(src))
    assert (result.rows_ingested, result.rows_quarantined) == (300, 0)
    assert run_features(spark, bank).rows == 300
    features = spark.read.format("delta").load(bank.table_path(FEATURES))
    assert features.where(F.col("age") >= 8000).count() == 0 and features.where(F.col("age").isNull()).count() == 6
    assert "name" not in features.columns and features.where(F.col("history").isNull()).count() == 0
