"""The runner seam: a firmware image in, raw measurements out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.dut import Dut
from harness.errors import TinyhilError
from harness.targets import TargetDescriptor


@dataclass(frozen=True)
class RunJob:
    """What to do on the device: load ``input_bytes``, infer ``runs`` times after ``warmup``."""

    input_bytes: bytes
    runs: int = 1
    warmup: int = 0


@dataclass(frozen=True)
class RunRecord:
    """Raw measurements of one run; ``error`` set means the run failed (no numbers)."""

    runner: str
    target: str
    elf: Path
    counter: str = ""  # "instructions" (emulator) or "cycles" (hardware counter)
    ticks: int = 0  # over all timed runs, in the board timer's units
    runs: int = 0
    units_per_tick: int = 1  # counter units per timer tick
    invoke_status: int = 0
    output: bytes = b""
    stack_bytes: int = 0
    arena_bytes: int = 0
    wall_s: float = 0.0
    error: str = ""
    transcript: tuple[str, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return not self.error and self.invoke_status == 0

    @property
    def count_per_inference(self) -> int:
        """Instructions (or cycles) per inference, averaged over the timed runs."""
        return self.ticks * self.units_per_tick // self.runs if self.runs else 0


class Runner(Protocol):
    """Hosts a firmware and drives the DUT protocol."""

    name: str

    def run(self, elf: Path, target: TargetDescriptor, job: RunJob, timeout_s: float) -> RunRecord: ...


def drive(dut: Dut, job: RunJob, timeout_s: float) -> dict[str, object]:
    """The DUT conversation every runner has once it holds a connected port."""
    dut.wait_boot(timeout_s)
    dut.load(job.input_bytes)
    reply = dut.infer(job.runs, job.warmup, timeout_s)
    return {
        "ticks": reply.ticks,
        "runs": reply.runs,
        "invoke_status": reply.status,
        "output": dut.output_bytes(),
        "stack_bytes": dut.stack_bytes(),
        "arena_bytes": dut.arena_bytes(),
    }


def failed(runner: str, target: TargetDescriptor, elf: Path, err: TinyhilError | str,
           transcript: list[str] | tuple[str, ...] = ()) -> RunRecord:
    return RunRecord(runner=runner, target=target.name, elf=elf, error=str(err),
                     transcript=tuple(transcript))
