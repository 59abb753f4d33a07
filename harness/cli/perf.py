"""`tinyhil perf`: builtin against TFLM with the engine's goals."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.cli.common import _results_out, console, err_console, print_json_lines
from harness.errors import TinyhilError
from harness.cli.bench import run_bench


def cmd_perf(args: argparse.Namespace) -> int:
    """Builtin against TFLM (+ CMSIS-NN) with issue 9's goals: run the bench, or read --rows."""
    from harness import perf
    from harness.bench import resolve_models
    from harness.engines.builtin.scratch import scratch_bytes
    from harness.engines.tflm.trees import find_trees
    from harness.model import load_model
    from harness.results import read_rows

    say = err_console if args.json else console  # --json: stdout carries the JSON lines only
    models = resolve_models(args.model, Path(args.models_dir) if args.models_dir else None,
                            offline=args.offline)
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
                say.print(f"[yellow]TFLM {k} not run:[/] {escape(str(e))}")
        bench = argparse.Namespace(
            engine=["builtin,tflm" if kernels else "builtin"], kernels=[",".join(kernels)] if kernels else [],
            target=args.target or list(DEFAULT_TARGETS), model=args.model or [], models_dir=args.models_dir,
            tflm_src=args.tflm_src, runs=1, warmup=0, timeout=300.0, runner="qemu", port=None, accuracy=False,
            dataset=None, limit=None, profile=False, jobs=args.jobs)
        out = _results_out(args.out)
        bench_rows, _ = run_bench(bench, out)
        rows = [asdict(r) for r in bench_rows]
        rc = 1 if any(r.status != "ok" for r in bench_rows) else 0
    loaded = {bench: load_model(path) for bench, path, _ in models}
    macs = {bench: m.macs for bench, m in loaded.items()}
    from harness.targets import find_target

    isas = {}
    for r in rows:  # th_scratch depends on the target's kernels (cortex-m55: Helium's)
        try:
            isas[str(r["target"])] = find_target(str(r["target"])).builtin_isa
        except TinyhilError:
            isas[str(r["target"])] = ""
    scratch = {(bench, t): (scratch_bytes(m, isa) + 3) // 4 * 4 for bench, m in loaded.items()
               for t, isa in isas.items()}
    portable = {} if args.rows else _portable_counts(rows, {b: p for b, p, _ in models}, say)
    lines = perf.perf_lines(rows, macs, scratch, portable)
    if args.json:
        print_json_lines(perf.json_records(lines))
    say.print(perf_table(lines))
    say.print("[dim]x CMSIS-NN = builtin instructions / TFLM + CMSIS-NN's; peak RAM = builtin's arena + "
              "kernel scratch + stack high-water; x TFLM RAM = that / TFLM's peak RAM (arena_used_bytes() + "
              "stack high-water, measured the same way; '-' when a row lacks either); x flash = builtin / "
              "TFLM firmware flash. TFLM's own figures: --json.[/]")
    say.print(f"[dim]goals: instructions <= {perf.RATIO_GOAL} x TFLM + CMSIS-NN's; peak RAM "
                  f"<= {perf.RATIO_GOAL} x TFLM's peak RAM and flash <= {perf.RATIO_GOAL} x TFLM "
                  "firmware's (the smaller of the reference and CMSIS-NN figures); est. "
                  f"cycles/MAC <= {perf.CYCLES_PER_MAC_GOAL} on {perf.CYCLES_PER_MAC_TARGET} for "
                  f"{', '.join(perf.CYCLES_PER_MAC_BENCHMARKS)}; instructions/MAC on "
                  f"{perf.INSTR_PER_MAC_TARGET} <= "
                  + ", ".join(f"{g} {b.upper()}" for b, g in perf.INSTR_PER_MAC_GOALS.items())
                  + f"; on a Helium core (cortex-m55) x DSP = builtin's instructions / its portable and DSP "
                  f"kernels' on the same core <= {perf.HELIUM_RATIO_GOAL}. cycles/MAC = est_cycles (the timing "
                  "model) / the model's MACs. '-' = not measured.[/]")
    met = perf.goals_met(lines)
    say.print("all goals met" if met else "[yellow]goals not all met[/]")
    return rc


DEFAULT_TARGETS = ("cortex-m4", "stm32f746", "cortex-m55")


def _portable_counts(rows: list[dict[str, Any]], paths: dict[str, Path], say: Any) -> dict[tuple[str, str], int]:
    """On each Helium core that has an ok builtin row, the same model through builtin's
    portable/DSP kernels (generate(model, isa="")), as the bench runs it: instructions."""
    from harness.bench import fixed_input, input_job
    from harness.build import build_firmware
    from harness.engines.builtin import generate
    from harness.model import load_model
    from harness.runners.qemu import QemuRunner
    from harness.targets import find_target

    out: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.get("engine") != "builtin" or r.get("status") != "ok" or r.get("benchmark") not in paths:
            continue
        target = find_target(str(r["target"]))
        if not target.builtin_isa or (r["benchmark"], target.name) in out:
            continue
        model = load_model(paths[r["benchmark"]])
        image = build_firmware(generate(model), target)
        record = QemuRunner(cycle_model=False).run(image.elf, target, input_job(model, fixed_input(model, None)),
                                                   300.0)
        if record.ok:
            out[(str(r["benchmark"]), target.name)] = record.count_per_inference
        else:
            say.print(f"[yellow]{r['benchmark']} on {target.name} through the portable kernels failed:[/] "
                      f"{escape(record.error)}")
    return out


def perf_table(lines: list[Any]) -> Table:
    """Builtin against TFLM, fit for 100 columns: the builtin figures, each with its ratio
    to TFLM's and the goal's verdict. TFLM's own figures are in ``--json``."""
    def n(v: Any) -> str:
        return "-" if v is None else f"{v:,}"

    def m(v: Any) -> str:
        return "-" if v is None else f"{v / 1e6:.2f}M"

    def r(v: Any, ok: Any) -> str:
        if v is None:
            return "-"
        mark = "" if ok is None else (" [green]ok[/]" if ok else " [red]no[/]")
        return f"{v:.2f}{mark}"

    from harness.perf import CYCLES_PER_MAC_GOAL, RATIO_GOAL

    t = Table(title=f"builtin vs TFLM (goals: ratios <= {RATIO_GOAL}, cycles/MAC <= {CYCLES_PER_MAC_GOAL})")
    helium = any(ln.helium_ratio is not None for ln in lines)
    cols = ("model", "target", "instr", "x CMSIS-NN", "instr/MAC", "cyc/MAC", *(("x DSP",) if helium else ()),
            "peak RAM B", "x TFLM RAM", "flash B", "x flash")
    for col in cols:
        t.add_column(col, justify="left" if col in ("model", "target") else "right", overflow="fold")
    for ln in lines:
        t.add_row(ln.benchmark, ln.target, m(ln.builtin_instructions),
                  r(ln.instructions_ratio, ln.instructions_ok),
                  r(ln.builtin_instructions_per_mac, ln.instructions_per_mac_ok),
                  r(ln.builtin_cycles_per_mac, ln.cycles_per_mac_ok),
                  *((r(ln.helium_ratio, ln.helium_ok),) if helium else ()),
                  n(ln.builtin_peak_ram), r(ln.ram_ratio, ln.ram_ok),
                  n(ln.builtin_flash), r(ln.flash_ratio, ln.flash_ok))
    return t


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    perf = sub.add_parser("perf", help="builtin vs TFLM (+ CMSIS-NN) against the engine's goals")
    perf.add_argument("--target", action="append",
                      help="repeatable (default cortex-m4, stm32f746 and cortex-m55)")
    perf.add_argument("--model", action="append", help="kws, vww, ic, ad (default all four)")
    perf.add_argument("--models-dir", help="directory holding the MLPerf Tiny .tflite files")
    perf.add_argument("--offline", action="store_true", help="never fetch the MLPerf Tiny models (see bench)")
    perf.add_argument("--tflm-src", help="directory with the TFLM source trees")
    perf.add_argument("--rows", action="append", metavar="JSONL",
                      help="read these result rows instead of running the bench")
    perf.add_argument("--jobs", type=int, metavar="N",
                      help="cases at once (default: the CPU count); rows are the same as one at a time")
    perf.add_argument("--out", help="JSON lines file for the rows (default results/bench-<time>.jsonl)")
    perf.add_argument("--json", action="store_true",
                      help="one JSON object per (model, target) line, then one with the goals, on stdout "
                           "(the table goes to stderr)")
    perf.set_defaults(func=cmd_perf)
