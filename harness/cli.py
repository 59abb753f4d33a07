"""The `tinyhil` command line: one function per subcommand; only main() exits."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness import __version__
from harness.errors import CheckFailed, TinyhilError, UserInputError

console = Console()
if not console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    console = Console(width=160)
err_console = Console(stderr=True)


def bench_cases(args: argparse.Namespace) -> tuple[list[Any], Any, Any, list[Any]]:
    """The bench's cases, runner, suite options and engines from its options, every user
    mistake found before any work (exit 2): targets, models, engines, numbers, datasets."""
    from harness.bench import BenchCase, resolve_models
    from harness.build import check_cache_writable
    from harness.engines.dispatch import check_model, parse_engines
    from harness.hosting import prepare_runner
    from harness.model import load_model
    from harness.suite import SuiteOptions
    from harness.targets import find_target

    options = SuiteOptions(runs=args.runs, warmup=args.warmup, timeout_s=args.timeout,
                           profile=bool(getattr(args, "profile", False)))
    options.check()
    check_cache_writable()
    targets = [find_target(t) for t in (args.target or ["cortex-m4"])]
    models = resolve_models(args.model, Path(args.models_dir) if args.models_dir else None)
    engines = parse_engines(args.engine, args.kernels, args.tflm_src)
    for _, path, _ in models:  # user mistakes first, before minutes of building
        for spec in engines:
            check_model(spec, load_model(path), targets)
    plans = accuracy_plans(args, models)
    # A target the runner cannot host is exit 2; its tools are installed or named.
    runner = prepare_runner(args.runner, args.port, targets)
    cases = [BenchCase(b, p, d, t, e) for t in targets for b, p, d in models for e in engines]
    from dataclasses import replace

    return cases, runner, replace(options, accuracy=plans), engines


def run_bench(args: argparse.Namespace, out: Path, csv: Path | None = None) -> tuple[list[Any], Any]:
    """Run the bench's suite with a progress display, appending each row to ``out`` (and
    ``csv``) the moment its case finishes; returns the rows and the suite options."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.results import RowSink
    from harness.suite import SuiteEvent, run_suite

    cases, runner, options, engines = bench_cases(args)
    sink = RowSink(out, csv)  # checked (and created) before any work
    rows: list[Any] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as progress:
        overall = progress.add_task("bench", total=len(cases))
        inputs: dict[int, Any] = {}

        def show(e: SuiteEvent) -> None:
            label = f"{e.case.benchmark} on {e.case.target.name}" + (
                f" ({e.case.engine.label})" if len(engines) > 1 else "")
            if e.kind == "note":
                progress.update(overall, description=f"{escape(label)}: {escape(e.message)}")
            elif e.kind == "inputs":
                if e.index not in inputs:
                    inputs[e.index] = progress.add_task(f"  {escape(label)}: accuracy inputs", total=e.of)
                progress.update(inputs[e.index], completed=e.done, total=e.of)
            elif e.kind == "row":
                if e.index in inputs:
                    progress.remove_task(inputs.pop(e.index))
                progress.advance(overall)

        for row in run_suite(cases, runner, options, show):
            sink.append(row)
            rows.append(row)
    return rows, options


def cmd_bench(args: argparse.Namespace) -> int:
    """Build one firmware per model and target, run it, and print an MLPerf-Tiny-style table."""
    out = _results_out(args.out)
    rows, options = run_bench(args, out, Path(args.csv) if args.csv else None)
    console.print(bench_table(rows))
    if len({(r.engine, r.kernels) for r in rows}) > 1:
        console.print(engines_table(rows))
    print_accuracy_and_profiles(rows, options.accuracy, options.profile)
    notes = sorted({f"{r.target}: {r.proxy}" for r in rows if r.proxy})
    for n in notes:
        console.print(f"[dim]{escape(n)}[/]")
    if args.runner != "qemu":
        console.print(f"[dim]{args.runner}: " + ("cycles = the DWT hardware cycle counter per inference; "
                                                 "latency = cycles / clock (a timer's time on cores without one)"
                                                 if args.runner == "board" else
                                                 "instructions = Renode's ExecutedInstructions per inference") + "[/]")
    console.print("[dim]instructions: QEMU -icount shift=0 retired instructions per inference; est. cycles: "
                  "the timing model (tinyhil-cycles: the core's timing table and the target's flash wait "
                  "states and caches, run on the same instructions; docs/cycle-model.md); est. latency = "
                  "est. cycles / clock; energy = est. latency x datasheet active power. Sources: the target "
                  "descriptors.[/]")
    console.print(f"rows appended to {escape(str(out))}" + (f" and {escape(args.csv)}" if args.csv else ""))
    failed = [r for r in rows if r.status != "ok"]
    for r in failed:
        what = "does not fit" if r.status == "does_not_fit" else "failed"
        err_console.print(f"[red]{what}:[/] {escape(r.benchmark)} on {escape(r.target)}: {escape(r.error)}",
                          soft_wrap=True)
    return 1 if failed else 0


def accuracy_plans(args: argparse.Namespace, models: list[tuple[str, Path, Path | None]]) -> dict[Path, Any]:
    """--accuracy: each model's dataset plan (a bad --dataset is exit 2, before any build)."""
    from harness.bench import plan_accuracy
    from harness.model import load_model

    dataset = getattr(args, "dataset", None)
    if not getattr(args, "accuracy", False):
        if dataset or getattr(args, "limit", None) is not None:
            raise UserInputError("--dataset and --limit apply to accuracy runs: add --accuracy")
        return {}
    if dataset and len(models) != 1:
        raise UserInputError(f"--dataset {dataset} is for one model: give exactly one --model "
                             f"(got {len(models)}: {', '.join(b for b, _, _ in models)})")
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        raise UserInputError(f"--limit {limit}: expected a number of inputs >= 1")
    return {path: plan_accuracy(bench, load_model(path), ds, Path(dataset) if dataset else None, limit)
            for bench, path, ds in models}


def print_accuracy_and_profiles(rows: list[Any], plans: dict[Path, Any], profile: bool = False) -> None:
    """After the bench table: accuracy on target against the host, then each row's per-layer profile."""
    if plans:
        console.print(accuracy_table(rows))
        for reason in dict.fromkeys(p.unavailable for p in plans.values() if p.unavailable):
            console.print(f"[yellow]note:[/] {escape(reason)}", soft_wrap=True, highlight=False)
    for r in rows:
        if r.layers:
            console.print(layers_table(r))
    if any(r.layers for r in rows):
        console.print("[dim]per layer: the firmware's own timer stamps around each kernel call (a profiling "
                      "build). Each layer's count includes one BEGIN/END pair of timer reads (the overhead "
                      "above); the layers sum to the whole inference plus that overhead per layer, within "
                      "two timer ticks (each tick is the target descriptor's instructions_per_tick under QEMU). "
                      "est. cycles per layer: the timing model over the same span (from one layer's BEGIN "
                      "stamp call to the next).[/]")
    skipped = sorted({r.engine for r in rows if profile and r.engine != "builtin"})
    if skipped:
        console.print(f"[yellow]note:[/] no per-layer profile for the {', '.join(skipped)} engine: "
                      "--profile times the builtin engine's kernel calls", highlight=False)


def _accuracy_value(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if metric == "top1" else f"{value:.4f}"


def accuracy_table(rows: list[Any]) -> Table:
    table = Table(title="accuracy on target (firmware) against the host interpreter")
    for c in ("benchmark", "target", "metric", "inputs", "firmware", "host", "outputs"):
        table.add_column(c, justify="right" if c in ("inputs", "firmware", "host") else "left")
    for r in rows:
        if not r.accuracy_metric:
            continue
        match = r.predictions_match_reference
        outputs = ("[green]all equal[/]" if match else "[red]differ[/]" if match is False
                   else "no dataset" if not r.accuracy_samples else "-")
        table.add_row(r.benchmark, r.target, r.accuracy_metric, f"{r.accuracy_samples or 0:,}",
                      _accuracy_value(r.accuracy, r.accuracy_metric),
                      _accuracy_value(r.accuracy_reference, r.accuracy_metric), outputs)
    return table


def layers_table(row: Any) -> Table:
    """One row's per-layer profile: op, output shape, MACs, count, MACs per count, share."""
    unit = "instructions" if row.instructions is not None else "cycles"
    total = sum(layer["count"] for layer in row.layers) or 1
    table = Table(title=f"{row.benchmark} on {row.target}: per layer ({unit}; timer overhead "
                        f"{row.profile_overhead} per layer)")
    est = all("est_cycles" in layer for layer in row.layers)
    est_total = sum(layer.get("est_cycles", 0) for layer in row.layers) or 1
    cols = ["#", "op", "output shape", "MACs", unit, f"MACs/{unit[:-1]}"]
    cols += ["est. cycles", "MACs/est. cycle", "% of est. cycles"] if est else ["% of total"]
    for c in cols:
        table.add_column(c, justify="left" if c in ("op", "output shape") else "right")
    for layer in row.layers:
        mpc = layer["macs_per_count"]
        cells = [str(layer["index"]), layer["op"], "x".join(str(d) for d in layer["output_shape"]),
                 f"{layer['macs']:,}", f"{layer['count']:,}", f"{mpc:.3f}" if mpc is not None else "-"]
        if est:
            mpe = layer.get("macs_per_est_cycle")
            cells += [f"{layer['est_cycles']:,}", f"{mpe:.3f}" if mpe is not None else "-",
                      f"{100 * layer['est_cycles'] / est_total:.1f}"]
        else:
            cells.append(f"{100 * layer['count'] / total:.1f}")
        table.add_row(*cells)
    table.add_row("", "sum", "", f"{sum(layer['macs'] for layer in row.layers):,}", f"{total:,}", "",
                  *((f"{est_total:,}", "", "100.0") if est else ("100.0",)), style="bold")
    return table


def bench_table(rows: list[Any]) -> Table:
    from harness.engines.compare import engine_label

    labels = list(dict.fromkeys(engine_label(r) for r in rows)) or ["builtin"]
    by_engine = labels != ["builtin"]  # an engine column unless every row is builtin's
    table = Table(title=f"tinyhil bench ({', '.join(labels)} engine{'s' if len(labels) > 1 else ''})")
    cols = ("benchmark", "target", *(("engine",) if by_engine else ()), "instructions", "est. cycles",
            "est. latency ms", "flash KiB (code+weights+other)",
            "RAM KiB (static+stack)", "energy uJ", "output", "status")
    for c in cols:
        table.add_column(c, justify="left" if c in ("benchmark", "target", "engine", "status") else "right")
    for r in rows:
        ok = r.status == "ok"
        flash = (f"{r.flash_bytes / 1024:.1f} ({r.flash_code_bytes / 1024:.1f}+"
                 f"{r.flash_weights_bytes / 1024:.1f}+{r.flash_other_bytes / 1024:.1f})"
                 if r.flash_bytes is not None else "-")
        ram = (f"{r.ram_bytes / 1024:.1f} ({r.ram_static_bytes / 1024:.1f}+{r.ram_stack_bytes / 1024:.1f})"
               if ok else f"{r.ram_static_bytes / 1024:.1f} (static)" if r.ram_static_bytes is not None else "-")
        table.add_row(
            r.benchmark, r.target, *((engine_label(r),) if by_engine else ()),
            # A board's row has cycles (DWT) or only a timer latency, never instructions.
            f"{r.instructions:,}" if ok and r.instructions is not None
            else f"{r.cycles:,} cycles" if ok and r.cycles is not None else "-",
            f"{r.est_cycles:,}" if ok and r.est_cycles is not None else "-",
            f"{r.latency_ms:.2f}" if ok and r.latency_ms is not None else "-",
            flash, ram,
            f"{r.energy_uj:,.0f}" if ok and r.energy_uj is not None else "-",
            "[green]= reference[/]" if r.output_matches_reference else "[red]differs[/]" if ok else "-",
            "[green]ok[/]" if ok else f"[red]{r.status.replace('_', ' ')}[/]",
        )
    return table


def engines_table(rows: list[Any]) -> Table:
    """The engines side by side per model and target, with ratios to builtin."""
    from harness.engines.compare import compare_engines

    table = Table(title="engines side by side (ratio = engine / builtin)")
    for c in ("benchmark", "target", "engine", "instructions", "x", "arena B", "x", "flash KiB", "x",
              "RAM KiB", "x", "output"):
        table.add_column(c, justify="left" if c in ("benchmark", "target", "engine") else "right")

    def num(v: int | None, scale: float = 1.0, fmt: str = ",.0f") -> str:
        return "-" if v is None else format(v / scale, fmt)

    def ratio(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    for e in compare_engines(rows):
        out = ("-" if e.output_matches_reference is None
               else "[green]= reference[/]" if e.output_matches_reference else "[red]differs[/]")
        table.add_row(e.benchmark, e.target, e.engine, num(e.instructions), ratio(e.instructions_ratio),
                      num(e.arena_bytes), ratio(e.arena_ratio), num(e.flash_bytes, 1024, ".1f"),
                      ratio(e.flash_ratio), num(e.ram_bytes, 1024, ".1f"), ratio(e.ram_ratio), out)
    return table


def cmd_compare(args: argparse.Namespace) -> int:
    """Apply compression recipes to one float model, run each on target, print them side by side."""
    from harness.hosting import prepare_runner
    from harness.recipes import RecipeError, parse_recipes, require_quantizer
    from harness.recipes.calibration import benchmark_of, calibration_for, float_samples, reference_model
    from harness.recipes.compare import iter_variants, make_variants
    from harness.results import RowSink, default_results_path
    from harness.suite import SuiteOptions
    from harness.targets import find_target

    SuiteOptions(runs=args.runs, warmup=args.warmup, timeout_s=args.timeout).check()
    float_model = Path(args.model)
    if not float_model.is_file():
        raise UserInputError(f"--model {args.model}: float .tflite file not found")
    specs = parse_recipes(args.recipes)
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
    # compare-<time>.jsonl: `tinyhil report` reads it, `baseline update` (bench-*) does not pick it.
    out = _results_out(args.out) if args.out else default_results_path("compare")
    sink = RowSink(out)  # checked before any work; each row is appended as its recipe finishes
    rows = []
    with err_console.status("compare") as status:
        def note(msg: str) -> None:
            status.update(f"compare {escape(benchmark)} on {target.name}: {escape(msg)}")

        variants = make_variants(float_model, specs, calibration, reference, note)
        for row in iter_variants(benchmark, float_model, variants, target, runner, samples, dataset,
                                 args.runs, args.warmup, args.timeout, note):
            sink.append(row)
            rows.append(row)
    # Fifteen columns: wider than the bench's 160 when piped, so no cell is cut.
    wide = console if console.is_terminal else Console(width=200)
    wide.print(compare_table(rows, {v.recipe: v.file_weights_bytes for v in variants}))
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


def compare_table(rows: list[Any], file_weights: dict[str, int | None]) -> Table:
    """One row per recipe: accuracy, instructions, latency, flash, RAM, energy, deltas against int8."""
    from harness.recipes.compare import BASELINE_RECIPE, delta

    base = next((r for r in rows if r.recipe == BASELINE_RECIPE), None)
    first = rows[0] if rows else None
    table = Table(title=(f"recipes: {first.benchmark} on {first.target} (builtin engine; .tflite wts = the "
                         "model file's constant KiB, LUT-packed for -lut)") if first else "recipes")
    metric = next((r.accuracy_metric for r in rows if r.accuracy_metric), "") or "accuracy"
    for c in ("recipe", metric, "Δ", "host", "instructions", "Δ", "est. ms", "flash KiB", "code+wts", "Δ",
              ".tflite wts", "RAM KiB", "Δ", "energy uJ", "Δ", "status"):
        table.add_column(c, justify="left" if c in ("recipe", "status") else "right", no_wrap=True)

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:+.1f}%"

    for r in rows:
        ok = r.status == "ok"
        d = delta(r, base)
        acc = _accuracy_value(r.accuracy, r.accuracy_metric) if ok else "-"
        points = f"{d.accuracy_points:+.2f}" if ok and d.accuracy_points is not None and r is not base else "-"
        same = {True: " =", False: " ≠"}.get(r.predictions_match_reference, "") if ok else ""
        fw = file_weights.get(r.recipe)
        table.add_row(
            r.recipe, acc, points, _accuracy_value(r.accuracy_reference, r.accuracy_metric) + same if ok else "-",
            f"{r.instructions:,}" if ok and r.instructions is not None else "-", pct(d.instructions),
            f"{r.latency_ms:.2f}" if ok else "-",
            f"{r.flash_bytes / 1024:.1f}" if r.flash_bytes is not None else "-",
            f"{r.flash_code_bytes / 1024:.1f}+{r.flash_weights_bytes / 1024:.1f}"
            if r.flash_bytes is not None else "-", pct(d.flash),
            f"{fw / 1024:.1f}" if fw is not None else "-",
            f"{r.ram_bytes / 1024:.1f}" if ok and r.ram_bytes is not None else "-", pct(d.ram),
            f"{r.energy_uj:,.0f}" if ok and r.energy_uj is not None else "-", pct(d.energy),
            "[green]ok[/]" if ok else "[red]failed[/]")
    return table


def cmd_tflm_fetch(args: argparse.Namespace) -> int:
    """Clone TFLM and its third-party trees at the pinned commits (tinyhil tflm fetch)."""
    from harness.engines.tflm.trees import DEFAULT_URL_TEMPLATE, PINNED, fetch_trees

    trees = fetch_trees(Path(args.dest) if args.dest else None, args.url_template or DEFAULT_URL_TEMPLATE,
                        progress=lambda m: err_console.print(escape(m), highlight=False), force=args.force)
    for pin in PINNED:
        console.print(escape(f"{pin.name:13} {pin.commit}  {trees.path(pin.name)}"), highlight=False)
    return 0


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


def _results_out(arg: str | None) -> Path:
    """Where the bench writes its rows, checked before minutes of work: a directory
    given to --out gets the default file name inside it."""
    from harness.results import default_results_path

    if not arg:
        return default_results_path()
    out = Path(arg)
    if out.is_dir():
        return out / default_results_path().name
    if out.parent.exists() and not out.parent.is_dir():
        raise UserInputError(f"--out {arg}: {out.parent} is not a directory")
    return out


def cmd_perf(args: argparse.Namespace) -> int:
    """Builtin against TFLM (+ CMSIS-NN) with issue 9's goals: run the bench, or read --rows."""
    from harness import perf
    from harness.bench import resolve_models
    from harness.engines.builtin.scratch import scratch_bytes
    from harness.engines.tflm.trees import find_trees
    from harness.model import load_model
    from harness.results import read_rows

    models = resolve_models(args.model, Path(args.models_dir) if args.models_dir else None)
    if args.rows:
        rows = [r for path in args.rows for r in read_rows(Path(path))]
        rc = 0
    else:
        kernels = []
        for k in ("ref", "cmsis-nn"):
            try:
                find_trees(args.tflm_src, kernels=(k,))
                kernels.append(k)
            except TinyhilError as e:
                console.print(f"[yellow]TFLM {k} not run:[/] {escape(str(e))}")
        bench = argparse.Namespace(
            engine=["builtin,tflm" if kernels else "builtin"], kernels=[",".join(kernels)] if kernels else [],
            target=args.target or ["cortex-m4", "stm32f746"], model=args.model or [], models_dir=args.models_dir,
            tflm_src=args.tflm_src, runs=1, warmup=0, timeout=300.0, runner="qemu", port=None, accuracy=False,
            dataset=None, limit=None, profile=False)
        out = _results_out(args.out)
        bench_rows, _ = run_bench(bench, out)
        rows = [asdict(r) for r in bench_rows]
        rc = 1 if any(r.status != "ok" for r in bench_rows) else 0
    loaded = {bench: load_model(path) for bench, path, _ in models}
    macs = {bench: m.macs for bench, m in loaded.items()}
    scratch = {bench: (scratch_bytes(m) + 3) // 4 * 4 for bench, m in loaded.items()}
    lines = perf.perf_lines(rows, macs, scratch)
    console.print(perf_table(lines))
    console.print(f"[dim]goals: instructions <= {perf.RATIO_GOAL} x TFLM + CMSIS-NN's; peak RAM "
                  f"(arena + kernel scratch + stack high-water) <= {perf.RATIO_GOAL} x TFLM's "
                  f"arena_used_bytes() and flash <= {perf.RATIO_GOAL} x TFLM firmware's (the smaller of "
                  "the reference and CMSIS-NN figures); est. "
                  f"cycles/MAC <= {perf.CYCLES_PER_MAC_GOAL} on {perf.CYCLES_PER_MAC_TARGET} for "
                  f"{', '.join(perf.CYCLES_PER_MAC_BENCHMARKS)}. cycles/MAC = est_cycles (the timing "
                  "model) / the model's MACs. '-' = not measured.[/]")
    met = perf.goals_met(lines)
    console.print("all goals met" if met else "[yellow]goals not all met[/]")
    return rc


def perf_table(lines: list[Any]) -> Table:
    """Builtin vs TFLM: speed columns, then memory columns; each ratio with its goal verdict."""
    def n(v: Any) -> str:
        return "-" if v is None else f"{v:,}"

    def m(v: Any) -> str:
        return "-" if v is None else f"{v / 1e6:.2f}M"

    def r(v: Any, ok: Any) -> str:
        if v is None:
            return "-"
        mark = "" if ok is None else (" [green]ok[/]" if ok else " [red]no[/]")
        return f"{v:.2f}{mark}"

    t = Table(title="builtin vs TFLM (goals: ratios <= 0.8, cycles/MAC <= 1.0)")
    cols = ("model", "target", "builtin instr", "TFLM ref", "TFLM CMSIS-NN", "instr ratio",
            "cyc/MAC", "CMSIS-NN cyc/MAC", "peak RAM", "TFLM arena", "RAM ratio", "flash",
            "TFLM flash", "flash ratio")
    for col in cols:
        t.add_column(col, justify="left" if col in ("model", "target") else "right", overflow="fold")
    for ln in lines:
        t.add_row(ln.benchmark, ln.target, m(ln.builtin_instructions), m(ln.tflm_ref_instructions),
                  m(ln.tflm_cmsis_instructions), r(ln.instructions_ratio, ln.instructions_ok),
                  r(ln.builtin_cycles_per_mac, ln.cycles_per_mac_ok), r(ln.tflm_cmsis_cycles_per_mac, None),
                  n(ln.builtin_peak_ram), n(ln.tflm_arena), r(ln.ram_ratio, ln.ram_ok),
                  n(ln.builtin_flash), n(ln.tflm_flash), r(ln.flash_ratio, ln.flash_ok))
    return t


def cmd_stress(args: argparse.Namespace) -> int:
    """N benches at once for M rounds under CPU hogs; exit 1 on any failed or differing bench."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.stress import StressCase, run_stress

    if args.jobs < 1 or args.rounds < 1 or args.hogs < 0:
        raise UserInputError("--jobs and --rounds must be at least 1, --hogs at least 0")
    cases = [StressCase(m, t) for t in (args.target or ["cortex-m4"]) for m in (args.model or ["kws"])]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console) as progress:
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

    from harness.bench import fixed_input, input_bytes, resolve_models
    from harness.build import build_firmware
    from harness.engines.builtin import generate
    from harness.errors import RunnerError
    from harness.model import load_model
    from harness.runners.base import RunJob
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
        image = build_firmware(generate(model), target)
        job = RunJob(input_bytes(model, fixed_input(model, ds)), runs=args.runs)
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

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=err_console, transient=True) as progress:
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


def cmd_targets(args: argparse.Namespace) -> int:
    """List every target with the runners that can host it here, and why not where not."""
    from harness.hosting import hosting
    from harness.targets import available_targets

    table = Table(title="targets")
    for c in ("name", "core", "clock MHz", "flash KiB", "RAM KiB", "runs here", "not here, because", "notes"):
        table.add_column(c)
    for t in available_targets():
        hosts = hosting(t, args.port)
        here = "\n".join(h.runner + (f" ({t.qemu.machine})" if h.runner == "qemu" and t.qemu else "")
                         + (f": {h.reason}" if h.reason else "") for h in hosts if h.ok) or "-"
        why_not = "\n".join(f"{h.runner}: {h.reason}" for h in hosts if not h.ok) or "-"
        # Reasons carry install hints like `pip install 'tinyhil[board]'`: not rich markup.
        table.add_row(t.name, t.core, f"{t.clock_hz / 1e6:g}", str(t.flash.size // 1024),
                      str(t.ram.size // 1024), escape(here), escape(why_not),
                      escape(t.qemu.proxy if t.qemu and t.qemu.proxy else t.description))
    console.print(table)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Render result rows as a terminal table, and as CSV, Markdown or HTML when asked."""
    from harness.report import default_inputs, html_page, load_report, markdown, mlperf_csv, terminal

    paths = [Path(p) for p in args.results] or default_inputs()
    report = load_report(paths)
    # Up to seventeen columns: wider than the bench's 160 when piped, so no cell wraps.
    terminal.render(report, console if console.is_terminal else Console(width=200))
    for path, module in ((args.csv, mlperf_csv), (args.md, markdown), (args.html, html_page)):
        if path:
            console.print(f"wrote {escape(str(module.write(report, Path(path))))}")
    return 0


def cmd_regress(args: argparse.Namespace) -> int:
    """Rerun the suite (or read --rows), compare with a baseline; 1 on any regression."""
    from harness.bench import MLPERF_TINY
    from harness.regress import compare, in_scope, parse_tolerances, read_baseline
    from harness.results import default_results_path, load_row_files

    tolerances = parse_tolerances(args.tol)
    baseline = read_baseline(Path(args.baseline))
    targets = list(args.target)
    benchmarks = [m if m in MLPERF_TINY else Path(m).stem for m in args.model]
    if args.rows:
        current = load_row_files([Path(p) for p in args.rows])
    else:
        rerun = argparse.Namespace(**vars(args))  # the baseline's suite where the options say nothing
        if not rerun.target:
            rerun.target = sorted({r["target"] for r in baseline})
        if not rerun.model:
            rerun.model = [b for b in MLPERF_TINY if any(r["benchmark"] == b for r in baseline)]
            if not rerun.model:
                raise UserInputError(f"{args.baseline}: no MLPerf Tiny benchmark in the baseline to rerun: "
                                     "name the models with --model PATH.tflite")
        if not rerun.engine:
            rerun.engine = sorted({str(r["engine"]) for r in baseline})
            if not rerun.kernels:
                rerun.kernels = sorted({str(r["kernels"]) for r in baseline if r.get("kernels")})
        # The rows land in results/ like any bench run's, so reports show them in the trend.
        out = default_results_path()
        rows, _ = run_bench(rerun, out)
        console.print(bench_table(rows))
        current = load_row_files([out])
    result = compare(in_scope(baseline, targets, benchmarks), in_scope(current, targets, benchmarks), tolerances)
    console.print(regress_table(result))
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True, highlight=False)
    tol = ", ".join(f"{k} {v:g}{'%' if k != 'accuracy' else ' points'}" for k, v in result.tolerances.items())
    console.print(f"{result.keys_compared} keys compared with {escape(args.baseline)} (tolerances: {tol}): "
                  f"{result.count('regression')} regressions, {result.count('improvement')} improvements, "
                  f"{result.count('within tolerance')} within tolerance, {result.count('new')} new, "
                  f"{result.count('unchanged')} unchanged", highlight=False)
    if result.ok:
        console.print("[green]no regressions[/]")
        return 0
    err_console.print(f"[red]{result.count('regression')} regression(s)[/] against {escape(args.baseline)}",
                      highlight=False)
    return 1


def regress_table(result: Any) -> Table:
    """One line per key: each metric's value, or baseline -> this run when it moved; row notes last."""
    from harness.regress import METRICS

    table = Table(title="tinyhil regress: this run against the baseline")
    for c in ("benchmark", "target", "engine", "recipe", *METRICS, "verdict"):
        table.add_column(c, justify="right" if c in METRICS else "left")
    style = {"regression": "red", "improvement": "green", "within tolerance": "yellow", "new": "cyan",
             "unchanged": ""}
    by_key: dict[Any, list[Any]] = {}
    for c in result.changes:
        by_key.setdefault(c.key, []).append(c)
    for key, changes in by_key.items():
        cells = {m: "" for m in METRICS}
        notes = []
        for c in changes:
            if c.what not in METRICS:
                notes.append(f"[{style[c.verdict]}]{c.verdict}[/]: {escape(c.note)}")
                continue
            if c.verdict == "unchanged":
                cells[c.what] = _num(c.current)
            elif c.current is None:
                cells[c.what] = f"[red]{_num(c.baseline)} -> none[/]"
                notes.append(f"[red]regression[/]: {c.what} {escape(c.note)}")
            else:
                pct = f" ({c.delta_pct:+.3g}%)" if c.delta_pct is not None else ""
                cells[c.what] = f"[{style[c.verdict]}]{_num(c.baseline)} -> {_num(c.current)}{pct}[/]"
                notes.append(f"[{style[c.verdict]}]{c.verdict}[/]: {c.what}" + (f" ({escape(c.note)})" if c.note else ""))
        table.add_row(*key, *cells.values(), "; ".join(notes) or "unchanged")
    return table


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v == int(v) and abs(v) >= 1 else f"{v:.4g}"


def cmd_baseline_update(args: argparse.Namespace) -> int:
    """Write a baseline from result rows (default: the newest results/bench-*.jsonl)."""
    from harness.regress import write_baseline
    from harness.results import RESULTS_DIR, load_row_files, row_key

    if args.rows:
        paths = [Path(p) for p in args.rows]
    else:
        runs = sorted(RESULTS_DIR.glob("bench-*.jsonl"))
        if not runs:
            raise UserInputError(f"no {RESULTS_DIR}/bench-*.jsonl to make a baseline from: run `tinyhil bench` "
                                 "or pass --rows FILE")
        paths = [runs[-1]]
    sources = ", ".join(str(p) for p in paths)
    doc = write_baseline(load_row_files(paths), Path(args.out), source=sources)
    keys = ", ".join(sorted({"/".join(row_key(r)[:3]) for r in doc["rows"]}))
    console.print(escape(f"baseline {args.out}: {len(doc['rows'])} rows ({keys}) from {sources}"), highlight=False)
    return 0


def _bench_run_options(p: argparse.ArgumentParser) -> None:
    """What to run and how: shared by `bench` and `regress` (which reruns the suite through the bench)."""
    p.add_argument("--target", action="append", default=[],
                   help="target name (targets/*.toml) or descriptor path; repeatable (default cortex-m4)")
    p.add_argument("--model", action="append", default=[],
                   help="kws, vww, ic, ad (MLPerf Tiny) or a .tflite path; repeatable (default: all four)")
    p.add_argument("--models-dir", help="directory holding the MLPerf Tiny .tflite files")
    p.add_argument("--runs", type=int, default=1, help="timed inferences per model (default 1)")
    p.add_argument("--warmup", type=int, default=0, help="untimed inferences first (default 0)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per firmware run")
    p.add_argument("--engine", action="append", default=[],
                   help="builtin, tflm or a comma list (builtin,tflm); repeatable (default builtin)")
    p.add_argument("--kernels", action="append", default=[],
                   help="TFLM kernels: ref, cmsis-nn or ref,cmsis-nn (default ref)")
    p.add_argument("--tflm-src", help="directory with the TFLM source trees (default: TINYHIL_TFLM_SRC, "
                                      "else what `tinyhil tflm fetch` fetched)")
    p.add_argument("--runner", choices=("qemu", "renode", "board"), default="qemu",
                   help="where the firmware runs (default qemu; `tinyhil targets` says what works here)")
    p.add_argument("--port", help="--runner board: the board's serial port, any pyserial URL "
                                  "(/dev/ttyACM0, COM3, socket://host:port, rfc2217://host:port)")
    p.add_argument("--accuracy", action="store_true",
                   help="also infer every dataset input on target and score it (top-1, AD score/AUC) "
                        "against the host interpreter")
    p.add_argument("--dataset", metavar="DIR",
                   help="--accuracy: EnergyRunner dataset directory (*.bin + y_labels.csv) for the one "
                        "--model (default: the benchmark's own under ../shared/datasets)")
    p.add_argument("--limit", type=int, metavar="N", help="--accuracy: use the first N dataset inputs")
    p.add_argument("--profile", action="store_true",
                   help="also profile each layer (builtin engine; a separate profiling build)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyhil", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tinyhil {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("bench", help="benchmark models on targets under QEMU")
    _bench_run_options(bench)
    bench.add_argument("--out", help="JSON lines file for the result rows (default results/bench-<time>.jsonl)")
    bench.add_argument("--csv", help="also write the rows as CSV")
    bench.set_defaults(func=cmd_bench)

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
    compare.add_argument("--runner", choices=("qemu", "renode"), default="qemu")
    compare.add_argument("--runs", type=int, default=1, help="timed inferences per recipe (default 1)")
    compare.add_argument("--warmup", type=int, default=0)
    compare.add_argument("--timeout", type=float, default=600.0, help="seconds per firmware run")
    compare.add_argument("--out", help="JSON lines file for the rows (default results/compare-<time>.jsonl)")
    compare.set_defaults(func=cmd_compare)

    perf = sub.add_parser("perf", help="builtin vs TFLM (+ CMSIS-NN) against the engine's goals")
    perf.add_argument("--target", action="append", help="repeatable (default cortex-m4 and stm32f746)")
    perf.add_argument("--model", action="append", help="kws, vww, ic, ad (default all four)")
    perf.add_argument("--models-dir", help="directory holding the MLPerf Tiny .tflite files")
    perf.add_argument("--tflm-src", help="directory with the TFLM source trees")
    perf.add_argument("--rows", action="append", metavar="JSONL",
                      help="read these result rows instead of running the bench")
    perf.add_argument("--out", help="JSON lines file for the rows (default results/bench-<time>.jsonl)")
    perf.set_defaults(func=cmd_perf)

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

    targets = sub.add_parser("targets", help="list the targets and which runners can host them here")
    targets.add_argument("--port", help="a board's serial port, to check the board runner with it")
    targets.set_defaults(func=cmd_targets)

    report = sub.add_parser("report", help="render result rows as a table, CSV, Markdown or HTML")
    report.add_argument("results", nargs="*", metavar="RESULTS",
                        help="JSON-lines result files or directories (default: results/*.jsonl)")
    report.add_argument("--csv", metavar="PATH", help="write an MLPerf-Tiny-shaped CSV")
    report.add_argument("--md", metavar="PATH", help="write a Markdown report")
    report.add_argument("--html", metavar="PATH", help="write a self-contained HTML page with plots")
    report.set_defaults(func=cmd_report)

    regress = sub.add_parser("regress", help="rerun the suite (or read rows) and compare with a baseline",
                             description="Exit 1 on any regression (worse beyond its tolerance, a missing "
                                         "or failed row), 0 otherwise. Without --rows the suite is rerun "
                                         "through the bench (the baseline's targets and models unless "
                                         "--target/--model say otherwise) and its rows go to results/.")
    regress.add_argument("--baseline", required=True, metavar="FILE", help="baseline file (tinyhil baseline update)")
    regress.add_argument("--rows", nargs="+", action="extend", metavar="ROWS",
                         help="compare these JSON-lines result files instead of rerunning")
    regress.add_argument("--tol", action="append", default=[], metavar="METRIC=VALUE",
                         help="tolerance: instructions, flash, ram in percent, accuracy in points "
                              "(defaults 0); repeatable")
    _bench_run_options(regress)
    regress.set_defaults(func=cmd_regress)

    baseline = sub.add_parser("baseline", help="manage regression baselines")
    baseline_sub = baseline.add_subparsers(dest="baseline_command", required=True)
    update = baseline_sub.add_parser("update", help="write a baseline from result rows")
    update.add_argument("--rows", nargs="+", action="extend", metavar="ROWS",
                        help="JSON-lines result files (default: the newest results/bench-*.jsonl)")
    update.add_argument("--out", default="results/baseline.json", metavar="FILE",
                        help="baseline file to write (default results/baseline.json)")
    update.set_defaults(func=cmd_baseline_update)

    tflm = sub.add_parser("tflm", help="the TensorFlow Lite Micro engine's source trees")
    tflm_sub = tflm.add_subparsers(dest="tflm_command", required=True)
    fetch = tflm_sub.add_parser("fetch", help="clone TFLM and its third-party code at the pinned commits")
    fetch.add_argument("--dest", help="where the trees go (default ~/.cache/tinyhil/tflm, under TINYHIL_CACHE)")
    fetch.add_argument("--url-template", help="git URL of each repository from {repo} (owner/name), {owner} "
                                              "and {name}; default https://github.com/{repo}.git")
    fetch.add_argument("--force", action="store_true", help="fetch again even when the trees are present")
    fetch.set_defaults(func=cmd_tflm_fetch)

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
        err_console.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        code = e.exit_code
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
