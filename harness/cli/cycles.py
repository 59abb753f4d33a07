"""`tinyhil cycles`, `cycles-overhead`, `calibrate`: the timing model on any ELF, its cost, its fit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.cli.common import console
from harness.errors import UserInputError


def cmd_cycles(args: argparse.Namespace) -> int:
    """Any bare-metal ELF under QEMU with the timing model: per function and in total."""
    import json

    from harness.cycles import load_target_model
    from harness.cycles.run import run_cycles
    from harness.targets import find_target

    target = find_target(args.target)
    if target.cycle_model.unsupported:
        raise UserInputError(f"target {target.name} has no cycle model: {target.cycle_model.unsupported}")
    if not (args.timeout > 0):
        raise UserInputError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    table = load_target_model(target)
    # With --json the program's own output goes to stderr, the object alone to stdout.
    result = run_cycles(Path(args.elf), target, table, target.cycle_model.memory, args.function or (),
                        args.until, args.timeout, passthrough=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    table_out = Table(title=f"{Path(args.elf).name} on {target.name}: est. cycles from {result.cycle_model}")
    for col in ("function", "calls", "instructions / call", "est. cycles / call", "est. CPI"):
        table_out.add_column(col, justify="left" if col == "function" else "right")
    for f in result.functions:
        cpi = f"{f.est_cycles_per_call / f.instructions_per_call:.3f}" if f.instructions_per_call else "-"
        table_out.add_row(escape(f.name), f"{f.calls:,}", f"{f.instructions_per_call:,.0f}",
                          f"{f.est_cycles_per_call:,.0f}", cpi)
    t = result.total
    table_out.add_row("[bold]whole run[/]", "", f"{t.instructions:,}", f"{t.cycles:,}",
                      f"{t.cycles / t.instructions:.3f}" if t.instructions else "-")
    console.print(table_out)
    console.print(f"whole run: issue {t.base:,} + taken branches {t.branch:,} + fetch stalls {t.fetch:,} + "
                  f"data stalls {t.data:,} est. cycles (dual issue saved {result.report.dual_saved:,}); "
                  f"instructions from QEMU -icount, est. cycles from the timing model "
                  f"(docs/cycle-model.md)", highlight=False)
    return 0


def cmd_cycles_overhead(args: argparse.Namespace) -> int:
    """What the timing model costs: each model's QEMU session with and without the plugin."""
    import time

    from harness.bench import fixed_input, input_job, resolve_models
    from harness.build import build_firmware
    from harness.engines.builtin import generate
    from harness.errors import RunnerError
    from harness.model import load_model
    from harness.runners.qemu import QemuRunner
    from harness.targets import find_target

    if args.runs < 1 or args.repeat < 1:
        raise UserInputError("--runs and --repeat must be at least 1")
    target = find_target(args.target)
    table = Table(title=f"timing model overhead on {target.name}: wall time of a QEMU session of "
                        f"{args.runs} inferences (best of {args.repeat})")
    for c in ("benchmark", "instructions / inference", "plain QEMU s", "with the model s", "x"):
        table.add_column(c, justify="left" if c == "benchmark" else "right")
    totals = [0.0, 0.0]
    for bench, path, ds in resolve_models(args.model):
        model = load_model(path)
        image = build_firmware(generate(model, target.builtin_isa), target)
        job = input_job(model, fixed_input(model, ds), runs=args.runs)
        walls = []
        count = 0
        for with_model in (False, True):
            best = float("inf")
            for _ in range(args.repeat):
                start = time.monotonic()
                rec = QemuRunner(cycle_model=with_model).run(image.elf, target, job, args.timeout)
                if not rec.ok:
                    raise RunnerError(f"{bench}: {rec.error}")
                best = min(best, time.monotonic() - start)
                count = rec.count_per_inference
            walls.append(best)
        totals = [totals[0] + walls[0], totals[1] + walls[1]]
        table.add_row(bench, f"{count:,}", f"{walls[0]:.2f}", f"{walls[1]:.2f}", f"{walls[1] / walls[0]:.2f}")
    table.add_row("[bold]suite[/]", "", f"{totals[0]:.2f}", f"{totals[1]:.2f}", f"{totals[1] / totals[0]:.2f}")
    console.print(table)
    console.print("[dim]wall time of the whole session (QEMU start, the DUT conversation, the inferences); "
                  "the goal is at most 3x plain QEMU. A benchmark, not a test: it depends on the host.[/]")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit the timing model's per-class costs to a board's cycle counter; store them."""
    import tempfile

    from harness.cli.progress import progress_display

    from harness.bench import resolve_models, shared_dir
    from harness.cycles.calibrate import CalibrationRow, microbenchmark_models, run_calibration
    from harness.hosting import prepare_runner
    from harness.targets import find_target

    target = find_target(args.target)
    if target.cycle_model.unsupported:
        raise UserInputError(f"target {target.name} has no cycle model: {target.cycle_model.unsupported}")
    runner = prepare_runner("board", args.port, [target])
    with tempfile.TemporaryDirectory(prefix="tinyhil-calibrate-") as tmp:
        benchmarks = microbenchmark_models(Path(tmp))
        if args.model or shared_dir() is not None:
            benchmarks += [(b, p) for b, p, _ in resolve_models(args.model or [])]
        with progress_display("spinner") as progress:
            task = progress.add_task("calibrate", total=None)
            result = run_calibration(target, runner, benchmarks, args.timeout,
                                     progress=lambda m: progress.update(task, description=m),
                                     write=not args.dry_run)
    table = Table(title=f"{target.name}: the timing model against the board's cycle counter ({args.port})")
    for c in ("benchmark", "board cycles", "model before", "error", "model after", "error"):
        table.add_column(c, justify="left" if c == "benchmark" else "right")
    for r in result.rows:
        table.add_row(r.benchmark, f"{r.board_cycles:,}", f"{r.before:,}",
                      f"{100 * CalibrationRow.error(r.before, r.board_cycles):+.1f}%", f"{r.after:,}",
                      f"{100 * CalibrationRow.error(r.after, r.board_cycles):+.1f}%")
    console.print(table)
    before = [abs(CalibrationRow.error(r.before, r.board_cycles)) for r in result.rows]
    after = [abs(CalibrationRow.error(r.after, r.board_cycles)) for r in result.rows]
    console.print(f"mean |error| {100 * sum(before) / len(before):.1f}% before, "
                  f"{100 * sum(after) / len(after):.1f}% after", highlight=False)
    if result.fitted:
        console.print("fitted: " + ", ".join(f"{k} {result.table_costs[k]} -> {v} cycles"
                                             for k, v in sorted(result.fitted.items())), highlight=False)
    else:
        console.print("fitted: the table's costs already fit best; nothing to override")
    if result.path is not None:
        console.print(f"stored as {escape(str(result.path))}: every later run on {target.name} uses it "
                      "(delete the file to go back to the table)", highlight=False)
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    cycles = sub.add_parser("cycles", help="run a bare-metal ELF under QEMU with the timing model: est. "
                                           "cycles per function and in total")
    cycles.add_argument("elf", metavar="ELF", help="an ELF built for the target's QEMU machine")
    cycles.add_argument("--target", required=True, help="target name (its QEMU machine and cycle model)")
    cycles.add_argument("--function", action="append", default=[], metavar="SYMBOL",
                        help="report this function per call, inclusive of its callees; repeatable")
    cycles.add_argument("--until", metavar="SYMBOL", help="end the run when this function is entered")
    cycles.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    cycles.add_argument("--json", action="store_true", help="one JSON object on stdout")
    cycles.set_defaults(func=cmd_cycles)

    overhead = sub.add_parser("cycles-overhead", help="wall time of QEMU sessions with and without the "
                                                      "timing model (a benchmark)")
    overhead.add_argument("--target", default="cortex-m4", help="target (default cortex-m4)")
    overhead.add_argument("--model", action="append", default=[], help="repeatable (default: the four)")
    overhead.add_argument("--runs", type=int, default=10, help="inferences per session (default 10)")
    overhead.add_argument("--repeat", type=int, default=3, help="sessions per case, best taken (default 3)")
    overhead.add_argument("--timeout", type=float, default=600.0)
    overhead.set_defaults(func=cmd_cycles_overhead)

    calibrate = sub.add_parser("calibrate", help="fit the timing model to a board's cycle counter (DWT) and "
                                                 "store the corrections for that target")
    calibrate.add_argument("--target", required=True, help="the board's target (e.g. stm32f746)")
    calibrate.add_argument("--port", required=True, help="the board's serial port (any pyserial URL)")
    calibrate.add_argument("--model", action="append", default=[],
                           help="also these models (default: the four MLPerf Tiny models when found)")
    calibrate.add_argument("--timeout", type=float, default=300.0, help="seconds per firmware run")
    calibrate.add_argument("--dry-run", action="store_true", help="fit and report, store nothing")
    calibrate.set_defaults(func=cmd_calibrate)
