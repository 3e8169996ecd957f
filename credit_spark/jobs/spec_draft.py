"""Draft a dataset spec from a bank's file: ``credit-spark spec draft --input FILE --label COL``.

Writing a spec by hand for a 25-column extract is most of a first day. The draft profiles the
file in Spark — one aggregation over every row (counts, distinct counts, how many values parse as
numbers, month names, durations, e-mail / national-id patterns, quantiles of the numbers) plus a
bounded sample (at most :data:`SAMPLE_ROWS` rows, for frequent tokens and list items) — and writes
a commented YAML spec that validates and runs ``ingest -> features -> train`` unedited:

* numeric vs categorical columns, with plausible ranges (``[q05 - 3w, q95 + 3w]`` of the parsed
  values, ``w = q95 - q05``, never below 0 where the bulk is not negative: impossible values
  become null);
* placeholder tokens (sentinel strings repeated in the sample: punctuation runs like ``_______``,
  well-known missing markers like ``NA``, values that do not parse in an otherwise numeric column);
* id and period candidates (by name and uniqueness; month names, ``yyyy-mm``, dates);
* the label's classes, ordered best to worst by the words they use (the adverse class last);
* likely personal identifiers (names, national ids, e-mail, phone) and protected attributes
  (sex, marital status, nationality, race, religion) marked ``pii`` — read, never model inputs —
  with a review comment; age stays a feature and becomes the fairness view's ``age_column``;
* ``N Years and M Months`` durations, comma-separated lists of a few items, headers that cannot
  be spec names mapped through ``source_columns``, and reason-code stubs for every feature.

The pure part (:func:`draft_spec`, :func:`render_yaml`) takes the profile as plain data, so it is
tested without Spark; :func:`profile_input` is the Spark part.
"""
from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from credit_spark.config.loader import MONTH_NAMES, load_dataset_spec
from credit_spark.errors import ConfigError, MissingColumnError
from credit_spark.transforms.features import NUMBER_PATTERN, parse_number

logger = logging.getLogger(__name__)

#: rows of the bounded sample brought to the driver (frequent tokens, list items)
SAMPLE_ROWS = 5000
#: share of a column's non-blank values that must parse as numbers for it to be numeric
NUMERIC_SHARE = 0.9
#: a text column with more distinct values than this is not a category (ids, free text)
MAX_CATEGORIES = 50
#: well-known missing-value markers (compared lower-cased)
MISSING_MARKERS = ("na", "n/a", "nan", "null", "nm", "missing", "-", "?", "#n/a")

PII_NAME = re.compile(r"(^|_)(name|first_?name|last_?name|surname|ssn|social_security|national_?id|passport|"
                      r"tax_?id|e_?mail|phone|mobile|telephone_number|address|street|zip|postcode)($|_)", re.I)
PROTECTED_NAME = re.compile(r"(^|_)(sex|gender|marital|personal_status|nationality|foreign|citizenship|race|"
                            r"ethnic|ethnicity|religion)($|_)", re.I)
AGE_NAME = re.compile(r"(^|_)age($|_)", re.I)
CUSTOMER_NAME = re.compile(r"(^|_)(customer|client|cust|borrower|applicant|member|account_?id|party)($|_)", re.I)
RECORD_NAME = re.compile(r"^(id|record_?id|row_?id|loan_?id|application_?id|.*_id|id_.*)$", re.I)
PERIOD_NAME = re.compile(r"(^|_)(month|period|date|as_?of|snapshot|year_?month)($|_)", re.I)

EMAIL = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
NATIONAL_ID = r"^\d{3}-\d{2}-\d{4}$"
PHONE = r"^\+?\(?\d{2,4}\)?[\s.-]\d{3,4}[\s.-]\d{3,4}$"
DURATION = r"\d+\s*Years?\s+and\s+\d+\s*Months?"
YEAR_MONTH = r"^\d{4}-\d{2}$"
DATE = r"^\d{4}-\d{2}-\d{2}$"

#: words in class names, from best credit to worst (the last class of a spec is the adverse one)
CLASS_RANK = [("excellent", 0), ("very good", 1), ("good", 2), ("fair", 4), ("standard", 4), ("average", 4),
              ("ok", 4), ("no", 3), ("false", 3), ("paid", 3), ("approved", 3), ("0", 3),
              ("poor", 6), ("bad", 6), ("default", 7), ("yes", 7), ("true", 7), ("reject", 7), ("denied", 7),
              ("charged off", 7), ("1", 7)]


@dataclass
class ColumnProfile:
    """What one pass over the file says of one column (all counts over every row)."""

    name: str
    nonblank: int
    distinct: int
    numeric: int = 0          # values that parse as numbers (stray underscores stripped)
    integer: int = 0          # ... and are whole numbers
    months: int = 0
    year_months: int = 0
    dates: int = 0
    durations: int = 0
    emails: int = 0
    national_ids: int = 0
    phones: int = 0
    with_commas: int = 0
    #: q05, q25, q50, q75, q95 of the parsed numbers (numeric candidates only)
    quantiles: list[float] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    #: the sample's values and how often each appears (bounded)
    frequent: dict[str, int] = field(default_factory=dict)

    def share(self, count: int) -> float:
        return count / self.nonblank if self.nonblank else 0.0


@dataclass
class Profile:
    rows: int
    columns: list[ColumnProfile]
    label: str
    classes: list[str]


# --------------------------------------------------------------------------- Spark part
def read_input(spark: SparkSession, path: str) -> DataFrame:
    """Every column as text, by the file's header (CSV, compressed CSV or Parquet, file or folder)."""
    from credit_spark.jobs.ingest import list_input_files

    fmt, files = list_input_files(spark, path, None)
    paths = [f[0] for f in files]
    if fmt == "csv":
        df = (spark.read.option("header", True).option("inferSchema", False).option("escape", '"')
              .option("mode", "PERMISSIVE").csv(paths))
    else:
        df = spark.read.parquet(*paths)
    return df.select(*[F.col(f"`{c}`").cast("string").alias(c) for c in df.columns])


def profile_input(spark: SparkSession, path: str, label: str) -> Profile:
    df = read_input(spark, path)
    found = {c.strip().lower(): c for c in df.columns}
    if label.strip().lower() not in found:
        raise MissingColumnError(f"--label {label!r} is not a column of {path}; its header: {df.columns}")
    label = found[label.strip().lower()]

    def stats(c: str) -> list:
        v = F.trim(F.col(f"`{c}`"))
        number = parse_number(F.col(f"`{c}`"), [])
        nonblank = v.isNotNull() & (v != "")
        count = lambda cond: F.count(F.when(nonblank & cond, 1))  # noqa: E731
        return [count(F.lit(True)), F.approx_count_distinct(F.when(nonblank, v)), count(number.isNotNull()),
                count(number == F.floor(number)), count(v.isin(*MONTH_NAMES)), count(v.rlike(YEAR_MONTH)),
                count(v.rlike(DATE)), count(v.rlike(DURATION)), count(v.rlike(EMAIL)), count(v.rlike(NATIONAL_ID)),
                count(v.rlike(PHONE)), count(v.contains(","))]

    names = df.columns
    keys = ["nonblank", "distinct", "numeric", "integer", "months", "year_months", "dates", "durations", "emails",
            "national_ids", "phones", "with_commas"]
    aggregates = [e.alias(f"{i}_{k}") for i, c in enumerate(names) for k, e in zip(keys, stats(c))]
    row = df.agg(F.count(F.lit(1)).alias("rows"), *aggregates).first()
    rows = int(row["rows"])
    if rows == 0:
        raise MissingColumnError(f"{path} has a header but no rows: nothing to profile")
    columns = [ColumnProfile(name=c, **{k: int(row[f"{i}_{k}"]) for k in keys}) for i, c in enumerate(names)]
    numeric = [(i, p) for i, p in enumerate(columns) if p.name != label and p.share(p.numeric) >= NUMERIC_SHARE]
    if numeric:   # the second aggregation: quantiles of the parsed numbers
        levels = [0.05, 0.25, 0.5, 0.75, 0.95]
        parsed = {i: parse_number(F.col(f"`{p.name}`"), []) for i, p in numeric}
        q = df.agg(*[F.percentile_approx(parsed[i], levels, 10000).alias(f"q{i}") for i, _ in numeric],
                   *[F.min(parsed[i]).alias(f"lo{i}") for i, _ in numeric],
                   *[F.max(parsed[i]).alias(f"hi{i}") for i, _ in numeric]).first()
        for i, p in numeric:
            p.quantiles = [float(x) for x in (q[f"q{i}"] or [])]
            p.minimum, p.maximum = q[f"lo{i}"], q[f"hi{i}"]
    sample = df.sample(fraction=min(1.0, 2.0 * SAMPLE_ROWS / rows), seed=7).limit(SAMPLE_ROWS).collect()
    for i, p in enumerate(columns):
        values = Counter(str(r[i]).strip() for r in sample if r[i] is not None and str(r[i]).strip())
        p.frequent = dict(values.most_common(200))
    label_profile = columns[names.index(label)]
    if label_profile.distinct > 20:
        raise ConfigError(f"--label {label!r} has about {label_profile.distinct} distinct values: a label needs "
                          f"a few classes")
    classes = [r[0] for r in df.where(F.col(f"`{label}`").isNotNull() & (F.trim(F.col(f"`{label}`")) != ""))
               .select(F.trim(F.col(f"`{label}`"))).distinct().limit(21).collect()]
    logger.info("profiled %d rows x %d columns of %s", rows, len(names), path)
    return Profile(rows=rows, columns=columns, label=label, classes=classes)


# --------------------------------------------------------------------------- pure part
def canonical(name: str) -> str:
    """A spec column name for a header (letters, digits and underscores)."""
    out = re.sub(r"[^0-9A-Za-z_]+", "_", name.strip()).strip("_")
    return out if out and not out[0].isdigit() else f"c_{out}"


def order_classes(classes: list[str]) -> list[str]:
    """Best credit first, the adverse class last, by the words the classes use (ties: as given)."""
    def rank(c: str) -> int:
        text = c.strip().lower()
        for word, r in CLASS_RANK:
            if text == word:
                return r
        scores = [r for word, r in CLASS_RANK if len(word) > 1 and re.search(rf"\b{re.escape(word)}\b", text)]
        return max(scores) if scores else 5
    return sorted(classes, key=lambda c: (rank(c), classes.index(c)))


def is_placeholder(token: str) -> bool:
    """A sentinel rather than a value: a known missing marker, or mostly punctuation."""
    if token.lower() in MISSING_MARKERS:
        return True
    symbols = sum(1 for ch in token if not ch.isalnum() and not ch.isspace())
    return symbols >= max(1, math.ceil(len(token) / 2)) and not re.fullmatch(r"-?_*-?\d+(\.\d+)?_*", token)


def numeric_range(p: ColumnProfile) -> tuple[float | None, float | None]:
    """Three times the central 90% beyond each end of it (``[q05 - 3w, q95 + 3w]``, ``w = q95 -
    q05``): wide enough for the real tail of a skewed amount, narrow enough for the impossible
    values of extracts (an age of 8,000), which become null. Where the bulk is not negative but
    values lie below the lower fence (-100 loans, an age of -500) or none is negative, the bound
    is 0; a fence below 0 stays only for data with negative values inside it (a change of limit)."""
    if len(p.quantiles) < 5:
        return None, None
    q05, _, _, _, q95 = p.quantiles
    width = max(q95 - q05, 1e-9)
    low, high = q05 - 3 * width, q95 + 3 * width
    if q05 >= 0 and p.minimum is not None and (p.minimum < low or p.minimum >= 0):
        low = 0.0
    if p.integer == p.numeric:     # whole numbers: whole bounds
        low, high = math.floor(low), math.ceil(high)
    return _tidy(low), _tidy(high)


def _tidy(x: float) -> float:
    """A readable bound: three significant digits."""
    if x == 0 or not math.isfinite(x):
        return 0.0 if x == 0 else x
    digits = 3 - int(math.floor(math.log10(abs(x)))) - 1
    return float(round(x, max(digits, -12)))


@dataclass
class Draft:
    spec: dict
    #: per column, the review comment written beside it
    notes: dict[str, str]
    #: columns left out of the spec, with why
    skipped: dict[str, str]


def draft_spec(profile: Profile, name: str) -> Draft:
    """The spec (as YAML-ready data) and the notes to write beside it."""
    notes: dict[str, str] = {}
    skipped: dict[str, str] = {}
    key = {p.name: canonical(p.name) for p in profile.columns}
    rows = profile.rows
    spec: dict = {"name": name}

    unique = [p for p in profile.columns if p.nonblank == rows and p.distinct >= 0.97 * rows and p.name != profile.label]
    customer = next((p for p in profile.columns if p.name != profile.label and CUSTOMER_NAME.search(key[p.name])
                     and p.nonblank >= 0.99 * rows), None)
    record = next((p for p in unique if RECORD_NAME.match(key[p.name]) and p is not customer), None)
    period = None
    for p in profile.columns:
        if p.name == profile.label or not PERIOD_NAME.search(key[p.name]):
            continue
        for count, fmt in ((p.months, "month_name"), (p.year_months, "year_month"), (p.dates, "date")):
            if p.share(count) >= 0.9:
                period = (p, fmt)
                break
        if period:
            break
    if record:
        spec["record_id"] = key[record.name]
        notes[record.name] = "record id: unique on every row"
    if customer:
        spec["customer_id"] = key[customer.name]
        notes[customer.name] = "customer id: splits, folds and history group by it"
    if period:
        spec["period"] = {"column": key[period[0].name], "format": period[1]}
        notes[period[0].name] = f"period ({period[1]})"
    spec["label"] = {"column": key[profile.label], "classes": order_classes(profile.classes)}
    notes[profile.label] = "label: classes ordered best to worst by their words; the LAST is the adverse class: check"

    taken = {p.name for p in (record, customer, period[0] if period else None) if p is not None} | {profile.label}
    pii, protected, numeric, categorical, durations, lists = [], [], {}, [], [], {}
    placeholders: Counter = Counter()
    reasons: dict[str, dict] = {}
    for p in profile.columns:
        if p.name in taken:
            continue
        c = key[p.name]
        tokens = {t: n for t, n in p.frequent.items() if n >= 2 and is_placeholder(t)}
        if PII_NAME.search(c) or p.share(p.emails) >= 0.5 or p.share(p.national_ids) >= 0.5 or p.share(p.phones) >= 0.5:
            pii.append(c)
            notes[p.name] = "personal identifier: kept in raw_records only, never a model input"
            continue
        if PROTECTED_NAME.search(c):
            pii.append(c)
            protected.append(c)
            notes[p.name] = ("protected attribute: REVIEW — read but never a model input (credit decisions "
                             "must not use it); remove from pii only if the law allows")
            continue
        if p.nonblank == 0:
            skipped[p.name] = "always empty"
            continue
        if p.share(p.durations) >= 0.5:
            durations.append(c)
            notes[p.name] = "duration 'N Years and M Months' -> months"
            reasons[c] = _reason(c)
            continue
        if p.share(p.numeric) >= NUMERIC_SHARE and p.quantiles:
            low, high = numeric_range(p)
            rule = {"min": low, "max": high, "description": _description(p.name)}
            numeric[c] = rule
            others = {t: n for t, n in p.frequent.items() if n >= 2 and parse_number_text(t) is None}
            placeholders.update(others)
            notes[p.name] = (f"numeric: observed {_fmt(p.minimum)} .. {_fmt(p.maximum)}; values outside "
                             f"[{_fmt(low)}, {_fmt(high)}] become null")
            reasons[c] = _reason(c)
            continue
        placeholders.update(tokens)
        items = list_items(p)
        if items:
            lists[c] = {"separator": ",", "items": items, "description": f"number of {_description(p.name)} listed"}
            notes[p.name] = f"list of up to {len(items)} items -> one count per item and a total"
            reasons[f"{c}_count"] = _reason(f"{c}_count")
            continue
        if p.distinct <= MAX_CATEGORIES:
            categorical.append(c)
            notes[p.name] = f"categorical: {p.distinct} values"
            reasons[c] = _reason(c)
            continue
        skipped[p.name] = (f"about {p.distinct} distinct text values in {p.nonblank} rows: an id or free text, "
                           f"not a feature")
    if pii:
        spec["pii"] = pii
    tokens = sorted(t for t, n in placeholders.items() if is_placeholder(t) or n >= 2)
    if tokens:
        spec["placeholders"] = tokens
    sources = {key[p.name]: p.name for p in profile.columns if key[p.name] != p.name and
               (p.name in taken or key[p.name] in {*pii, *numeric, *categorical, *durations, *lists})}
    if sources:
        spec["source_columns"] = sources
    if numeric:
        spec["numeric"] = numeric
    if categorical:
        spec["categorical"] = categorical
    if durations:
        spec["duration_months"] = durations
    if lists:
        spec["lists"] = lists
    age = next((c for c in numeric if AGE_NAME.search(c)), None)
    if age:
        spec["age_column"] = age
        notes[next(p.name for p in profile.columns if key[p.name] == age)] += "; age: the fairness view's age bands"
    if reasons:
        spec["reason_codes"] = {c: {"code": f"R{i:02d}", **r} for i, (c, r) in enumerate(reasons.items(), 1)}
    return Draft(spec=spec, notes=notes, skipped=skipped)


def parse_number_text(token: str) -> float | None:
    """What the features stage makes of a token (stray underscores stripped), in Python."""
    text = token.strip().strip("_")
    return float(text) if re.fullmatch(NUMBER_PATTERN, text) else None


def list_items(p: ColumnProfile) -> list[str]:
    """The items of a comma-separated list column ("A, B, and C"), when there are few of them."""
    if p.share(p.with_commas) < 0.2 or p.distinct <= MAX_CATEGORIES:
        return []
    items: Counter = Counter()
    for value, n in p.frequent.items():
        for item in re.split(r",\s*(?:and\s+)?|\s+and\s+", value):
            if item.strip():
                items[item.strip()] += n
    return sorted(items) if 2 <= len(items) <= 30 else []


def _description(name: str) -> str:
    return re.sub(r"[_.]+", " ", name).strip().lower()


def _reason(column: str) -> dict:
    return {"text": f"{_description(column).capitalize()} (review this customer-facing text)"}


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:g}"


def render_yaml(draft: Draft, source: str, rows: int) -> str:
    """The spec as YAML with a header and a review comment beside each column it names."""
    by_key = {canonical(c): n for c, n in draft.notes.items()}
    lines = [f"# Drafted by `credit-spark spec draft` from {source} ({rows:,} rows).",
             "# Every choice below is a guess from the data: review the lines marked REVIEW, the label's",
             "# class order (the last class is the adverse one), the ranges and the pii list, then run",
             "#   credit-spark --conf my.yaml ingest --input FILE   (my.yaml: `dataset: <this file>`)",
             "# Format: docs/spec.md (the JSON Schema: docs/spec.schema.json)."]
    if draft.skipped:
        lines.append("# Left out:")
        lines += [f"#   {c}: {why}" for c, why in draft.skipped.items()]
    text = yaml.safe_dump(draft.spec, sort_keys=False, allow_unicode=True, width=110)
    for line in text.splitlines():
        match = re.match(r"^(\s*)(?:- )?'?([A-Za-z_][A-Za-z0-9_]*)'?(:|$)", line)
        note = by_key.pop(match.group(2), None) if match and match.group(1) in ("  ", "") else None
        if note:
            lines.append(f"{line}   # {note}" if len(line) < 70 else f"  # {note}\n{line}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def draft(spark: SparkSession, input_path: str, label: str, out: str, name: str | None = None) -> Path:
    """Profile ``input_path``, write the drafted spec to ``out`` and check that it loads."""
    target = Path(out)
    spec_name = canonical(name or target.stem)
    profile = profile_input(spark, input_path, label)
    result = draft_spec(profile, spec_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(render_yaml(result, input_path, profile.rows), encoding="utf-8")
    try:
        load_dataset_spec(str(tmp))          # the draft must validate as it is
    except ConfigError:
        tmp.unlink()
        raise
    tmp.replace(target)
    logger.info("spec draft: %s (%d numeric, %d categorical, %d pii, %d left out)", target,
                len(result.spec.get("numeric", {})), len(result.spec.get("categorical", [])),
                len(result.spec.get("pii", [])), len(result.skipped))
    return target
