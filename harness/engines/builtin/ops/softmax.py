"""SOFTMAX lowering, int8 -> int8 (TFLM softmax_common.cc).

The exponentials run in gemmlowp-style fixed point; here only the input
scaling (beta * input scale as a Q5.26 multiplier) and the smallest input
difference that still contributes (diff_min) are precomputed.
"""

from __future__ import annotations

import numpy as np

from harness.engines.builtin import int16x8, quant
from harness.engines.builtin.lowering import LowerContext, lowering

OUTPUT_ZERO_POINT = -128
OUTPUT_SCALE = 1.0 / 256  # exactly representable: TFLM compares with ==


@lowering("SOFTMAX", inplace_input=(0,))
def softmax(ctx: LowerContext) -> str:
    if int16x8.is_int16(ctx):
        return _softmax_s16(ctx)
    inp, out = ctx.input(0), ctx.output()
    ctx.require_int8(inp, out)
    ctx.require(len(inp.shape) >= 1, "softmax needs at least one dimension")
    ctx.require(tuple(inp.shape) == tuple(out.shape),
                f"input shape {inp.shape} and output shape {out.shape} differ")
    iq, oq = quant.require_quant(inp), quant.require_quant(out)
    ctx.require(not iq.per_channel, "per-channel quantized input")
    ctx.require(oq.zero_point == OUTPUT_ZERO_POINT and oq.scale == OUTPUT_SCALE and not oq.per_channel,
                f"int8 softmax output must have zero point -128 and scale 1/256 (TFLM requires it), "
                f"got zero point {oq.zero_point} and scale {oq.scale}")
    beta = float(ctx.op.options.get("beta", 1.0))
    ctx.require(beta > 0.0, f"beta {beta} must be positive")
    bits = quant.SOFTMAX_SCALED_DIFF_INTEGER_BITS
    try:
        mult, left_shift = quant.preprocess_softmax_scaling(beta, iq.scale, bits)
    except ValueError as e:
        raise ctx.unsupported(str(e)) from e
    diff_min = -quant.calculate_input_radius(bits, left_shift)
    depth = inp.shape[-1]
    ctx.require(depth > 0, "empty last dimension")
    # The Q12.19 sum of exps (each <= 1) must not overflow int32. (Rows whose
    # sum reaches 512 already make TFLM abort; the kernel returns TH_ERROR.)
    ctx.require(depth <= 4095, f"last dimension {depth} exceeds 4095, more than the Q12.19 sum holds")
    ctx.include("th_softmax.h")
    p = ctx.params("th_softmax_params", {
        "rows": inp.num_elements // depth,
        "depth": depth,
        "input_multiplier": mult,
        "input_left_shift": left_shift,
        "diff_min": diff_min,
    })
    return f"th_softmax_s8({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"


def _softmax_s16(ctx: LowerContext) -> str:
    """int16 -> int16 SOFTMAX (TFLM SoftmaxInt16): exp and 1/(1+x) by table lookup."""
    inp, out = ctx.input(0), ctx.output()
    int16x8.require_int16(ctx, inp, out)
    ctx.require(len(inp.shape) >= 1, "softmax needs at least one dimension")
    ctx.require(tuple(inp.shape) == tuple(out.shape),
                f"input shape {inp.shape} and output shape {out.shape} differ")
    iq, oq = quant.require_quant(inp), quant.require_quant(out)
    # CalculateSoftmaxParams: zero points 0, output scale 1/32768 within 0.1% (in float32).
    near = bool(abs(np.float32(oq.scale) - np.float32(1.0 / 32768)) <= np.float32(0.001 / 32768))
    ctx.require(iq.zero_point == 0 and oq.zero_point == 0 and near,
                f"int16 softmax needs zero points 0 and output scale 1/32768 (TFLM requires it), "
                f"got zero points {iq.zero_point} / {oq.zero_point} and output scale {oq.scale}")
    beta = float(ctx.op.options.get("beta", 1.0))
    ctx.require(beta > 0.0, f"beta {beta} must be positive")
    mult, shift = int16x8.softmax_input_multiplier(iq.scale, beta)
    depth = inp.shape[-1]
    ctx.require(depth > 0, "empty last dimension")
    # The Q16.15 sum of exps (each <= 32767) must fit in int32.
    ctx.require(depth <= 65536, f"last dimension {depth} exceeds 65536, more than the int32 sum holds")
    exp_lut, recip_lut = int16x8.softmax_luts()
    ctx.include("th_int16.h")
    p = ctx.params("th_softmax_s16_params", {
        "rows": inp.num_elements // depth,
        "depth": depth,
        "input_multiplier": mult,
        "input_shift": shift,
        "exp_lut": ctx.array("exp_lut", "int16_t", exp_lut),
        "recip_lut": ctx.array("recip_lut", "int16_t", recip_lut),
    })
    return f"th_softmax_s16({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"
