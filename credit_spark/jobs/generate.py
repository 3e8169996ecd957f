"""Synthetic records in the public "Credit score classification" schema, dirt included.

Generated in parallel by Spark from ``spark.range``: every random draw is a hash of
``(seed, salt, key)``, so the output is identical for a seed whatever the partitioning, and the
driver never holds rows (memory does not grow with ``rows``).

The label comes from a latent credit-risk model of the *clean* values: a customer-level risk
factor that drives payment delays, debt and credit mix, plus the debt-to-income ratio, which is a
ratio of two raw columns and so rewards feature engineering. Dirt is applied afterwards, at rates
close to the real data's: stray underscores, placeholder tokens, impossible values, empty cells.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from credit_spark.config.loader import MONTH_NAMES

logger = logging.getLogger(__name__)

#: The canonical raw schema, in the original column order.
RAW_COLUMNS = [
    "ID", "Customer_ID", "Month", "Name", "Age", "SSN", "Occupation", "Annual_Income",
    "Monthly_Inhand_Salary", "Num_Bank_Accounts", "Num_Credit_Card", "Interest_Rate",
    "Num_of_Loan", "Type_of_Loan", "Delay_from_due_date", "Num_of_Delayed_Payment",
    "Changed_Credit_Limit", "Num_Credit_Inquiries", "Credit_Mix", "Outstanding_Debt",
    "Credit_Utilization_Ratio", "Credit_History_Age", "Payment_of_Min_Amount",
    "Total_EMI_per_month", "Amount_invested_monthly", "Payment_Behaviour", "Monthly_Balance",
    "Credit_Score",
]
LABEL_COLUMN = "Credit_Score"

OCCUPATIONS = ["Scientist", "Teacher", "Engineer", "Entrepreneur", "Developer", "Lawyer",
               "Media_Manager", "Doctor", "Journalist", "Manager", "Accountant", "Musician",
               "Mechanic", "Writer", "Architect"]
LOAN_TYPES = ["Auto Loan", "Credit-Builder Loan", "Personal Loan", "Home Equity Loan",
              "Mortgage Loan", "Student Loan", "Debt Consolidation Loan", "Payday Loan",
              "Not Specified"]
FIRST_NAMES = ["Aaron", "Rick", "Nadia", "Jasmin", "Alistair", "Priya", "Tomas", "Mei", "Olu",
               "Sara", "Diego", "Hana", "Ivan", "Lena", "Omar", "Zoe"]
LAST_NAMES = ["Maashoh", "Rothackerj", "Barrf", "Kim", "Okafor", "Novak", "Silva", "Tanaka",
              "Haddad", "Berg", "Moreau", "Quinn"]
SPEND = ["Low_spent", "High_spent"]
VALUE = ["Small_value_payments", "Medium_value_payments", "Large_value_payments"]

_HASH_RANGE = 1 << 53


@dataclass(frozen=True)
class GenerateResult:
    rows: int
    customers: int
    path: str
    fmt: str


class _Draw:
    """Deterministic uniform and normal draws keyed by a column, one salt per variable."""

    def __init__(self, seed: int, key: Column):
        self.seed = seed
        self.key = key

    def u(self, salt: str) -> Column:
        """Uniform on [0, 1)."""
        h = F.xxhash64(F.lit(self.seed), F.lit(salt), self.key)
        return F.pmod(h, F.lit(_HASH_RANGE)).cast("double") / float(_HASH_RANGE)

    def normal(self, salt: str) -> Column:
        """Standard normal by Box-Muller."""
        u1 = F.greatest(self.u(salt + "#1"), F.lit(1e-12))
        return F.sqrt(-2.0 * F.log(u1)) * F.cos(2.0 * math.pi * self.u(salt + "#2"))

    def int_between(self, salt: str, low: int, high: int) -> Column:
        """Integer uniform on [low, high]."""
        return (F.floor(self.u(salt) * (high - low + 1)) + low).cast("int")

    def pick(self, salt: str, options: list[str]) -> Column:
        idx = F.floor(self.u(salt) * len(options)).cast("int") + 1
        return F.element_at(F.array(*[F.lit(o) for o in options]), idx)

    def chance(self, salt: str, p: float) -> Column:
        return self.u(salt) < p


def _num(col: Column, decimals: int = 2) -> Column:
    return F.round(col, decimals).cast("string")


def _loan_list(n: Column, draw: _Draw) -> Column:
    """"A, B, and C" text of ``n`` loan types (null when there are none), like the real data."""
    items = F.transform(
        F.sequence(F.lit(1), F.greatest(n, F.lit(1))),
        lambda i: F.element_at(
            F.array(*[F.lit(t) for t in LOAN_TYPES]),
            (F.pmod(F.xxhash64(F.lit(draw.seed), F.lit("loan"), draw.key, i), F.lit(len(LOAN_TYPES))) + 1).cast("int"),
        ),
    )
    head = F.concat_ws(", ", F.slice(items, 1, F.greatest(n - 1, F.lit(1))))
    text = F.when(n == 1, F.element_at(items, 1)).otherwise(
        F.concat(head, F.lit(", and "), F.element_at(items, -1)))
    return F.when(n > 0, text)


def _dirty(clean: Column, dirt: list[tuple[Column, Column]]) -> Column:
    """Apply the first matching (condition, dirty value) pair, else keep the clean text."""
    out = None
    for cond, value in dirt:
        out = F.when(cond, value) if out is None else out.when(cond, value)
    return out.otherwise(clean) if out is not None else clean


def generate_records(spark: SparkSession, rows: int, seed: int = 42, months: int = 8,
                     start_month: int = 1, labeled: bool = True,
                     partitions: int | None = None) -> DataFrame:
    """Raw records (all strings) in the canonical schema: ``rows`` rows, ``months`` per customer.

    ``start_month`` (1 = January) lets a second call produce later, unlabelled months for the
    same customers: customer attributes depend only on (seed, customer), monthly ones on
    (seed, customer, month).
    """
    if rows <= 0:
        raise ValueError(f"rows must be positive, got {rows}")
    if not 1 <= start_month <= 12 or not 1 <= months <= 13 - start_month:
        raise ValueError(f"months {start_month}..{start_month + months - 1} must lie within 1..12")
    partitions = partitions or max(2, min(400, rows // 250_000 + 2))

    base = spark.range(0, rows, numPartitions=partitions).select(
        (F.col("id") / months).cast("long").alias("cust"),
        (F.col("id") % months + start_month).cast("int").alias("month"),
    )
    c = _Draw(seed, F.col("cust"))                                  # customer-level draws
    m = _Draw(seed, F.col("cust") * 12 + F.col("month"))            # customer-month draws

    # ---- clean latent values
    risk = c.normal("risk")
    df = base.select(
        "cust", "month",
        risk.alias("risk"),
        (c.int_between("age", 18, 56) + F.when(F.col("month") > c.int_between("bday", 1, 12), 1).otherwise(0)).alias("age"),
        c.pick("occupation", OCCUPATIONS).alias("occupation"),
        F.least(F.greatest(F.exp(10.5 + 0.6 * c.normal("income")), F.lit(7000.0)), F.lit(180000.0)).alias("annual_income"),
        (0.78 + 0.1 * c.u("net")).alias("net_share"),
        c.int_between("banks", 0, 10).alias("banks"),
        c.int_between("cards", 1, 10).alias("cards"),
        F.least(F.greatest(F.round(14 + 7 * risk + 3 * c.normal("rate")), F.lit(1.0)), F.lit(34.0)).cast("int").alias("rate"),
        F.least(F.greatest(F.round(3.5 + 1.8 * risk + 1.2 * c.normal("loans")), F.lit(0.0)), F.lit(9.0)).cast("int").alias("loans"),
        F.greatest(F.lit(6), (200 - 70 * risk + 60 * c.normal("hist")).cast("int")).alias("history0"),
        c.normal("mix").alias("mix_noise"),
        m.normal("m1").alias("n1"), m.normal("m2").alias("n2"), m.normal("m3").alias("n3"),
        m.normal("m4").alias("n4"), m.u("util").alias("u_util"), m.u("invest").alias("u_invest"),
        m.u("spend").alias("u_spend"), m.normal("label").alias("n_label"),
        c.normal("debt").alias("debt_noise"),
    )
    monthly_income = F.col("annual_income") / 12.0
    df = df.select(
        "*",
        (monthly_income * F.col("net_share")).alias("inhand"),
        F.greatest(F.lit(0), F.round(14 + 11 * F.col("risk") + 5 * F.col("n1"))).cast("int").alias("delay"),
        F.greatest(F.lit(0), F.round(9 + 5 * F.col("risk") + 3 * F.col("n2"))).cast("int").alias("delayed"),
        F.round(10 + 4 * F.col("risk") + 4 * F.col("n3"), 2).alias("limit_change"),
        F.greatest(F.lit(0), F.round(5 + 3 * F.col("risk") + 1.5 * F.col("n4"))).cast("int").alias("inquiries"),
        F.least(F.greatest(
            F.exp(7.0 + 0.55 * F.col("risk") + 0.5 * F.col("debt_noise")) * (1 + 0.02 * F.col("n1")),
            F.lit(1.0)), F.lit(4998.0)).alias("debt"),
        (20 + 25 * F.col("u_util") + 3 * F.col("risk")).alias("util"),
        (F.col("history0") + F.col("month")).alias("history"),
    )
    df = df.select(
        "*",
        (F.col("debt") * F.col("loans") / 40.0 + F.col("inhand") * 0.02).alias("emi"),
        (F.col("inhand") * (0.04 + 0.16 * F.col("u_invest"))).alias("invested"),
        F.when(F.col("risk") + 0.5 * F.col("mix_noise") > 0.7, "Bad")
         .when(F.col("risk") + 0.5 * F.col("mix_noise") < -0.6, "Good").otherwise("Standard").alias("mix"),
        F.when(F.col("risk") + 0.4 * F.col("n2") > -0.4, "Yes").otherwise("No").alias("min_pay"),
        F.concat(
            F.element_at(F.array(*[F.lit(s) for s in SPEND]), (F.col("u_spend") < 0.45).cast("int") + 1), F.lit("_"),
            F.element_at(F.array(*[F.lit(v) for v in VALUE]), F.floor(F.col("u_util") * 3).cast("int") + 1),
        ).alias("behaviour"),
    )
    df = df.withColumn("balance", F.col("inhand") - F.col("emi") - F.col("invested")
                       - F.col("inhand") * (0.35 + 0.3 * F.col("u_spend")))

    # ---- the label: risk plus debt-to-income (a ratio, so it pays to engineer it)
    log_dti = F.log(F.col("debt") / monthly_income)
    severity = (0.8 * F.col("risk") + 1.1 * (log_dti + 0.75) / 0.8
                + 0.25 * (F.col("delayed") - 9) / 5 + 0.9 * F.col("n_label"))
    label = F.when(severity > 1.0, "Poor").when(severity < -1.3, "Good").otherwise("Standard")

    # ---- raw text, with dirt
    d = m  # dirt is drawn per customer-month
    age_txt = _dirty(F.col("age").cast("string"), [
        (d.chance("age_bad", 0.01), F.when(d.chance("age_neg", 0.4), F.lit("-500"))
         .otherwise(d.int_between("age_big", 500, 8688).cast("string"))),
        (d.chance("age_us", 0.04), F.concat(F.col("age").cast("string"), F.lit("_"))),
    ])
    hist_txt = F.concat(F.floor(F.col("history") / 12).cast("string"), F.lit(" Years and "),
                        (F.col("history") % 12).cast("string"), F.lit(" Months"))
    ssn = F.format_string("%03d-%02d-%04d", c.int_between("ssn1", 1, 899), c.int_between("ssn2", 1, 99),
                          c.int_between("ssn3", 1, 9999))
    name = F.concat(c.pick("first", FIRST_NAMES), F.lit(" "), c.pick("last", LAST_NAMES))

    record_id = F.concat(F.lit("0x"), F.lower(F.hex(F.col("cust") * 12 + F.col("month") - 1 + 0x1600)))
    columns = {
        "ID": record_id,
        "Customer_ID": F.concat(F.lit("CUS_0x"), F.lower(F.hex(F.col("cust") + 0x1000))),
        "Month": F.element_at(F.array(*[F.lit(x) for x in MONTH_NAMES]), F.col("month")),
        "Name": F.when(~d.chance("name_empty", 0.1), name),
        "Age": age_txt,
        "SSN": F.when(d.chance("ssn_bad", 0.05), F.lit("#F%$D@*&8")).otherwise(ssn),
        "Occupation": F.when(d.chance("occ_bad", 0.07), F.lit("_______")).otherwise(F.col("occupation")),
        "Annual_Income": _dirty(_num(F.col("annual_income")), [
            (d.chance("inc_us", 0.06), F.concat(_num(F.col("annual_income")), F.lit("_"))),
            (d.chance("inc_noise", 0.02), (F.col("annual_income") + 1e-9).cast("string")),
        ]),
        "Monthly_Inhand_Salary": F.when(~d.chance("inhand_empty", 0.15), F.col("inhand").cast("string")),
        "Num_Bank_Accounts": _dirty(F.col("banks").cast("string"), [
            (d.chance("banks_bad", 0.012), d.int_between("banks_big", 100, 1798).cast("string"))]),
        "Num_Credit_Card": _dirty(F.col("cards").cast("string"), [
            (d.chance("cards_bad", 0.02), d.int_between("cards_big", 100, 1499).cast("string"))]),
        "Interest_Rate": _dirty(F.col("rate").cast("string"), [
            (d.chance("rate_bad", 0.02), d.int_between("rate_big", 100, 5799).cast("string"))]),
        "Num_of_Loan": _dirty(F.col("loans").cast("string"), [
            (d.chance("loan_neg", 0.01), F.lit("-100")),
            (d.chance("loan_us", 0.05), F.concat(F.col("loans").cast("string"), F.lit("_"))),
        ]),
        "Type_of_Loan": _loan_list(F.col("loans"), c),
        "Delay_from_due_date": _dirty(F.col("delay").cast("string"), [
            (d.chance("delay_neg", 0.01), d.int_between("delay_neg_v", -5, -1).cast("string"))]),
        "Num_of_Delayed_Payment": _dirty(F.col("delayed").cast("string"), [
            (d.chance("dp_empty", 0.07), F.lit(None).cast("string")),
            (d.chance("dp_big", 0.01), d.int_between("dp_big_v", 100, 4399).cast("string")),
            (d.chance("dp_neg", 0.005), d.int_between("dp_neg_v", -3, -1).cast("string")),
            (d.chance("dp_us", 0.03), F.concat(F.col("delayed").cast("string"), F.lit("_"))),
        ]),
        "Changed_Credit_Limit": F.when(d.chance("ccl_bad", 0.02), F.lit("_")).otherwise(_num(F.col("limit_change"))),
        "Num_Credit_Inquiries": _dirty(F.col("inquiries").cast("double").cast("string"), [
            (d.chance("inq_empty", 0.02), F.lit(None).cast("string")),
            (d.chance("inq_big", 0.015), d.int_between("inq_big_v", 100, 2597).cast("double").cast("string")),
        ]),
        "Credit_Mix": F.when(d.chance("mix_bad", 0.2), F.lit("_")).otherwise(F.col("mix")),
        "Outstanding_Debt": _dirty(_num(F.col("debt")), [
            (d.chance("debt_us", 0.01), F.concat(_num(F.col("debt")), F.lit("_")))]),
        "Credit_Utilization_Ratio": F.col("util").cast("string"),
        "Credit_History_Age": F.when(~d.chance("hist_empty", 0.09), hist_txt),
        "Payment_of_Min_Amount": F.when(d.chance("min_nm", 0.12), F.lit("NM")).otherwise(F.col("min_pay")),
        "Total_EMI_per_month": F.col("emi").cast("string"),
        "Amount_invested_monthly": _dirty(F.col("invested").cast("string"), [
            (d.chance("inv_big", 0.04), F.lit("__10000__")),
            (d.chance("inv_empty", 0.045), F.lit(None).cast("string")),
        ]),
        "Payment_Behaviour": F.when(d.chance("pb_bad", 0.07), F.lit("!@9#%8")).otherwise(F.col("behaviour")),
        "Monthly_Balance": _dirty(F.col("balance").cast("string"), [
            (d.chance("bal_bad", 0.01), F.lit("__-333333333333333333333333333__")),
            (d.chance("bal_empty", 0.012), F.lit(None).cast("string")),
        ]),
    }
    if labeled:
        columns[LABEL_COLUMN] = label
    return df.select(*[col.cast("string").alias(name) for name, col in columns.items()])


def write_records(df: DataFrame, out: str, fmt: str = "csv") -> None:
    """Write generated records as a folder of CSV (with header) or Parquet part files."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"format must be csv or parquet, got {fmt!r}")
    writer = df.write.mode("overwrite")
    if fmt == "csv":
        writer.option("header", True).option("emptyValue", "").csv(out)
    else:
        writer.parquet(out)


def generate(spark: SparkSession, rows: int, seed: int, out: str, fmt: str = "csv",
             months: int = 8, start_month: int = 1, labeled: bool = True) -> GenerateResult:
    """Generate ``rows`` records and write them to ``out``."""
    df = generate_records(spark, rows, seed=seed, months=months, start_month=start_month, labeled=labeled)
    write_records(df, out, fmt)
    customers = math.ceil(rows / months)
    logger.info("generated %d rows for %d customers (months %d-%d, %s) into %s",
                rows, customers, start_month, start_month + months - 1,
                "labelled" if labeled else "unlabelled", out)
    return GenerateResult(rows=rows, customers=customers, path=out, fmt=fmt)
