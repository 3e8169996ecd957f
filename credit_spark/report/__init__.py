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

import json
import logging
import os
from pathlib import Path

from credit_spark.report.format import _normalise
from credit_spark.report.sections import _build_blocks, verdict
from credit_spark.report.render import _render_html, _render_markdown
from credit_spark.report.plots import PLOT_FILES, _write_plots

__all__ = ["write_report", "load_results", "verdict", "RESULTS_FILE", "MARKDOWN_FILE", "HTML_FILE"]

logger = logging.getLogger(__name__)


RESULTS_FILE = "results.json"
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"

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
