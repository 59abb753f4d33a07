"""The correctness reference: TFLM's own interpreter from the tflite-micro wheel."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from harness.errors import ModelError
from harness.model import Model

# Big enough for every MLPerf Tiny model; the planner uses only what it needs.
_MIN_ARENA = 512 * 1024


@dataclass(frozen=True)
class ArenaUsage:
    """TFLM's RecordingMicroAllocator totals for one model."""

    total: int  # head + tail: what a TFLM firmware's arena must hold
    head: int  # the non-persistent, planned part (activations + scratch)
    tail: int  # persistent allocations (tensor structs, op data)


class Reference:
    """Runs a model in TFLM's host interpreter, one input set at a time."""

    def __init__(self, model: Model, raw: bytes | None = None) -> None:
        from tflite_micro.python.tflite_micro import runtime

        self.model = model
        for op in model.operators:
            # TFLM segfaults in Prepare on this (seen with the 2026-10 wheel).
            if op.name == "DEPTHWISE_CONV_2D" and len(op.inputs) > 2 and op.inputs[2] < 0:
                raise ModelError(
                    f"{model.path}: operator #{op.index} DEPTHWISE_CONV_2D has an omitted bias "
                    "(input -1), which crashes the TFLM reference interpreter; give it a zero "
                    "bias or drop the third input to compare against TFLM")
        data = raw if raw is not None else Path(model.path).read_bytes()
        try:
            self._interp = runtime.Interpreter.from_bytes(
                data, arena_size=max(_MIN_ARENA, len(data) * 10)
            )
        except Exception as e:  # TFLM reports prepare failures as RuntimeError
            raise ModelError(f"{model.path}: the TFLM reference interpreter refuses the model ({e})") from e

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Invoke once; inputs are refilled every call (TFLM reuses their buffers)."""
        for i, (arr, t) in enumerate(zip(inputs, self.model.input_tensors())):
            self._interp.set_input(np.asarray(arr, dtype=t.numpy_dtype).reshape(t.shape), i)
        self._interp.invoke()
        return [np.array(self._interp.get_output(i)) for i in range(len(self.model.outputs))]

    def arena_usage(self) -> ArenaUsage:
        """Read TFLM's arena totals (printed by C++ on fd 2, so capture it)."""
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                self._interp.print_allocations()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace")
        values = {k: int(v) for k, v in re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", text)}
        if set(values) != {"total", "head", "tail"}:
            raise ModelError(f"{self.model.path}: could not read TFLM's arena usage from:\n{text[:500]}")
        return ArenaUsage(values["total"], values["head"], values["tail"])
