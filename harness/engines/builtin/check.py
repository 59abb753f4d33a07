"""`tinyhil engine check`: the builtin engine against TFLM's interpreter, byte for byte."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from harness.datasets import Sample
from harness.engines.builtin.codegen import generate
from harness.engines.builtin.host import build_host, run_host
from harness.model import Model
from harness.reference import ArenaUsage, Reference


@dataclass(frozen=True)
class CheckResult:
    """One model's comparison; ``max_abs_diff`` must be 0."""

    model: str
    ops: int
    macs: int
    arena_bytes: int
    tflm_arena: ArenaUsage
    weights_bytes: int
    samples: int
    max_abs_diff: int
    mismatched_samples: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff == 0 and not self.mismatched_samples


def check_model(
    model: Model,
    samples: Sequence[Sample],
    workdir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    isa: str = "",
) -> CheckResult:
    """Generate, compile and run ``model`` on the host; compare every output byte.
    ``isa`` "mve": the Helium kernels' C, run through th_mve.h's exact emulation."""
    start = time.monotonic()
    note = progress or (lambda _msg: None)
    note("generating C")
    gen = generate(model, isa)
    reference = Reference(model)
    with tempfile.TemporaryDirectory(prefix="tinyhil-check-") as tmp:
        build_dir = workdir or Path(tmp)
        note("compiling for the host")
        exe = build_host(gen, build_dir)
        note(f"running {len(samples)} input sets")
        ours = run_host(exe, gen, samples)
    note("running the TFLM interpreter")
    max_diff = 0
    mismatched: list[str] = []
    for sample, got in zip(samples, ours):
        want = reference.run(sample.inputs)
        diff = max(
            (int(np.max(np.abs(g.astype(np.int64) - w.astype(np.int64)))) if g.size else 0)
            for g, w in zip(got, want)
        ) if got else 0
        if diff or any(g.tobytes() != w.tobytes() for g, w in zip(got, want)):
            mismatched.append(sample.name)
        max_diff = max(max_diff, diff)
    return CheckResult(
        model=model.name,
        ops=len(model.operators),
        macs=model.macs,
        arena_bytes=gen.arena_bytes,
        tflm_arena=reference.arena_usage(),
        weights_bytes=gen.weights_bytes,
        samples=len(samples),
        max_abs_diff=max_diff,
        mismatched_samples=tuple(mismatched),
        seconds=time.monotonic() - start,
    )
