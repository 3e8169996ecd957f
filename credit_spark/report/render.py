"""The list of blocks rendered as Markdown and as a self-contained HTML page."""
from __future__ import annotations

import html
from typing import Any

from credit_spark.report.format import BETTER, WORSE
from credit_spark.report.sections import _Block


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
