"""The dataset spec: what a data set's columns mean (types, ranges, placeholders, keys, label,
repairs, derived and history features, reason codes), as frozen dataclasses.

Pure data, imported by every layer (config loading, the feature catalog, transforms); of
credit_spark it imports only the scalar types of ``typed``, so nothing here can form an import
cycle. ``credit_spark.config.loader`` loads
and validates a spec from YAML.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from credit_spark.config.typed import Entries, Float, Int, Text

GENERATED_RECORD_ID = "_record_id"
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")


# --------------------------------------------------------------------------- dataset spec
@dataclass(frozen=True)
class NumericRule:
    """How to read one numeric column and which values are plausible."""

    min: Float | None = None      # smallest plausible value (null: no lower bound)
    max: Float | None = None      # largest plausible value (null: no upper bound)
    #: values outside [min, max] become null ("null") or are clipped to the bound ("cap")
    out_of_range: Literal["null", "cap"] = "null"
    description: Text = ""         # the feature catalog's text (and the default reason text)


@dataclass(frozen=True)
class PeriodSpec:
    """The column that places a record in time, and how its text is written."""

    column: Text                   # the period column's name
    #: ``month_name``: "January".."December" (no year; period = month 1..12);
    #: ``year_month``: "2024-03" and ``date``: "2024-03-31" (period = yyyymm)
    format: Literal["month_name", "year_month", "date"] = "month_name"


@dataclass(frozen=True)
class LabelSpec:
    """The label column and its classes, ordered from best to worst credit (the last is "bad")."""

    column: Text                   # the label column's name
    #: the classes as written in the data (numbers too: [0, 1]), best credit first; the last is
    #: the adverse class; probability columns are named prob_<class>
    classes: list[Text]


@dataclass(frozen=True)
class ListRule:
    """A column holding a list of items in text ("A, B, and C")."""

    separator: Text = ","          # between items; a final "and" is understood
    #: known items: one count column each (``<column>__<item>``), plus ``<column>_count`` in total
    items: list[Text] = field(default_factory=list)
    description: Text = ""         # the count's catalog text


@dataclass(frozen=True)
class SplitRule:
    """A composite category ("High_spent_Small_value_payments") split into its parts."""

    #: a regular expression with one capturing group per part
    pattern: Text
    #: output column names, one per group (categorical features)
    parts: list[Text]


@dataclass(frozen=True)
class StableRule:
    """An attribute that should not change for a customer across periods, repaired from its other periods."""

    #: ``mode``: the customer's most frequent valid value; ``near_mode``: keep the value when it is
    #: within ``tolerance`` of that mode (e.g. age, which grows by one a year), else the mode
    method: Literal["mode", "near_mode"] = "mode"
    tolerance: Float = 0.0        # near_mode: the largest distance from the mode that is kept


@dataclass(frozen=True)
class DerivedFeature:
    """An engineered feature as a Spark SQL expression over cleaned columns."""

    expr: Text                     # Spark SQL over cleaned columns and earlier derived features
    description: Text              # the feature catalog's text


@dataclass(frozen=True)
class TemporalSpec:
    """Per-customer history features over *earlier* periods only (no look-ahead)."""

    #: numeric, duration or derived columns to give a previous value, change, rolling mean and max
    columns: list[Text] = field(default_factory=list)
    #: rolling mean/max over the last ``window`` earlier periods
    window: Int = 3


@dataclass(frozen=True)
class ReasonCode:
    """An adverse-action reason: the code and customer-facing text for one feature."""

    code: Text                     # e.g. R01
    text: Text                     # what the customer reads


@dataclass(frozen=True)
class DatasetSpec:
    """Which column plays which role. Nothing about a dataset's column names lives in Python."""

    name: Text                     # names the registered model (credit_spark_<name>) and the reports
    label: LabelSpec              # the label column and its classes
    #: null: the record id is a hash of the row's content
    record_id: Text | None = None
    #: null: every record is its own customer
    customer_id: Text | None = None
    #: null: records have no period; a run date scores all of them
    period: PeriodSpec | None = None
    #: personal identifiers and protected attributes: read into raw_records, never features,
    #: scores, quarantine or model inputs
    pii: list[Text] = field(default_factory=list)
    #: canonical column name -> the input file's header text for it (any text: dots, spaces), for
    #: extracts whose headers cannot be spec names; unmapped columns are found by their own name.
    #: Either way headers match trimmed and case-insensitively
    source_columns: dict[Text, Text] = field(default_factory=dict)
    #: numeric columns: stray underscores stripped ("52312.68_"), plausible range
    numeric: Entries[NumericRule] = field(default_factory=dict)
    #: text categories (one-hot or embedded; the scorecard bins them by value)
    categorical: list[Text] = field(default_factory=list)
    #: "N Years and M Months" columns, read as months
    duration_months: list[Text] = field(default_factory=list)
    #: columns holding a list of items, read as counts
    lists: Entries[ListRule] = field(default_factory=dict)
    #: composite categories split into their parts by a regular expression
    splits: Entries[SplitRule] = field(default_factory=dict)
    #: tokens that mean "no value" wherever they appear (compared after trimming)
    placeholders: list[Text] = field(default_factory=list)
    #: attributes that should not change for a customer, repaired from the customer's other periods
    stable: Entries[StableRule] = field(default_factory=dict)
    #: which of a customer's periods the ``stable`` repair may use: ``all_periods`` (every month of
    #: the customer, the most information; a record's repaired value can change when later months
    #: arrive) or ``past_periods`` (up to the record's own period: strictly point-in-time)
    repair_scope: Literal["all_periods", "past_periods"] = "all_periods"
    #: engineered features: name -> Spark SQL expression over the cleaned columns
    derived: Entries[DerivedFeature] = field(default_factory=dict)
    #: per-customer history features over earlier periods
    temporal: TemporalSpec = field(default_factory=TemporalSpec)
    #: feature (catalog name) -> adverse-action reason code and text; a feature without an entry
    #: gets code "R-<feature>" and its catalog description
    reason_codes: Entries[ReasonCode] = field(default_factory=dict)
    #: column used for the fairness view (adverse share by age band); null = no age column
    age_column: Text | None = None

    def required_columns(self) -> list[str]:
        """Columns every input file must have (the label is optional: unlabelled files are scored)."""
        keys = [c for c in (self.record_id, self.customer_id, self.period and self.period.column) if c]
        cols = [*keys, *self.pii, *self.numeric, *self.categorical, *self.duration_months,
                *self.lists, *self.splits]
        return list(dict.fromkeys(cols))

    def all_columns(self) -> list[str]:
        return [*self.required_columns(), self.label.column]

    @property
    def record_key(self) -> str:
        """The raw column that identifies a record (generated at ingest when the data has none)."""
        return self.record_id or GENERATED_RECORD_ID
