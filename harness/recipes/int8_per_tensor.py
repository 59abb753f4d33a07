"""``int8-per-tensor``: as ``int8``, with one scale per weight tensor."""

from __future__ import annotations

from harness.recipes import Calibration, recipe
from harness.recipes.quantize import quantize


@recipe("int8-per-tensor", "full-integer PTQ with one scale per weight tensor")
def int8_per_tensor(raw: bytes, calibration: Calibration | None, params: dict[str, int]) -> bytes:
    return quantize(raw, calibration, activation_bits=8, per_channel=False)
