"""Binning for the scorecard: numeric features cut into bins (quantiles, exact values for few-valued
counts, a dominant value isolated, bins merged until the bad rate is monotonic), each bin's weight
of evidence and a feature's information value, and the bin lookups as Spark expressions and SQL.
Pure functions over aggregated counts or column expressions; the estimator is
:mod:`credit_spark.ml.scorecard`."""
from __future__ import annotations

import bisect
import math
from fractions import Fraction

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from credit_spark.lake.sqltext import sql_double, sql_name, sql_string

MISSING = "missing"
SMOOTHING = 0.5
SAME_VALUE_RTOL = 1e-9  # histogram centres this close are one value (a merge of equal values moves x by ulps)


def bin_key_sql(column: str, edges: list[float] | None) -> str:
    """:func:`bin_key` as SQL text."""
    col = sql_name(column)
    if edges is None:
        return f"coalesce(CAST({col} AS STRING), {sql_string(MISSING)})"
    branches = " ".join(f"WHEN {col} < {sql_double(edge)} THEN '{i}'" for i, edge in enumerate(edges))
    return (f"CASE WHEN {col} IS NULL OR isnan(CAST({col} AS DOUBLE)) THEN {sql_string(MISSING)} "
            f"{branches} ELSE '{len(edges)}' END")


def bin_key(column: str, edges: list[float] | None) -> Column:
    """The bin of a value as text: "0".."n" for numeric quantile bins, the value for categories."""
    return F.expr(bin_key_sql(column, edges))


def lookup_sql(column: str, edges: list[float] | None, values: dict[str, float]) -> str:
    """The value of a row's bin in ``values`` (bin key -> number); 0 for a bin not in it."""
    if not values:
        return "0.0D"
    pairs = ", ".join(f"{sql_string(key)}, {sql_double(value)}" for key, value in values.items())
    return f"coalesce(element_at(map({pairs}), {bin_key_sql(column, edges)}), 0.0D)"


def bin_label(key: str, edges: list[float] | None) -> str:
    if edges is None or key == MISSING:
        return key
    i = int(key)
    low = "-inf" if i == 0 else f"{edges[i - 1]:g}"
    high = "+inf" if i == len(edges) else f"{edges[i]:g}"
    return f"[{low}, {high})"


def woe_iv(counts: dict[str, tuple[int, int]]) -> tuple[dict[str, float], float]:
    """WOE per bin and the IV from {bin: (non_events, events)}, with the module's smoothing."""
    n_bins = len(counts)
    total_good = sum(g for g, _ in counts.values()) + SMOOTHING * n_bins
    total_bad = sum(b for _, b in counts.values()) + SMOOTHING * n_bins
    woe, iv = {}, 0.0
    for key, (good, bad) in counts.items():
        share_good = (good + SMOOTHING) / total_good
        share_bad = (bad + SMOOTHING) / total_bad
        woe[key] = math.log(share_good / share_bad)
        iv += (share_good - share_bad) * woe[key]
    return woe, iv


def _non_missing(column: str) -> Column:
    """The column as a double, NaN as null (both are the "missing" bin)."""
    value = F.col(column).cast("double")
    return F.when(~F.isnan(value), value)


def cut_between(low: float, high: float) -> float:
    """A cut point ``c`` with ``low < c <= high`` (bins are ``[c_prev, c)``): the midpoint, or ``high``
    where no double lies strictly between (adjacent doubles, an infinite end)."""
    mid = low / 2 + high / 2
    return mid if low < mid <= high else high


def few_distinct_values(dataset: DataFrame, columns: list[str], limit: int) -> dict[str, list[float] | None]:
    """Each numeric column's distinct non-missing values, sorted, when it has at most ``limit`` of them;
    None when it has more. One aggregation pass for all columns, no shuffle.

    ``histogram_numeric`` with ``limit + 1`` centres keeps one centre per distinct value until it
    sees more distinct values than centres, and only then merges the two closest centres into a
    weighted average (Ben-Haim & Tom-Tov; memory bounded by the centres per partition). So at most
    ``limit`` distinct values come back as themselves, and more come back as ``limit + 1`` centres
    (never fewer: a histogram that had to average stays full, as ``trim`` pools equal centres
    before any others). Merging partial histograms pools equal centres, whose weighted average can
    move by a few ulps: centres within ``SAME_VALUE_RTOL`` are one value. So the values are exact
    to a few ulps, which is all the fit needs (it cuts midway between them and takes the exact
    values from the count table; should averaged centres ever pass for values, the bins they cut
    stay valid, just not one value each).
    """
    row = dataset.agg(*[F.histogram_numeric(_non_missing(c), F.lit(limit + 1)).alias(f"_h{i}")
                        for i, c in enumerate(columns)]).first()
    found: dict[str, list[float] | None] = {}
    for i, column in enumerate(columns):
        values: list[float] = []
        for x in sorted(float(b["x"]) for b in (row[i] or []) if b["y"] > 0):
            if not (values and math.isclose(x, values[-1], rel_tol=SAME_VALUE_RTOL)):
                values.append(x)
        found[column] = values if len(values) <= limit else None
    return found


def isolate_values(edges: list[float], counts_by_bin: dict[str, dict[int, int]],
                   ranges: dict[str, tuple[float, float]], min_share: Fraction
                   ) -> tuple[list[float], dict[str, dict[int, int]]]:
    """Give each dominant value a bin of its own; the other bins keep ``edges``.

    ``counts_by_bin`` is {bin: {class: count}} of a finer binning of the feature (its bins "0".."m"
    in value order, plus an optional "missing", copied unchanged) and ``ranges`` is
    {bin: (min, max)} of the training values in each of its non-empty bins. A fine bin that holds
    a single value ``v`` (min == max) with at least ``min_share`` of the non-missing rows is
    isolated: its bin becomes [cut between the largest training value below v and v, cut between
    v and the smallest above), without the lower cut when v is the minimum and without the upper
    one when it is the maximum (``cut_between``: midpoints). The ``edges`` inside that span (there
    v itself and its upper neighbour at most, when they are quantile edges) go, so no bin is left
    empty and no training row changes side of any other edge. Returns the new edges and the
    counts summed over the new bins "0".."n" (each fine bin lies in one of them). Pure, exact.
    """
    cells = sorted(((int(key), *ranges[key]) for key in ranges if key != MISSING))
    sizes = [sum(counts_by_bin.get(str(key), {}).values()) for key, _, _ in cells]
    total = sum(sizes)
    kept, cuts = list(edges), set()
    for j, ((_, low, high), size) in enumerate(zip(cells, sizes)):
        if low != high or Fraction(size, total) < min_share:
            continue
        below = cells[j - 1][2] if j > 0 else None
        above = cells[j + 1][1] if j + 1 < len(cells) else None
        kept = [e for e in kept if (below is not None and e <= below) or (above is not None and e > above)]
        cuts |= {cut_between(below, low)} if below is not None else set()
        cuts |= {cut_between(low, above)} if above is not None else set()
    new_edges = sorted(set(kept) | cuts)
    counts: dict[str, dict[int, int]] = {}
    for key, low, _ in cells:
        merged = counts.setdefault(str(bisect.bisect_right(new_edges, low)), {})
        for y, n in counts_by_bin.get(str(key), {}).items():
            merged[y] = merged.get(y, 0) + n
    if MISSING in counts_by_bin:
        counts[MISSING] = dict(counts_by_bin[MISSING])
    return new_edges, counts


def monotonic_merge(edges: list[float], counts_by_bin: dict[str, dict[int, int]],
                    adverse: int) -> tuple[list[float], dict[str, dict[int, int]]]:
    """Pool adjacent numeric bins until the adverse class's event rate is monotonic.

    ``edges`` are a numeric feature's cut points (bins "0".."len(edges)", as ``bin_key``);
    ``counts_by_bin`` is {bin: {class: count}} (absent bins are empty, "missing" is optional);
    ``adverse`` is the class whose rate must be monotonic. Returns the kept edges and the merged
    counts keyed "0".."m" (plus "missing", copied unchanged). Pure and exact (integer/Fraction
    arithmetic): empty bins are first absorbed into the next non-empty bin (the last ones into the
    previous), the direction is the sign of the count-weighted covariance between bin index and
    the raw adverse rate (0 -> increasing), then pool-adjacent-violators: adjacent blocks are
    pooled while either the raw rate ``adverse / n`` or the rate smoothed as the WOE,
    ``(adverse + 0.5) / (n + 1)``, breaks the direction (ties are not violations), so both end
    monotonic and with them the adverse card's WOE.
    """
    # blocks: [last original bin index, {class: count}]; a block reaches up to edges[last], so
    # skipping an empty bin hands its range to the next block (trailing ones to the last block)
    blocks = [[i, dict(ys)] for i in range(len(edges) + 1)
              if sum((ys := counts_by_bin.get(str(i), {})).values()) > 0]

    def totals(ys: dict[int, int]) -> tuple[int, int]:
        return sum(ys.values()), ys.get(adverse, 0)

    big_n = sum(totals(ys)[0] for _, ys in blocks)
    big_a = sum(totals(ys)[1] for _, ys in blocks)
    idx_n = sum(j * totals(ys)[0] for j, (_, ys) in enumerate(blocks))
    idx_a = sum(j * totals(ys)[1] for j, (_, ys) in enumerate(blocks))
    increasing = big_n * idx_a - idx_n * big_a >= 0

    def rates(ys: dict[int, int]) -> tuple[Fraction, Fraction]:
        n, a = totals(ys)
        return Fraction(a, n), Fraction(2 * a + 1, 2 * n + 2)  # raw, smoothed as the WOE

    def ordered(before: Fraction, after: Fraction) -> bool:
        return before <= after if increasing else before >= after

    stack: list[list] = []
    for last, ys in blocks:
        stack.append([last, ys])
        while len(stack) >= 2:
            if all(map(ordered, rates(stack[-2][1]), rates(stack[-1][1]))):
                break
            last_top, ys_top = stack.pop()
            merged = dict(stack[-1][1])
            for y, n in ys_top.items():
                merged[y] = merged.get(y, 0) + n
            stack[-1] = [last_top, merged]

    new_edges = [edges[last] for last, _ in stack[:-1]]
    merged_counts = {str(j): ys for j, (_, ys) in enumerate(stack)}
    if MISSING in counts_by_bin:
        merged_counts[MISSING] = dict(counts_by_bin[MISSING])
    return new_edges, merged_counts
