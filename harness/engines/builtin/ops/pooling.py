"""AVERAGE_POOL_2D and MAX_POOL_2D lowerings (TFLM pooling_common.cc).

TFLM pools the raw int8 values: input and output must share scale and zero
point, so no rescaling happens. Windows are clipped at the borders; the
average divides by the in-bounds count, rounding half away from zero.
"""

from __future__ import annotations

import numpy as np

from harness.engines.builtin import int16x8, quant
from harness.engines.builtin.lowering import LowerContext, lowering

_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def _out_size(padding: str, size: int, filt: int, stride: int) -> int:
    """ComputeOutSize (padding.h), dilation 1."""
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size + stride - filt) // stride


def _pad(stride: int, size: int, filt: int, out: int) -> int:
    """ComputePaddingWithOffset: the leading (top/left) padding."""
    total = (out - 1) * stride + filt - size
    return max(total, 0) // 2


def _lower_pool(ctx: LowerContext, kernel: str) -> str:
    inp, out = ctx.input(0), ctx.output()
    if int16x8.is_int16(ctx):
        int16x8.require_int16(ctx, inp, out)  # TFLM pools int16 with int8's arithmetic
        ctx.include("th_int16.h")
        kernel = kernel.replace("_s8", "_s16")
    else:
        ctx.require_int8(inp, out)
    opts = ctx.op.options
    ctx.require(len(inp.shape) == 4 and len(out.shape) == 4,
                f"pooling takes 4-D NHWC tensors, got {inp.shape} -> {out.shape}")
    iq, oq = quant.require_quant(inp), quant.require_quant(out)
    ctx.require(not iq.per_channel and not oq.per_channel, "per-channel quantized activations")
    # PoolingPrepare: |scale_in - scale_out| (float32) <= 1e-6, same zero point.
    ctx.require(abs(float(np.float32(iq.scale) - np.float32(oq.scale))) <= 1.0e-6
                and iq.zero_point == oq.zero_point,
                "input and output quantization must match (TFLM requires it)")
    padding = opts.get("padding", "SAME")
    ctx.require(padding in ("SAME", "VALID"), f"padding {padding!r}")
    sw, sh = int(opts.get("stride_w", 1)), int(opts.get("stride_h", 1))
    fw, fh = int(opts.get("filter_width", 1)), int(opts.get("filter_height", 1))
    ctx.require(sw > 0 and sh > 0 and fw > 0 and fh > 0,
                f"strides {sh}x{sw} and filter {fh}x{fw} must be positive")
    act = opts.get("fused_activation_function", "NONE")
    ctx.require(act in _ACTIVATIONS, f"fused activation {act}")
    n, ih, iw, c = inp.shape
    oh, ow = _out_size(padding, ih, fh, sh), _out_size(padding, iw, fw, sw)
    ctx.require(oh > 0 and ow > 0, f"filter {fh}x{fw} does not fit the {ih}x{iw} input")
    ctx.require(tuple(out.shape) == (n, oh, ow, c),
                f"output shape {out.shape} differs from the computed {(n, oh, ow, c)}")
    pad_h, pad_w = _pad(sh, ih, fh, oh), _pad(sw, iw, fw, ow)
    act_min, act_max = quant.activation_range(act, out)
    ctx.include("th_pool.h")
    p = ctx.params("th_pool_params", {
        "batches": n, "in_h": ih, "in_w": iw, "depth": c,
        "out_h": oh, "out_w": ow,
        "stride_h": sh, "stride_w": sw,
        "filter_h": fh, "filter_w": fw,
        "pad_h": pad_h, "pad_w": pad_w,
        "act_min": act_min, "act_max": act_max,
    })
    return f"{kernel}({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"


@lowering("AVERAGE_POOL_2D")
def average_pool_2d(ctx: LowerContext) -> str:
    return _lower_pool(ctx, "th_avg_pool_s8")


@lowering("MAX_POOL_2D")
def max_pool_2d(ctx: LowerContext) -> str:
    return _lower_pool(ctx, "th_max_pool_s8")
