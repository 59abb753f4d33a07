"""`tinyhil mlperf fetch` and `tinyhil mlperf run`: the official MLPerf Tiny runner against tinyhil firmware."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.cli.common import add_fetch_options, console, err_console


def _say(message: str) -> None:
    err_console.print(escape(message), highlight=False, soft_wrap=True)


def cmd_mlperf_fetch(args: argparse.Namespace) -> int:
    """Fetch mlcommons/tiny benchmark/runner at the pinned commit (tinyhil mlperf fetch)."""
    from harness.engines.tflm.trees import DEFAULT_URL_TEMPLATE
    from harness.mlperf_runner import fetch_runner, missing_dependencies

    path = fetch_runner(Path(args.dest).expanduser() if args.dest else None,
                        args.url_template or DEFAULT_URL_TEMPLATE, force=args.force, progress=_say)
    console.print(escape(str(path)), highlight=False)
    missing = missing_dependencies()
    if missing:
        _say(f"note: the runner also needs {', '.join(missing)}: pip install 'tinyhil[mlperf]'")
    return 0


def cmd_mlperf_run(args: argparse.Namespace) -> int:
    """Run the official runner, as shipped, on a tinyhil firmware under QEMU (tinyhil mlperf run)."""
    from harness.bench import resolve_models
    from harness.errors import UserInputError
    from harness.mlperf_runner import (BENCHMARK_IDS, FETCH_COMMAND, MODES, make_runner_datasets,
                                       iterations_scale, missing_dependencies, performance_script, run_runner,
                                       RunnerImage, runner_dir, runner_image, serve_firmware, tinyhil_count)
    from harness.targets import find_target

    runner = runner_dir(args.runner)
    if runner is None:
        raise UserInputError(f"the MLPerf Tiny runner is not fetched: run `{FETCH_COMMAND}` (or pass --runner DIR)")
    missing = missing_dependencies()
    if missing:
        raise UserInputError(f"the MLPerf Tiny runner needs {', '.join(missing)}: pip install 'tinyhil[mlperf]'")
    auto = args.iterations_scale == "auto"
    if not auto and not (args.iterations_scale.isdigit() and int(args.iterations_scale) >= 1):
        raise UserInputError(f"--iterations-scale {args.iterations_scale}: expected a whole number >= 1 or auto")
    scale = 1 if auto else int(args.iterations_scale)
    if (auto or scale != 1) and args.mode != "p":
        raise UserInputError("--iterations-scale applies to performance mode (--mode p) only")
    target = find_target(args.target)
    [(bench, model_path, dataset_dir)] = resolve_models([args.model], offline=args.offline, progress=_say)
    bench_id = BENCHMARK_IDS[bench]
    work = Path(args.work_dir).expanduser() if args.work_dir else Path(tempfile.mkdtemp(prefix="tinyhil-mlperf-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.dataset_path:
        datasets = Path(args.dataset_path).expanduser()
        if not (datasets / bench_id / "y_labels.csv").is_file():
            raise UserInputError(f"--dataset-path {datasets}: no {bench_id}/y_labels.csv there (EnergyRunner layout: "
                                 "kws01/ ad01/ ic01/ vww01/, each with y_labels.csv and its files)")
    else:
        datasets = make_runner_datasets(work / "datasets", dataset_dir.parent if dataset_dir else None,
                                        [bench_id], limit=args.limit, seed=args.seed)
    image = (RunnerImage(Path(args.elf), None) if args.elf
             else runner_image(target, model_path, progress=_say, dataset_dir=dataset_dir))
    elf = image.elf
    if not elf.is_file():
        raise UserInputError(f"--elf {elf}: no such file")
    show = (lambda line: err_console.print(escape(line), highlight=False, soft_wrap=True, style="dim")) \
        if args.verbose else None
    _say(f"{bench_id} {MODES[args.mode]} on {target.name} (QEMU): {elf}; the runner's session in {work}")
    with serve_firmware(elf, target) as port:
        script = performance_script(runner, work / "tests_performance.yaml", scale) if scale != 1 else None
        result = run_runner(port, args.mode, bench_id, datasets, runner, work, timeout_s=args.timeout,
                            on_line=show, test_script=script)
        if auto and result.loop_s is not None and any(e.startswith("ERROR 2") for e in result.errors):
            scale = iterations_scale(result.loop_s)
            _say(f"the runner's loop took {result.loop_s:.1f} s of the 10 s it requires (ERROR 2): again with "
                 f"{scale} times its inferences per window")
            script = performance_script(runner, work / "tests_performance.yaml", scale)
            result = run_runner(port, args.mode, bench_id, datasets, runner, work, timeout_s=args.timeout,
                                on_line=show, test_script=script)
    console.print(f"[bold]MLPerf Tiny runner[/] ({escape(str(runner))}), {escape(bench_id)} "
                  f"{MODES[args.mode]}, model named by the DUT: {escape(result.model_id or '?')}", highlight=False)
    if args.mode == "p":
        for i, (thr, rt, n) in enumerate(zip(result.windows, result.runtimes + [0.0] * 9,
                                             result.iterations + [0] * 9), 1):
            console.print(f"  window {i}: {n} inferences in {rt:.3f} s (m-lap-us): {thr:,.3f} inf./s", highlight=False)
        if result.loop_s is not None:
            console.print(f"  the loop took {result.loop_s:.1f} s of host time (the runner requires 10 s)"
                          + (f"; inferences per window: {scale} times tests_performance.yaml's" if scale != 1 else ""),
                          highlight=False)
        if result.median_throughput is not None:
            console.print(f"  median throughput: [bold]{result.median_throughput:,.3f}[/] inf./s", highlight=False)
        scale_ = image.lap_scale
        if scale_ is not None:
            median = result.median_throughput
            console.print(f"  tinyhil: {scale_.est_cycles:,} est. cycles per inference at {target.clock_hz / 1e6:g} "
                          f"MHz = {scale_.inferences_per_s:,.3f} inf./s (est. latency "
                          f"{1e3 / scale_.inferences_per_s:.3f} ms; m-lap-us is this estimated time)"
                          + (f"; the runner's median is {100 * (median / scale_.inferences_per_s - 1):+.2f} % "
                             "from it" if median else ""), highlight=False)
        elif args.compare and result.windows:
            try:
                count, latency = tinyhil_count(elf, target, model_path, dataset_dir, cycle_model=True)
            except Exception as e:  # a comparison only: the runner's figures stand
                _say(f"tinyhil's own run for comparison failed: {e}")
            else:
                console.print(f"  tinyhil: {count:,} instructions/inference (1 instruction per ns of QEMU time: "
                              f"{1e9 / count:,.3f} inf./s)" + (f"; est. latency {latency:.3f} ms: "
                                                              f"{1e3 / latency:,.3f} inf./s" if latency else ""),
                              highlight=False)
    else:
        if result.top1 is not None:
            console.print(f"  Top-1: [bold]{result.top1:.1f} %[/] over {len(result.outputs)} inferences",
                          highlight=False)
        if result.auc is not None:
            console.print(f"  AUC: {result.auc:.3f}", highlight=False)
    for problem in result.errors:
        err_console.print(f"[red]runner:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    if result.log_path:
        console.print(f"[dim]the runner's log: {escape(str(result.log_path))}[/]", highlight=False)
    return 0 if result.ok else 1


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    mlperf = sub.add_parser("mlperf", help="the official MLPerf Tiny runner (mlcommons/tiny benchmark/runner) "
                                           "against tinyhil firmware")
    mlperf_sub = mlperf.add_subparsers(dest="mlperf_command", required=True)
    fetch = mlperf_sub.add_parser("fetch", help="fetch the runner at the pinned commit "
                                                "(~/.cache/tinyhil/mlperf-runner/<commit>)")
    add_fetch_options(fetch, "runner's files", "~/.cache/tinyhil/mlperf-runner/<commit>")
    fetch.set_defaults(func=cmd_mlperf_fetch)
    run = mlperf_sub.add_parser("run", help="run the runner, as shipped, on a firmware under QEMU")
    run.add_argument("--target", default="cortex-m4", help="the target (default cortex-m4)")
    run.add_argument("--model", required=True, choices=["kws", "vww", "ic", "ad"], help="the MLPerf Tiny model")
    run.add_argument("--mode", required=True, choices=["p", "a"], help="performance (p) or accuracy (a)")
    run.add_argument("--dataset-path", help="the runner's dataset directory (kws01/ ad01/ ic01/ vww01/, "
                                            "EnergyRunner layout); default: made from tinyhil's datasets, "
                                            "seeded random images for ic01/vww01")
    run.add_argument("--limit", type=int, help="without --dataset-path: this many inputs (kws01: every class "
                                               "among them)")
    run.add_argument("--seed", type=int, default=0, help="seed of the generated ic01/vww01 images")
    run.add_argument("--elf", help="the firmware to run (default: tinyhil's build of the model for the target)")
    run.add_argument("--iterations-scale", default="1", metavar="N|auto",
                     help="performance: time N times the runner's inferences per window (a copy of its "
                          "tests_performance.yaml), so its loop lasts the 10 s it requires under a fast "
                          "emulator; auto: as shipped, then once more scaled when it reports ERROR 2")
    run.add_argument("--runner", help="the runner's directory (default: TINYHIL_MLPERF_RUNNER, the fetch cache)")
    run.add_argument("--work-dir", help="where the runner's sessions/ go (default: a new temporary directory)")
    run.add_argument("--timeout", type=float, default=1800.0, help="seconds the runner may take (default 1800)")
    run.add_argument("--no-compare", dest="compare", action="store_false",
                     help="performance: do not run tinyhil's own measurement for comparison")
    run.add_argument("--offline", action="store_true", help="never fetch the models")
    run.add_argument("-v", "--verbose", action="store_true", help="show the runner's console as it runs (stderr)")
    run.set_defaults(func=cmd_mlperf_run)
