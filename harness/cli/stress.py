"""`tinyhil stress`: benches at once on a loaded host."""

from __future__ import annotations

import argparse
import os
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.cli.common import console
from harness.errors import UserInputError


def cmd_stress(args: argparse.Namespace) -> int:
    """N benches at once for M rounds under CPU hogs; exit 1 on any failed or differing bench."""
    from harness.cli.progress import progress_display

    from harness.stress import StressCase, run_stress

    if args.jobs < 1 or args.rounds < 1 or args.hogs < 0:
        raise UserInputError("--jobs and --rounds must be at least 1, --hogs at least 0")
    cases = [StressCase(m, t) for t in (args.target or ["cortex-m4"]) for m in (args.model or ["kws"])]
    with progress_display("bar", transient=False) as progress:
        task = progress.add_task("stress", total=args.jobs * args.rounds)
        report = run_stress(cases, args.jobs, args.rounds, args.hogs, args.accuracy, args.timeout,
                            progress=lambda msg: progress.update(task, description=msg),
                            on_bench=lambda: progress.advance(task))
    table = Table(title=f"{report.jobs} benches at once x {report.rounds} rounds, {report.hogs} busy-loop hogs"
                        f"{', --accuracy' if report.accuracy else ''} (load average {report.load_avg:.1f} "
                        f"on {os.cpu_count()} CPUs)")
    for col in ("model", "target", "idle instructions", "idle est. cycles", "benches", "ok", "failed",
                "wall s (max)"):
        table.add_column(col, justify="left" if col in ("model", "target") else "right")
    for t in report.tallies:
        table.add_row(t.case.model, t.case.target, f"{t.idle_instructions:,}" if t.idle_instructions else "-",
                      f"{t.idle_est_cycles:,}" if t.idle_est_cycles else "-",
                      str(t.runs), str(t.ok), str(len(t.failures)),
                      f"{max(t.wall_s):.1f}" if t.wall_s else "-")
    console.print(table)
    for t in report.tallies:
        for why in t.failures:
            console.print(f"[red]{escape(t.case.model)} on {escape(t.case.target)}[/]: {escape(why)}")
    console.print(f"{report.benches} benches, {report.failed} failed")
    return 1 if report.failed else 0


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    stress = sub.add_parser("stress", help="benches at once on a loaded host: every count must equal the idle run's")
    stress.add_argument("--target", action="append", default=[], help="repeatable (default cortex-m4)")
    stress.add_argument("--model", action="append", default=[], help="repeatable (default kws)")
    stress.add_argument("--jobs", type=int, default=4, help="benches started at once per round (default 4)")
    stress.add_argument("--rounds", type=int, default=10, help="rounds (default 10)")
    stress.add_argument("--hogs", type=int, default=2, help="busy-loop processes meanwhile (default 2)")
    stress.add_argument("--accuracy", action="store_true",
                        help="each bench an --accuracy run, the host interpreter's outputs recomputed "
                             "during the firmware sessions")
    stress.add_argument("--timeout", type=float, default=900.0, help="seconds per bench process")
    stress.set_defaults(func=cmd_stress)
