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
from dataclasses import dataclass
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


# ---------------------------------------------------------------- SIMD kernels

# th_rq16_params.mode (th_int16.h).
RQ16_EXACT64 = 0
RQ16_FAST = 1
RQ16_ACC32 = 2

_X_MAX = 32768  # |int16 input|: products of int8 weights stay below 2^22
_INT32_LIMIT = 2**31
_PERM = [0, 2, 1, 3]  # a group of four weights as stored: SXTB16 -> (w0, w1), ROR #8 -> (w2, w3)
# th_conv2d_s16_simd gathers a pixel's patch on the stack when its window is cut
# by the padding (or a row is dilated): at most this many int16 elements.
MAX_PATCH = 1024


def s16_weights(rows: np.ndarray) -> np.ndarray:
    """Re-lay [channels, k] weights (a conv's [out_c, k_h, k_w, in_c] flattened per
    channel, a fully connected op's [outputs, depth]) for th_conv2d_s16_simd.

    Channels in blocks of four, then one at a time. Per block: the k // 4 groups
    of four weights, one word per channel, each stored as w0, w2, w1, w3; then
    the last k % 4 weights of each channel.
    """
    channels, k = rows.shape
    g = k // 4
    full = channels // 4 * 4
    blocks = rows[:full].reshape(full // 4, 4, k)
    groups = blocks[:, :, :4 * g].reshape(full // 4, 4, g, 4)[:, :, :, _PERM].transpose(0, 2, 1, 3)
    tails = blocks[:, :, 4 * g:].reshape(full // 4, 4 * (k - 4 * g))
    parts = [np.concatenate([groups.reshape(full // 4, 16 * g), tails], axis=1).reshape(-1)]
    for c in range(full, channels):
        parts.append(rows[c, :4 * g].reshape(g, 4)[:, _PERM].reshape(-1))
        parts.append(rows[c, 4 * g:])
    return np.concatenate(parts).astype(np.int8)


def dw_s16_weights(filt: np.ndarray) -> np.ndarray:
    """Re-lay [1, k_h, k_w, c] depthwise weights for th_depthwise_conv2d_s16_simd: per
    group of four channels one word per tap (w0, w2, w1, w3), then the c % 4 last
    channels as [tap][channel]."""
    c = filt.shape[3]
    w = filt.reshape(-1, c)
    full = c // 4 * 4
    groups = w[:, :full].reshape(w.shape[0], c // 4, 4)[:, :, _PERM].transpose(1, 0, 2)
    return np.concatenate([groups.reshape(-1), w[:, full:].reshape(-1)]).astype(np.int8)


def fast_multipliers(mults: list[int], shifts: list[int]) -> list[int] | None:
    """TH_RQ16_FAST's multipliers: TFLM's 16-bit multiplier r << (17 + shift), so that
    SMMULR(x, m) = (x * r + 2^(14 - shift)) >> (15 - shift), the 64-bit
    MultiplyByQuantizedMultiplier for any int32 x; None unless every shift is in
    [-17, -1] (m then stays below 2^31)."""
    out = []
    for m, s in zip(mults, shifts):
        if not -17 <= s <= -1:
            return None
        reduced = (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF
        out.append(reduced << (17 + s))
    return out


@dataclass(frozen=True)
class Rq16:
    """How a SIMD kernel requantizes (th_rq16_params), decided from the weights alone."""

    mode: int  # RQ16_*
    wide: bool  # EXACT64 sums that may leave int32
    mult: list[int]  # TFLM's multipliers, or FAST's
    bias: np.ndarray | None  # what the kernel adds (folded, FAST's int32), None: the model's own
    bias_ctype: str


def rq16_plan(rows: np.ndarray, bias: np.ndarray | None, acc32: bool, mults: list[int], shifts: list[int],
              input_offset: int = 0) -> Rq16:
    """The requantization of weights ``rows`` ([channels, taps]) with ``bias`` (or None).

    ``input_offset`` (fully connected) is folded into the bias: sum w * (x + o) + b
    = sum w * x + (b + o * sum w), in int64 (modulo 2^32 for an int32 accumulator).
    """
    rows64 = rows.astype(np.int64)
    b = np.zeros(rows.shape[0], dtype=np.int64) if bias is None else bias.reshape(-1).astype(np.int64)
    folded = input_offset != 0
    b = b + input_offset * rows64.sum(axis=1)
    reach = _X_MAX * np.abs(rows64).sum(axis=1)  # the largest |sum of products| per channel
    if acc32:
        return Rq16(RQ16_ACC32, False, mults, quant.wrap_int32(b) if folded else None, "int32_t")
    fast = fast_multipliers(mults, shifts)
    if fast is not None and bool(np.all(reach + np.abs(b) < _INT32_LIMIT)):
        # The int64 bias fits: an int32 one replaces it (the kernel starts the sum with it).
        return Rq16(RQ16_FAST, False, fast, b.astype(np.int32) if bias is not None or folded else None, "int32_t")
    return Rq16(RQ16_EXACT64, not bool(np.all(reach < _INT32_LIMIT)), mults, b if folded else None, "int64_t")


def emit_rq16(ctx: LowerContext, plan: Rq16, bias: Tensor | None, shifts: list[int], act: tuple[int, int],
              output_offset: int = 0) -> str:
    """Declare the op's th_rq16_params (and the arrays it points to); returns ``&name``."""
    bias_ref = "0"
    if plan.bias is not None:
        bias_ref = ctx.weight_array(f"th_w_op{ctx.op.index}_s16_bias", plan.bias_ctype, plan.bias)
    elif bias is not None:
        bias_ref = ctx.ptr(bias, const=True)
    fields: dict[str, int | str] = {
        "mode": plan.mode,
        "wide": int(plan.wide),
        "bias64": bias_ref if plan.bias_ctype == "int64_t" else "0",
        "bias32": bias_ref if plan.bias_ctype == "int32_t" else "0",
        "mult": ctx.array("rq_mult", "int32_t", plan.mult),
        # FAST's multipliers carry the shifts.
        "shift": "0" if plan.mode == RQ16_FAST else ctx.array("rq_shift", "int32_t", shifts),
        "output_offset": output_offset,
        "act_min": act[0],
        "act_max": act[1],
    }
    name = f"{ctx.prefix}_rq"
    body = ",\n".join(f"    .{k} = {v}" for k, v in fields.items())
    ctx.decls.append(f"static const th_rq16_params {name} = {{\n{body}\n}};")
    return f"&{name}"


def conv_in_place(geo: dict[str, int]) -> bool:
    """Whether th_conv2d_s16_simd reads every patch where it is (a 1 x k_w window never
    cut on the left or right: pointwise convolutions); otherwise it gathers each
    pixel's patch on the stack (the kernel's own test)."""
    last_ix = (geo["out_w"] - 1) * geo["stride_w"] - geo["pad_w"] + (geo["k_w"] - 1) * geo["dil_w"]
    return geo["k_h"] == 1 and (geo["k_w"] == 1 or (geo["dil_w"] == 1 and geo["pad_w"] == 0
                                                     and last_ix < geo["in_w"]))


def conv_simd(ctx: LowerContext, fields: dict[str, int | str], inp: Tensor, filt: Tensor, bias: Tensor | None,
              out: Tensor, depthwise: bool, acc32: bool) -> str | None:
    """The call of th_conv2d_s16_simd / th_depthwise_conv2d_s16_simd for an int16x8 conv
    whose th_conv_params fields are ``fields``, its weights re-laid out as th_w_* arrays;
    None where the SIMD kernel does not apply (the caller keeps the plain kernel)."""
    assert filt.data is not None
    fdata = np.asarray(filt.data)
    out_c = int(fields["out_c"])
    geo = {k: int(v) for k, v in fields.items() if isinstance(v, int)}
    if depthwise:
        if geo["depth_multiplier"] != 1:
            return None
        rows = fdata.reshape(-1, out_c).T
    else:
        rows = fdata.reshape(out_c, -1)
        if not conv_in_place(geo) and rows.shape[1] > MAX_PATCH:
            return None
    mults, shifts = quant.per_channel_multipliers(inp, filt, out, out_c)
    plan = rq16_plan(rows, None if bias is None else np.asarray(bias.data), acc32, mults, shifts)
    if depthwise and plan.wide:
        return None
    rq = emit_rq16(ctx, plan, bias, shifts, (geo["act_min"], geo["act_max"]))
    # The kernels requantize through th_rq16_params: the conv parameters' own
    # multiplier and shift arrays are not needed.
    for key in ("mult", "shift"):
        array = f"static const int32_t {fields[key]}["
        ctx.decls = [d for d in ctx.decls if not d.startswith(array)]
    fields = {**fields, "mult": "0", "shift": "0"}
    kind = "dw" if depthwise else "conv"
    wname = f"th_w_{filt.index}_op{ctx.op.index}_s16{kind}"
    # Word-aligned: the DSP kernel reads blocks of four channels with LDRD.
    ctx.weight_array(wname, "int8_t", dw_s16_weights(fdata) if depthwise else s16_weights(rows),
                     align=4)
    fn = "th_depthwise_conv2d_s16_simd" if depthwise else "th_conv2d_s16_simd"
    p = ctx.params("th_conv_params", fields)
    return f"{fn}({p}, {rq}, {ctx.ptr(inp, const=True)}, {wname}, {ctx.ptr(out)})"
