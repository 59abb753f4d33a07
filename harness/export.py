"""`tinyhil build`: a firmware to hand to the MLPerf Tiny runner, EnergyRunner or a flasher.

The image is the bench's (same engine, same protocol), written out as ELF, raw binary
and Intel HEX, with ``firmware.json`` saying what it is and how to start it.

Time under emulation: QEMU's ``-icount shift=0`` clock runs one instruction per
nanosecond, a 1 GHz core whatever the target, so the runner's inferences per second
would be the emulator's. An image built for QEMU therefore reports ``m-lap-us`` in the
target's estimated time: tinyhil runs the model once under QEMU with the timing model,
takes the core's cycles per instruction on it (est. cycles / instructions), and builds
the image with ``-DTH_LAP_SCALE_Q16`` = CPI x 1e9 / clock in Q16, so that the runner's
inferences/s equals ``clock / est_cycles``, the bench's est. latency on the same row.
On a board (``--runner board``) the time is the board's own and nothing is scaled.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from harness.errors import BuildError, UserInputError
from harness.model import Model
from harness.targets import TargetDescriptor

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LapScale:
    """How the emulator's time becomes the target's in ``m-lap-us``."""

    instructions: int  # per inference, under QEMU
    est_cycles: int  # per inference, the timing model's
    clock_hz: int
    cycle_model: str

    @property
    def cpi(self) -> float:
        return self.est_cycles / self.instructions

    @property
    def q16(self) -> int:
        """Target microseconds per emulated microsecond (1 instruction = 1 ns), in Q16."""
        return round(self.cpi * 1e9 / self.clock_hz * 65536)

    @property
    def inferences_per_s(self) -> float:
        """What the runner should report: the target's clock over est. cycles."""
        return self.clock_hz / self.est_cycles


def measure_lap_scale(model: Model, target: TargetDescriptor, engine: Any, runner: Any, timeout_s: float,
                      progress: Progress, dataset_dir: Path | None = None) -> LapScale:
    """One inference of the bench's image on the bench's input under QEMU with the timing model."""
    from harness.bench import fixed_input, input_job
    from harness.build import variant_target
    from harness.engines.dispatch import build_image

    if target.cycle_model.unsupported or not target.cycle_model.table:
        raise UserInputError(f"target {target.name} has no timing model ({target.cycle_model.unsupported}): "
                             "m-lap-us cannot report the target's time; pass --lap-scale none for QEMU's "
                             "1-GHz virtual time")
    built = build_image(engine, model, variant_target(target, "emulator"), runner, timeout_s, progress)
    progress("measuring the core's cycles per instruction on this model (QEMU + timing model)")
    record = runner.run(built.image.elf, target, input_job(model, fixed_input(model, dataset_dir)), timeout_s)
    if not record.ok:
        raise BuildError(f"{model.name} on {target.name}: the run that measures m-lap-us's scale failed: "
                         f"{record.error}")
    if not record.est_cycles:
        raise UserInputError(f"target {target.name} has no timing model ({target.cycle_model.unsupported}): "
                             "m-lap-us cannot report the target's time; pass --lap-scale none for QEMU's "
                             "1-GHz virtual time")
    return LapScale(record.count_per_inference, int(record.est_cycles), target.clock_hz, record.cycle_model)


def check_energy(runner_name: str, energy: bool) -> None:
    """Energy mode pulses a GPIO of the chip: a board build only."""
    from harness.runners import get as runner_kind

    if energy and runner_kind(runner_name).build_variant == "emulator":
        raise UserInputError("--energy is for a board (--runner board): the timestamp pin is a GPIO of the chip, "
                             "and QEMU has no power monitor to pulse")


def with_lap_scale(target: TargetDescriptor, scale: LapScale) -> TargetDescriptor:
    """``target`` building images whose m-lap-us is the target's estimated time."""
    return replace(target, board_defines=target.board_defines + (("TH_LAP_SCALE_Q16", str(scale.q16)),))


def export_firmware(model: Model, target: TargetDescriptor, engine: Any, runner: Any, runner_name: str,
                    out: Path, lap_scale: LapScale | None, energy: bool, timeout_s: float,
                    progress: Progress) -> dict[str, Any]:
    """Build and write ``out``/firmware.{elf,bin,hex,json}; returns the JSON document."""
    from harness.build import find_target_toolchain, variant_target
    from harness.engines.dispatch import build_image
    from harness.metrics import elf_sizes
    from harness.mlperf import input_wire, mlperf_id
    from harness.results import SCHEMA_VERSION
    from harness.runners import get as runner_kind
    from harness.targets import energy_defines

    variant = runner_kind(runner_name).build_variant
    build_target = variant_target(target, variant)
    if lap_scale is not None:
        build_target = with_lap_scale(build_target, lap_scale)
    extra: list[tuple[str, str]] = []
    check_energy(runner_name, energy)
    if energy:
        extra.append(("TH_ENERGY_MODE", "1"))
        for flag in energy_defines(build_target):  # -DNAME=VALUE (the pin's are in the chip build)
            name, _, value = flag.removeprefix("-D").partition("=")
            if name != "TH_ENERGY_MODE":
                extra.append((name, value or "1"))
    if extra:
        build_target = replace(build_target, board_defines=build_target.board_defines + tuple(extra))
    built = build_image(engine, model, build_target, runner, timeout_s, progress)
    image = built.image
    out.mkdir(parents=True, exist_ok=True)
    elf = out / "firmware.elf"
    shutil.copyfile(image.elf, elf)
    tc = find_target_toolchain(target)
    for fmt, name in (("binary", "firmware.bin"), ("ihex", "firmware.hex")):
        proc = subprocess.run([str(tc.objcopy), "-O", fmt, str(elf), str(out / name)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise BuildError(f"objcopy -O {fmt} failed", [str(tc.objcopy), "-O", fmt, str(elf)], proc.stderr)
    sizes = elf_sizes(elf)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "target": target.name, "core": target.core, "clock_hz": target.clock_hz,
        "model": model.name, "model_sha256": model.sha256, "mlperf_id": mlperf_id(model),
        "input_wire": input_wire(model),
        "engine": built.engine, "engine_version": built.engine_version, "kernels": built.kernels,
        "runner": runner_name, "build_variant": variant, "firmware_build": image.build_id,
        "files": {"elf": elf.name, "bin": "firmware.bin", "hex": "firmware.hex"},
        "flash_bytes": sizes.flash, "ram_static_bytes": sizes.ram_static,
        "compiler": image.compiler, "cflags": list(image.cflags),
        "uart": _uart(target, variant),
        "lap_us": ({"scaled": True, "scale_q16": lap_scale.q16, **asdict(lap_scale), "cpi": round(lap_scale.cpi, 6),
                    "inferences_per_s": round(lap_scale.inferences_per_s, 3),
                    "meaning": "m-lap-us is the target's estimated time: the emulator's (1 instruction = 1 ns) "
                               "times est. cycles / instructions / clock"}
                   if lap_scale else {"scaled": False,
                                      "meaning": "the board's own timer" if variant != "emulator" else
                                      "QEMU virtual time: 1 instruction = 1 ns (a 1 GHz core)"}),
        "energy_mode": energy,
    }
    if variant == "emulator" and target.qemu is not None:
        from harness.runners.qemu import qemu_command

        doc["qemu_command"] = qemu_command(f"qemu-system-{target.qemu.system}", elf.resolve(), target,
                                           "tcp:127.0.0.1:4444,server=on,wait=on,nodelay=on")
    (out / "firmware.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def _uart(target: TargetDescriptor, variant: str) -> dict[str, Any]:
    """Where the DUT protocol is spoken: QEMU's serial 0, or the board's UART."""
    if variant == "emulator":
        return {"where": "QEMU serial0 (-serial): a TCP or Unix socket server; the MLPerf runner's "
                         "'socket://127.0.0.1:4444' with the qemu_command below",
                "protocol": "EEMBC/MLPerf Tiny DUT (docs/dut-protocol.md), commands end with '%'"}
    return {"where": f"the board's UART (see docs/boards.md for {target.name})",
            "protocol": "EEMBC/MLPerf Tiny DUT (docs/dut-protocol.md), commands end with '%'"}
