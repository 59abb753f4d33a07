"""The runner seam: a firmware image in, raw measurements out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Protocol

from harness.dut import Dut, LayerProfile
from harness.errors import TinyhilError
from harness.targets import TargetDescriptor


@dataclass(frozen=True)
class RunJob:
    """What to do on the device: load ``input_bytes``, infer ``runs`` times after ``warmup``
    and read the outputs, stack and arena (``measure``); when asked, read the per-layer
    profile of that inference (``profile``, a profiling build); and infer every input of
    ``batch`` once (accuracy runs). ``measure=False`` with a batch counts nothing, so a
    runner may host it faster (QEMU without -icount)."""

    input_bytes: bytes = b""
    runs: int = 1
    warmup: int = 0
    profile: bool = False
    measure: bool = True
    batch: tuple[bytes, ...] = field(default=(), repr=False)
    # Called with (inputs done, total) as batch outputs arrive.
    on_batch_output: Callable[[int, int], None] | None = field(default=None, compare=False, repr=False)
    # How ``input_bytes`` go over ``db`` (harness/mlperf.py: "uint8" for ic01/vww01, whose
    # firmware subtracts 128 from the EnergyRunner bytes as the reference does).
    wire: str = "raw"


@dataclass(frozen=True)
class RunRecord:
    """Raw measurements of one run; ``error`` set means the run failed (no numbers)."""

    runner: str
    target: str
    elf: Path
    counter: str = ""  # "instructions" (emulator), "cycles" (hardware counter) or "timer" (a board's timer)
    ticks: int = 0  # over all timed runs, in the board timer's units
    runs: int = 0
    units_per_tick: int | Fraction = 1  # counter units per timer tick (ESP32 under QEMU: 25/6)
    timer_hz: int = 0  # ticks per second when counter == "timer" (a board without a cycle counter)
    invoke_status: int = 0
    output: bytes = b""
    stack_bytes: int = 0
    arena_bytes: int = 0
    arena_used_bytes: int | None = None  # measured by the engine at run time (TFLM)
    wall_s: float = 0.0
    profile: LayerProfile | None = None  # when the job asked for it
    batch_outputs: tuple[bytes, ...] = field(default=(), repr=False)  # one per job.batch input
    batch_s: float = 0.0  # wall time of the batch
    error: str = ""
    firmware_build: str = ""  # the build id the firmware named (boot banner / th-info%)
    # The timing model's figures (QEMU with the cycle plugin): per inference, averaged
    # over the timed runs; what the model is; where the cycles went; per profiled layer.
    est_cycles: int | None = None
    cycle_model: str = ""
    cycle_breakdown: dict[str, int] | None = field(default=None, compare=False)
    layer_est_cycles: tuple[int, ...] | None = None
    # Per instruction class, instructions per call charged exactly the class cost (calibration).
    cycle_classes: dict[str, float] | None = field(default=None, compare=False)
    transcript: tuple[str, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return not self.error and self.invoke_status == 0

    @property
    def count_per_inference(self) -> int:
        """Instructions (or cycles) per inference, averaged over the timed runs."""
        return int(self.ticks * self.units_per_tick // self.runs) if self.runs else 0


class Runner(Protocol):
    """Hosts a firmware and drives the DUT protocol."""

    name: str

    def run(self, elf: Path, target: TargetDescriptor, job: RunJob, timeout_s: float) -> RunRecord: ...


def drive(dut: Dut, job: RunJob, timeout_s: float, booted: bool = False,
          expect_build: str | None = None) -> dict[str, object]:
    """The DUT conversation every runner has once it holds a connected port
    (``booted``: the caller has already seen the firmware answer). With
    ``expect_build`` the session starts only after the complete boot banner of
    that build (:meth:`Dut.wait_boot`)."""
    if not booted:
        dut.wait_boot(timeout_s, expect_build)
    raw: dict[str, object] = {}
    if job.measure or job.profile:
        load_input(dut, job, timeout_s)
        reply = dut.infer(job.runs, job.warmup, timeout_s)
        raw.update({
            "ticks": reply.ticks,
            "runs": reply.runs,
            "invoke_status": reply.status,
            "output": dut.output_bytes(),
            "stack_bytes": dut.stack_bytes(),
            "arena_bytes": dut.arena_bytes(),
            "arena_used_bytes": dut.arena_used_bytes(),
        })
    if job.profile:
        raw["profile"] = dut.layer_profile()
    raw["firmware_build"] = dut.build
    if job.batch:
        # timeout_s bounds the wait for each output, not the whole dataset.
        start = time.monotonic()
        raw["batch_outputs"] = tuple(dut.infer_batch(job.batch, timeout_s, job.on_batch_output))
        raw["batch_s"] = time.monotonic() - start
    return raw


def load_input(dut: Dut, job: RunJob, timeout_s: float) -> None:
    """The job's input into the device: raw bytes (``th-dbb``) when the firmware is
    tinyhil's (it named its build), half the bytes of the standard hex ``db`` lines and
    one round trip instead of one per 512 bytes; the standard ``db load`` / ``db`` for
    any other firmware. Either way the device holds the same input bytes (the ``db``
    path sends a uint8 wire model's bytes + 128 and the device takes it off again)."""
    if dut.build:
        dut.load_binary(job.input_bytes, timeout_s)
    else:
        from harness.mlperf import wire_bytes

        dut.load(wire_bytes(job.wire, job.input_bytes))


def failed(runner: str, target: TargetDescriptor, elf: Path, err: TinyhilError | str,
           transcript: list[str] | tuple[str, ...] = ()) -> RunRecord:
    return RunRecord(runner=runner, target=target.name, elf=elf, error=str(err),
                     transcript=tuple(transcript))
