"""An interpreter of the Spark SQL subset that the dataset specs' derived features are written in
(``derived.<name>.expr``), over the columns of a pandas DataFrame.

Why an interpreter: the baseline must compute the same derived features as Spark from the same
spec text, without Spark. The expression is parsed with Python's ``ast`` (the subset's syntax is
Python's too) and evaluated node by node; anything outside the subset is an error naming the
spec key, so a spec the baseline cannot follow fails loudly instead of differing silently.
"""
from __future__ import annotations

import ast
from typing import Callable

import numpy as np
import pandas as pd


class ExpressionError(ValueError):
    """A derived expression the baseline cannot evaluate (the message names the key and the text)."""


def _try_divide(a: pd.Series, b: pd.Series) -> pd.Series:
    return (a / b).where(b != 0)


def _coalesce(*args: pd.Series) -> pd.Series:
    out = args[0]
    for arg in args[1:]:
        out = out.where(out.notna(), arg)
    return out


def _greatest(*args: pd.Series) -> pd.Series:
    out = args[0]
    for arg in args[1:]:
        out = pd.Series(np.fmax(out.to_numpy(), arg.to_numpy()), index=out.index)   # NaN (null) ignored
    return out


def _least(*args: pd.Series) -> pd.Series:
    out = args[0]
    for arg in args[1:]:
        out = pd.Series(np.fmin(out.to_numpy(), arg.to_numpy()), index=out.index)
    return out


#: Spark SQL function -> (implementation, minimum and maximum argument count)
FUNCTIONS: dict[str, tuple[Callable[..., pd.Series], int, int]] = {
    "try_divide": (_try_divide, 2, 2),
    "coalesce": (_coalesce, 1, 99),
    "greatest": (_greatest, 2, 99),
    "least": (_least, 2, 99),
    "abs": (lambda a: a.abs(), 1, 1),
}


def evaluate_expression(expr: str, frame: pd.DataFrame, key: str = "expression") -> pd.Series:
    """The value of a derived feature's Spark SQL expression over ``frame``'s columns, as float.

    Supports exactly what the shipped specs use: column names, numeric literals, ``+ - * /``,
    unary minus, parentheses and ``try_divide``, ``coalesce``, ``greatest``, ``least``, ``abs``.
    Semantics follow Spark 4 with ANSI mode on (its default): arithmetic with a null is null,
    ``greatest``/``least`` skip nulls, ``try_divide`` by zero is null, and ``/`` by zero is an
    error (Spark raises ``DIVIDE_BY_ZERO``). Anything else raises :class:`ExpressionError` naming
    ``key`` and the expression, so an unsupported spec fails loudly instead of differing silently.
    """
    def fail(why: str) -> ExpressionError:
        return ExpressionError(f"{key}: '{expr}': {why}")

    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise fail(f"not an expression the baseline can evaluate ({exc.msg})") from None
    lower = {}
    for c in frame.columns:
        lower.setdefault(str(c).lower(), []).append(c)

    def column(name: str) -> pd.Series:
        if name in frame.columns:
            return frame[name].astype(float)
        matches = lower.get(name.lower(), [])      # Spark resolves column names case-insensitively
        if len(matches) == 1:
            return frame[matches[0]].astype(float)
        raise fail(f"unknown column '{name}'")

    def ev(node: ast.AST) -> pd.Series | float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name):
            return column(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = ev(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            divisor = right if isinstance(right, pd.Series) else pd.Series(right, index=frame.index)
            if bool((divisor == 0).any()):
                raise fail("division by zero (Spark 4 raises DIVIDE_BY_ZERO in ANSI mode; use try_divide)")
            return left / right
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            name = node.func.id.lower()
            if name not in FUNCTIONS:
                raise fail(f"unsupported function '{node.func.id}' (supported: {', '.join(FUNCTIONS)})")
            fn, low, high = FUNCTIONS[name]
            if not low <= len(node.args) <= high:
                raise fail(f"{name} takes {low}..{high} argument(s), got {len(node.args)}")
            args = [ev(a) for a in node.args]
            return fn(*[a if isinstance(a, pd.Series) else pd.Series(a, index=frame.index, dtype=float)
                        for a in args])
        raise fail(f"unsupported syntax {type(node).__name__}")

    value = ev(tree)
    if not isinstance(value, pd.Series):
        value = pd.Series(value, index=frame.index, dtype=float)
    return value.astype(float)
