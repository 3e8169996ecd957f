"""Number and text formats of the report (see the package docstring) and small readers of the
stored results dict shared by its sections and plots."""
from __future__ import annotations

import json
import math
import numbers
from typing import Any, Iterable, Sequence


HEADLINE_METRICS = ("accuracy", "macro_f1", "weighted_f1", "auc", "gini", "ks", "log_loss", "brier", "ece")
LOWER_IS_BETTER = ("log_loss", "brier", "ece")
TOP_IMPORTANCE = 15
NA = "n/a"

BETTER = "better"
WORSE = "worse"
NOT_SIGNIFICANT = "no significant difference"



# --------------------------------------------------------------------------------------------
# normalisation and formatting
# --------------------------------------------------------------------------------------------

def _normalise(value: Any) -> Any:
    """The JSON form of the results: NaN/inf -> None, tuples -> lists, keys -> str, numpy scalars -> Python."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _normalise(value.tolist())
    return str(value)


def _number(value: Any) -> float | None:
    """A finite float, or None for missing / NaN / non-numeric values."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _fixed(value: Any, digits: int = 4) -> str:
    f = _number(value)
    return NA if f is None else f"{f:.{digits}f}"


def _signed(value: Any, digits: int = 3) -> str:
    f = _number(value)
    if f is None:
        return NA
    if round(f, digits) == 0:
        f = 0.0  # no "-0.000"
    return f"{f:+.{digits}f}"


def _count(value: Any) -> str:
    f = _number(value)
    return NA if f is None else f"{int(round(f)):,}"


def _percent(value: Any) -> str:
    f = _number(value)
    return NA if f is None else f"{f:.2%}"


def _edge(value: Any) -> str:
    """Band edges: probabilities need decimals, score points do not."""
    f = _number(value)
    if f is None:
        return NA
    return f"{f:.1f}" if abs(f) >= 100 else f"{f:.4f}"


def _text(value: Any) -> str:
    return NA if value is None or value == "" else str(value)


def _param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return _text(value)


def _params(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return NA
    return ", ".join(f"{k}={_param(v)}" for k, v in params.items())


def _yes_no(value: Any) -> str:
    return NA if value is None else ("yes" if value else "no")


def _confidence(value: Any) -> str:
    f = _number(value)
    return f"{f:.0%}" if f is not None else "95%"


def _significance(row: dict) -> str | None:
    """better / worse / no significant difference: significant iff the CI excludes 0; None without a CI."""
    low, high = _number(row.get("ci_low")), _number(row.get("ci_high"))
    if low is None or high is None:
        return None
    if low > 0:
        return BETTER
    if high < 0:
        return WORSE
    return NOT_SIGNIFICANT


def _comparison_row(results: dict, model: Any, metric: str) -> dict | None:
    for row in results.get("comparison") or []:
        if row.get("model") == model and row.get("metric") == metric:
            return row
    return None


def _promotion_phrase(promotion: Any) -> str:
    if not isinstance(promotion, dict) or not promotion.get("decision"):
        return ""
    if promotion["decision"] == "promoted":
        return "promoted to champion"
    reason = str(promotion.get("reason") or "").strip().rstrip(".")
    champion = promotion.get("champion_before")
    head = f"champion {champion} kept" if champion else "not promoted"
    return f"{head}: {reason}" if reason else head


def _models(results: dict) -> dict[str, dict]:
    return {name: (m or {}) for name, m in (results.get("models") or {}).items()}


def _classes(results: dict) -> list[str]:
    return [str(c) for c in ((results.get("run") or {}).get("classes") or [])]


def _ordered(keys: Iterable[str], preferred: Sequence[str]) -> list[str]:
    """The keys in the run's class order, unknown ones appended in their own order."""
    keys = list(keys)
    return [c for c in preferred if c in keys] + [k for k in keys if k not in preferred]
