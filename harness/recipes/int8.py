"""``int8``: full-integer PTQ, per-channel int8 weights, int8 activations and I/O."""

from __future__ import annotations

from harness.recipes import Calibration, recipe
from harness.recipes.quantize import quantize


@recipe("int8", "full-integer PTQ: per-channel int8 weights, int8 activations, int8 in/out")
def int8(raw: bytes, calibration: Calibration | None, params: dict[str, int]) -> bytes:
    return quantize(raw, calibration, activation_bits=8, per_channel=True)
