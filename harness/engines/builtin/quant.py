"""TFLM's quantization arithmetic, reproduced exactly in Python.

Prepare-time math (float -> fixed-point multiplier) runs here, ahead of time,
so the firmware's int8 kernels see only integers. Each function mirrors the
TFLite/TFLM function named in its docstring, including where TFLM multiplies
in float32 before widening to double: bit-exactness depends on it.
"""

from __future__ import annotations

import math

import numpy as np

from harness.model import Quantization, Tensor

INT8_MIN, INT8_MAX = -128, 127


def tf_round(x: float) -> float:
    """std::round / TfLiteRound: halves away from zero."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier (quantization_util.cc): real ~= m * 2^(shift-31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(tf_round(q * (1 << 31)))
    if q_fixed > (1 << 31):
        raise ValueError(f"multiplier {real} does not quantize")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: like quantize_multiplier, shift <= 0."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier {real} outside (0, 1)")
    return quantize_multiplier(real)


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """QuantizeMultiplierGreaterThanOne: like quantize_multiplier, shift >= 0."""
    m, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"multiplier {real} is below one")
    return m, shift


def quantize_float(value: float, scale: float, zero_point: int) -> int:
    """kernel_util.cc Quantize(): float32 divide, round, add zero point."""
    tmp = np.float32(value) / np.float32(scale)
    return zero_point + int(tf_round(float(tmp)))


def activation_range(activation: str, out: Tensor) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output."""
    q = require_quant(out)
    lo, hi = INT8_MIN, INT8_MAX
    if activation == "NONE":
        return lo, hi
    zero = quantize_float(0.0, q.scale, q.zero_point)
    if activation == "RELU":
        return max(lo, zero), hi
    if activation == "RELU6":
        return max(lo, zero), min(hi, quantize_float(6.0, q.scale, q.zero_point))
    if activation == "RELU_N1_TO_1":
        return (max(lo, quantize_float(-1.0, q.scale, q.zero_point)),
                min(hi, quantize_float(1.0, q.scale, q.zero_point)))
    raise ValueError(f"fused activation {activation} is not supported")


def per_channel_multipliers(inp: Tensor, filt: Tensor, out: Tensor, channels: int) -> tuple[list[int], list[int]]:
    """PopulateConvolutionQuantizationParams: one (multiplier, shift) per output channel.

    Products are taken in double, as TFLM does for conv/depthwise and
    per-channel fully connected.
    """
    fq = require_quant(filt)
    in_scale = require_quant(inp).scale
    out_scale = require_quant(out).scale
    mults, shifts = [], []
    for c in range(channels):
        s = fq.scales[c] if fq.per_channel else fq.scales[0]
        m, sh = quantize_multiplier(in_scale * s / out_scale)
        mults.append(m)
        shifts.append(sh)
    return mults, shifts


def per_tensor_fc_multiplier(inp: Tensor, filt: Tensor, out: Tensor) -> tuple[int, int]:
    """GetQuantizedConvolutionMultipler: the scale product is float32, then double."""
    prod = float(np.float32(require_quant(inp).scale) * np.float32(require_quant(filt).scale))
    return quantize_multiplier(prod / require_quant(out).scale)


def require_quant(t: Tensor) -> Quantization:
    if t.quant is None:
        raise ValueError(f"tensor '{t.name}' has no quantization parameters")
    return t.quant
