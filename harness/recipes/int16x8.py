"""``int16x8``: 16-bit activations (symmetric, as TFLM's int16 kernels require), 8-bit weights."""

from __future__ import annotations

from harness.recipes import Calibration, recipe
from harness.recipes.quantize import quantize


@recipe("int16x8", "PTQ with int16 activations and I/O, per-channel int8 weights, int64 biases")
def int16x8(raw: bytes, calibration: Calibration | None, params: dict[str, int]) -> bytes:
    return quantize(raw, calibration, activation_bits=16, per_channel=True)
