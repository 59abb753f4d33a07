"""CONV_2D and DEPTHWISE_CONV_2D lowerings (TFLM conv_common.cc, depthwise_conv_common.cc).

Everything TFLM computes in Prepare is computed here: the output size and the
padding (``padding.h``), one (multiplier, shift) pair per output channel
(``PopulateConvolutionQuantizationParams``) and the activation clamp. The
kernels then run TFLM's per-channel reference arithmetic on integers only.
"""

from __future__ import annotations

import numpy as np

from harness.engines.builtin import int16x8, quant, requant, scratch
from harness.engines.builtin.lowering import LowerContext, lowering
from harness.model import Tensor


def _trunc_div(a: int, b: int) -> int:
    """C integer division (rounds toward zero), for b > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


def effective_filter_size(filter_size: int, dilation: int) -> int:
    return (filter_size - 1) * dilation + 1


def compute_out_size(padding: str, image: int, filter_size: int, stride: int, dilation: int) -> int | None:
    """ComputeOutSizeChecked: the output extent along one axis, None when TFLM errors."""
    if padding not in ("SAME", "VALID") or image < 0 or filter_size <= 0 or stride <= 0 or dilation <= 0:
        return None
    if padding == "SAME":
        value = _trunc_div(image + stride - 1, stride)
    else:
        value = _trunc_div(image + stride - effective_filter_size(filter_size, dilation), stride)
    return None if value < 0 else value


def compute_padding(stride: int, dilation: int, image: int, filter_size: int, out_size: int) -> int:
    """ComputePaddingWithOffset: padding before the first element (the odd one goes after)."""
    total = (out_size - 1) * stride + effective_filter_size(filter_size, dilation) - image
    return max(total, 0) // 2


def _geometry(ctx: LowerContext, inp: Tensor, filt: Tensor, out: Tensor) -> dict[str, int]:
    """Output size and padding exactly as ComputePaddingHeightWidth, plus strides/dilation."""
    opts = ctx.op.options
    padding = opts.get("padding", "SAME")
    stride_h, stride_w = int(opts.get("stride_h", 1)), int(opts.get("stride_w", 1))
    dil_h = int(opts.get("dilation_h_factor", 1))
    dil_w = int(opts.get("dilation_w_factor", 1))
    ctx.require(padding in ("SAME", "VALID"), f"padding {padding!r} is not SAME or VALID")
    ctx.require(stride_h > 0 and stride_w > 0, f"strides must be positive, got {stride_h}x{stride_w}")
    ctx.require(dil_h > 0 and dil_w > 0, f"dilation factors must be positive, got {dil_h}x{dil_w}")
    _, in_h, in_w, _ = inp.shape
    _, k_h, k_w, _ = filt.shape
    out_h = compute_out_size(padding, in_h, k_h, stride_h, dil_h)
    out_w = compute_out_size(padding, in_w, k_w, stride_w, dil_w)
    ctx.require(out_h is not None and out_w is not None and out_h > 0 and out_w > 0,
                f"{padding} padding of a {in_h}x{in_w} input by a {k_h}x{k_w} filter "
                f"(stride {stride_h}x{stride_w}, dilation {dil_h}x{dil_w}) leaves no output")
    assert out_h is not None and out_w is not None
    ctx.require(tuple(out.shape[1:3]) == (out_h, out_w),
                f"output tensor is {out.shape[1]}x{out.shape[2]} but {padding} padding "
                f"gives {out_h}x{out_w}")
    return {
        "in_h": in_h, "in_w": in_w,
        "out_h": out_h, "out_w": out_w,
        "k_h": k_h, "k_w": k_w,
        "stride_h": stride_h, "stride_w": stride_w,
        "dil_h": dil_h, "dil_w": dil_w,
        "pad_h": compute_padding(stride_h, dil_h, in_h, k_h, out_h),
        "pad_w": compute_padding(stride_w, dil_w, in_w, k_w, out_w),
    }


def _check_tensors(ctx: LowerContext, inp: Tensor, filt: Tensor, bias: Tensor | None, out: Tensor) -> None:
    ctx.require(filt.dtype == "int8",
                f"weights '{filt.name}' are {filt.dtype}; only int8 weights are supported")
    ctx.require_int8(inp, filt, out)
    ctx.require(filt.is_const, f"weights '{filt.name}' must be a constant tensor")
    for t, what in ((inp, "input"), (filt, "weights"), (out, "output")):
        ctx.require(len(t.shape) == 4, f"{what} '{t.name}' must be 4-D (NHWC), got shape {t.shape}")
    ctx.require(out.shape[0] == inp.shape[0],
                f"output batch {out.shape[0]} differs from input batch {inp.shape[0]}")
    for t, what in ((inp, "input"), (out, "output")):
        q = quant.require_quant(t)
        ctx.require(not q.per_channel, f"{what} '{t.name}' must be quantized per tensor")
    fq = quant.require_quant(filt)
    ctx.require(all(z == 0 for z in fq.zero_points),
                f"weights '{filt.name}' have a nonzero zero point; int8 weights must be symmetric")
    if bias is not None:
        ctx.require(bias.dtype == "int32", f"bias '{bias.name}' is {bias.dtype}; the kernel takes int32")
        ctx.require(bias.is_const, f"bias '{bias.name}' must be a constant tensor")


def _quant_params(ctx: LowerContext, inp: Tensor, filt: Tensor, bias: Tensor | None, out: Tensor,
                  channels: int, axis: int, scales: bool = True) -> dict[str, int | str]:
    """Per-channel multipliers (a per-tensor scale is broadcast), offsets and clamp;
    without ``scales`` the mult and shift arrays are left to the caller."""
    fq = quant.require_quant(filt)
    if fq.per_channel:
        ctx.require(len(fq.scales) == channels,
                    f"weights have {len(fq.scales)} scales for {channels} output channels")
        ctx.require(fq.axis == axis, f"weights are quantized along axis {fq.axis}, expected {axis}")
    if bias is not None:
        ctx.require(bias.num_elements == channels,
                    f"bias has {bias.num_elements} elements for {channels} output channels")
    mults, shifts = quant.per_channel_multipliers(inp, filt, out, channels)
    act = ctx.op.options.get("fused_activation_function", "NONE")
    try:
        act_min, act_max = quant.activation_range(act, out)
    except ValueError as e:
        raise ctx.unsupported(str(e)) from None
    return {
        "input_offset": -quant.require_quant(inp).zero_point,
        "output_offset": quant.require_quant(out).zero_point,
        "act_min": act_min,
        "act_max": act_max,
        "mult": ctx.array("mult", "int32_t", mults) if scales else "0",
        "shift": ctx.array("shift", "int32_t", shifts) if scales else "0",
    }


def _emit(ctx: LowerContext, fn: str, fields: dict[str, int | str],
          inp: Tensor, filt: Tensor, bias: Tensor | None, out: Tensor) -> str:
    ctx.include("th_conv.h")
    p = ctx.params("th_conv_params", fields)
    return (f"{fn}({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(filt, const=True)}, "
            f"{ctx.ptr(bias, const=True)}, {ctx.ptr(out)})")


@lowering("CONV_2D")
def conv_2d(ctx: LowerContext) -> str:
    if int16x8.is_int16(ctx):
        return _conv_s16(ctx, depthwise=False)
    inp, filt, bias, out = ctx.input(0), ctx.input(1), ctx.optional_input(2), ctx.output()
    _check_tensors(ctx, inp, filt, bias, out)
    batches, _, _, in_c = inp.shape
    out_c, _, _, filt_c = filt.shape
    ctx.require(filt_c == in_c,
                f"grouped convolution (weights take {filt_c} input channels, the input has {in_c}) "
                "is not supported")
    ctx.require(out.shape[3] == out_c, f"output has {out.shape[3]} channels, weights give {out_c}")
    geo = _geometry(ctx, inp, filt, out)
    assert filt.data is not None
    fdata = np.asarray(filt.data)
    if ctx.isa == "mve":
        q = _quant_params(ctx, inp, filt, bias, out, out_c, axis=0)
        fields: dict[str, int | str] = {"batches": batches, **geo, "in_c": in_c, "out_c": out_c,
                                        "depth_multiplier": 1, **q}
        return _conv_mve(ctx, fields, inp, filt, bias, out)
    q = _quant_params(ctx, inp, filt, bias, out, out_c, axis=0, scales=False)
    fields = {"batches": batches, **geo, "in_c": in_c, "out_c": out_c, "depth_multiplier": 1, **q}
    mults, shifts = quant.per_channel_multipliers(inp, filt, out, out_c)
    rows = fdata.reshape(out_c, -1)
    bias_data = None if bias is None else np.asarray(bias.data)
    constant = requant.constant_channels(rows, bias_data, mults, shifts)
    if constant is not None:  # dead channels re-expressed: this layer's own bias array
        bias_data, mults, shifts = constant
        bias_expr = ctx.weight_array(f"th_w_op{ctx.op.index}_conv_bias", "int32_t", bias_data)
    else:  # (only now: naming a constant tensor puts it in th_weights.c)
        bias_expr = ctx.ptr(bias, const=True)
    mode = requant.mode(rows, bias_data, int(q["input_offset"]), shifts, int(q["act_min"]),
                        int(q["act_max"]), mults)
    fields["requant_mode"] = mode
    if mode == requant.EXACT:
        fields["mult"] = ctx.array("mult", "int32_t", mults)
        fields["shift"] = ctx.array("shift", "int32_t", shifts)
    else:
        # The fast modes read (multiplier, -shift - 1) pairs: one LDRD per channel.
        fields["rq"] = ctx.array("rq", "int32_t", [v for m, sh in zip(mults, shifts) for v in (m, -sh - 1)])
    fields["patch_row"] = scratch.conv_row(int(filt.shape[2]), in_c, out_c)
    w = conv_weights(fdata)
    wname = f"th_w_{filt.index}_op{ctx.op.index}_conv"
    # Word-aligned: the DSP kernel reads the weights with LDRD.
    ctx.weight_array(wname, "int8_t", w, align=4)
    ctx.decls.append(scratch.scratch_decl(ctx.model))
    ctx.include("th_conv.h")
    p = ctx.params("th_conv_params", fields)
    return (f"th_conv2d_s8({p}, {ctx.ptr(inp, const=True)}, {wname}, "
            f"{bias_expr}, {ctx.ptr(out)}, (int16_t *)th_scratch)")


def folded_bias(rows: np.ndarray, bias: np.ndarray | None, input_offset: int) -> np.ndarray:
    """bias + input_offset * (sum of each row's weights), modulo 2^32: rows is
    [channels, taps]. The kernels then multiply raw inputs (TFLM sums
    w * (x + input_offset) + bias, the same int32)."""
    sums = rows.astype(np.int64).sum(axis=1)
    b = np.zeros(rows.shape[0], dtype=np.int64) if bias is None else bias.reshape(-1).astype(np.int64)
    # TFLM's accumulator is int32 and wraps (two's complement on every target), so
    # folding modulo 2^32 keeps the final sum identical even at the extremes (a bias
    # of INT32_MIN on all-zero weights, which quantizers emit for pruned channels).
    return quant.wrap_int32(b + input_offset * sums)


def _mve_bias(ctx: LowerContext, rows: np.ndarray, bias: Tensor | None, input_offset: int) -> str:
    """The folded bias of an MVE kernel, as a th_w_* array (it replaces the bias in flash)."""
    b = None if bias is None else np.asarray(bias.data)
    return ctx.weight_array(f"th_w_op{ctx.op.index}_mve_bias", "int32_t", folded_bias(rows, b, input_offset))


def _conv_mve(ctx: LowerContext, fields: dict[str, int | str], inp: Tensor, filt: Tensor, bias: Tensor | None,
              out: Tensor) -> str:
    """Helium: th_conv2d_s8_mve reads the TFLite weights as they are ([out_c][K] rows)
    with the input offset folded into the bias (th_mve_s8.c)."""
    assert filt.data is not None
    rows = np.asarray(filt.data).reshape(int(fields["out_c"]), -1)
    bname = _mve_bias(ctx, rows, bias, int(fields["input_offset"]))
    fields["requant_mode"] = requant.right_shifts_only(
        quant.per_channel_multipliers(inp, filt, out, int(fields["out_c"]))[1])
    ctx.decls.append(scratch.scratch_decl(ctx.model, ctx.isa))
    ctx.include("th_mve_s8.h")
    p = ctx.params("th_conv_params", fields)
    return (f"th_conv2d_s8_mve({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(filt, const=True)}, "
            f"{bname}, {ctx.ptr(out)}, (int8_t *)th_scratch)")


def conv_weights(filt: np.ndarray) -> np.ndarray:
    """Re-lay [out_c, k_h, k_w, in_c] conv weights for th_conv2d_s8 (th_conv2d_s8.c).

    Each kernel row's k_w * in_c weights are zero-padded to the patch row
    (scratch.conv_row), each channel's k_h rows to kp, a multiple of 8
    (scratch.conv_depth); then, per pair of channels, per group of 4
    weights, channel 0's group and channel 1's group. An odd last channel
    follows alone.
    """
    out_c, k_h, k_w, in_c = filt.shape
    row = scratch.conv_row(k_w, in_c, out_c)
    kp = scratch.conv_depth(k_h, k_w, in_c, out_c)
    rows = np.zeros((out_c, k_h, row), dtype=np.int8)
    rows[:, :, : k_w * in_c] = filt.reshape(out_c, k_h, k_w * in_c)
    padded = np.zeros((out_c, kp), dtype=np.int8)
    padded[:, : k_h * row] = rows.reshape(out_c, -1)
    pairs = out_c // 2 * 2
    inter = padded[:pairs].reshape(out_c // 2, 2, kp // 4, 4).transpose(0, 2, 1, 3).reshape(-1)
    return np.concatenate([inter, padded[pairs:].reshape(-1)])


@lowering("DEPTHWISE_CONV_2D")
def depthwise_conv_2d(ctx: LowerContext) -> str:
    if int16x8.is_int16(ctx):
        return _conv_s16(ctx, depthwise=True)
    inp, filt, bias, out = ctx.input(0), ctx.input(1), ctx.optional_input(2), ctx.output()
    _check_tensors(ctx, inp, filt, bias, out)
    batches, _, _, in_c = inp.shape
    one, _, _, out_c = filt.shape
    ctx.require(one == 1, f"depthwise weights must have shape [1, h, w, c], got {filt.shape}")
    ctx.require(out.shape[3] == out_c, f"output has {out.shape[3]} channels, weights give {out_c}")
    dm = int(ctx.op.options.get("depth_multiplier", 0))
    ctx.require(dm > 0 and in_c * dm == out_c,
                f"depth_multiplier {dm} with {in_c} input channels does not give "
                f"the weights' {out_c} output channels")
    geo = _geometry(ctx, inp, filt, out)
    q = _quant_params(ctx, inp, filt, bias, out, out_c, axis=3)
    fields: dict[str, int | str] = {"batches": batches, **geo, "in_c": in_c, "out_c": out_c,
                                    "depth_multiplier": dm, **q}
    if dm == 1 and geo["k_h"] * geo["k_w"] <= DW_MAX_TAPS and ctx.isa == "mve":
        return _depthwise_mve(ctx, fields, inp, filt, bias, out)
    if dm == 1 and geo["k_h"] * geo["k_w"] <= DW_MAX_TAPS:
        return _depthwise_dm1(ctx, fields, inp, filt, bias, out)
    return _emit(ctx, "th_depthwise_conv2d_s8", fields, inp, filt, bias, out)


DW_MAX_TAPS = 32  # TH_DW_MAX_TAPS in th_depthwise.h


def depthwise_dm1_weights(filt: np.ndarray) -> np.ndarray:
    """Re-lay [1, k_h, k_w, c] depthwise weights for th_depthwise_conv2d_s8_dm1.

    Groups of 4 channels first, each as [tap][4 channels] (one word per tap);
    then the c % 4 remaining channels as [tap][channel].
    """
    taps = filt.shape[1] * filt.shape[2]
    c = filt.shape[3]
    w = filt.reshape(taps, c)
    full = c // 4 * 4
    groups = w[:, :full].reshape(taps, c // 4, 4).transpose(1, 0, 2).reshape(-1)
    return np.concatenate([groups, w[:, full:].reshape(-1)]).astype(np.int8)


def depthwise_folded_bias(filt: np.ndarray, bias: np.ndarray | None, input_offset: int) -> np.ndarray:
    """:func:`folded_bias` of [1, k_h, k_w, c] depthwise weights (per channel)."""
    return folded_bias(filt.reshape(-1, filt.shape[3]).T, bias, input_offset)


def _depthwise_mve(ctx: LowerContext, fields: dict[str, int | str],
                   inp: Tensor, filt: Tensor, bias: Tensor | None, out: Tensor) -> str:
    """Helium, depth multiplier 1: th_depthwise_conv2d_s8_mve reads the TFLite weights as
    they are, with the input offset folded into the bias; a padding tap reads a row
    of the input zero point (zp_row)."""
    assert filt.data is not None
    fdata = np.asarray(filt.data)
    c = int(fields["in_c"])
    bname = _mve_bias(ctx, fdata.reshape(-1, c).T, bias, int(fields["input_offset"]))
    zp = ctx.array("zp_row", "int8_t", [-int(fields["input_offset"])] * c)
    mode = requant.right_shifts_only(quant.per_channel_multipliers(inp, filt, out, int(fields["out_c"]))[1])
    if mode == requant.FAST and (fields["act_min"], fields["act_max"]) == (-128, 127):
        mode = requant.FAST_SAT8  # the clamp is the narrowing store's saturation
    fields["requant_mode"] = mode
    ctx.include("th_mve_s8.h")
    p = ctx.params("th_conv_params", fields)
    return (f"th_depthwise_conv2d_s8_mve({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(filt, const=True)}, "
            f"{bname}, {ctx.ptr(out)}, {zp})")


def depthwise_fast_requant(filt: np.ndarray, folded_bias: np.ndarray, shifts: list[int]) -> bool:
    """Whether th_dw_requant_fast is exact: every |accumulator| < 2^30 (so doubling
    it fits SMMULR) and every shift a right shift by 1..31."""
    c = filt.shape[3]
    wsum = np.abs(filt.reshape(-1, c).astype(np.int64)).sum(axis=0)
    bound = np.abs(folded_bias.astype(np.int64)) + 128 * wsum
    return bool(np.all(bound < 2**30)) and all(-31 <= s <= -1 for s in shifts)


def _depthwise_dm1(ctx: LowerContext, fields: dict[str, int | str],
                   inp: Tensor, filt: Tensor, bias: Tensor | None, out: Tensor) -> str:
    """Depth multiplier 1: weights re-laid out and the input offset folded into the
    bias at build time (th_depthwise.h); named th_w_* so they count as weights."""
    assert filt.data is not None
    fdata = np.asarray(filt.data)
    bdata = None if bias is None else np.asarray(bias.data)
    w = depthwise_dm1_weights(fdata)
    fb = depthwise_folded_bias(fdata, bdata, int(fields["input_offset"]))
    _, shifts = quant.per_channel_multipliers(inp, filt, out, int(fields["out_c"]))
    fast = depthwise_fast_requant(fdata, fb, shifts)
    wname, bname = f"th_w_{filt.index}_op{ctx.op.index}_dw", f"th_w_op{ctx.op.index}_dw_bias"
    ctx.weight_array(wname, "int8_t", w)
    ctx.weight_array(bname, "int32_t", fb)
    ctx.include("th_depthwise.h")
    geo = ("batches", "in_h", "in_w", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w",
           "dil_h", "dil_w", "pad_h", "pad_w")
    dw: dict[str, int | str] = {k: fields[k] for k in geo}
    dw.update({
        "channels": fields["in_c"],
        "input_offset": fields["input_offset"],
        "output_offset": fields["output_offset"],
        "act_min": fields["act_min"],
        "act_max": fields["act_max"],
        "fast_requant": int(fast),
        "bias": bname,
        "mult": fields["mult"],
        "shift": fields["shift"],
    })
    g = {k: int(fields[k]) for k in ("k_h", "k_w", "stride_h", "stride_w", "dil_h", "dil_w", "pad_w", "in_w", "in_c")}
    if fast and scratch.dw_pairs_shape_ok(
            g["k_h"], g["k_w"], (g["stride_h"], g["stride_w"]), (g["dil_h"], g["dil_w"]), g["pad_w"], g["in_w"],
            g["in_c"]):
        # Paired rows through the padded window (th_dw_pairs.h), this layer's
        # channel count and window row stride compiled in as immediates.
        ctx.include("th_dw_pairs.h")
        ctx.decls.append(scratch.scratch_decl(ctx.model))
        full = (int(fields["act_min"]), int(fields["act_max"])) == (-128, 127)
        name = f"{ctx.prefix}_dwpairs"
        ctx.decls.append(f"TH_DW_PAIRS_DEFINE({name}, {g['in_c']}, {(g['in_w'] + 2) * g['in_c']}, "
                         f"{g['stride_w']}, {'TH_RQ_FAST_SAT8' if full else 'TH_RQ_FAST'})")
        dw["pairs"] = name
        dw["win"] = "(int8_t *)th_scratch"
    p = ctx.params("th_dw_params", dw)
    return f"th_depthwise_conv2d_s8_dm1({p}, {ctx.ptr(inp, const=True)}, {wname}, {ctx.ptr(out)})"


def _conv_s16(ctx: LowerContext, depthwise: bool) -> str:
    """int16x8 CONV_2D / DEPTHWISE_CONV_2D (TFLM's int16 ConvPerChannel / DepthwiseConvPerChannel)."""
    inp, filt, bias, out = ctx.input(0), ctx.input(1), ctx.optional_input(2), ctx.output()
    int16x8.require_int16(ctx, inp, out)
    int16x8.require_int8_weights(ctx, filt)
    for t, what in ((inp, "input"), (filt, "weights"), (out, "output")):
        ctx.require(len(t.shape) == 4, f"{what} '{t.name}' must be 4-D (NHWC), got shape {t.shape}")
    ctx.require(out.shape[0] == inp.shape[0],
                f"output batch {out.shape[0]} differs from input batch {inp.shape[0]}")
    int16x8.require_zero_points(ctx, f"TFLM's int16 {ctx.op.name} ignores zero points", inp, out)
    batches, _, _, in_c = inp.shape
    if depthwise:
        one, _, _, out_c = filt.shape
        ctx.require(one == 1, f"depthwise weights must have shape [1, h, w, c], got {filt.shape}")
        dm = int(ctx.op.options.get("depth_multiplier", 0))
        ctx.require(dm > 0 and in_c * dm == out_c,
                    f"depth_multiplier {dm} with {in_c} input channels does not give "
                    f"the weights' {out_c} output channels")
        # TFLM reads the bias of an int16 depthwise conv as int64 whatever its type.
        ctx.require(bias is None or (bias.dtype == "int64" and bias.is_const),
                    f"bias '{bias.name if bias else ''}' must be a constant int64 tensor "
                    "(TFLM's int16 DEPTHWISE_CONV_2D reads it as int64)")
        acc32 = False
    else:
        out_c, _, _, filt_c = filt.shape
        ctx.require(filt_c == in_c,
                    f"grouped convolution (weights take {filt_c} input channels, the input has {in_c}) "
                    "is not supported")
        dm = 1
        acc32 = int16x8.accumulates_in_int32(ctx, bias)
    ctx.require(out.shape[3] == out_c, f"output has {out.shape[3]} channels, weights give {out_c}")
    geo = _geometry(ctx, inp, filt, out)
    q = _quant_params(ctx, inp, filt, bias, out, out_c, axis=3 if depthwise else 0)
    if not acc32:
        int16x8.require_mbqm64_shifts(ctx, quant.per_channel_multipliers(inp, filt, out, out_c)[1])
    fields: dict[str, int | str] = {"batches": batches, **geo, "in_c": in_c, "out_c": out_c,
                                    "depth_multiplier": dm, **q}
    ctx.include("th_int16.h")
    simd = int16x8.conv_simd(ctx, fields, inp, filt, bias, out, depthwise, acc32)
    if simd is not None:
        return simd
    fn = "th_depthwise_conv2d_s16" if depthwise else ("th_conv2d_s16_acc32" if acc32 else "th_conv2d_s16")
    return _emit(ctx, fn, fields, inp, filt, bias, out)
