"""Which requantization the int8 GEMM kernels may use (th_requant.h).

th_requant_fast replaces TFLM's MultiplyByQuantizedMultiplier with one
rounding high multiply (SMMULR of 2 * acc) and one rounding shift. It gives
the same integers when every accumulator fits in 31 bits signed after
doubling (|acc| < 2^30) and the shift is a right shift by 1..31; both are
checked here, at build time, from the weights, the bias and the input zero
point.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

EXACT = 0  # th_requant: the general sequence
FAST = 1  # th_requant_fast, then the activation clamp
FAST_SAT8 = 2  # th_requant_fast, the clamp being the whole int8 range (SSAT)


def mode(rows: np.ndarray, bias: np.ndarray | None, input_offset: int, shifts: Sequence[int],
         act_min: int, act_max: int, mults: Sequence[int] | None = None) -> int:
    """The mode for weights ``rows`` ([outputs, depth]) applied to int8 inputs plus ``input_offset``.

    An output whose multiplier is 0 (a pruned channel: quantizers give it all-zero
    weights and often a bias of INT32_MIN) is 0 plus the offset on every path,
    SMMULR(2 acc, 0) included whatever 2 acc wraps to, so it constrains nothing."""
    x_max = max(abs(-128 + input_offset), abs(127 + input_offset))
    bound = np.abs(rows.astype(np.int64)).sum(axis=1) * x_max
    if bias is not None:
        bound = bound + np.abs(bias.reshape(-1).astype(np.int64))
    live = np.ones(len(shifts), dtype=bool) if mults is None else np.asarray(mults) != 0
    if not (bool(np.all(bound[live] < 2**30))
            and all(-31 <= int(s) <= -1 for s, keep in zip(shifts, live) if keep)):
        return EXACT
    return FAST_SAT8 if (act_min, act_max) == (-128, 127) else FAST


def right_shifts_only(shifts: Sequence[int]) -> int:
    """The mode of a Helium depthwise layer (th_mve_s8.c): FAST when every shift is a
    right shift by 1..31 (VQRDMULH takes any accumulator), else EXACT."""
    return FAST if all(-31 <= int(s) <= -1 for s in shifts) else EXACT


INT32_MIN = -(2**31)


def multiply_by_quantized_multiplier(x: int, mult: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier on int32 ``x`` (gemmlowp's
    SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT)."""
    left, right = max(shift, 0), max(-shift, 0)
    a = (x << left) & 0xFFFFFFFF
    a = a - 2**32 if a >= 2**31 else a
    if a == mult == INT32_MIN:
        return 2**31 - 1
    ab = a * mult
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = abs(ab + nudge) >> 31  # C division truncates toward zero
    q = q if ab + nudge >= 0 else -q
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if q < 0 else 0)
    return (q >> right) + (1 if (q & mask) > threshold else 0)


def constant_channels(rows: np.ndarray, bias: np.ndarray | None, mults: Sequence[int],
                      shifts: Sequence[int]) -> tuple[np.ndarray, list[int], list[int]] | None:
    """Re-express the output channels whose weights are all zero, or None if none changes.

    Such a channel's accumulator is its bias, so its output is the constant V =
    MultiplyByQuantizedMultiplier(bias) (plus the offset, clamped). Quantizers
    leave dead channels with biases near +-2^30 (VWW: up to 40 % of a layer's
    channels), which no bound proves for the fast requantization, so the whole
    layer would take the general path. Bias 4 V (V clipped to [-1024, 1024],
    which saturates int8 the same way), multiplier 2^30 and shift -1 give V
    exactly on every path: (4 V * 2^30 + 2^30) >> 31 = 2 V, then 2 V / 2.
    """
    dead = ~rows.reshape(rows.shape[0], -1).any(axis=1)
    if bias is None or not dead.any():
        return None
    b = bias.reshape(-1).astype(np.int64).copy()
    m, sh = list(mults), list(shifts)
    changed = False
    for c in np.flatnonzero(dead):
        v = max(-1024, min(1024, multiply_by_quantized_multiplier(int(b[c]), m[c], sh[c])))
        if (int(b[c]), m[c], sh[c]) != (4 * v, 1 << 30, -1):
            b[c], m[c], sh[c] = 4 * v, 1 << 30, -1
            changed = True
    return (b.astype(np.int32), m, sh) if changed else None
