"""The int16x8 side of the builtin engine: checks and Prepare-time math shared by
the int16 lowerings (16-bit activations, 8-bit weights; TFLite's 16x8 scheme).

Each op module keeps its int8 lowering and dispatches to a separate int16
function when the op's activations are int16; those functions use the helpers
here. TFLM's int16 kernels differ from the int8 ones in ways that matter for
bit-exactness, listed where they are handled:

* CONV_2D and FULLY_CONNECTED pick their accumulator from the bias type: an
  int64 bias (or none, unless the op's ``quantized_bias_type`` says INT32)
  means an int64 accumulator and the 64-bit MultiplyByQuantizedMultiplier,
  whose multiplier is rounded to 16 bits; an int32 bias means int32
  arithmetic throughout. DEPTHWISE_CONV_2D always reads the bias as int64.
* The int16 CONV_2D and DEPTHWISE_CONV_2D kernels ignore zero points, so
  nonzero ones are refused rather than silently dropped.
* SOFTMAX interpolates two 513-entry tables that TFLM fills with float math in
  Prepare (``LUTPopulate<int16_t>``); :func:`softmax_luts` repeats that math
  in float32 step by step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from harness.engines.builtin import quant
from harness.engines.builtin.lowering import LowerContext
from harness.model import Tensor

_SCHEMA_INT32 = 2  # schema TensorType.INT32, the value of quantized_bias_type
_MBQM64_MAX_SHIFT = 7  # MultiplyByQuantizedMultiplier(int64_t ...) takes shift < 8


def is_int16(ctx: LowerContext) -> bool:
    """Whether the op's first input (its activation) is int16: the int16x8 path."""
    return bool(ctx.op.inputs) and ctx.op.inputs[0] >= 0 and ctx.input(0).dtype == "int16"


def require_int16(ctx: LowerContext, *tensors: Tensor | None) -> None:
    """Activations of an int16x8 op: int16, quantized, one scale per tensor."""
    for t in tensors:
        if t is None:
            continue
        ctx.require(t.dtype == "int16",
                    f"tensor '{t.name}' is {t.dtype}; with int16 activations every activation "
                    "of the op must be int16")
        ctx.require(t.quant is not None, f"tensor '{t.name}' has no quantization parameters")
        ctx.require(not quant.require_quant(t).per_channel,
                    f"tensor '{t.name}' must be quantized per tensor")


def require_zero_points(ctx: LowerContext, why: str, *tensors: Tensor) -> None:
    """int16 activations are symmetric: refuse a nonzero zero point, saying why."""
    for t in tensors:
        zp = quant.require_quant(t).zero_point
        ctx.require(zp == 0, f"int16 tensor '{t.name}' has zero point {zp}; {why}")


def require_int8_weights(ctx: LowerContext, filt: Tensor) -> None:
    ctx.require(filt.dtype == "int8",
                f"weights '{filt.name}' are {filt.dtype}; int16 activations take int8 weights "
                "(16x8 quantization)")
    ctx.require(filt.is_const, f"weights '{filt.name}' must be a constant tensor")
    fq = filt.quant
    ctx.require(fq is not None, f"weights '{filt.name}' have no quantization parameters")
    assert fq is not None
    ctx.require(all(z == 0 for z in fq.zero_points),
                f"weights '{filt.name}' have a nonzero zero point; int8 weights must be symmetric")


def accumulates_in_int32(ctx: LowerContext, bias: Tensor | None) -> bool:
    """TFLM's ``requires_int32_accum`` for int16 CONV_2D / FULLY_CONNECTED.

    Raises UnsupportedOpError for a bias that is neither int32 nor int64.
    """
    if bias is None:
        return int(ctx.op.options.get("quantized_bias_type", 0)) == _SCHEMA_INT32
    ctx.require(bias.dtype in ("int32", "int64"),
                f"bias '{bias.name}' is {bias.dtype}; int16 {ctx.op.name} takes an int64 or int32 bias")
    ctx.require(bias.is_const, f"bias '{bias.name}' must be a constant tensor")
    return bias.dtype == "int32"


def require_mbqm64_shifts(ctx: LowerContext, shifts: list[int]) -> None:
    """The 64-bit requantization handles shifts up to 7 (a multiplier below 128)."""
    worst = max(shifts, default=0)
    ctx.require(worst <= _MBQM64_MAX_SHIFT,
                f"the requantization multiplier is 2^{worst} or more (input scale x weight scale "
                f"/ output scale >= {2 ** (worst - 1)}); TFLM's 64-bit requantization takes "
                f"less than 128")


# ---------------------------------------------------------------- SOFTMAX tables

_F32 = np.float32


@lru_cache(maxsize=1)
def _libm_expf() -> Any:
    """The C library's expf: TFLM's std::exp(float), for the exp table."""
    name = ctypes.util.find_library("m") or "libm.so.6"
    fn = ctypes.CDLL(name).expf
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


def _round(x: np.float32) -> np.float32:
    """TfLiteRound on a float: halves away from zero."""
    return _F32(quant.tf_round(float(x)))


def _lut_populate_int16(input_scale: np.float32, input_zero_point: int,
                        output_scale: np.float32, output_zero_point: int,
                        transform: Callable[[np.float32], np.float32]) -> list[int]:
    """detail::LUTPopulateInt16<float> (kernels/internal/common.h), in float32."""
    i16_min, i16_max = quant.INT16_MIN, quant.INT16_MAX
    input_min = _F32(input_scale * _F32(i16_min - input_zero_point))
    input_max = _F32(input_scale * _F32(i16_max - input_zero_point))
    output_min = _F32(output_scale * _F32(i16_min - output_zero_point))
    output_max = _F32(output_scale * _F32(i16_max - output_zero_point))
    nb_steps = 512
    step = _F32((input_max - input_min) / _F32(nb_steps))
    half_step = _F32(step / _F32(2))
    scaling_inv = _F32(_F32(i16_max - i16_min + 1) / _F32(output_max - output_min))
    lut = []
    for i in range(nb_steps):
        x = _F32(input_min + _F32(_F32(i) * step))
        val = transform(x)
        val_mid = transform(_F32(x + half_step))
        val_next = transform(_F32(input_min + _F32(_F32(i + 1) * step)))
        sample = _round(_F32(val * scaling_inv))
        mid_interp = _round(_F32(_F32(_F32(val_next * scaling_inv) + _round(_F32(val * scaling_inv))) / _F32(2)))
        mid = _round(_F32(val_mid * scaling_inv))
        bias = _round(_F32(_F32(mid_interp - mid) / _F32(2)))
        lut.append(int(min(max(float(sample - bias), i16_min), i16_max)))
    last = _round(_F32(transform(input_max) * scaling_inv))
    lut.append(int(min(max(float(last), i16_min), i16_max)))
    return lut


@lru_cache(maxsize=1)
def softmax_luts() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The exp and 1/(1+x) tables of TFLM's int16 SOFTMAX (softmax_common.cc).

    They depend on no tensor: exp over [-10, 0] and 1/(1+x) over [0, 1], both
    with output scale 2/65535.
    """
    expf = _libm_expf()
    span = _F32(quant.INT16_MAX - quant.INT16_MIN)
    exp_lut = _lut_populate_int16(_F32(_F32(10.0) / span), quant.INT16_MAX, _F32(_F32(2.0) / span), 0,
                                  lambda v: _F32(expf(float(v))))
    recip_lut = _lut_populate_int16(_F32(_F32(1.0) / span), quant.INT16_MIN, _F32(_F32(2.0) / span), 0,
                                    lambda v: _F32(_F32(1.0) / _F32(_F32(1.0) + v)))
    return tuple(exp_lut), tuple(recip_lut)


def softmax_input_multiplier(input_scale: float, beta: float) -> tuple[int, int]:
    """QuantizeMultiplier(double(scale) * double(beta) / (10.0 / 65535.0))."""
    return quant.quantize_multiplier(float(input_scale) * float(_F32(beta)) / (10.0 / 65535.0))
