"""The report's content as one list of blocks (headings, paragraphs, tables, images, code),
section by section; both the Markdown and the HTML page are rendered from it."""
from __future__ import annotations

from dataclasses import dataclass, field

from credit_spark.report.format import (BETTER, HEADLINE_METRICS, LOWER_IS_BETTER, NA, NOT_SIGNIFICANT, TOP_IMPORTANCE,
                                        WORSE, _classes, _comparison_row, _confidence, _count, _edge, _fixed,
                                        _models, _number, _ordered, _param, _params, _percent, _promotion_phrase,
                                        _signed, _significance, _text, _yes_no)


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
