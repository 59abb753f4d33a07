"""`tinyhil build`: build one firmware and write it out (ELF, bin, hex, firmware.json)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.cli.common import console, err_console, print_json_lines
from harness.errors import UserInputError


def cmd_build(args: argparse.Namespace) -> int:
    """Build the bench's firmware of one model for one target and write it to ``-o DIR``."""
    from harness.bench import resolve_models
    from harness.build import check_cache_writable
    from harness.cli.progress import progress_display
    from harness.engines.dispatch import check_model, parse_engines
    from harness.export import check_energy, export_firmware, measure_lap_scale
    from harness.hosting import prepare_runner
    from harness.model import load_model
    from harness.targets import find_target

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"-o {args.output}: not a directory (the firmware's files go inside one)")
    check_energy(args.runner, args.energy)  # before minutes of measuring
    if args.lap_scale not in ("auto", "none"):
        raise UserInputError(f"--lap-scale {args.lap_scale!r}: expected auto or none")
    check_cache_writable()
    target = find_target(args.target)
    ((benchmark, path, dataset_dir),) = resolve_models([args.model], Path(args.models_dir) if args.models_dir else None,
                                             offline=args.offline)
    model = load_model(path)
    (engine,) = parse_engines([args.engine], [args.kernels] if args.kernels else [], args.tflm_src)
    check_model(engine, model, [target])
    # A board image needs no board to build: without --port, what the engine runs while
    # building (the tflm engine measures its arena) runs under QEMU.
    runner = prepare_runner(args.runner if args.runner == "qemu" or args.port else "qemu", args.port, [target])
    scale_it = args.runner == "qemu" and args.lap_scale == "auto"
    with progress_display("spinner") as progress:
        task = progress.add_task(f"{benchmark} for {target.name}")

        def note(message: str) -> None:
            progress.update(task, description=f"{escape(benchmark)} for {escape(target.name)}: {escape(message)}")

        scale = measure_lap_scale(model, target, engine, runner, args.timeout, note, dataset_dir) if scale_it else None
        doc = export_firmware(model, target, engine, runner, args.runner, out, scale, args.energy, args.timeout,
                              note)
    if args.json:
        print_json_lines([doc])
        return 0
    console.print(f"wrote {escape(str(out))}/firmware.elf, firmware.bin, firmware.hex and firmware.json "
                  f"({doc['model']}{' = ' + doc['mlperf_id'] if doc['mlperf_id'] else ''} on {doc['target']}, "
                  f"{doc['engine']} engine, build {doc['firmware_build']})", highlight=False)
    lap = doc["lap_us"]
    if lap["scaled"]:
        console.print(f"m-lap-us: the target's estimated time, CPI {lap['cpi']:.4f} ({lap['est_cycles']:,} est. "
                      f"cycles / {lap['instructions']:,} instructions per inference, {lap['cycle_model']}); "
                      f"the runner should report {lap['inferences_per_s']:,.3f} inferences/s", highlight=False)
    else:
        console.print(f"m-lap-us: {escape(lap['meaning'])}", highlight=False)
    if "qemu_command" in doc:
        console.print("run it: " + escape(" ".join(doc["qemu_command"])), soft_wrap=True, highlight=False)
    if doc["energy_mode"]:
        err_console.print("energy mode: infer and timestamp pulse the timestamp pin instead of printing m-lap-us "
                          "(docs/boards.md)", highlight=False)
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    from harness import runners

    p = sub.add_parser("build", help="build one firmware and write it out (ELF, bin, hex, firmware.json) for the "
                                     "MLPerf Tiny runner, EnergyRunner or a flasher")
    p.add_argument("--target", required=True, help="target name (targets/*.toml) or descriptor path")
    p.add_argument("--model", required=True, help="kws, vww, ic, ad (MLPerf Tiny) or a .tflite path")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the firmware's files")
    p.add_argument("--engine", default="builtin", help="builtin or tflm (default builtin)")
    p.add_argument("--kernels", help="tflm: ref or cmsis-nn (default ref)")
    p.add_argument("--tflm-src", help="tflm: directory with the TFLM source trees")
    p.add_argument("--runner", choices=[k.name for k in runners.kinds()], default="qemu",
                   help="what the image is for: qemu (default; the emulator build) or board (the chip's)")
    p.add_argument("--port", help="--runner board: the board's serial port (the tflm engine measures its arena "
                                  "there; without it under QEMU)")
    p.add_argument("--lap-scale", default="auto", metavar="auto|none",
                   help="qemu: m-lap-us in the target's estimated time (auto, measured once under QEMU with the "
                        "timing model) or QEMU's 1-GHz virtual time (none)")
    p.add_argument("--energy", action="store_true",
                   help="EnergyRunner's energy mode: timestamps pulse the descriptor's [energy] pin (board builds)")
    p.add_argument("--models-dir", help="directory holding the MLPerf Tiny .tflite files")
    p.add_argument("--offline", action="store_true", help="never fetch a missing MLPerf Tiny model")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for the measuring run")
    p.add_argument("--json", action="store_true", help="print firmware.json's document on stdout")
    p.set_defaults(func=cmd_build)
