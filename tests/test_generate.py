from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from credit_spark.jobs.generate import LABEL_COLUMN, RAW_COLUMNS, generate_records

DIRT = ["_", "_______", "NM", "!@9#%8", "#F%$D@*&8", "__10000__", "__-333333333333333333333333333__"]


def test_same_seed_same_rows_whatever_the_partitioning(spark):
    a = generate_records(spark, 300, seed=7, partitions=2)
    b = generate_records(spark, 300, seed=7, partitions=5)
    assertDataFrameEqual(a, b)
    c = generate_records(spark, 300, seed=8, partitions=2)
    assert a.exceptAll(c).count() > 0


def test_schema_rows_and_ids(spark):
    df = generate_records(spark, 1001, seed=1, months=8)
    assert df.columns == RAW_COLUMNS
    assert dict(df.dtypes) == {c: "string" for c in RAW_COLUMNS}
    stats = df.agg(F.count("*").alias("rows"), F.countDistinct("ID").alias("ids"),
                   F.countDistinct("Customer_ID").alias("customers")).first()
    assert (stats.rows, stats.ids, stats.customers) == (1001, 1001, 126)


def test_unlabelled_later_months_continue_the_same_customers(spark):
    labelled = generate_records(spark, 80, seed=3, months=8)
    later = generate_records(spark, 10, seed=3, months=1, start_month=9, labeled=False)
    assert LABEL_COLUMN not in later.columns
    assert {r.Month for r in later.select("Month").distinct().collect()} == {"September"}
    # the same customers, with new record ids and unchanged stable attributes
    assert later.select("Customer_ID").distinct().exceptAll(labelled.select("Customer_ID").distinct()).count() == 0
    assert later.join(labelled, "ID").count() == 0
    stable = ["Customer_ID", "Occupation"]
    pairs = (labelled.where(F.col("Occupation") != "_______").select(*stable).distinct()
             .join(later.where(F.col("Occupation") != "_______").select(*stable).distinct(), "Customer_ID")
             .count())
    assert pairs > 0 and pairs == later.where(F.col("Occupation") != "_______").count()


def test_dirt_of_the_real_data_is_present(spark):
    df = generate_records(spark, 20_000, seed=42).cache()
    values = df.select(F.explode(F.array(*[F.col(c) for c in RAW_COLUMNS])).alias("v"))
    found = {r.v for r in values.where(F.col("v").isin(*DIRT)).distinct().collect()}
    assert found == set(DIRT)
    assert df.where(F.col("Annual_Income").endswith("_")).count() > 0
    assert df.where(F.col("Age").try_cast("int") < 0).count() > 0
    assert df.where(F.col("Num_Bank_Accounts").try_cast("int") > 100).count() > 0
    assert df.where(F.col("Num_of_Loan") == "-100").count() > 0
    assert df.where(F.col("Monthly_Inhand_Salary").isNull()).count() > 0
    assert df.where(F.col("Credit_History_Age").rlike(r"^\d+ Years and \d+ Months$")).count() > 0
    assert df.where(F.col("Type_of_Loan").contains(", and ")).count() > 0
    shares = {r[0]: r[1] / 20_000 for r in df.groupBy(LABEL_COLUMN).count().collect()}
    assert set(shares) == {"Good", "Standard", "Poor"}
    assert all(0.1 < s < 0.65 for s in shares.values()), shares
    df.unpersist()
