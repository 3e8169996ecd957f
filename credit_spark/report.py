"""Render a training run's evaluation results into a report folder for the model-risk team.

Pure Python (no Spark): the trainer hands over a JSON-able dict (see ``write_report``) and this
module writes ``results.json``, ``report.md``, ``report.html`` and a few matplotlib PNGs. The dict
is stored, so ``credit-spark report`` can re-render an old run with ``load_results`` and get the
same pages: both pages are always rendered from the *stored* form of the results (NaN/inf turned
into ``None``, keys turned into strings), never from the in-memory one.

Both pages come from one list of blocks (headings, paragraphs, tables, images, code), so the
Markdown and the HTML always carry the same content in the same order.

Number formats: metrics and metric values 4 decimals (``0.8123``); differences and confidence
bounds signed, 3 decimals (``+0.031``, ``[+0.012, +0.049]``); counts with thousands separators
(``12,345``); bad rates as percentages with 2 decimals (``12.34%``); WOE and IV 4 decimals;
scorecard points 1 decimal; missing / NaN values ``n/a``.
"""
from __future__ import annotations

import html
import json
import logging
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"

HEADLINE_METRICS = ("accuracy", "macro_f1", "weighted_f1", "auc", "gini", "ks", "log_loss", "brier", "ece")
LOWER_IS_BETTER = ("log_loss", "brier", "ece")
TOP_IMPORTANCE = 15
DPI = 100
NA = "n/a"

BETTER = "better"
WORSE = "worse"
NOT_SIGNIFICANT = "no significant difference"

PLOT_FILES = ("roc.png", "reliability.png", "confusion.png", "importance.png", "score_distribution.png")


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------

def write_report(results: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Write results.json, report.md, report.html and the PNGs into out_dir (created); return the paths written.

    The pages are rendered from the JSON-normalised results, so re-rendering from
    ``load_results(out_dir)`` gives byte-identical pages.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stored = _normalise(results)
    written: list[Path] = []

    results_path = out / RESULTS_FILE
    with results_path.open("w", encoding="utf-8") as fh:
        json.dump(stored, fh, indent=2, allow_nan=False, ensure_ascii=False)
        fh.write("\n")
    written.append(results_path)

    plots = _write_plots(stored, out)
    written.extend(out / name for name in plots.values())
    for name in PLOT_FILES:  # a re-render into an old folder must not leave a stale plot behind
        stale = out / name
        if name not in plots.values() and stale.exists():
            logger.debug("removing stale plot %s", stale)
            stale.unlink()

    blocks = _build_blocks(stored, plots)
    md_path = out / MARKDOWN_FILE
    md_path.write_text(_render_markdown(blocks), encoding="utf-8")
    html_path = out / HTML_FILE
    html_path.write_text(_render_html(blocks, str(stored.get("title") or "Model report")), encoding="utf-8")
    written.extend([md_path, html_path])
    logger.info("report written to %s (%d files)", out, len(written))
    return written


def load_results(out_dir: str | os.PathLike) -> dict:
    """Read a run's stored results.json back, so its report can be re-rendered without retraining."""
    with (Path(out_dir) / RESULTS_FILE).open(encoding="utf-8") as fh:
        return json.load(fh)


def verdict(results: dict) -> str:
    """The one-line answer to "is the selected model better than the scorecard, and was it promoted?"."""
    run = results.get("run") or {}
    metric = str(run.get("primary_metric") or "")
    selected = results.get("selected")
    baseline = str(run.get("baseline") or "scorecard")
    row = _comparison_row(results, selected, metric)
    if row is not None and row.get("baseline"):
        baseline = str(row["baseline"])
    versus = f"the {baseline} baseline"

    if not selected:
        head = "no model was selected"
    elif selected == baseline:
        head = f"{versus} is the best model on {metric}"
    elif row is None:
        head = f"{selected} is the selected model (no comparison with {versus} on {metric})"
    else:
        diff = _signed(row.get("difference"))
        ci = f"{_confidence(row.get('confidence'))} CI {_signed(row.get('ci_low'))} to {_signed(row.get('ci_high'))}"
        result = _significance(row)
        if result == BETTER:
            head = f"{selected} beats {versus} on {metric} by {diff} ({ci})"
        elif result == WORSE:
            head = f"{selected} is worse than {versus} on {metric} ({diff}, {ci})"
        elif result == NOT_SIGNIFICANT:
            head = f"{selected} is not significantly different from {versus} on {metric} ({diff}, {ci})"
        else:
            head = f"{selected} vs {versus} on {metric}: {diff} (no confidence interval)"

    tail = _promotion_phrase(results.get("promotion"))
    return f"{head}; {tail}." if tail else f"{head}."


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


# --------------------------------------------------------------------------------------------
# page blocks (shared by Markdown and HTML)
# --------------------------------------------------------------------------------------------

@dataclass
class _Block:
    kind: str  # h1 | h2 | h3 | p | verdict | facts | table | image | code
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    align: str = ""  # one "l"/"r" per column
    extra: str = ""  # image file / code language


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> _Block:
    return _Block("table", header=header, rows=rows, align=align or "l" + "r" * (len(header) - 1))


def _build_blocks(results: dict, plots: dict[str, str]) -> list[_Block]:
    """The report's content, in reading order."""
    blocks = [_Block("h1", str(results.get("title") or "Model report")), _Block("verdict", verdict(results))]
    for section in (_run_section, _comparison_section, _promotion_section, _per_class_section,
                    _confusion_section, _calibration_section, _decision_section, _importance_section,
                    _tuning_section,
                    _bands_section, _iv_section, _scorecard_section, _config_section):
        blocks.extend(section(results, plots))
    return blocks


def _run_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    run = results.get("run") or {}
    split = run.get("split") or {}
    mode = _text(split.get("mode"))
    if split.get("description"):
        mode = f"{mode} — {split['description']}"
    facts = [
        ["Dataset", _text(run.get("dataset"))],
        ["Training run version", _text(run.get("version"))],
        ["MLflow run id", _text(run.get("mlflow_run_id"))],
        ["Trained at", _text(run.get("trained_at"))],
        ["Features table Delta version", _text(run.get("features_version"))],
        ["Split", mode],
        ["Rows (train / validation / test)",
         " / ".join(_count(split.get(k)) for k in ("train_rows", "validation_rows", "test_rows"))],
        ["Classes", ", ".join(_classes(results)) or NA],
        ["Adverse class", _text(run.get("adverse_class"))],
        ["Calibration", _text(run.get("calibration"))],
        ["Primary metric", _text(run.get("primary_metric"))],
        ["Baseline", _text(run.get("baseline"))],
        ["Selected model (on validation)", _text(results.get("selected"))],
    ]
    return [_Block("h2", "Run"), _Block("facts", rows=facts)]


def _comparison_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    models = _models(results)
    header = ["Model", *HEADLINE_METRICS, "ece (before calibration)"]
    rows = []
    for name, model in models.items():
        metrics = model.get("metrics") or {}
        before = model.get("metrics_uncalibrated") or {}
        rows.append([name, *(_fixed(metrics.get(m)) for m in HEADLINE_METRICS), _fixed(before.get("ece"))])
    blocks = [
        _Block("h2", "Model comparison"),
        _Block("p", "Test-set metrics. Lower is better for " + ", ".join(LOWER_IS_BETTER)
               + "; higher is better for the others."),
        _table(header, rows) if rows else _Block("p", "No models in this run."),
    ]
    if "roc.png" in plots.values():
        blocks.append(_Block("image", "ROC curves (one-vs-rest, test set)", extra="roc.png"))

    baseline = _text((results.get("run") or {}).get("baseline"))
    comparison = results.get("comparison") or []
    blocks.append(_Block("h3", f"Difference vs the {baseline} baseline"))
    if not comparison:
        blocks.append(_Block("p", "No baseline comparison in this run."))
        return blocks
    confidence = _confidence(comparison[0].get("confidence"))
    blocks.append(_Block("p", f"Difference = model − baseline on the test set; {confidence} bootstrap confidence "
                              "interval; a difference is significant when its interval excludes 0. "
                              "All compared metrics are higher-is-better."))
    rows = [[_text(r.get("model")), _text(r.get("metric")), _fixed(r.get("model_value")),
             _fixed(r.get("baseline_value")), _signed(r.get("difference")),
             f"[{_signed(r.get('ci_low'))}, {_signed(r.get('ci_high'))}]",
             _significance(r) or NA, _count(r.get("samples"))] for r in comparison]
    blocks.append(_table(["Model", "Metric", "Model value", "Baseline value", "Difference",
                          f"{confidence} CI", "Result", "Samples"], rows, "llrrrrlr"))
    return blocks


def _promotion_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    promotion = results.get("promotion") or {}
    if not promotion:
        return [_Block("h2", "Promotion decision"), _Block("p", "No promotion decision recorded.")]
    facts = [
        ["Decision", _text(promotion.get("decision"))],
        ["Challenger", _text(promotion.get("challenger"))],
        ["Champion before", _text(promotion.get("champion_before") or "none")],
        ["Reason", _text(promotion.get("reason"))],
    ]
    return [_Block("h2", "Promotion decision"), _Block("facts", rows=facts)]


def _per_class_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    blocks = [_Block("h2", "Per-class metrics")]
    for name, model in _models(results).items():
        per_class = model.get("per_class") or {}
        if not per_class:
            continue
        rows = []
        for cls in _ordered(per_class, _classes(results)):
            m = per_class[cls] or {}
            rows.append([cls, *(_fixed(m.get(k)) for k in ("precision", "recall", "f1", "auc", "ks")),
                         _count(m.get("support"))])
        blocks += [_Block("h3", name), _table(["Class", "Precision", "Recall", "F1", "AUC", "KS", "Support"], rows)]
    if len(blocks) == 1:
        blocks.append(_Block("p", "No per-class metrics in this run."))
    return blocks


def _confusion_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    blocks = [_Block("h2", "Confusion matrices")]
    if "confusion.png" in plots.values():
        blocks.append(_Block("image", "Confusion matrices (rows: actual, columns: predicted)", extra="confusion.png"))
    for name, model in _models(results).items():
        matrix = model.get("confusion") or []
        if not matrix:
            continue
        labels = _matrix_labels(results, len(matrix))
        rows = [[labels[i], *(_count(v) for v in row), _count(sum(_number(v) or 0 for v in row))]
                for i, row in enumerate(matrix)]
        blocks += [_Block("h3", name), _table(["actual / predicted", *labels, "Total"], rows)]
    if len(blocks) == 1:
        blocks.append(_Block("p", "No confusion matrices in this run."))
    return blocks


def _calibration_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    method = _text((results.get("run") or {}).get("calibration"))
    blocks = [_Block("h2", "Calibration"), _Block("p", f"Calibration setting: {method}.")]
    if "reliability.png" in plots.values():
        blocks += [_Block("p", "Mean predicted confidence against observed accuracy per bin, before and after "
                               "calibration; the diagonal is perfect calibration."),
                   _Block("image", "Reliability diagrams", extra="reliability.png")]
    rows = []
    for name, model in _models(results).items():
        choice = model.get("calibration") or {}
        after, before = model.get("metrics") or {}, model.get("metrics_uncalibrated") or {}
        candidates = choice.get("candidates") or {}
        tried = "; ".join(f"{m}: log-loss {_fixed(c.get('log_loss'))}, AUC {_fixed(c.get('auc'))}"
                          for m, c in candidates.items())
        if choice:
            rows.append([name, _text(choice.get("method")), tried or NA, _fixed(before.get("auc")),
                         _fixed(after.get("auc"))])
    if rows:
        blocks += [_Block("p", "Per model: the method chosen, the candidates' log-loss and AUC cross-fitted on "
                               "the validation customers, and the test AUC before and after calibration."),
                   _table(["Model", "Chosen", "Candidates (validation, cross-fitted)", "Test AUC before",
                           "Test AUC after"], rows, "lllrr")]
    return blocks if len(blocks) > 2 or "reliability.png" in plots.values() else []


def _decision_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    rows = [[name, _text(model.get("decision_rule"))] for name, model in _models(results).items()
            if model.get("decision_rule")]
    if not rows:
        return []
    return [_Block("h2", "Decision rule"),
            _Block("p", "How each model picks a class from its (calibrated) probabilities; the weights were "
                        "learned on the validation split, never on the test set."),
            _table(["Model", "Rule"], rows, "ll")]


def _importance_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    if "importance.png" not in plots.values():
        return []
    return [_Block("h2", "Feature importance"),
            _Block("p", f"Top {TOP_IMPORTANCE} items by absolute value, per model."),
            _Block("image", "Feature importance", extra="importance.png")]


def _tuning_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    blocks = [_Block("h2", "Hyper-parameter tuning")]
    for name, model in _models(results).items():
        tuning = model.get("tuning")
        if not tuning:
            continue
        metric_name = _text(tuning.get("metric_name"))
        best = tuning.get("best_params") or {}
        early_stopping = tuning.get("method") == "early_stopping"   # the network: one row per epoch
        blocks += [_Block("h3", name),
                   _Block("facts", rows=[["Method", _text(tuning.get("method"))],
                                         ["Metric", metric_name],
                                         ["Training" if early_stopping else "Best parameters", _params(best)]])]
        grid = tuning.get("grid") or []
        keys: list[str] = []
        for point in grid:
            keys += [k for k in (point.get("params") or {}) if k not in keys]
        rows = []
        for point in grid:
            params = point.get("params") or {}
            chosen = (params.get("epoch") == best.get("best_epoch")) if early_stopping else (params == best and best)
            rows.append([*(_param(params.get(k)) for k in keys), _fixed(point.get("metric")),
                         "yes" if chosen else ""])
        if rows:
            blocks.append(_table([*keys, metric_name, "Best"], rows, "r" * (len(keys) + 1) + "l"))
    return blocks if len(blocks) > 1 else []


def _bands_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    blocks = [_Block("h2", "Score distribution and bad rate by score band")]
    if "score_distribution.png" in plots.values():
        blocks.append(_Block("image", "Score distribution by actual class", extra="score_distribution.png"))
    adverse = _text((results.get("run") or {}).get("adverse_class"))
    for name, model in _models(results).items():
        bands = model.get("bad_rate_by_band") or []
        if not bands:
            continue
        rows = [[_count(b.get("band")), _edge(b.get("low")), _edge(b.get("high")), _count(b.get("n")),
                 _count(b.get("bad")), _percent(b.get("bad_rate"))] for b in bands]
        blocks += [_Block("h3", name),
                   _table(["Band", "Low", "High", "Rows", f"Bad ({adverse})", "Bad rate"], rows, "rrrrrr")]
    return blocks if len(blocks) > 1 else []


def _iv_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    rows = [[_text(r.get("feature")), _fixed(r.get("iv")), _yes_no(r.get("kept"))]
            for r in results.get("iv_table") or []]
    body = _table(["Feature", "IV", "Kept"], rows, "lrl") if rows else _Block("p", "No IV table in this run.")
    return [_Block("h2", "Information value"), body]


def _scorecard_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    rows = [[_text(r.get("feature")), _text(r.get("bin")), _fixed(r.get("woe")), _fixed(r.get("points"), 1)]
            for r in results.get("scorecard_table") or []]
    body = (_table(["Feature", "Bin", "WOE", "Points"], rows, "llrr") if rows
            else _Block("p", "No scorecard table in this run."))
    return [_Block("h2", "Scorecard"), body]


def _config_section(results: dict, plots: dict[str, str]) -> list[_Block]:
    import yaml

    config = (results.get("run") or {}).get("config")
    if config is None:
        return [_Block("h2", "Configuration"), _Block("p", "No configuration recorded.")]
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip("\n")
    return [_Block("h2", "Configuration"), _Block("code", text, extra="yaml")]


def _matrix_labels(results: dict, size: int) -> list[str]:
    classes = _classes(results)
    return classes if len(classes) == size else [str(i) for i in range(size)]


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*<>|"})


def _md(text: str) -> str:
    """Backslash-escape what Markdown would read as markup or an HTML tag; keep cells on one line."""
    return str(text).replace("\r", " ").replace("\n", " ").translate(_MD_SPECIAL)


def _render_markdown(blocks: list[_Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(b.kind[1])} {_md(b.text)}")
        elif b.kind == "verdict":
            out.append(f"**{_md(b.text)}**")
        elif b.kind == "p":
            out.append(_md(b.text))
        elif b.kind == "facts":
            out.append("\n".join(f"- **{_md(k)}:** {_md(v)}" for k, v in b.rows))
        elif b.kind == "table":
            lines = ["| " + " | ".join(_md(h) for h in b.header) + " |",
                     "|" + "|".join("---:" if a == "r" else "---" for a in b.align) + "|"]
            lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        elif b.kind == "image":
            out.append(f"![{_md(b.text)}]({b.extra})")
        elif b.kind == "code":
            fence = "`" * max(3, _longest_run(b.text, "`") + 1)
            out.append(f"{fence}{b.extra}\n{b.text}\n{fence}")
    return "\n\n".join(out) + "\n"


def _longest_run(text: str, char: str) -> int:
    best = run = 0
    for c in text:
        run = run + 1 if c == char else 0
        best = max(best, run)
    return best


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
.verdict { font-size: 1.1em; background: #f3f6fa; border-left: 4px solid #2a5d9f; padding: .6em .8em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #eef1f5; text-align: left; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { width: 16em; }
td.better { color: #176b2c; font-weight: bold; }
td.worse { color: #a61b1b; font-weight: bold; }
img { max-width: 100%; height: auto; display: block; margin: .6em 0 1.2em; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: .85em; }
details summary { cursor: pointer; font-weight: bold; }
""".strip()


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _render_html(blocks: list[_Block], title: str) -> str:
    body: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            body.append(f"<{b.kind}>{_e(b.text)}</{b.kind}>")
        elif b.kind == "verdict":
            body.append(f'<p class="verdict"><strong>{_e(b.text)}</strong></p>')
        elif b.kind == "p":
            body.append(f"<p>{_e(b.text)}</p>")
        elif b.kind == "facts":
            rows = "\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in b.rows)
            body.append(f'<table class="facts">\n{rows}\n</table>')
        elif b.kind == "table":
            head = "".join(f'<th class="{a}">{_e(h)}</th>' for h, a in zip(b.header, b.align))
            rows = "\n".join("<tr>" + "".join(_html_cell(c, a) for c, a in zip(row, b.align)) + "</tr>"
                             for row in b.rows)
            body.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>")
        elif b.kind == "image":
            body.append(f'<img src="{_e(b.extra)}" alt="{_e(b.text)}">')
        elif b.kind == "code":
            body.append(f"<details>\n<summary>Configuration used ({_e(b.extra)})</summary>\n"
                        f'<pre><code class="language-{_e(b.extra)}">{_e(b.text)}</code></pre>\n</details>')
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _html_cell(text: str, align: str) -> str:
    classes = [align] + ([text] if text in (BETTER, WORSE) else [])
    return f'<td class="{" ".join(classes)}">{_e(text)}</td>'


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
