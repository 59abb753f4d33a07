"""`tinyhil engine check`: the builtin engine against TFLM on the host."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from harness.cli.common import console, err_console, print_json_lines
from harness.errors import CheckFailed

if TYPE_CHECKING:
    from harness.engines.builtin.check import CheckResult


def cmd_engine_check(args: argparse.Namespace) -> int:
    """Compile the builtin engine's C for the host and compare with TFLM byte for byte."""
    from harness.cli.progress import progress_display

    from harness.datasets import load_dataset, random_samples
    from harness.engines.builtin.check import check_model
    from harness.model import load_model

    results: list[CheckResult] = []
    with progress_display("spinner") as progress:
        for path in args.models:
            model = load_model(path)
            if args.inputs:
                samples = load_dataset(args.inputs, model, limit=args.limit)
            else:
                samples = random_samples(model, args.count, args.seed)
            task = progress.add_task(f"{model.name}: starting")

            def note(msg: str, task: Any = task, name: str = model.name) -> None:
                progress.update(task, description=f"{name}: {msg}")

            workdir = Path(args.keep) / model.name if args.keep else None
            isa = "" if args.isa == "default" else args.isa
            results.append(check_model(model, samples, workdir=workdir, progress=note, isa=isa))
            progress.remove_task(task)

    if args.json:
        print_json_lines(check_record(r) for r in results)
    (err_console if args.json else console).print(check_table(results))
    failed = [r for r in results if not r.ok]
    if failed:
        names = ", ".join(f"{r.model} ({len(r.mismatched_samples)} of {r.samples} inputs differ, "
                          f"first: {r.mismatched_samples[0]})" for r in failed)
        raise CheckFailed(f"outputs differ from the TFLM interpreter: {names}")
    return 0


def check_table(results: list[CheckResult]) -> Table:
    """One row per model; sizes in bytes. The numbers never wrap or shrink: on a narrow
    console (100 columns) the model's name wraps instead."""
    cells = [[r.model, str(r.ops), f"{r.macs:,}", str(r.samples), f"{r.arena_bytes:,}",
              f"{r.tflm_arena.head:,}", f"{r.tflm_arena.total:,}", f"{r.weights_bytes:,}",
              str(r.max_abs_diff), f"{r.seconds:.1f}"] for r in results]
    table = Table(title="builtin engine vs TFLM interpreter (host), bytes")
    heads = ("model", "ops", "MACs", "inputs", "arena", "TFLM plan", "TFLM total", "weights", "diff", "s")
    for k, col in enumerate(heads):
        if k == 0:
            table.add_column(col, overflow="fold", min_width=8)
        else:
            width = max([len(col), *(len(c[k]) for c in cells)])
            table.add_column(col, justify="right", no_wrap=True, min_width=width)
    for r, c in zip(results, cells):
        c[8] = f"[green]{c[8]}[/]" if r.ok else f"[red]{c[8]}[/]"
        table.add_row(*c)
    return table


def check_record(r: CheckResult) -> dict[str, Any]:
    """One model's check as a ``--json`` object (harness.engines.builtin.check.CheckResult).

    ``weights_bytes`` is every ``th_w_*`` array the builtin engine generates: the
    firmware's ``flash_weights_bytes``.
    """
    from harness.results import SCHEMA_VERSION

    return {
        "schema_version": SCHEMA_VERSION,
        "model": r.model,
        "engine": "builtin",
        "reference": "tflm-interpreter",
        "ok": r.ok,
        "ops": r.ops,
        "macs": r.macs,
        "inputs": r.samples,
        "arena_bytes": r.arena_bytes,
        "tflm_arena_planned_bytes": r.tflm_arena.head,
        "tflm_arena_total_bytes": r.tflm_arena.total,
        "tflm_arena_persistent_bytes": r.tflm_arena.tail,
        "weights_bytes": r.weights_bytes,
        "max_abs_diff": r.max_abs_diff,
        "mismatched_inputs": list(r.mismatched_samples),
        "seconds": round(r.seconds, 3),
    }


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
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
    check.add_argument("--isa", choices=["default", "mve"], default="default",
                       type=lambda s: s.lower(),
                       help="the kernels to check: default (portable C and the DSP extension's, the host "
                            "running the C emulation of the SIMD) or mve (Helium, as on cortex-m55, through an "
                            "exact C emulation of the MVE instructions it uses)")
    check.add_argument("--json", action="store_true",
                       help="one JSON object per model on stdout (the table goes to stderr)")
    check.set_defaults(func=cmd_engine_check)
