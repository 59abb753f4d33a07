"""The terminal report: one rich table of the newest row per key, failures, notes."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.report import cells
from harness.report.load import Report


def results_table(report: Report) -> Table:
    rows = report.latest_rows()
    table = Table(title="tinyhil results (newest row per benchmark, target, engine, recipe)")
    cols = cells.table_columns(rows)
    for c in cols:
        # Numbers never wrap; the accuracy text (value and metric name) may.
        table.add_column(c.header, justify="right" if c.numeric else "left", no_wrap=c.header != "accuracy")
    for r in rows:
        texts = [escape(c.cell(r)) for c in cols]
        texts = [f"[red]{t}[/]" if t in ("failed", "differs") else f"[green]{t}[/]" if t == "ok" else t
                 for t in texts]
        table.add_row(*texts, style="" if cells.ok(r) else "red")
    return table


def render(report: Report, console: Console) -> None:
    """Print the table, then each failure on its own line, then what the numbers are."""
    rows = report.latest_rows()
    console.print(results_table(report))
    for line in cells.failures(rows):
        console.print(f"[red]failed:[/] {escape(line)}", soft_wrap=True)
    for line in cells.notes(rows):
        console.print(f"[dim]{escape(line)}[/]")
    console.print(f"[dim]{len(report.history)} rows from {len(report.sources)} file(s); the newest of each "
                  f"key shown ({len(rows)})[/]")
