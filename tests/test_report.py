"""The report renderer: files, verdict wording, number formats, escaping, NaN handling and re-rendering."""
from __future__ import annotations

import copy
import json
import math

import pytest

from credit_spark.report import load_results, verdict, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
POOR = "<Poor & bad>"
CLASSES = ["Good", "Standard", POOR]
PLOTS = ["roc.png", "reliability.png", "confusion.png", "importance.png", "score_distribution.png"]


def _model(shift: float, *, ks: float = 0.41) -> dict:
    """One model's results for the three-class case; shift makes the models differ."""
    return {
        "metrics": {"accuracy": 0.75 + shift, "macro_f1": 0.71 + shift, "weighted_f1": 0.74 + shift,
                    "auc": 0.85 + shift, "gini": 0.70 + 2 * shift, "ks": ks, "log_loss": 0.62 - shift,
                    "brier": 0.33 - shift, "ece": 0.021},
        "metrics_uncalibrated": {"ece": 0.064, "brier": 0.35, "log_loss": 0.66},
        "per_class": {c: {"precision": 0.7 + i / 20, "recall": 0.68 + i / 20, "f1": 0.69 + i / 20,
                          "support": 300 + 100 * i, "auc": 0.84 + i / 50, "ks": 0.5}
                      for i, c in enumerate(CLASSES)},
        "confusion": [[250, 40, 10], [35, 330, 35], [5, 45, 1250]],
        "roc": {c: {"fpr": [0.0, 0.1, 0.3, 1.0], "tpr": [0.0, 0.5, 0.8, 1.0], "auc": 0.84 + shift}
                for c in CLASSES},
        "reliability": {key: [{"bin": b, "n": 100, "confidence": 0.45 + b / 10,
                               "accuracy": 0.45 + b / 10 - (0.05 if key == "before" else 0.01)}
                              for b in range(5)] for key in ("before", "after")},
        "score_distribution": {"score": "P(<Poor & bad>)", "edges": [0.0, 0.25, 0.5, 0.75, 1.0],
                               "counts": {c: [40 * (i + 1), 30, 20, 10 * (i + 1)] for i, c in enumerate(CLASSES)}},
        "importance": {"kind": "gain", "items": [{"feature": f"f{i}", "value": (-1) ** i * i / 20}
                                                 for i in range(20)]},
        "tuning": {"method": "grid", "metric_name": "macro_f1", "best_params": {"maxDepth": 5, "numTrees": 50},
                   "grid": [{"params": {"maxDepth": d, "numTrees": 50}, "metric": 0.70 + d / 100}
                            for d in (3, 5)]},
    }


def _comparison_row(model: str, diff: float, low: float, high: float) -> dict:
    return {"model": model, "baseline": "scorecard", "metric": "macro_f1", "model_value": 0.71 + diff,
            "baseline_value": 0.71, "difference": diff, "ci_low": low, "ci_high": high,
            "confidence": 0.95, "samples": 1000}


def make_results() -> dict:
    scorecard = _model(0.0)
    for key in ("roc", "reliability", "importance", "tuning", "score_distribution"):
        del scorecard[key]
    return {
        "title": "Credit scoring run 7",
        "run": {"version": 7, "mlflow_run_id": "abc123", "trained_at": "2024-05-01T12:00:00+00:00",
                "dataset": "credit_score", "classes": CLASSES, "adverse_class": POOR, "binary": False,
                "features_version": 3,
                "split": {"mode": "customer", "train_rows": 12000, "validation_rows": 3000, "test_rows": 2000,
                          "description": "customers hashed into disjoint splits"},
                "primary_metric": "macro_f1", "calibration": "isotonic", "baseline": "scorecard",
                "config": {"train": {"algorithms": ["random_forest", "gbt"], "seed": 42}}},
        "models": {"random_forest": _model(0.031), "gbt": _model(0.004, ks=math.nan), "scorecard": scorecard},
        "comparison": [_comparison_row("random_forest", 0.031, 0.012, 0.049),
                       _comparison_row("gbt", 0.004, -0.010, 0.018)],
        "selected": "random_forest",
        "promotion": {"decision": "promoted", "challenger": "random_forest", "champion_before": None,
                      "reason": "first model"},
        "iv_table": [{"feature": "income", "iv": 0.3125, "kept": True},
                     {"feature": "zip", "iv": 0.0011, "kept": False}],
        "scorecard_table": [{"feature": "income", "bin": "[0, 2000)", "woe": -0.4567, "points": 12.34}],
    }


def make_binary_results() -> dict:
    results = make_results()
    results["run"].update(classes=["good", "bad"], adverse_class="bad", binary=True)
    for model in results["models"].values():
        model["per_class"] = {c: {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 500, "auc": 0.81,
                                  "ks": 0.45} for c in ("good", "bad")}
        model["confusion"] = [[400, 50], [20, 30]]
        model.pop("roc", None)
        model.pop("score_distribution", None)
        model["bad_rate_by_band"] = [
            {"band": 1, "low": 0.0, "high": 0.2, "n": 400, "bad": 12, "bad_rate": 0.03},
            {"band": 2, "low": 0.2, "high": 1.0, "n": 100, "bad": 38, "bad_rate": math.nan},
        ]
    return results


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One rendered three-class report shared by the read-only tests (plots take a moment)."""
    results = make_results()
    out = tmp_path_factory.mktemp("report")
    written = write_report(results, out)
    return results, out, written


# ---------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------

def test_writes_all_files_and_valid_pngs(report):
    _, out, written = report
    names = sorted(p.name for p in written)
    assert names == sorted(["results.json", "report.md", "report.html", *PLOTS])
    for path in written:
        assert path.parent == out and path.is_file()
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        assert len(data) > 5000, name
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for name in PLOTS:
        assert f"]({name})" in md
        assert f'<img src="{name}"' in html


def test_plot_skipped_when_no_model_has_data(tmp_path):
    results = make_binary_results()  # no model has roc or score_distribution
    for model in results["models"].values():
        model.pop("importance", None)
    written = {p.name for p in write_report(results, tmp_path)}
    assert "roc.png" not in written and not (tmp_path / "roc.png").exists()
    assert "importance.png" not in written and "score_distribution.png" not in written
    assert {"confusion.png", "reliability.png"} <= written
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    for name in ("roc.png", "importance.png", "score_distribution.png"):
        assert name not in md and name not in html


# ---------------------------------------------------------------------------------------------------------
# verdict
# ---------------------------------------------------------------------------------------------------------

def test_verdict_better_and_promoted():
    assert verdict(make_results()) == (
        "random_forest beats the scorecard baseline on macro_f1 by +0.031 (95% CI +0.012 to +0.049); "
        "promoted to champion.")


def test_verdict_not_significant_and_kept():
    results = make_results()
    results["selected"] = "gbt"
    results["promotion"] = {"decision": "kept", "challenger": "gbt", "champion_before": "random_forest",
                            "reason": "challenger not significantly better."}
    assert verdict(results) == (
        "gbt is not significantly different from the scorecard baseline on macro_f1 "
        "(+0.004, 95% CI -0.010 to +0.018); champion random_forest kept: challenger not significantly better.")


def test_verdict_worse():
    results = make_results()
    results["comparison"][0].update(difference=-0.02, ci_low=-0.035, ci_high=-0.0049)
    results["promotion"] = {"decision": "kept", "challenger": "random_forest", "champion_before": "gbt",
                            "reason": "worse than baseline"}
    assert verdict(results) == (
        "random_forest is worse than the scorecard baseline on macro_f1 (-0.020, 95% CI -0.035 to -0.005); "
        "champion gbt kept: worse than baseline.")


def test_verdict_baseline_selected():
    results = make_results()
    results["selected"] = "scorecard"
    results["promotion"] = {"decision": "kept", "challenger": "scorecard", "champion_before": "gbt",
                            "reason": "no challenger beats the baseline"}
    assert verdict(results) == (
        "the scorecard baseline is the best model on macro_f1; champion gbt kept: no challenger beats the baseline.")


def test_verdict_is_first_on_both_pages(report):
    results, out, _ = report
    text = verdict(results)
    md_lines = (out / "report.md").read_text().splitlines()
    assert md_lines[0] == "# Credit scoring run 7"
    assert md_lines[2] == f"**{text}**"
    html = (out / "report.html").read_text()
    body = html.split("<body>", 1)[1]
    assert body.index(f"<strong>{text}</strong>") < body.index("<h2>")


# ---------------------------------------------------------------------------------------------------------
# content and formats
# ---------------------------------------------------------------------------------------------------------

def test_markdown_comparison_rows(report):
    _, out, _ = report
    md = (out / "report.md").read_text()
    assert ("| random_forest | macro_f1 | 0.7410 | 0.7100 | +0.031 | [+0.012, +0.049] | better | 1,000 |"
            in md.splitlines())
    assert ("| gbt | macro_f1 | 0.7140 | 0.7100 | +0.004 | [-0.010, +0.018] | no significant difference | 1,000 |"
            in md.splitlines())
    # headline metrics: accuracy .. ece, then ece before calibration
    assert ("| random_forest | 0.7810 | 0.7410 | 0.7710 | 0.8810 | 0.7620 | 0.4100 | 0.5890 | 0.2990 | 0.0210 "
            "| 0.0640 |" in md.splitlines())
    order = [md.index(h) for h in ("## Run", "## Model comparison", "### Difference vs the scorecard baseline",
                                   "## Promotion decision", "## Per-class metrics", "## Confusion matrices",
                                   "## Hyper-parameter tuning", "## Information value", "## Scorecard",
                                   "## Configuration")]
    assert order == sorted(order)
    assert "- **Rows (train / validation / test):** 12,000 / 3,000 / 2,000" in md
    assert "| income | [0, 2000) | -0.4567 | 12.3 |" in md
    assert "| income | 0.3125 | yes |" in md
    assert "| 5 | 50 | 0.7500 | yes |" in md
    assert "seed: 42" in md


def test_html_escapes_text(report):
    _, out, _ = report
    html = (out / "report.html").read_text()
    assert POOR not in html
    assert "&lt;Poor &amp; bad&gt;" in html
    assert "<details>" in html and "seed: 42" in html
    md = (out / "report.md").read_text()
    assert "| \\<Poor & bad\\> |" in md  # a table cell of the per-class table, not an HTML tag


def test_nan_renders_na_and_json_null(report):
    _, out, _ = report
    md = (out / "report.md").read_text()
    gbt_row = next(line for line in md.splitlines() if line.startswith("| gbt | 0.7540 |"))
    assert gbt_row.split(" | ")[6] == "n/a"  # ks
    raw = (out / "results.json").read_text()
    assert "NaN" not in raw
    assert json.loads(raw)["models"]["gbt"]["metrics"]["ks"] is None
    assert "<td class=\"r\">n/a</td>" in (out / "report.html").read_text()


def test_binary_bad_rate_by_band(tmp_path):
    write_report(make_binary_results(), tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| Band | Low | High | Rows | Bad (bad) | Bad rate |" in md
    assert "| 1 | 0.0000 | 0.2000 | 400 | 12 | 3.00% |" in md
    assert "| 2 | 0.2000 | 1.0000 | 100 | 38 | n/a |" in md


# ---------------------------------------------------------------------------------------------------------
# storing and re-rendering
# ---------------------------------------------------------------------------------------------------------

def test_round_trip_rerenders_identical_pages(report, tmp_path):
    results, out, _ = report
    pristine = make_results()
    assert math.isnan(results["models"]["gbt"]["metrics"]["ks"])  # the input was not modified
    assert json.dumps(results, sort_keys=True) == json.dumps(pristine, sort_keys=True)

    stored = load_results(out)
    assert stored["models"]["gbt"]["metrics"]["ks"] is None
    assert stored["run"]["classes"] == CLASSES
    write_report(copy.deepcopy(stored), tmp_path)
    for name in ("report.md", "report.html", "results.json"):
        assert (tmp_path / name).read_text() == (out / name).read_text(), name
    assert verdict(stored) == verdict(results)


def test_network_training_history_marks_the_best_epoch(tmp_path):
    results = make_results()
    results["models"]["gbt"]["tuning"] = {
        "method": "early_stopping", "metric_name": "validation_loss",
        "best_params": {"backend": "horovod", "world_size": 2, "epochs": 3, "best_epoch": 2},
        "grid": [{"params": {"epoch": e, "train_loss": 1.0 / e}, "metric": loss}
                 for e, loss in ((1, 0.9), (2, 0.8), (3, 0.85))]}
    write_report(results, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "- **Training:** backend=horovod, world_size=2, epochs=3, best_epoch=2" in md
    assert "| epoch | train_loss | validation_loss | Best |" in md
    section = md[md.index("### gbt", md.index("## Hyper-parameter tuning")):]
    section = section[:section.index("\n## ")]
    assert [line for line in section.splitlines() if line.endswith("| yes |")] == ["| 2 | 0.5 | 0.8000 | yes |"]
