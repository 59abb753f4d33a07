"""`tinyhil compare`: compression recipes side by side."""

from __future__ import annotations

import argparse
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.cli.common import _results_out, console, err_console
from harness.errors import UserInputError
from harness.cli.tables import compact_table


def cmd_compare(args: argparse.Namespace) -> int:
    """Apply compression recipes to one float model, run each on target, print them side by side."""
    from harness.hosting import prepare_runner
    from harness.recipes import RecipeError, parse_recipes, require_quantizer
    from harness.recipes.calibration import benchmark_of, calibration_for, float_samples, reference_model
    from harness.engines.dispatch import check_model, parse_engines
    from harness.errors import UnsupportedOpError
    from harness.model import load_model
    from harness.recipes.compare import iter_variants, make_variants
    from harness.results import RowSink, default_results_path
    from harness.suite import SuiteOptions
    from harness.targets import find_target

    SuiteOptions(runs=args.runs, warmup=args.warmup, timeout_s=args.timeout).check()
    float_model = Path(args.model)
    if not float_model.is_file():
        raise UserInputError(f"--model {args.model}: float .tflite file not found")
    specs = parse_recipes(args.recipes)
    engines = parse_engines(args.engine, args.kernels, args.tflm_src)
    require_quantizer()  # exit 2 naming the install command, before any work
    target = find_target(args.target)
    benchmark = args.benchmark or benchmark_of(float_model)
    if benchmark is None:
        raise RecipeError(f"{float_model.name}: no calibration data: name its MLPerf Tiny benchmark with "
                          "--benchmark kws|ad|vww|ic (its dataset calibrates and scores the recipes)")
    dataset = Path(args.dataset) if args.dataset else None
    calibration = calibration_for(benchmark, dataset)
    samples = float_samples(benchmark, dataset, args.limit) if not args.no_accuracy else []
    reference = None
    if args.reference_model:
        reference = Path(args.reference_model) if args.reference_model != "auto" else reference_model(benchmark)
        if reference is None or not reference.is_file():
            raise UserInputError(f"--reference-model: no MLPerf reference int8 model for {benchmark} found")
    runner = prepare_runner(args.runner, None, [target])
    from harness.cli.bench import suite_jobs

    jobs = suite_jobs(args)
    # compare-<time>.jsonl: `tinyhil report` reads it, `baseline update` (bench-*) does not pick it.
    out = _results_out(args.out) if args.out else default_results_path("compare")
    sink = RowSink(out)  # checked before any work; each row is appended as its recipe finishes
    rows = []
    lock = threading.Lock()
    with err_console.status("compare") as status:
        def note(msg: str) -> None:
            with lock:  # --jobs: from the variants' threads
                status.update(f"compare {escape(benchmark)} on {target.name}: {escape(msg)}")

        variants = make_variants(float_model, specs, calibration, reference, note)
        # An engine's missing prerequisites (TFLM's trees) exit 2 before anything is built;
        # an op one engine lacks only fails that recipe's row.
        first = next((v.model_path for v in variants if v.model_path is not None), None)
        for spec in engines:
            if first is not None:
                try:
                    check_model(spec, load_model(first), [target])
                except UnsupportedOpError:
                    pass
        for row in iter_variants(benchmark, float_model, variants, target, runner, samples, dataset,
                                 args.runs, args.warmup, args.timeout, note, jobs=jobs, engines=engines):
            sink.append(row)
            rows.append(row)
    order = {v.recipe: i for i, v in enumerate(variants)}
    engine_order = {e.label: i for i, e in enumerate(engines)}
    # The recipes' order, each recipe's engines in theirs, however they finished.
    rows.sort(key=lambda r: (order.get(r.recipe, len(order)), engine_order.get(_label(r), len(engine_order))))
    # Fifteen columns: wider than the bench's 160 when piped, so no cell is cut.
    wide = console if console.is_terminal else Console(width=200)
    wide.print(compare_table(rows, {v.recipe: v.file_weights_bytes for v in variants},
                             {v.recipe: v.file_bytes for v in variants}))
    ratios = flash_ratios(rows)
    if ratios:
        console.print("flash, builtin firmware / TFLM firmware of the same .tflite (the smaller of its kernels'): "
                      + ", ".join(f"{escape(recipe)} {ratio:.2f}x ({escape(label)})"
                                  for recipe, ratio, label in ratios))
    console.print("[dim]accuracy: on target over the dataset (firmware), host = TFLM's interpreter on the same "
                  "inputs; '=' when every firmware output equals the host's. Deltas against int8 (accuracy: "
                  "points for top1; anomaly_score_mean is the mean reconstruction error, lower is better). "
                  "instructions: QEMU -icount; est. latency and energy from the timing model's est. cycles and the "
                  "target's power.[/]")
    console.print(f"rows appended to {escape(str(out))}")
    for r in rows:
        if r.status != "ok":
            what = "does not fit" if r.status == "does_not_fit" else "failed"
            err_console.print(f"[red]{what}:[/] {escape(r.recipe)}: {escape(r.error)}", soft_wrap=True,
                              highlight=False)
    return 1 if any(r.status != "ok" for r in rows) else 0


def _label(row: Any) -> str:
    from harness.engines.compare import engine_label

    return engine_label(row)


def flash_ratios(rows: list[Any]) -> list[tuple[str, float, str]]:
    """Per recipe with an ok builtin row and ok TFLM rows: builtin firmware flash / the
    smaller TFLM firmware flash, and which TFLM row that was."""
    out = []
    for recipe in dict.fromkeys(r.recipe for r in rows):
        mine = [r for r in rows if r.recipe == recipe and r.status == "ok" and r.flash_bytes]
        builtin = next((r for r in mine if r.engine == "builtin"), None)
        tflm = [r for r in mine if r.engine == "tflm"]
        if builtin is not None and tflm:
            t = min(tflm, key=lambda r: r.flash_bytes)
            out.append((recipe, builtin.flash_bytes / t.flash_bytes, _label(t)))
    return out


def compare_table(rows: list[Any], file_weights: dict[str, int | None],
                  file_bytes: dict[str, int | None] | None = None) -> Table:
    """One row per recipe (and engine): accuracy, instructions, latency, firmware flash, the
    model file's size (and its constant bytes), RAM, energy, each with its change against
    int8 on the same engine under it (100 columns; every split is in the rows' JSON/CSV)."""
    from harness.recipes.compare import BASELINE_RECIPE, delta
    from harness.report.cells import accuracy_inputs, accuracy_value_text

    labels = list(dict.fromkeys(_label(r) for r in rows)) or ["builtin"]
    several = len(labels) > 1
    bases = {_label(r): r for r in rows if r.recipe == BASELINE_RECIPE}
    first = rows[0] if rows else None
    table = compact_table((f"recipes: {first.benchmark} on {first.target} ({', '.join(labels)} "
                           f"engine{'s' if several else ''}; change against {BASELINE_RECIPE} under each figure; "
                           "flash = the firmware's code + weights + other; .tflite = the model file's KiB "
                           "(its constants', LUT-packed for -lut)") if first else "recipes",
                          ["recipe (engine)" if several else "recipe", "accuracy (inputs)#", "host#",
                           "instructions#", "est.\nms#", "flash\nKiB#", ".tflite KiB\n(consts)#", "RAM\nKiB#",
                           "energy\nuJ#", "status!"])

    def pct(v: float | None) -> str:
        return "" if v is None else f"\n{100 * v:+.1f}%"

    for r in rows:
        ok = r.status == "ok"
        base = bases.get(_label(r))
        d = delta(r, base)
        inputs = accuracy_inputs(asdict(r))
        acc = (accuracy_value_text(r.accuracy, r.accuracy_metric) + (f" ({inputs})" if inputs else "")
               if ok else "-")
        if ok and d.accuracy_points is not None and r is not base:
            acc += f"\n{d.accuracy_points:+.2f} points"
        same = {True: " =", False: " ≠"}.get(r.predictions_match_reference, "") if ok else ""
        fw = file_weights.get(r.recipe)
        fb = (file_bytes or {}).get(r.recipe)
        tflite = "\n".join(x for x in (f"{fb / 1024:.1f}" if fb is not None else "",
                                       f"({fw / 1024:.1f})" if fw is not None else "") if x) or "-"
        table.add_row(
            f"{r.recipe}\n({_label(r)})" if several else r.recipe, acc,
            accuracy_value_text(r.accuracy_reference, r.accuracy_metric) + same if ok else "-",
            (f"{r.instructions:,}" + pct(d.instructions)) if ok and r.instructions is not None else "-",
            f"{r.latency_ms:.2f}" if ok and r.latency_ms is not None else "-",
            (f"{r.flash_bytes / 1024:.1f}" + pct(d.flash)) if r.flash_bytes is not None else "-",
            tflite,
            (f"{r.ram_bytes / 1024:.1f}" + pct(d.ram)) if ok and r.ram_bytes is not None else "-",
            (f"{r.energy_uj:,.0f}" + pct(d.energy)) if ok and r.energy_uj is not None else "-",
            "[green]ok[/]" if ok else f"[red]{r.status.replace('_', ' ')}[/]")
    return table


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    compare = sub.add_parser("compare", help="compression recipes of one float model, run side by side")
    compare.add_argument("--model", required=True, help="the float .tflite (e.g. kws_ref_model_float32.tflite)")
    compare.add_argument("--recipes", required=True,
                         help="comma list: int8, int8-per-tensor, int16x8, prune<P>-int8, cluster<K>-lut")
    compare.add_argument("--target", default="cortex-m4", help="target name (default cortex-m4)")
    compare.add_argument("--benchmark", choices=("kws", "ad", "vww", "ic"),
                         help="the MLPerf Tiny benchmark whose dataset calibrates and scores "
                              "(default: from the float model's file name)")
    compare.add_argument("--dataset", metavar="DIR", help="dataset directory (default: the benchmark's own)")
    compare.add_argument("--limit", type=int, metavar="N", help="score on the first N dataset inputs")
    compare.add_argument("--no-accuracy", action="store_true", help="skip the accuracy run on target")
    compare.add_argument("--reference-model", nargs="?", const="auto", metavar="PATH",
                         help="add the MLPerf reference int8 model (or PATH) as a row")
    compare.add_argument("--engine", action="append", default=[],
                         help="builtin, tflm or a comma list (builtin,tflm): each recipe on each engine; "
                              "repeatable (default builtin)")
    compare.add_argument("--kernels", action="append", default=[],
                         help="TFLM kernels: ref, cmsis-nn or ref,cmsis-nn (default ref)")
    compare.add_argument("--tflm-src", help="directory with the TFLM source trees (default: TINYHIL_TFLM_SRC, "
                                            "else what `tinyhil tflm fetch` fetched)")
    from harness import runners

    compare.add_argument("--runner", choices=[k.name for k in runners.kinds() if not k.needs_port], default="qemu")
    compare.add_argument("--runs", type=int, default=1, help="timed inferences per recipe (default 1)")
    compare.add_argument("--warmup", type=int, default=0)
    compare.add_argument("--timeout", type=float, default=600.0, help="seconds per firmware run")
    compare.add_argument("--jobs", type=int, metavar="N",
                         help="recipes at once (default: the CPU count under QEMU, 1 on Renode)")
    compare.add_argument("--out", help="JSON lines file for the rows (default results/compare-<time>.jsonl)")
    compare.set_defaults(func=cmd_compare)
