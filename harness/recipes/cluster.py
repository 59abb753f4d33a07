"""``cluster<K>-lut``: weights clustered to K values per output channel, int8 PTQ, then
stored with tflite-micro's LUT compression (``tflite_micro.compression``).

The compressed model holds, per weight tensor, packed ceil(log2 K)-bit indices and a
value table per channel, and a TFLM_DECODE op before each consumer that expands them
at run time (TFLM). The builtin engine decodes them at build time (harness.lut).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from harness.model import parse_model
from harness.recipes import Calibration, RecipeError, recipe
from harness.recipes.quantize import buffer_array, inline_buffers, quantize, set_buffer, weight_tensors

# The channel axis of each op's weights: [O,H,W,I], [1,H,W,C], [O,I].
CHANNEL_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


def _check(params: dict[str, int]) -> None:
    k = params["k"]
    if not 2 <= k <= 128:
        raise RecipeError(f"cluster{k}-lut: K is the number of values per channel, 2..128 "
                          "(LUT indices are 1..7 bits)")


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 30) -> np.ndarray:
    """``values`` replaced by the nearest of at most ``k`` centroids (Lloyd's, quantile start)."""
    flat = values.reshape(-1).astype(np.float64)
    uniq = np.unique(flat)
    if uniq.size <= k:
        return values.copy()
    centroids = np.quantile(flat, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        labels = np.abs(flat[:, None] - centroids[None, :]).argmin(axis=1)
        new = np.array([flat[labels == j].mean() if np.any(labels == j) else centroids[j] for j in range(k)])
        if np.allclose(new, centroids):
            break
        centroids = new
    labels = np.abs(flat[:, None] - centroids[None, :]).argmin(axis=1)
    out: np.ndarray = centroids[labels].reshape(values.shape).astype(values.dtype)
    return out


def cluster_per_channel(values: np.ndarray, k: int, axis: int) -> np.ndarray:
    moved = np.moveaxis(values, axis, 0)
    out = np.stack([kmeans_1d(ch, k) for ch in moved])
    return np.moveaxis(out, 0, axis)


def lut_compress(raw: bytes, per_tensor: bool = False) -> bytes:
    """LUT-compress the int8 weights of every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED.

    Per channel along the weights' quantization axis, with the fewest index bits
    that hold each tensor's values; a tensor that would not shrink is left alone.
    ``per_tensor`` (one table per tensor) is refused for per-channel-quantized
    weights: TFLM's interpreter runs such a model without error but gives wrong outputs.
    """
    from tflite_micro import compression
    from tflite_micro.tensorflow.lite.micro.compression import spec as lut_spec

    raw = inline_buffers(raw)
    model = parse_model(raw, "<quantized>")
    builder = compression.SpecBuilder()
    count = 0
    for op in model.operators:
        if op.name not in CHANNEL_AXIS or len(op.inputs) < 2:
            continue
        t = model.tensors[op.inputs[1]]
        if t.data is None or t.dtype != "int8" or t.quant is None:
            continue
        if per_tensor and t.quant.per_channel:
            raise RecipeError(f"per-tensor LUT on per-channel-quantized weights '{t.name}' "
                              f"({len(t.quant.scales)} scales): TFLM's interpreter gives wrong outputs for "
                              "it without an error; use per-channel LUT")
        axis = None if per_tensor else t.quant.axis
        data = np.asarray(t.data)
        if axis is None:
            most = np.unique(data).size
        else:
            most = max(np.unique(ch).size for ch in np.moveaxis(data, axis, 0))
        bits = max(1, math.ceil(math.log2(most))) if most > 1 else 1
        if bits > 7:
            continue
        tables = 1 if axis is None else data.shape[axis]
        size = math.ceil(data.size * bits / 8) + 16 + tables * (1 << bits)
        if size >= data.size:
            continue
        mode = lut_spec.PerTensor() if axis is None else lut_spec.PerChannel(axis)
        builder.add_tensor(0, t.index).with_lut(bits, mode)
        count += 1
    if count == 0:
        raise RecipeError("LUT compression would shrink no weight tensor: too many distinct values per channel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return bytes(compression.compress(raw, builder.build()))
        except Exception as e:  # CompressionError and the editor's own failures
            raise RecipeError(f"tflite-micro LUT compression failed: {type(e).__name__}: {e}") from e



@recipe("cluster<K>-lut", "weights clustered to K values per channel, int8, LUT-compressed (DECODE)", _check)
def cluster_lut(raw: bytes, calibration: Calibration | None, params: dict[str, int]) -> bytes:
    k = params["k"]

    def edit(m: Any) -> None:
        for name, t in weight_tensors(m):
            values = buffer_array(m, t)
            if values is not None and values.dtype == np.float32:
                set_buffer(m, t, cluster_per_channel(values, k, CHANNEL_AXIS[name]).astype(np.float32))

    quantized = quantize(raw, calibration, activation_bits=8, per_channel=True, edit=edit)
    return lut_compress(quantized)
