"""The terminal report: one rich table of the newest row per key, failures, notes."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.cli.tables import compact_table
from harness.report import cells
from harness.report.load import Report
from harness.results import engine_label


def results_table(report: Report) -> Table:
    """The newest row per key in 100 columns: totals only (the flash and RAM splits, the
    host's accuracy and every source are in the HTML, Markdown and CSV reports)."""
    rows = report.latest_rows()
    have = {f for f in ("instructions", "est_cycles", "cycles") if any(cells.number(r, f) is not None for r in rows)}
    have |= {"instructions"} if not have else set()
    accuracy = any(cells.number(r, "accuracy") is not None for r in rows)
    est = {r.get("latency_source") != "cycles" for r in rows if cells.ok(r)}
    columns = ["benchmark on target (engine)", *(f"{name}#" for f, name in
                                                 (("instructions", "instructions"), ("est_cycles", "est.\ncycles"),
                                                  ("cycles", "cycles")) if f in have),
               "est.\nms#" if est == {True} else "latency\nms#", "energy\nuJ#", "flash\nKiB#", "RAM\nKiB#",
               *(["accuracy (inputs)"] if accuracy else []), "status!"]
    table = compact_table("tinyhil results (newest row per benchmark, target, engine, recipe)", columns)
    for r in rows:
        name = f"{r['benchmark']} on {r['target']} ({engine_label(r)}" + (
            f", {r['recipe']})" if r.get("recipe") not in (None, "", "none") else ")")
        flash, ram = cells.kib(r, "flash_bytes"), cells.kib(r, "ram_bytes")
        texts = [escape(name), *(cells.int_text(r, f) for f in ("instructions", "est_cycles", "cycles") if f in have),
                 cells.latency_text(r), cells.energy_text(r), "-" if flash is None else f"{flash:.1f}",
                 "-" if ram is None else f"{ram:.1f}", *([escape(cells.accuracy_short(r))] if accuracy else []),
                 "[green]ok[/]" if cells.ok(r) else "[red]failed[/]"]
        table.add_row(*texts)
    return table


def render(report: Report, console: Console) -> None:
    """Print the table, then each failure on its own line, then what the numbers are."""
    rows = report.latest_rows()
    console.print(results_table(report))
    for line in cells.failures(rows):
        console.print(f"[red]failed:[/] {escape(line)}", soft_wrap=True)
    for line in cells.notes(rows):
        console.print(f"[dim]{escape(line)}[/]", soft_wrap=True)
    console.print(f"[dim]{len(report.history)} rows from {len(report.sources)} file(s); the newest of each "
                  f"key shown ({len(rows)})[/]")
