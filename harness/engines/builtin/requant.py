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
         act_min: int, act_max: int) -> int:
    """The mode for weights ``rows`` ([outputs, depth]) applied to int8 inputs plus ``input_offset``."""
    x_max = max(abs(-128 + input_offset), abs(127 + input_offset))
    bound = np.abs(rows.astype(np.int64)).sum(axis=1) * x_max
    if bias is not None:
        bound = bound + np.abs(bias.reshape(-1).astype(np.int64))
    if not (bool(np.all(bound < 2**30)) and all(-31 <= int(s) <= -1 for s in shifts)):
        return EXACT
    return FAST_SAT8 if (act_min, act_max) == (-128, 127) else FAST
