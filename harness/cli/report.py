"""`tinyhil report`: result rows as a table, CSV, Markdown or HTML."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.cli.common import console, err_console


def cmd_report(args: argparse.Namespace) -> int:
    """Render result rows as a terminal table, and as CSV, Markdown or HTML when asked."""
    from harness.report import default_inputs, html_page, load_report, markdown, mlperf_csv, terminal

    paths = [Path(p) for p in args.results] or default_inputs()
    report = load_report(paths)
    terminal.render(report, console)
    from harness.shard import merge_problems

    for problem in merge_problems(report.history.to_dict("records")):
        err_console.print(f"[yellow]warning: incomplete sharded suite:[/] {escape(problem)}", soft_wrap=True,
                          highlight=False)
    for path, module in ((args.csv, mlperf_csv), (args.md, markdown), (args.html, html_page)):
        if path:
            console.print(f"wrote {escape(str(module.write(report, Path(path))))}")
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    report = sub.add_parser("report", help="render result rows as a table, CSV, Markdown or HTML")
    report.add_argument("results", nargs="*", metavar="RESULTS",
                        help="JSON-lines result files or directories (default: results/*.jsonl)")
    report.add_argument("--csv", metavar="PATH", help="write an MLPerf-Tiny-shaped CSV")
    report.add_argument("--md", metavar="PATH", help="write a Markdown report")
    report.add_argument("--html", metavar="PATH", help="write a self-contained HTML page with plots")
    report.set_defaults(func=cmd_report)
