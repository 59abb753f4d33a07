"""QUANTIZE and DEQUANTIZE lowerings (TFLM quantize_common.cc, dequantize_common.cc).

* QUANTIZE float32 -> int8: AffineQuantize, ``round(x / scale) + zp`` with a
  float32 division and std::round (halves away from zero), clamped.
* QUANTIZE int8 -> int8: Requantize with
  ``QuantizeMultiplier(double(in_scale) / double(out_scale))``.
* DEQUANTIZE int8 -> float32: ``(float)(double(scale) * (q - zp))``.

At the edges of int16x8 models the same arithmetic runs with int16: QUANTIZE
float32 -> int16, int16 -> int16 and int8 <-> int16, DEQUANTIZE int16 ->
float32. Other type pairs TFLM accepts (int32, uint8) are rejected.
"""

from __future__ import annotations

import numpy as np

from harness.engines.builtin import quant
from harness.engines.builtin.lowering import LowerContext, lowering
from harness.model import Quantization, Tensor


def c_float(value: float) -> str:
    """Exact C99 literal of a float32 value (hexadecimal, so no decimal round trip)."""
    f = float(np.float32(value))
    if not np.isfinite(f):
        raise ValueError(f"scale {value} is not finite")
    return f"{f.hex()}f"


def _per_tensor(ctx: LowerContext, t: Tensor, role: str) -> Quantization:
    ctx.require(t.quant is not None, f"{role} '{t.name}' has no quantization parameters")
    q = quant.require_quant(t)
    ctx.require(not q.per_channel, f"{role} '{t.name}' is per-channel quantized; TFLM's "
                f"{ctx.op.name} takes one scale")
    ctx.require(q.scale > 0.0 and np.isfinite(q.scale), f"{role} '{t.name}' has scale {q.scale}")
    ctx.require(quant.INT8_MIN <= q.zero_point <= quant.INT8_MAX,
                f"{role} '{t.name}' has zero point {q.zero_point} outside int8")
    return q


@lowering("QUANTIZE", inplace_input=(0,))
def quantize(ctx: LowerContext) -> str:
    inp, out = ctx.input(0), ctx.output()
    if "int16" in (inp.dtype, out.dtype):
        return _quantize_s16(ctx, inp, out)
    ctx.require(out.dtype == "int8", f"output '{out.name}' is {out.dtype}; only float32/int8 -> int8 is supported")
    ctx.require(inp.num_elements == out.num_elements, "input and output sizes differ")
    oq = _per_tensor(ctx, out, "output")
    ctx.include("th_quantize.h")
    if inp.dtype == "float32":
        p = ctx.params("th_quantize_params", {
            "size": out.num_elements,
            "scale": c_float(oq.scale),
            "zero_point": oq.zero_point,
        })
        return f"th_quantize_f32_s8({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"
    ctx.require(inp.dtype == "int8", f"input '{inp.name}' is {inp.dtype}; only float32/int8 -> int8 is supported")
    iq = _per_tensor(ctx, inp, "input")
    mult, shift = quant.rescale_multiplier(inp, out)
    p = ctx.params("th_requantize_params", {
        "size": out.num_elements,
        "input_zp": iq.zero_point,
        "mult": mult,
        "shift": shift,
        "output_zp": oq.zero_point,
    })
    return f"th_requantize_s8({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"


@lowering("DEQUANTIZE")
def dequantize(ctx: LowerContext) -> str:
    inp, out = ctx.input(0), ctx.output()
    if inp.dtype == "int16":
        return _dequantize_s16(ctx, inp, out)
    ctx.require(inp.dtype == "int8" and out.dtype == "float32",
                f"only int8 -> float32 is supported, got {inp.dtype} -> {out.dtype}")
    ctx.require(inp.num_elements == out.num_elements, "input and output sizes differ")
    iq = _per_tensor(ctx, inp, "input")
    ctx.include("th_quantize.h")
    p = ctx.params("th_dequantize_params", {
        "size": out.num_elements,
        "scale": c_float(iq.scale),
        "zero_point": iq.zero_point,
    })
    return f"th_dequantize_s8_f32({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"


def _per_tensor_s16(ctx: LowerContext, t: Tensor, role: str) -> Quantization:
    """Like _per_tensor, with the zero point checked against the tensor's own type."""
    ctx.require(t.quant is not None, f"{role} '{t.name}' has no quantization parameters")
    q = quant.require_quant(t)
    ctx.require(not q.per_channel, f"{role} '{t.name}' is per-channel quantized; TFLM's "
                f"{ctx.op.name} takes one scale")
    ctx.require(q.scale > 0.0 and np.isfinite(q.scale), f"{role} '{t.name}' has scale {q.scale}")
    info = np.iinfo(t.numpy_dtype)
    ctx.require(int(info.min) <= q.zero_point <= int(info.max),
                f"{role} '{t.name}' has zero point {q.zero_point} outside {t.dtype}")
    return q


_REQUANTIZE_S16 = {
    ("int16", "int16"): "th_requantize_s16_s16",
    ("int8", "int16"): "th_requantize_s8_s16",
    ("int16", "int8"): "th_requantize_s16_s8",
}


def _quantize_s16(ctx: LowerContext, inp: Tensor, out: Tensor) -> str:
    """QUANTIZE to or from int16: AffineQuantize from float32, else Requantize."""
    ctx.require(inp.num_elements == out.num_elements, "input and output sizes differ")
    oq = _per_tensor_s16(ctx, out, "output")
    ctx.include("th_int16.h")
    if inp.dtype == "float32" and out.dtype == "int16":
        p = ctx.params("th_quantize_params", {
            "size": out.num_elements,
            "scale": c_float(oq.scale),
            "zero_point": oq.zero_point,
        })
        return f"th_quantize_f32_s16({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"
    kernel = _REQUANTIZE_S16.get((inp.dtype, out.dtype))
    ctx.require(kernel is not None,
                f"{inp.dtype} -> {out.dtype} is not supported (float32/int16/int8 -> int16, "
                "int16 -> int8 are)")
    iq = _per_tensor_s16(ctx, inp, "input")
    mult, shift = quant.rescale_multiplier(inp, out)
    p = ctx.params("th_requantize_params", {
        "size": out.num_elements,
        "input_zp": iq.zero_point,
        "mult": mult,
        "shift": shift,
        "output_zp": oq.zero_point,
    })
    return f"{kernel}({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"


def _dequantize_s16(ctx: LowerContext, inp: Tensor, out: Tensor) -> str:
    ctx.require(out.dtype == "float32", f"only int16 -> float32 is supported, got int16 -> {out.dtype}")
    ctx.require(inp.num_elements == out.num_elements, "input and output sizes differ")
    iq = _per_tensor_s16(ctx, inp, "input")
    ctx.include("th_int16.h")
    p = ctx.params("th_dequantize_params", {
        "size": out.num_elements,
        "scale": c_float(iq.scale),
        "zero_point": iq.zero_point,
    })
    return f"th_dequantize_s16_f32({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"
