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


INT16_MIN, INT16_MAX = -32768, 32767
_TYPE_RANGES = {"int8": (INT8_MIN, INT8_MAX), "int16": (INT16_MIN, INT16_MAX)}


def activation_range(activation: str, out: Tensor) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 or int16 output."""
    q = require_quant(out)
    lo, hi = _TYPE_RANGES.get(out.dtype, (INT8_MIN, INT8_MAX))
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
        if m == 0:
            # A pruned channel (weight scale 0): any shift gives 0, TFLM's too. A
            # right shift keeps it off the kernels' exact path (requant.mode).
            sh = -1
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


def add_params(in1: Tensor, in2: Tensor, out: Tensor, left_shift: int = 20) -> dict[str, int]:
    """CalculateOpDataAdd (add_common.cc), int8 path.

    Each input is brought to twice the larger input scale (multipliers below
    one), summed with ``left_shift`` bits of headroom, then rescaled to the
    output. The scales are widened to double before any arithmetic; only the
    max() compares the float32 values.
    """
    s1, s2, so = require_quant(in1).scale, require_quant(in2).scale, require_quant(out).scale
    twice_max = 2 * max(s1, s2)  # the scales are float32 values held exactly
    m1, sh1 = quantize_multiplier_smaller_than_one(s1 / twice_max)
    m2, sh2 = quantize_multiplier_smaller_than_one(s2 / twice_max)
    mo, sho = quantize_multiplier_smaller_than_one(twice_max / ((1 << left_shift) * so))
    return {
        "left_shift": left_shift,
        "input1_offset": -require_quant(in1).zero_point,
        "input2_offset": -require_quant(in2).zero_point,
        "output_offset": require_quant(out).zero_point,
        "input1_multiplier": m1, "input1_shift": sh1,
        "input2_multiplier": m2, "input2_shift": sh2,
        "output_multiplier": mo, "output_shift": sho,
    }


def mul_multiplier(in1: Tensor, in2: Tensor, out: Tensor) -> tuple[int, int]:
    """CalculateOpDataMul (mul_common.cc): double product, then QuantizeMultiplier."""
    s1, s2, so = require_quant(in1).scale, require_quant(in2).scale, require_quant(out).scale
    return quantize_multiplier(s1 * s2 / so)


SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5


def preprocess_softmax_scaling(beta: float, input_scale: float,
                               input_integer_bits: int) -> tuple[int, int]:
    """PreprocessSoftmaxScaling (quantization_util.cc, double-rounding build).

    beta * scale, placed in Q(input_integer_bits).(31 - input_integer_bits)
    and capped at 2^31 - 1, becomes a multiplier greater than one.
    """
    max_real = float((1 << 31) - 1)
    real = min(beta * input_scale * (1 << (31 - input_integer_bits)), max_real)
    if not real > 1.0:
        raise ValueError(f"softmax beta * input scale ({beta} * {input_scale}) is too small")
    return quantize_multiplier_greater_than_one(real)


def calculate_input_radius(input_integer_bits: int, input_left_shift: int,
                           total_signed_bits: int = 31) -> int:
    """CalculateInputRadius: the largest |input diff| whose rescaled value fits."""
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1)
                          * (1 << (total_signed_bits - input_integer_bits))
                          / (1 << input_left_shift))
    return int(math.floor(max_input_rescaled))


def rescale_multiplier(inp: Tensor, out: Tensor) -> tuple[int, int]:
    """QuantizeMultiplier(double(in_scale) / double(out_scale)).

    The rescale that TFLM's QUANTIZE (int8 -> int8 requantize) and MEAN
    Prepare compute: both scales widened to double before the division.
    """
    return quantize_multiplier(require_quant(inp).scale / require_quant(out).scale)


def mean_multiplier(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """Fold 1/count into a rescale, as TFLM's QuantizedMeanOrSum does at Eval.

    ``s = floor(log2(count))``, clamped to 32 and to ``31 + shift``; the
    multiplier becomes the int64 quotient ``(multiplier << s) // count``
    (truncating; both positive) and the shift drops by ``s``.
    """
    if count <= 0:
        raise ValueError(f"mean over {count} elements")
    s = min(count.bit_length() - 1, 32, 31 + shift)
    return int((multiplier << s) // count), shift - s


def wrap_int32(values: np.ndarray) -> np.ndarray:
    """Integers modulo 2^32 as int32 (two's complement): what TFLM's int32 accumulator
    holds after sums that wrap, so a bias folded at build time sums to the same value."""
    wrapped: np.ndarray = (((values.astype(np.int64) + 2**31) % 2**32) - 2**31).astype(np.int32)
    return wrapped
