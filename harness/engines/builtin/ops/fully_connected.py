"""FULLY_CONNECTED lowering (TFLM fully_connected_common.cc)."""

import numpy as np

from harness.engines.builtin import int16x8, lutw, quant, requant, scratch
from harness.engines.builtin.lowering import LowerContext, lowering
from harness.model import Tensor


@lowering("FULLY_CONNECTED")
def fully_connected(ctx: LowerContext) -> str:
    if int16x8.is_int16(ctx):
        return _fully_connected_s16(ctx)
    inp, filt, bias, out = ctx.input(0), ctx.input(1), ctx.optional_input(2), ctx.output()
    ctx.require_int8(inp, filt, out)
    opts = ctx.op.options
    ctx.require(filt.is_const, "weights must be a constant tensor")
    ctx.require(len(filt.shape) == 2, f"weights must be 2-D, got {filt.shape}")
    ctx.require(opts.get("weights_format", 0) == 0, "only the DEFAULT weights format is supported")
    ctx.require(bias is None or (bias.is_const and bias.dtype == "int32"), "bias must be constant int32")
    out_depth, depth = filt.shape
    ctx.require(inp.num_elements % depth == 0,
                f"input of {inp.num_elements} elements is not a multiple of depth {depth}")
    fq = quant.require_quant(filt)
    if fq.per_channel:
        ctx.require(len(fq.scales) == out_depth, "per-channel scales must match output depth")
        mults, shifts = quant.per_channel_multipliers(inp, filt, out, out_depth)
    else:
        m, s = quant.per_tensor_fc_multiplier(inp, filt, out)
        mults, shifts = [m] * out_depth, [s] * out_depth
    act_min, act_max = quant.activation_range(opts.get("fused_activation_function", "NONE"), out)
    input_offset = -quant.require_quant(inp).zero_point
    simd = fq.zero_point == 0 and filt.data is not None
    mode = requant.EXACT
    if simd:
        assert filt.data is not None
        mode = requant.mode(np.asarray(filt.data), None if bias is None else np.asarray(bias.data),
                            input_offset, shifts, act_min, act_max, mults)
    ctx.include("th_fully_connected.h")
    p = ctx.params("th_fc_params", {
        "batches": inp.num_elements // depth,
        "accum_depth": depth,
        "out_depth": out_depth,
        "input_offset": input_offset,
        "filter_offset": -fq.zero_point,
        "output_offset": quant.require_quant(out).zero_point,
        "act_min": act_min,
        "act_max": act_max,
        "mult": ctx.array("mult", "int32_t", mults),
        "shift": ctx.array("shift", "int32_t", shifts),
        "requant_mode": mode,
    })
    if simd and ctx.isa == "mve":
        return _fully_connected_mve(ctx, p, inp, filt, bias, out, input_offset)
    if not simd:
        return (f"th_fully_connected_s8({p}, {ctx.ptr(inp, const=True)}, "
                f"{ctx.ptr(filt, const=True)}, {ctx.ptr(bias, const=True)}, {ctx.ptr(out)})")
    lut = lutw.fc_lut(ctx.model, ctx.op, ctx.isa)
    if lut is not None:
        return _fully_connected_lut(ctx, p, lut, inp, filt, bias, out)
    w = fc_weights(np.asarray(filt.data))
    wname = f"th_w_{filt.index}_op{ctx.op.index}_fc"
    # Word-aligned: the DSP kernel reads the weights with LDRD.
    ctx.weight_array(wname, "int8_t", w, align=4)
    # No th_scratch: the kernel widens the input group by group as it goes.
    return (f"th_fully_connected_s8_simd({p}, {ctx.ptr(inp, const=True)}, {wname}, "
            f"{ctx.ptr(bias, const=True)}, {ctx.ptr(out)})")


def _fully_connected_lut(ctx: LowerContext, p: str, lut: lutw.FcLut, inp: Tensor, filt: Tensor,
                         bias: Tensor | None, out: Tensor) -> str:
    """LUT-compressed weights stay packed in flash (indices + tables, lutw.py);
    th_fully_connected_s8_lut looks each weight up as it multiplies it (no scratch)."""
    base = f"th_w_{filt.index}_op{ctx.op.index}_lut"
    idx = ctx.weight_array(f"{base}_idx", "uint8_t", lut.indices, align=4)
    tab = ctx.weight_array(f"{base}_tab", "int8_t", lut.tables.reshape(-1))
    name = f"{ctx.prefix}_lut"
    ctx.decls.append(f"static const th_fc_lut {name} = {{\n    .indices = {idx},\n    .tables = {tab},\n"
                     f"    .table_stride = {lut.table_stride},\n    .bits = {lut.bits}\n}};")
    return (f"th_fully_connected_s8_lut({p}, &{name}, {ctx.ptr(inp, const=True)}, {ctx.ptr(bias, const=True)}, "
            f"{ctx.ptr(out)})")


def _fully_connected_mve(ctx: LowerContext, p: str, inp: Tensor, filt: Tensor, bias: Tensor | None, out: Tensor,
                         input_offset: int) -> str:
    """Helium: th_fully_connected_s8_mve reads the TFLite weight rows as they are and the
    input in place (no scratch), with the input offset folded into the bias (th_mve_s8.c)."""
    from harness.engines.builtin.ops.conv import folded_bias

    assert filt.data is not None
    b = None if bias is None else np.asarray(bias.data)
    bname = ctx.weight_array(f"th_w_op{ctx.op.index}_mve_bias", "int32_t",
                             folded_bias(np.asarray(filt.data), b, input_offset))
    ctx.include("th_mve_s8.h")
    return (f"th_fully_connected_s8_mve({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(filt, const=True)}, "
            f"{bname}, {ctx.ptr(out)})")


def fc_weights(filt: np.ndarray) -> np.ndarray:
    """Re-lay [out_depth, depth] weights for th_fully_connected_s8_simd.

    Rows zero-padded to a multiple of 8 (scratch.fc_depth); then blocks of four
    rows (then a pair if two remain, then a last single row), each block
    interleaved by groups of 4 weights: row 0's group, row 1's, ...
    """
    out_depth, depth = filt.shape
    dp = scratch.fc_depth(depth)
    padded = np.zeros((out_depth, dp), dtype=np.int8)
    padded[:, :depth] = filt
    blocks = []
    o = 0
    while o < out_depth:
        left = out_depth - o
        n = 4 if left >= 4 else (2 if left >= 2 else 1)
        blocks.append(padded[o:o + n].reshape(n, dp // 4, 4).transpose(1, 0, 2).reshape(-1))
        o += n
    return np.concatenate(blocks)


def _fully_connected_s16(ctx: LowerContext) -> str:
    """int16x8 FULLY_CONNECTED (TFLM's int16 FullyConnected / FullyConnectedPerChannel).

    Unlike int16 CONV_2D, TFLM's fully connected kernel applies the zero
    points, so this one does too.
    """
    inp, filt, bias, out = ctx.input(0), ctx.input(1), ctx.optional_input(2), ctx.output()
    int16x8.require_int16(ctx, inp, out)
    int16x8.require_int8_weights(ctx, filt)
    opts = ctx.op.options
    ctx.require(len(filt.shape) == 2, f"weights must be 2-D, got {filt.shape}")
    ctx.require(opts.get("weights_format", 0) == 0, "only the DEFAULT weights format is supported")
    acc32 = int16x8.accumulates_in_int32(ctx, bias)
    out_depth, depth = filt.shape
    ctx.require(inp.num_elements % depth == 0,
                f"input of {inp.num_elements} elements is not a multiple of depth {depth}")
    ctx.require(out.num_elements == inp.num_elements // depth * out_depth,
                f"output has {out.num_elements} elements, {inp.num_elements // depth} rows of "
                f"{out_depth} expected")
    fq = quant.require_quant(filt)
    if fq.per_channel:
        ctx.require(len(fq.scales) == out_depth, "per-channel scales must match output depth")
        mults, shifts = quant.per_channel_multipliers(inp, filt, out, out_depth)
    else:
        m, s = quant.per_tensor_fc_multiplier(inp, filt, out)
        mults, shifts = [m] * out_depth, [s] * out_depth
    if bias is not None:
        ctx.require(bias.num_elements == out_depth,
                    f"bias has {bias.num_elements} elements for {out_depth} outputs")
    if not acc32:
        int16x8.require_mbqm64_shifts(ctx, shifts)
    act_min, act_max = quant.activation_range(opts.get("fused_activation_function", "NONE"), out)
    ctx.include("th_int16.h")
    input_offset = -quant.require_quant(inp).zero_point
    output_offset = quant.require_quant(out).zero_point
    # th_fully_connected_s16_simd (th_conv2d_s16_simd's GEMM): weights re-laid out,
    # the input offset folded into the bias (weights are symmetric: require_int8_weights),
    # requantization through th_rq16_params.
    assert filt.data is not None
    rows = np.asarray(filt.data)
    plan = int16x8.rq16_plan(rows, None if bias is None else np.asarray(bias.data), acc32, mults, shifts,
                             input_offset)
    rq = int16x8.emit_rq16(ctx, plan, bias, shifts, (act_min, act_max), output_offset)
    p = ctx.params("th_fc_params", {
        "batches": inp.num_elements // depth,
        "accum_depth": depth,
        "out_depth": out_depth,
        "input_offset": input_offset,
        "filter_offset": -fq.zero_point,
        "output_offset": output_offset,
        "act_min": act_min,
        "act_max": act_max,
        "mult": 0,
        "shift": 0,
    })
    wname = f"th_w_{filt.index}_op{ctx.op.index}_s16fc"
    ctx.weight_array(wname, "int8_t", int16x8.s16_weights(rows), align=4)
    return f"th_fully_connected_s16_simd({p}, {rq}, {ctx.ptr(inp, const=True)}, {wname}, {ctx.ptr(out)})"
