"""SOFTMAX lowering, int8 -> int8 (TFLM softmax_common.cc).

The exponentials run in gemmlowp-style fixed point; here only the input
scaling (beta * input scale as a Q5.26 multiplier) and the smallest input
difference that still contributes (diff_min) are precomputed.
"""

from __future__ import annotations

from harness.engines.builtin import quant
from harness.engines.builtin.lowering import LowerContext, lowering

OUTPUT_ZERO_POINT = -128
OUTPUT_SCALE = 1.0 / 256  # exactly representable: TFLM compares with ==


@lowering("SOFTMAX", inplace_input=(0,))
def softmax(ctx: LowerContext) -> str:
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
