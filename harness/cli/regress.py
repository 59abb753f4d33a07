"""`tinyhil regress` and `tinyhil baseline update`: rows against a baseline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.cli.common import console, err_console
from harness.errors import UserInputError
from harness.cli.bench import _bench_run_options, bench_table, run_bench
from harness.cli.tables import compact_table


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
    elif getattr(args, "shard", None):
        raise UserInputError(f"--shard {args.shard}: regress judges the whole suite; run each shard with "
                             "`tinyhil bench --shard I/N`, then `tinyhil regress --rows` with every shard's rows")
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
    from harness.shard import merge_problems

    incomplete = merge_problems(current)  # shards' rows merged: each case once, none missing
    result = compare(in_scope(baseline, targets, benchmarks), in_scope(current, targets, benchmarks), tolerances)
    table, findings = regress_table(result)
    console.print(table)
    for finding in findings:
        console.print(finding, soft_wrap=True, highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True, highlight=False)
    tol = ", ".join(f"{k} {v:g}{'%' if k != 'accuracy' else ' points'}" for k, v in result.tolerances.items())
    console.print(f"{result.keys_compared} keys compared with {escape(args.baseline)} (tolerances: {tol}): "
                  f"{result.count('regression')} regressions, {result.count('improvement')} improvements, "
                  f"{result.count('within tolerance')} within tolerance, {result.count('new')} new, "
                  f"{result.count('unchanged')} unchanged", highlight=False, soft_wrap=True)
    for problem in incomplete:
        err_console.print(f"[red]incomplete merge:[/] {escape(problem)}", soft_wrap=True, highlight=False)
    if result.ok and not incomplete:
        console.print("[green]no regressions[/]")
        return 0
    if incomplete:
        err_console.print(f"[red]the sharded suite's rows are not complete ({len(incomplete)} problem(s)): "
                          "no verdict[/]", highlight=False)
        return 1
    err_console.print(f"[red]{result.count('regression')} regression(s)[/] against {escape(args.baseline)}",
                      highlight=False)
    return 1


def regress_table(result: Any) -> tuple[Table, list[str]]:
    """One line per key: each metric's value, or baseline -> this run when it moved, and
    the key's verdict; and one finding line per change or row note (printed under the
    table, unwrapped, so a log can be grepped for them)."""
    from harness.regress import METRICS

    table = compact_table("tinyhil regress: this run against the baseline",
                          ["benchmark on target (engine, recipe)", *(f"{m}#" for m in METRICS), "verdict!"])
    style = {"regression": "red", "improvement": "green", "within tolerance": "yellow", "new": "cyan",
             "unchanged": ""}
    by_key: dict[Any, list[Any]] = {}
    for c in result.changes:
        by_key.setdefault(c.key, []).append(c)
    findings: list[str] = []
    for key, changes in by_key.items():
        benchmark, target, engine, recipe = key
        name = escape(f"{benchmark} on {target} ({engine}" + (f", {recipe})" if recipe != "none" else ")"))
        cells = {m: "" for m in METRICS}
        verdicts = []
        for c in changes:
            tag = f"[{style[c.verdict]}]{c.verdict}[/]" if style[c.verdict] else c.verdict
            if c.verdict != "unchanged":
                verdicts.append(c.verdict)
            if c.what not in METRICS:
                findings.append(f"{name}: {tag}: {escape(c.note)}")
                continue
            if c.verdict == "unchanged":
                cells[c.what] = _num(c.current)
            elif c.current is None:
                cells[c.what] = f"[red]{_num(c.baseline)} -> none[/]"
                findings.append(f"{name}: [red]regression[/]: {c.what} {escape(c.note)}")
            else:
                pct = f" ({c.delta_pct:+.3g}%)" if c.delta_pct is not None else ""
                cells[c.what] = f"[{style[c.verdict]}]{_num(c.baseline)} -> {_num(c.current)}{pct}[/]"
                findings.append(f"{name}: {tag}: {c.what} {_num(c.baseline)} -> {_num(c.current)}{pct}"
                                + (f" ({escape(c.note)})" if c.note else ""))
        worst = next((v for v in ("regression", "within tolerance", "improvement", "new") if v in verdicts),
                     "unchanged")
        table.add_row(name, *cells.values(), f"[{style[worst]}]{worst}[/]" if style[worst] else worst)
    return table, findings


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v == int(v) and abs(v) >= 1 else f"{v:.4g}"


def cmd_baseline_update(args: argparse.Namespace) -> int:
    """Write a baseline from result rows (default: the newest results/bench-*.jsonl)."""
    from harness.regress import write_baseline
    from harness.results import load_row_files, results_dir, row_key

    if args.rows:
        paths = [Path(p) for p in args.rows]
    else:
        runs = sorted(results_dir().glob("bench-*.jsonl"))
        if not runs:
            raise UserInputError(f"no {results_dir()}/bench-*.jsonl to make a baseline from: run `tinyhil bench` "
                                 "or pass --rows FILE")
        paths = [runs[-1]]
    sources = ", ".join(str(p) for p in paths)
    doc = write_baseline(load_row_files(paths), Path(args.out), source=sources)
    keys = ", ".join(sorted({"/".join(row_key(r)[:3]) for r in doc["rows"]}))
    console.print(escape(f"baseline {args.out}: {len(doc['rows'])} rows ({keys}) from {sources}"), highlight=False)
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
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
