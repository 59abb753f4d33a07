"""The `tinyhil` command line: one function per subcommand; only main() exits."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console
from rich.table import Table

from harness import __version__
from harness.errors import CheckFailed, TinyhilError, UserInputError

console = Console()
if not console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    console = Console(width=160)
err_console = Console(stderr=True)


def cmd_bench(args: argparse.Namespace) -> int:
    """Build one firmware per model and target, run it, and print an MLPerf-Tiny-style table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.bench import BenchCase, resolve_models, run_case
    from harness.build import find_qemu, find_toolchain
    from harness.model import load_model
    from harness.engines.builtin import generate
    from harness.results import default_results_path, write_csv, write_rows
    from harness.runners.qemu import QemuRunner
    from harness.targets import find_target

    targets = [find_target(t) for t in (args.target or ["cortex-m4"])]
    models = resolve_models(args.model, Path(args.models_dir) if args.models_dir else None)
    for _, path, _ in models:  # user mistakes first, before minutes of building
        generate(load_model(path))
    for t in targets:
        if t.qemu is None:
            raise UserInputError(f"target {t.name} cannot run under QEMU (no [qemu] section in {t.path})")
    find_toolchain()
    runner = QemuRunner(str(find_qemu()))
    cases = [BenchCase(b, p, d, t) for t in targets for b, p, d in models]

    rows = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as progress:
        overall = progress.add_task("bench", total=len(cases))
        for case in cases:
            label = f"{case.benchmark} on {case.target.name}"

            def note(msg: str, label: str = label) -> None:
                progress.update(overall, description=f"{label}: {msg}")

            rows.append(run_case(case, runner, args.runs, args.warmup, args.timeout, note))
            progress.advance(overall)

    out = Path(args.out) if args.out else default_results_path()
    write_rows(rows, out)
    if args.csv:
        write_csv(rows, Path(args.csv))
    console.print(bench_table(rows))
    notes = sorted({f"{r.target}: {r.proxy}" for r in rows if r.proxy})
    for n in notes:
        console.print(f"[dim]{n}[/]")
    console.print("[dim]instructions: QEMU -icount shift=0 retired instructions per inference; "
                  "est. latency = est_cycles (instructions x the target's CPI) / clock; "
                  "energy = est. latency x datasheet active power. Sources: the target descriptors.[/]")
    console.print(f"rows written to {out}" + (f" and {args.csv}" if args.csv else ""))
    failed = [r for r in rows if r.status != "ok"]
    for r in failed:
        err_console.print(f"[red]failed:[/] {r.benchmark} on {r.target}: {r.error}", soft_wrap=True)
    return 1 if failed else 0


def bench_table(rows: list[Any]) -> Table:
    table = Table(title="tinyhil bench (builtin engine)")
    cols = ("benchmark", "target", "instructions", "est. latency ms", "flash KiB (code+weights+other)",
            "RAM KiB (static+stack)", "energy uJ", "output", "status")
    for c in cols:
        table.add_column(c, justify="left" if c in ("benchmark", "target", "status") else "right")
    for r in rows:
        ok = r.status == "ok"
        flash = (f"{r.flash_bytes / 1024:.1f} ({r.flash_code_bytes / 1024:.1f}+"
                 f"{r.flash_weights_bytes / 1024:.1f}+{r.flash_other_bytes / 1024:.1f})")
        ram = (f"{r.ram_bytes / 1024:.1f} ({r.ram_static_bytes / 1024:.1f}+{r.ram_stack_bytes / 1024:.1f})"
               if ok else f"{r.ram_static_bytes / 1024:.1f} (static)")
        table.add_row(
            r.benchmark, r.target,
            f"{r.instructions:,}" if ok else "-",
            f"{r.latency_ms:.2f}" if ok else "-",
            flash, ram,
            f"{r.energy_uj:,.0f}" if ok else "-",
            "[green]= reference[/]" if r.output_matches_reference else "[red]differs[/]" if ok else "-",
            "[green]ok[/]" if ok else "[red]failed[/]",
        )
    return table


def cmd_engine_check(args: argparse.Namespace) -> int:
    """Compile the builtin engine's C for the host and compare with TFLM byte for byte."""
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    from harness.datasets import load_dataset, random_samples
    from harness.engines.builtin.check import CheckResult, check_model
    from harness.model import load_model

    results: list[CheckResult] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        for path in args.models:
            model = load_model(path)
            if args.inputs:
                samples = load_dataset(args.inputs, model, limit=args.limit)
            else:
                samples = random_samples(model, args.count, args.seed)
            task = progress.add_task(f"{model.name}: starting")

            def note(msg: str, task: TaskID = task, name: str = model.name) -> None:
                progress.update(task, description=f"{name}: {msg}")

            workdir = Path(args.keep) / model.name if args.keep else None
            results.append(check_model(model, samples, workdir=workdir, progress=note))
            progress.remove_task(task)

    table = Table(title="builtin engine vs TFLM interpreter (host)")
    for col in ("model", "ops", "MACs", "inputs", "arena B", "TFLM planned B", "TFLM total B",
                "weights B", "max abs diff", "time s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results:
        diff = f"[green]{r.max_abs_diff}[/]" if r.ok else f"[red]{r.max_abs_diff}[/]"
        table.add_row(r.model, str(r.ops), f"{r.macs:,}", str(r.samples), f"{r.arena_bytes:,}",
                      f"{r.tflm_arena.head:,}", f"{r.tflm_arena.total:,}", f"{r.weights_bytes:,}",
                      diff, f"{r.seconds:.1f}")
    console.print(table)
    failed = [r for r in results if not r.ok]
    if failed:
        names = ", ".join(f"{r.model} ({len(r.mismatched_samples)} of {r.samples} inputs differ, "
                          f"first: {r.mismatched_samples[0]})" for r in failed)
        raise CheckFailed(f"outputs differ from the TFLM interpreter: {names}")
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    """List every target descriptor with its core, clock, memory and QEMU host."""
    from harness.targets import available_targets

    table = Table(title="targets")
    for c in ("name", "core", "clock MHz", "flash KiB", "RAM KiB", "runs on", "power mW", "notes"):
        table.add_column(c)
    for t in available_targets():
        host = f"qemu {t.qemu.machine}" if t.qemu else "-"
        table.add_row(t.name, t.core, f"{t.clock_hz / 1e6:g}", str(t.flash.size // 1024),
                      str(t.ram.size // 1024), host, f"{t.power.active_mw:g}",
                      (t.qemu.proxy if t.qemu and t.qemu.proxy else t.description))
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyhil", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tinyhil {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="benchmark models on targets under QEMU")
    bench.add_argument("--target", action="append", default=[],
                       help="target name (targets/*.toml) or descriptor path; repeatable (default cortex-m4)")
    bench.add_argument("--model", action="append", default=[],
                       help="kws, vww, ic, ad (MLPerf Tiny) or a .tflite path; repeatable (default: all four)")
    bench.add_argument("--models-dir", help="directory holding the MLPerf Tiny .tflite files")
    bench.add_argument("--runs", type=int, default=1, help="timed inferences per model (default 1)")
    bench.add_argument("--warmup", type=int, default=0, help="untimed inferences first (default 0)")
    bench.add_argument("--timeout", type=float, default=300.0, help="seconds per firmware run")
    bench.add_argument("--out", help="JSON lines file for the result rows (default results/bench-<time>.jsonl)")
    bench.add_argument("--csv", help="also write the rows as CSV")
    bench.set_defaults(func=cmd_bench)

    targets = sub.add_parser("targets", help="list the target descriptors")
    targets.set_defaults(func=cmd_targets)

    engine = sub.add_parser("engine", help="inspect and verify the builtin engine")
    engine_sub = engine.add_subparsers(dest="engine_command", required=True)
    check = engine_sub.add_parser(
        "check", help="compile the generated C for the host and compare with TFLM byte for byte")
    check.add_argument("models", nargs="+", metavar="MODEL.tflite")
    check.add_argument("--inputs", metavar="DIR",
                       help="EnergyRunner dataset directory (*.bin + y_labels.csv); default: random inputs")
    check.add_argument("--count", type=int, default=20, help="random input sets (default 20)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--limit", type=int, default=None, help="use at most N dataset inputs")
    check.add_argument("--keep", metavar="DIR", help="keep the generated C and host binary here")
    check.set_defaults(func=cmd_engine_check)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
    except TinyhilError as e:
        if args.debug:
            traceback.print_exc()
        err_console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
        code = e.exit_code
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
