"""The champion rule: a run's selected model replaces the champion (the MLflow alias the nightly
scorer uses) only when it beats the champion's primary metric on this run's test split by a margin,
so two runs that tie do not swap models back and forth."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Promotion:
    decision: str                 # "promoted" | "kept"
    challenger: str
    champion_before: str | None
    reason: str
    challenger_value: float
    champion_value: float | None


def decide_promotion(challenger: str, challenger_value: float, champion: str | None,
                     champion_value: float | None, metric: str, margin: float) -> Promotion:
    """Promote iff there is no usable champion or the challenger wins by at least ``margin``."""
    if champion is None:
        return Promotion("promoted", challenger, None, "no champion yet", challenger_value, None)
    if champion_value is None or math.isnan(champion_value):
        return Promotion("promoted", challenger, champion,
                         f"champion {champion} cannot be evaluated on this run's test set",
                         challenger_value, champion_value)
    gain = challenger_value - champion_value
    if gain >= margin:
        return Promotion("promoted", challenger, champion,
                         f"{metric} {challenger_value:.4f} vs champion {champion_value:.4f}: "
                         f"{gain:+.4f} >= margin {margin}", challenger_value, champion_value)
    return Promotion("kept", challenger, champion,
                     f"{metric} {challenger_value:.4f} vs champion {champion_value:.4f}: "
                     f"{gain:+.4f} < margin {margin}", challenger_value, champion_value)
