"""The Markdown report: the results table, failures and notes, for a PR comment or a wiki."""

from __future__ import annotations

from pathlib import Path

from harness.report import cells
from harness.report.load import Report
from harness.results import now


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render(report: Report) -> str:
    rows = report.latest_rows()
    cols = cells.table_columns(rows)
    lines = ["# tinyhil results", "",
             f"Newest row per (benchmark, target, engine, recipe) from {len(report.sources)} file(s), "
             f"{len(report.history)} rows; generated {now()}.", "",
             "| " + " | ".join(_escape(c.header) for c in cols) + " |",
             "|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|"]
    for r in rows:
        texts = [_escape(c.cell(r)) for c in cols]
        if not cells.ok(r):
            texts[-1] = "**failed**"
        lines.append("| " + " | ".join(texts) + " |")
    fails = cells.failures(rows)
    if fails:
        lines += ["", "## Failed", ""] + [f"- {_escape(f)}" for f in fails]
    notes = cells.notes(rows)
    if notes:
        lines += ["", "## What the numbers are", ""] + [f"- {_escape(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def write(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report))
    return path
