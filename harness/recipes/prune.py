"""``prune<P>-int8``: magnitude pruning of the float weights to P% zeros per output channel, then ``int8``.

Per channel, not per tensor: a tensor-wide cut can zero a whole depthwise channel
(9 weights), whose per-channel scale then collapses and its bias saturates int32.

The zeros are stored as zeros (no sparse format): flash and latency stay those of
int8; the row shows what the accuracy costs (and what LUT compression could save).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.recipes import Calibration, RecipeError, recipe
from harness.recipes.cluster import CHANNEL_AXIS
from harness.recipes.quantize import buffer_array, quantize, set_buffer, weight_tensors


def _check(params: dict[str, int]) -> None:
    if not 0 < params["p"] < 100:
        raise RecipeError(f"prune{params['p']}-int8: sparsity P is a percentage, 1..99")


def prune_weights(values: np.ndarray, sparsity: float, axis: int) -> np.ndarray:
    """Zero the ``sparsity`` fraction of smallest-magnitude values of each slice along ``axis``
    (ties broken by position)."""
    moved = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1).copy()
    k = int(round(sparsity * moved.shape[1]))
    if k > 0:
        for row in moved:
            row[np.argsort(np.abs(row), kind="stable")[:k]] = 0
    shape = np.moveaxis(values, axis, 0).shape
    return np.moveaxis(moved.reshape(shape), 0, axis)


@recipe("prune<P>-int8", "magnitude pruning of the float weights to P% zeros per channel, then int8", _check)
def prune_int8(raw: bytes, calibration: Calibration | None, params: dict[str, int]) -> bytes:
    sparsity = params["p"] / 100

    def edit(m: Any) -> None:
        for name, t in weight_tensors(m):
            values = buffer_array(m, t)
            if values is not None and values.dtype == np.float32:
                set_buffer(m, t, prune_weights(values, sparsity, CHANNEL_AXIS[name]).astype(np.float32))

    return quantize(raw, calibration, activation_bits=8, per_channel=True, edit=edit)
