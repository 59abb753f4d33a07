"""A TFLM firmware for one model on one target: library, glue, measured arena.

    Model + target ─► TFLM library (cached) ─► glue (codegen) ─► arena measured ─► FirmwareImage

The arena is measured, not guessed. A measuring firmware with a roomy arena
runs once on the target's own runner (same library, same 32-bit layout, same
kernels' scratch buffers as the real firmware): after ``AllocateTensors`` it
bisects, in 16-byte steps, for the smallest arena with which ``AllocateTensors``
still succeeds, and reports it (``m-th-tflm-arena-min-bytes-<n>``) along with
TFLM's ``arena_used_bytes()`` (``th-arena%``). The benchmarked firmware gets
exactly that minimum, so no margin is guessed; the benchmark run proves it
(``AllocateTensors`` would fail, and the row with it). ``arena_used_bytes()``
alone is not enough although ``micro_interpreter.h`` calls it the optimal size:
it leaves out the temporary allocations ``AllocateTensors`` makes while planning
(AD on Cortex-M4 reports 2,260 bytes used, and fails with a 2,272-byte arena:
"Too many buffers (max is 0)"). The host interpreter's total is only the first
guess for the measuring arena: it is a 64-bit build with the reference kernels
(bigger structs, no CMSIS-NN scratch buffers).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from elftools.elf.elffile import ELFFile

from harness.build import CxxPart, FirmwareImage, Toolchain, build_firmware, compile_flags, find_toolchain
from harness.engines.tflm.codegen import TflmModel, generate, resolver_methods
from harness.engines.tflm.library import TflmLibrary, build_library, core_flags_of
from harness.engines.tflm.trees import TflmTrees
from harness.errors import BuildError, RunnerError, UserInputError
from harness.model import Model
from harness.reference import Reference
from harness.runners.base import RunJob, RunRecord, Runner
from harness.targets import TargetDescriptor

Progress = Callable[[str], None]

ALIGN = 16  # TFLM's MicroArenaBufferAlignment()
# The measuring firmware's arena: the host interpreter's total plus room for what
# a 32-bit build with other kernels may need more of; doubled when still short.
_MEASURE_SLACK = 8 * 1024
_MEASURE_ATTEMPTS = 3

# tinyhil_invoke()'s status when the TFLM glue is not ready (th_tflm.cc).
STATUS = {
    1: "the model's schema version is not TFLM's",
    2: "an op type could not be registered with TFLM's MicroMutableOpResolver",
    3: "TFLM's AllocateTensors failed (arena too small, or a kernel refused the model in Prepare)",
    4: "TFLM's Invoke failed",
}
_ALLOCATE_FAILED = 3


@dataclass(frozen=True)
class TflmBuild:
    """A TFLM firmware and what it was built from."""

    image: FirmwareImage
    library: TflmLibrary
    arena_bytes: int  # the static arena: the smallest that works, measured on the target's firmware
    arena_used_bytes: int  # TFLM's arena_used_bytes() there
    engine_version: str


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


def engine_version(trees: TflmTrees, kernels: str) -> str:
    """``tflm-<commit> kernels=<k>`` (+ the CMSIS-NN commit): what the row was built from."""
    text = f"tflm-{trees.commit('tflite-micro')[:12]} kernels={kernels}"
    if kernels == "cmsis-nn":
        text += f" cmsis-nn-{trees.commit('cmsis-nn')[:12]}"
    return text


def explain(record: RunRecord) -> RunRecord:
    """A failed invoke status as words, with TFLM's own log lines from the transcript."""
    if record.error or record.invoke_status == 0:
        return record
    from dataclasses import replace

    why = STATUS.get(record.invoke_status, f"tinyhil_invoke returned {record.invoke_status}")
    log = [m.group(1) for line in record.transcript
           if (m := re.match(r"m-th-tflm-log-\[(.*)\]$", line))]
    detail = f" (TFLM: {' / '.join(log[-3:])})" if log else ""
    return replace(record, error=f"{why}{detail}")


def check_target(target: TargetDescriptor) -> None:
    if not target.core.startswith("cortex-m"):
        raise UserInputError(f"target {target.name}: the tflm engine builds for Cortex-M cores only "
                             f"(core {target.core!r})")


def _no_static_constructors(elf: Path) -> None:
    """The startup code runs no C++ constructors: refuse an image that has some."""
    with elf.open("rb") as f:
        for sec in ELFFile(f).iter_sections():
            if sec.name in (".init_array", ".preinit_array", ".ctors") and int(sec["sh_size"]) > 0:
                raise BuildError(f"{elf}: has C++ static constructors ({sec.name}, {int(sec['sh_size'])} "
                                 "bytes), which tinyhil's startup code does not run")


def build_tflm_firmware(model: Model, target: TargetDescriptor, kernels: str, trees: TflmTrees,
                        runner: Runner, timeout_s: float = 120.0, progress: Progress | None = None,
                        toolchain: Toolchain | None = None) -> TflmBuild:
    """Build the TFLM firmware of ``model`` for ``target``, its arena measured on ``runner``.

    Raises:
        UnsupportedOpError: an op TFLM's resolver cannot register (before compiling).
        BuildError: the library, glue or link failed.
        RunnerError: the measuring run failed.
    """
    say = progress or (lambda _m: None)
    check_target(target)
    tc = toolchain or find_toolchain()
    available = resolver_methods(trees.tflm)
    generate(model, ALIGN, available)  # op check first: a user mistake costs no compile
    lib = build_library(trees, kernels, core_flags_of(compile_flags(target)), tc.gcc, tc.version, say)

    def build(arena: int, measure: bool = False) -> tuple[TflmModel, FirmwareImage]:
        gen = generate(model, arena, available, measure)
        cxx = CxxPart(engine="tflm", sources=gen.cxx_sources, templates=tuple(gen.glue_sources()),
                      cxxflags=lib.cxxflags, system_includes=lib.include_dirs, libraries=(lib.archive,),
                      key=lib.key)
        image = build_firmware(gen, target, progress=say, toolchain=tc, cxx=cxx)
        _no_static_constructors(image.elf)
        return gen, image

    arena, used = _measure_arena(model, target, build, runner, timeout_s, say)
    _, image = build(arena)
    return TflmBuild(image, lib, arena, used, engine_version(trees, kernels))


_MIN_LINE = re.compile(r"m-th-tflm-arena-min-bytes-(\d+)$")


def _measure_arena(model: Model, target: TargetDescriptor,
                   build: Callable[[int, bool], tuple[TflmModel, FirmwareImage]], runner: Runner,
                   timeout_s: float, say: Progress) -> tuple[int, int]:
    """(the smallest arena that works, TFLM's arena_used_bytes()), from a measuring
    firmware with a roomy arena; cached next to that firmware."""
    arena = _round_up(Reference(model).arena_usage().total * 5 // 4 + _MEASURE_SLACK, 1024)
    last = ""
    for _ in range(_MEASURE_ATTEMPTS):
        gen, image = build(arena, True)
        saved = image.elf.parent / "arena.json"
        if saved.is_file():
            facts = json.loads(saved.read_text())
            return int(facts["arena_min_bytes"]), int(facts["arena_used_bytes"])
        say(f"measuring TFLM's arena for {model.name} on {target.name} ({arena:,} B arena)")
        inputs = bytes(sum(io.nbytes for io in gen.inputs))
        record = explain(runner.run(image.elf, target, RunJob(inputs, runs=1), timeout_s))
        if record.invoke_status == _ALLOCATE_FAILED:  # maybe short of arena: try twice the size
            last = record.error
            arena *= 2
            continue
        found = [int(m.group(1)) for line in record.transcript if (m := _MIN_LINE.match(line))]
        if not record.ok or not record.arena_used_bytes or not found:
            raise RunnerError(f"measuring TFLM's arena for {model.name} on {target.name} failed: "
                              f"{record.error or 'no m-th-arena-used-bytes or m-th-tflm-arena-min-bytes'}")
        facts = {"measuring_arena_bytes": arena, "arena_min_bytes": found[-1],
                 "arena_used_bytes": record.arena_used_bytes}
        saved.write_text(json.dumps(facts) + "\n")
        return found[-1], record.arena_used_bytes
    raise RunnerError(f"measuring TFLM's arena for {model.name} on {target.name} failed with a "
                      f"{arena // 2:,} B arena: {last}")
