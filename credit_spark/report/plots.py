"""The report's matplotlib PNGs (ROC, reliability, confusion, importance, score distribution)."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable

from credit_spark.report.format import TOP_IMPORTANCE, _classes, _fixed, _models, _number, _ordered, _text
from credit_spark.report.sections import _matrix_labels

logger = logging.getLogger(__name__)


PLOT_FILES = ("roc.png", "reliability.png", "confusion.png", "importance.png", "score_distribution.png")
DPI = 100
# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------

def _write_plots(results: dict, out: Path) -> dict[str, str]:
    """Draw every plot some model has data for; returns {plot kind: file name} of those written."""
    plots: dict[str, str] = {}
    for kind, draw in (("roc", _plot_roc), ("reliability", _plot_reliability), ("confusion", _plot_confusion),
                       ("importance", _plot_importance), ("score_distribution", _plot_score_distribution)):
        name = f"{kind}.png"
        if draw(results, out / name):
            plots[kind] = name
        else:
            logger.debug("no model has %s data; %s skipped", kind, name)
    return plots


def _figure(n_panels: int, max_cols: int, panel_w: float, panel_h: float):
    """A Figure with an Agg canvas and a grid of n_panels axes (matplotlib imported lazily, no pyplot state)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = max(1, min(n_panels, max_cols))
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(panel_w * cols, panel_h * rows), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")


def _floats(values: Any) -> list[float]:
    return [math.nan if _number(v) is None else float(v) for v in (values or [])]


def _with_data(results: dict, get: Callable[[dict], Any]) -> list[tuple[str, Any]]:
    return [(name, get(m)) for name, m in _models(results).items() if get(m)]


def _plot_roc(results: dict, path: Path) -> bool:
    curves = _with_data(results, lambda m: m.get("roc"))
    if not curves:
        return False
    classes = _ordered(dict.fromkeys(c for _, roc in curves for c in roc), _classes(results))
    fig, axes = _figure(len(classes), 3, 4.2, 3.8)
    for ax, cls in zip(axes, classes):
        for name, roc in curves:
            curve = roc.get(cls)
            if not curve:
                continue
            ax.plot(_floats(curve.get("fpr")), _floats(curve.get("tpr")), lw=1.5,
                    label=f"{name} (AUC {_fixed(curve.get('auc'), 3)})")
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate",
               title=f"class {cls} vs rest")
        ax.legend(loc="lower right", fontsize=7)
    _save(fig, path)
    return True


def _plot_reliability(results: dict, path: Path) -> bool:
    panels = _with_data(results, lambda m: m.get("reliability"))
    if not panels:
        return False
    fig, axes = _figure(len(panels), 3, 4.0, 3.8)
    for ax, (name, rel) in zip(axes, panels):
        for key, style in (("before", "o--"), ("after", "s-")):
            points = rel.get(key) or []
            if points:
                ax.plot(_floats(p.get("confidence") for p in points), _floats(p.get("accuracy") for p in points),
                        style, ms=4, lw=1.2, label=f"{key} calibration")
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="Mean confidence", ylabel="Observed accuracy", title=name)
        ax.legend(loc="upper left", fontsize=7)
    _save(fig, path)
    return True


def _plot_confusion(results: dict, path: Path) -> bool:
    panels = _with_data(results, lambda m: m.get("confusion"))
    if not panels:
        return False
    fig, axes = _figure(len(panels), 3, 4.0, 3.6)
    for ax, (name, matrix) in zip(axes, panels):
        values = [[_number(v) or 0.0 for v in row] for row in matrix]
        labels = _matrix_labels(results, len(values))
        ax.imshow(values, cmap="Blues", aspect="auto")
        top = max((v for row in values for v in row), default=0.0)
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                ax.text(j, i, f"{int(v):,}", ha="center", va="center", fontsize=8,
                        color="white" if top and v > top / 2 else "black")
        ax.set_xticks(range(len(values[0]) if values else 0), labels=labels[:len(values[0])] if values else [],
                      fontsize=7, rotation=30)
        ax.set_yticks(range(len(values)), labels=labels, fontsize=7)
        ax.set(xlabel="Predicted", ylabel="Actual", title=name)
    _save(fig, path)
    return True


def _plot_importance(results: dict, path: Path) -> bool:
    panels = _with_data(results, lambda m: (m.get("importance") or {}).get("items"))
    if not panels:
        return False
    kinds = {name: _text((m.get("importance") or {}).get("kind")) for name, m in _models(results).items()}
    fig, axes = _figure(len(panels), 2, 6.0, 0.28 * TOP_IMPORTANCE + 1.2)
    for ax, (name, items) in zip(axes, panels):
        top = sorted(items, key=lambda it: abs(_number(it.get("value")) or 0.0), reverse=True)[:TOP_IMPORTANCE]
        top.reverse()  # largest at the top of a horizontal bar chart
        values = [_number(it.get("value")) or 0.0 for it in top]
        ax.barh(range(len(top)), values, color=["#2a5d9f" if v >= 0 else "#a61b1b" for v in values])
        ax.set_yticks(range(len(top)), labels=[str(it.get("feature")) for it in top], fontsize=7)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set(title=f"{name} ({kinds[name]})")
    _save(fig, path)
    return True


def _plot_score_distribution(results: dict, path: Path) -> bool:
    panels = _with_data(results, lambda m: m.get("score_distribution"))
    panels = [(n, d) for n, d in panels if d.get("edges") and d.get("counts")]
    if not panels:
        return False
    fig, axes = _figure(len(panels), 3, 4.4, 3.4)
    for ax, (name, dist) in zip(axes, panels):
        edges = _floats(dist.get("edges"))
        counts = dist.get("counts") or {}
        for cls in _ordered(counts, _classes(results)):
            values = [_number(v) or 0.0 for v in counts[cls] or []]
            total = sum(values)
            if len(values) != len(edges) - 1 or not total:
                logger.warning("score distribution of %s/%s skipped: %d counts for %d edges",
                               name, cls, len(values), len(edges))
                continue
            ax.stairs([v / total for v in values], edges, label=f"{cls} (n={int(total):,})", lw=1.4)
        ax.set(xlabel=_text(dist.get("score")), ylabel="Share of class", title=name)
        ax.legend(fontsize=7)
    _save(fig, path)
    return True
