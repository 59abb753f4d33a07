"""`tinyhil bench`: the MLPerf-Tiny-style suite on targets, rows appended as they finish."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.cli.common import _results_out, console, err_console
from harness.cli.tables import compact_table
from harness.errors import UserInputError


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
    models = resolve_models(args.model, Path(args.models_dir) if args.models_dir else None,
                            offline=getattr(args, "offline", False))
    engines = parse_engines(args.engine, args.kernels, args.tflm_src)
    for _, path, _ in models:  # user mistakes first, before minutes of building
        for spec in engines:
            check_model(spec, load_model(path), targets)
    plans = accuracy_plans(args, models)
    import os

    if getattr(args, "renode", None):
        os.environ["TINYHIL_RENODE"] = args.renode  # where harness.runners.renode looks first
    if getattr(args, "qemu_xtensa", None):
        os.environ["TINYHIL_QEMU_XTENSA"] = args.qemu_xtensa  # where harness.runners.espqemu looks first
    if getattr(args, "runner", "") == "labgrid":  # what harness.runners.labgrid's runner is made with
        os.environ["TINYHIL_LABGRID_PLACES"] = ",".join(args.place or ())
        os.environ["TINYHIL_LABGRID_FLASH"] = args.labgrid_flash
        if args.labgrid_env:
            os.environ["TINYHIL_LABGRID_ENV"] = args.labgrid_env
        if args.coordinator:
            os.environ["LG_COORDINATOR"] = args.coordinator
    # A target the runner cannot host is exit 2; its tools are installed or named.
    runner = prepare_runner(args.runner, args.port, targets)
    cases = [BenchCase(b, p, d, t, e) for t in targets for b, p, d in models for e in engines]
    from dataclasses import replace

    return cases, runner, replace(options, accuracy=plans), engines


def suite_jobs(args: argparse.Namespace, runner: Any = None) -> int:
    """--jobs: how many cases run at once. Default: the CPU count where the runner hosts
    several firmwares at once (QEMU), one per place for labgrid, else 1; asking a
    one-at-a-time runner for more is exit 2."""
    import os

    from harness import runners

    kind = runners.get(args.runner)
    asked = getattr(args, "jobs", None)
    if asked is None and args.runner == "labgrid":
        places = runner.all_places() if hasattr(runner, "all_places") else getattr(args, "place", None) or []
        return max(1, len(places))  # one case per place at a time
    if asked is None:
        return (os.cpu_count() or 1) if kind.parallel else 1
    if asked < 1:
        raise UserInputError(f"--jobs {asked}: expected a number of cases to run at once >= 1")
    if asked > 1 and not kind.parallel:
        raise UserInputError(f"--jobs {asked}: --runner {args.runner} hosts one firmware at a time "
                             "(use --jobs 1, or share a lab's boards with a labgrid farm)")
    return int(asked)


def run_bench(args: argparse.Namespace, out: Path, csv: Path | None = None,
              on_row: Callable[[Any], None] | None = None) -> tuple[list[Any], Any]:
    """Run the bench's suite with a progress display, appending each row to ``out`` (and
    ``csv``) the moment its case finishes, then handing it to ``on_row``; returns the rows
    and the suite options."""
    from harness.cli.progress import progress_display
    from harness.results import RowSink
    from harness.suite import SuiteEvent, run_suite_indexed

    from dataclasses import replace

    from harness.shard import parse_shard, select, suite_id

    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    cases, runner, options, engines = bench_cases(args)
    jobs = suite_jobs(args, runner)
    stamp: dict[str, Any] = {}
    if shard is not None:
        stamp = {"shard": str(shard), "suite_cases": len(cases),
                 "suite_id": suite_id(cases, (options.runs, options.warmup, options.profile,
                                              sorted(str(p) for p in options.accuracy), getattr(args, "limit", None)))}
        cases = select(cases, shard)
    sink = RowSink(out, csv)  # checked (and created) before any work
    with progress_display("bar") as progress:
        overall = progress.add_task("bench" + (f" ({jobs} at once)" if jobs > 1 and len(cases) > 1 else ""),
                                    total=len(cases))
        inputs: dict[int, Any] = {}
        running: dict[int, Any] = {}  # with --jobs: one line per case in progress

        def show(e: SuiteEvent) -> None:
            label = f"{e.case.benchmark} on {e.case.target.name}" + (
                f" ({e.case.engine.label})" if len(engines) > 1 else "")
            if e.kind == "case" and jobs > 1:
                running[e.index] = progress.add_task(f"  {escape(label)}", total=None)
            elif e.kind == "note":
                task = running.get(e.index, overall)
                progress.update(task, description=f"{'  ' if task != overall else ''}{escape(label)}: "
                                                  f"{escape(e.message)}")
            elif e.kind == "inputs":
                if e.index not in inputs:
                    inputs[e.index] = progress.add_task(f"  {escape(label)}: accuracy inputs", total=e.of)
                progress.update(inputs[e.index], completed=e.done, total=e.of)
            elif e.kind == "row":
                if e.index in inputs:
                    progress.remove_task(inputs.pop(e.index))
                if e.index in running:
                    progress.remove_task(running.pop(e.index))
                progress.update(overall, description=f"{escape(label)}: done", advance=1)

        indexed: list[tuple[int, Any]] = []
        for index, row in run_suite_indexed(cases, runner, options, show, jobs=jobs):
            if stamp:
                row = replace(row, **stamp)
            sink.append(row)
            indexed.append((index, row))
            if on_row is not None:
                on_row(row)
    # Rows land in the files as cases finish; tables list them in the cases' order.
    rows = [row for _index, row in sorted(indexed, key=lambda ir: ir[0])]
    if shard is not None and not cases:
        say = err_console if getattr(args, "json", False) else console
        say.print(f"shard {shard} has no cases: the suite has {stamp['suite_cases']}", highlight=False)
    return rows, options


def cmd_bench(args: argparse.Namespace) -> int:
    """Build one firmware per model and target, run it, and print an MLPerf-Tiny-style table
    (--json: the rows as JSON lines on stdout as they finish, everything else on stderr)."""
    from harness.cli.common import print_json_lines

    out = _results_out(args.out)
    show = err_console if args.json else console
    rows, options = run_bench(args, out, Path(args.csv) if args.csv else None,
                              on_row=(lambda r: print_json_lines([asdict(r)])) if args.json else None)
    show.print(bench_table(rows))
    if len({(r.engine, r.kernels) for r in rows}) > 1:
        show.print(engines_table(rows))
    print_accuracy_and_profiles(rows, options.accuracy, options.profile, show)
    notes = sorted({f"{r.target}: {r.proxy}" for r in rows if r.proxy})
    for n in notes:
        show.print(f"[dim]{escape(n)}[/]")
    if args.runner != "qemu":
        show.print(f"[dim]{args.runner}: " + ("cycles = the DWT hardware cycle counter per inference; "
                                              "latency = cycles / clock (a timer's time on cores without one)"
                                              if args.runner in ("board", "labgrid") else
                                              "instructions = Renode's ExecutedInstructions per inference") + "[/]")
    show.print(f"[dim]{escape(BENCH_TABLE_NOTE)}[/]")
    show.print(f"rows appended to {escape(str(out))}" + (f" and {escape(args.csv)}" if args.csv else ""))
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
    plans = {path: plan_accuracy(bench, load_model(path), ds, Path(dataset) if dataset else None, limit)
             for bench, path, ds in models}
    if all(p.unavailable for p in plans.values()):
        names = ", ".join(b for b, _, _ in models)
        raise UserInputError(f"--accuracy: no dataset for {names} (the inputs of ic01/vww01 are not published; "
                             "a .tflite of your own has none): give one with --dataset DIR (EnergyRunner "
                             "layout: *.bin inputs + y_labels.csv) and one --model")
    return plans


def print_accuracy_and_profiles(rows: list[Any], plans: dict[Path, Any], profile: bool = False,
                                console: Console = console) -> None:
    """After the bench table: accuracy on target against the host, then each row's per-layer profile."""
    if plans:
        console.print(accuracy_table(rows))
        scored = sorted({r.benchmark for r in rows if r.accuracy_metric and r.accuracy_samples})
        missing = sorted({r.benchmark for r in rows if r.accuracy_metric and not r.accuracy_samples})
        partial = sorted({f"{r.benchmark} {r.accuracy_samples:,}/{r.accuracy_dataset_samples:,}" for r in rows
                          if r.accuracy_samples and r.accuracy_dataset_samples
                          and r.accuracy_samples < r.accuracy_dataset_samples})
        summary = f"accuracy: {len(scored)} of {len(scored) + len(missing)} models scored"
        summary += f"; no dataset for {', '.join(missing)}" if missing else ""
        summary += f"; partial (--limit): {', '.join(partial)} inputs" if partial else ""
        console.print(("[yellow]" if missing or partial else "") + escape(summary) + ("[/]" if missing or partial
                                                                                      else ""), highlight=False)
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
    from harness import engines

    skipped = sorted({r.engine for r in rows if profile and not engines.get(r.engine).profiles})
    if skipped:
        able = [n for n in engines.names() if engines.get(n).profiles]
        console.print(f"[yellow]note:[/] no per-layer profile for the {', '.join(skipped)} engine: "
                      f"--profile times the kernel calls of {', '.join(able)}", highlight=False)


def accuracy_table(rows: list[Any]) -> Table:
    """Each accuracy with the inputs it is over ("91.5 % (200/1000)": a --limit run says so)."""
    from harness.report.cells import accuracy_inputs, accuracy_value_text

    table = compact_table("accuracy: firmware on target vs the host interpreter (same inputs)",
                          ["benchmark", "target", "metric", "firmware (inputs)#", "host#", "outputs"])
    for r in rows:
        if not r.accuracy_metric:
            continue
        match = r.predictions_match_reference
        outputs = ("[green]all equal[/]" if match else "[red]differ[/]" if match is False
                   else "[yellow]no dataset[/]" if not r.accuracy_samples else "-")
        inputs = accuracy_inputs(asdict(r)) if r.accuracy_samples else ""
        table.add_row(r.benchmark, r.target, r.accuracy_metric,
                      accuracy_value_text(r.accuracy, r.accuracy_metric) + (f" ({inputs})" if inputs else ""),
                      accuracy_value_text(r.accuracy_reference, r.accuracy_metric), outputs)
    return table


def layers_table(row: Any) -> Table:
    """One row's per-layer profile: op, output shape, MACs, count, MACs per count, share."""
    unit = "instructions" if row.instructions is not None else "cycles"
    total = sum(layer["count"] for layer in row.layers) or 1
    est = all("est_cycles" in layer for layer in row.layers)
    est_total = sum(layer.get("est_cycles", 0) for layer in row.layers) or 1
    short = "instr." if unit == "instructions" else "cycle"
    cols = ["##", "op!", "output\nshape", "MACs#", f"{unit}#"]
    cols += ["est. cycles#", "MACs/ est. cycle#", "% of est.\ncycles#"] if est else [f"MACs/ {short}#", "% of\ntotal#"]
    table = compact_table(f"{row.benchmark} on {row.target}: per layer ({unit}; timer overhead "
                          f"{row.profile_overhead} per layer)", cols)
    for layer in row.layers:
        mpc = layer["macs_per_count"]
        cells = [str(layer["index"]), layer["op"], "x".join(str(d) for d in layer["output_shape"]),
                 f"{layer['macs']:,}", f"{layer['count']:,}"]
        if est:  # MACs per instruction is in --json; per est. cycle is the figure that means speed
            mpe = layer.get("macs_per_est_cycle")
            cells += [f"{layer['est_cycles']:,}", f"{mpe:.3f}" if mpe is not None else "-",
                      f"{100 * layer['est_cycles'] / est_total:.1f}"]
        else:
            cells += [f"{mpc:.3f}" if mpc is not None else "-", f"{100 * layer['count'] / total:.1f}"]
        table.add_row(*cells)
    table.add_row("", "sum", "", f"{sum(layer['macs'] for layer in row.layers):,}", f"{total:,}",
                  *((f"{est_total:,}", "", "100.0") if est else ("", "100.0")), style="bold")
    return table


def bench_table(rows: list[Any]) -> Table:
    """The bench's rows in 100 columns: one number per column, never cut (the splits of
    flash and RAM, the timing model's breakdown and the rest are in --json, the CSV and
    the HTML report)."""
    from harness.engines.compare import engine_label

    labels = list(dict.fromkeys(engine_label(r) for r in rows)) or ["builtin"]
    by_engine = labels != ["builtin"]  # an engine column unless every row is builtin's
    table = compact_table(f"tinyhil bench ({', '.join(labels)} engine{'s' if len(labels) > 1 else ''})",
                          ["benchmark (engine)" if by_engine else "benchmark", "target", "instructions#",
                           "est.\ncycles#", "est.\nms#", "flash\nKiB#", "RAM\nKiB#", "energy\nuJ#", "status!"])
    for r in rows:
        ok = r.status == "ok"
        ram = (f"{r.ram_bytes / 1024:.1f}" if ok and r.ram_bytes is not None
               else f"{r.ram_static_bytes / 1024:.1f}+" if r.ram_static_bytes is not None else "-")
        table.add_row(
            f"{r.benchmark} ({engine_label(r)})" if by_engine else r.benchmark, r.target,
            # A board's row has cycles (DWT) or only a timer latency, never instructions.
            f"{r.instructions:,}" if ok and r.instructions is not None
            else f"{r.cycles:,} cycles" if ok and r.cycles is not None else "-",
            f"{r.est_cycles:,}" if ok and r.est_cycles is not None else "-",
            f"{r.latency_ms:.2f}" if ok and r.latency_ms is not None else "-",
            f"{r.flash_bytes / 1024:.1f}" if r.flash_bytes is not None else "-", ram,
            f"{r.energy_uj:,.0f}" if ok and r.energy_uj is not None else "-",
            "[green]ok[/]" if ok else f"[red]{r.status.replace('_', ' ')}[/]",
        )
    return table


BENCH_TABLE_NOTE = (
    "instructions: QEMU -icount shift=0 retired instructions per inference (not cycles). est. cycles: the "
    "timing model (tinyhil-cycles: the core's timing table and the target's flash wait states and caches, "
    "on the same instructions; docs/cycle-model.md). est. ms = est. cycles / clock; energy = est. latency "
    "x the datasheet's active power. flash = code + weights + other; RAM = static + measured stack (+: "
    "static only). status ok: the output equals the tflite-micro interpreter's, byte for byte. Every "
    "split and source: --json, --csv, tinyhil report --html.")


def engines_table(rows: list[Any]) -> Table:
    """The engines side by side per model and target, with ratios to builtin."""
    from harness.engines.compare import compare_engines

    table = compact_table("engines side by side (x = engine / builtin)",
                          ["benchmark", "target", "engine", "instructions#", "arena B#", "flash KiB#",
                           "RAM KiB#", "output"])

    def num(v: int | None, ratio: float | None, scale: float = 1.0, fmt: str = ",.0f") -> str:
        return "-" if v is None else format(v / scale, fmt) + ("" if ratio is None else f" x{ratio:.2f}")

    for e in compare_engines(rows):
        out = ("-" if e.output_matches_reference is None
               else "[green]= ref[/]" if e.output_matches_reference else "[red]differs[/]")
        table.add_row(e.benchmark, e.target, e.engine, num(e.instructions, e.instructions_ratio),
                      num(e.arena_bytes, e.arena_ratio), num(e.flash_bytes, e.flash_ratio, 1024, ".1f"),
                      num(e.ram_bytes, e.ram_ratio, 1024, ".1f"), out)
    return table


def _bench_run_options(p: argparse.ArgumentParser) -> None:
    """What to run and how: shared by `bench` and `regress` (which reruns the suite through the bench)."""
    p.add_argument("--target", action="append", default=[],
                   help="target name (targets/*.toml) or descriptor path; repeatable (default cortex-m4)")
    p.add_argument("--model", action="append", default=[],
                   help="kws, vww, ic, ad (MLPerf Tiny) or a .tflite path; repeatable (default: all four)")
    p.add_argument("--models-dir", help="directory holding the MLPerf Tiny .tflite files")
    p.add_argument("--offline", action="store_true", help="never fetch the MLPerf Tiny models: a model "
                   "in none of --models-dir, TINYHIL_SHARED, ../shared, the fetch cache is an error")
    p.add_argument("--runs", type=int, default=1, help="timed inferences per model (default 1)")
    p.add_argument("--warmup", type=int, default=0, help="untimed inferences first (default 0)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per firmware run")
    p.add_argument("--shard", metavar="I/N",
                   help="run the I-th of N stable, balanced parts of the suite (CI matrices, several machines); "
                        "rows name the shard and the suite, and `tinyhil regress --rows` of all shards checks "
                        "that every case is there once")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="cases at once (default: the CPU count under QEMU, 1 on a board or Renode); rows "
                        "are written as each case finishes and are the same as one at a time")
    p.add_argument("--engine", action="append", default=[],
                   help="builtin, tflm or a comma list (builtin,tflm); repeatable (default builtin)")
    p.add_argument("--kernels", action="append", default=[],
                   help="TFLM kernels: ref, cmsis-nn or ref,cmsis-nn (default ref)")
    p.add_argument("--tflm-src", help="directory with the TFLM source trees (default: TINYHIL_TFLM_SRC, "
                                      "else what `tinyhil tflm fetch` fetched)")
    from harness import runners

    p.add_argument("--runner", choices=[k.name for k in runners.kinds()], default="qemu",
                   help="where the firmware runs (default qemu; `tinyhil targets` says what works here)")
    p.add_argument("--renode", metavar="PATH",
                   help="--runner renode: the `renode` command or a Renode directory (default: TINYHIL_RENODE, "
                        "else `renode` on PATH)")
    p.add_argument("--qemu-xtensa", metavar="PATH",
                   help="the ESP32 targets under QEMU: Espressif's qemu-system-xtensa (or its directory), which "
                        "has the esp32 machine (default: TINYHIL_QEMU_XTENSA, else the first on PATH that has it)")
    p.add_argument("--place", action="append", metavar="NAME",
                   help="--runner labgrid: a place of the coordinator's (repeatable: cases run on the free ones; "
                        "default: the target's [labgrid] places, else --labgrid-env's)")
    p.add_argument("--coordinator", metavar="HOST:PORT",
                   help="--runner labgrid: the labgrid coordinator (default: LG_COORDINATOR, else 127.0.0.1:20408)")
    p.add_argument("--labgrid-flash", choices=["labgrid", "flasher", "none"], default="flasher",
                   help="--runner labgrid: flash through labgrid's drivers (`labgrid-client bootstrap`: the "
                        "environment file's BootstrapProtocol driver, e.g. OpenOCDDriver), with the target's "
                        "flasher over the place's serial port (default), or none (the place runs the image "
                        "already; its build id is checked)")
    p.add_argument("--labgrid-env", metavar="FILE",
                   help="--runner labgrid: a labgrid environment file: its RemotePlaces are the places when "
                        "neither --place nor the target's [labgrid] places name them, and its drivers flash "
                        "with --labgrid-flash labgrid (default: LG_ENV)")
    p.add_argument("--port", help="--runner board: the board's serial port, any pyserial URL "
                                  "(/dev/ttyACM0, COM3, socket://host:port, rfc2217://host:port)")
    p.add_argument("--accuracy", action="store_true",
                   help="also infer every dataset input on target and score it (top-1, AD score/AUC) "
                        "against the host interpreter")
    p.add_argument("--dataset", metavar="DIR",
                   help="--accuracy: EnergyRunner dataset directory (*.bin + y_labels.csv) for the one "
                        "--model (default: the benchmark's own, found like the models: `tinyhil models list`)")
    p.add_argument("--limit", type=int, metavar="N", help="--accuracy: use the first N dataset inputs")
    p.add_argument("--profile", action="store_true",
                   help="also profile each layer (builtin engine; a separate profiling build)")


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    bench = sub.add_parser("bench", help="benchmark models on targets under QEMU")
    _bench_run_options(bench)
    bench.add_argument("--out", help="JSON lines file for the result rows (default results/bench-<time>.jsonl)")
    bench.add_argument("--csv", help="also write the rows as CSV")
    bench.add_argument("--json", action="store_true",
                       help="the rows as JSON lines on stdout as they finish (tables and notes on stderr)")
    bench.set_defaults(func=cmd_bench)
