"""ADD and MUL lowerings, int8 (TFLM add_common.cc / mul_common.cc).

Broadcasting follows numpy/TFLite rules. The loop nest is worked out here:
the output shape's dimensions of extent 1 are dropped, neighbouring
dimensions along which each input is either broadcast in both or read
contiguously in both are fused, and each input gets a stride per loop (0
where it is broadcast). Equal shapes fuse to one loop with unit strides,
the kernel's fast path.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.engines.builtin import int16x8, quant
from harness.engines.builtin.lowering import LowerContext, lowering
from harness.model import Tensor

MAX_LOOPS = 8  # TH_BCAST_MAX_DIMS in th_elementwise.h
_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def broadcast_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """The broadcast of two shapes, or None if they are incompatible."""
    rank = max(len(a), len(b))
    ea = [1] * (rank - len(a)) + list(a)
    eb = [1] * (rank - len(b)) + list(b)
    out = []
    for x, y in zip(ea, eb):
        if x != y and x != 1 and y != 1:
            return None
        out.append(y if x == 1 else x)
    return tuple(out)


def loop_nest(shape1: Sequence[int], shape2: Sequence[int],
              out_shape: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """(extents, input-1 strides, input-2 strides), outermost loop first.

    Strides are in elements; 0 means the input is broadcast along that loop.
    """
    rank = len(out_shape)
    e1 = [1] * (rank - len(shape1)) + list(shape1)
    e2 = [1] * (rank - len(shape2)) + list(shape2)
    # Innermost first: (extent, stride1, stride2, bcast1, bcast2).
    loops: list[list[int]] = []
    acc1 = acc2 = 1
    for d in range(rank - 1, -1, -1):
        n = out_shape[d]
        if n != 1:
            b1, b2 = e1[d] == 1, e2[d] == 1
            if loops and (loops[-1][3], loops[-1][4]) == (b1, b2):
                loops[-1][0] *= n  # contiguous with the loop inside it: fuse
            else:
                loops.append([n, 0 if b1 else acc1, 0 if b2 else acc2, b1, b2])
        acc1 *= e1[d]
        acc2 *= e2[d]
    if not loops:
        loops.append([1, 0, 0, True, True])
    loops.reverse()
    return [lp[0] for lp in loops], [lp[1] for lp in loops], [lp[2] for lp in loops]


def _c_list(values: Sequence[int]) -> str:
    padded = list(values) + [0] * (MAX_LOOPS - len(values))
    return "{" + ", ".join(str(v) for v in padded) + "}"


def _bcast_fields(ctx: LowerContext, in1: Tensor, in2: Tensor, out: Tensor) -> dict[str, int | str]:
    shape = broadcast_shape(in1.shape, in2.shape)
    ctx.require(shape is not None, f"shapes {in1.shape} and {in2.shape} do not broadcast")
    assert shape is not None
    ext = [1] * (len(out.shape) - len(shape)) + list(shape)
    ctx.require(len(shape) <= len(out.shape) and tuple(ext) == tuple(out.shape),
                f"output shape {out.shape} is not the broadcast of {in1.shape} and {in2.shape}")
    ctx.require(out.num_elements > 0, "empty output")
    extents, s1, s2 = loop_nest(in1.shape, in2.shape, out.shape)
    ctx.require(len(extents) <= MAX_LOOPS,
                f"broadcast needs {len(extents)} loops, the kernel handles {MAX_LOOPS}")
    return {
        "ndims": len(extents),
        "shape": _c_list(extents),
        "stride1": _c_list(s1),
        "stride2": _c_list(s2),
    }


def _common(ctx: LowerContext) -> tuple[Tensor, Tensor, Tensor, int, int]:
    in1, in2, out = ctx.input(0), ctx.input(1), ctx.output()
    ctx.require_int8(in1, in2, out)
    for t in (in1, in2, out):
        ctx.require(not quant.require_quant(t).per_channel,
                    f"tensor '{t.name}' is per-channel quantized; the kernel takes per-tensor scales")
    act = ctx.op.options.get("fused_activation_function", "NONE")
    ctx.require(act in _ACTIVATIONS, f"fused activation {act}")
    act_min, act_max = quant.activation_range(act, out)
    return in1, in2, out, act_min, act_max


def _call(ctx: LowerContext, kernel: str, p: str, in1: Tensor, in2: Tensor, out: Tensor) -> str:
    return (f"{kernel}({p}, {ctx.ptr(in1, const=True)}, {ctx.ptr(in2, const=True)}, "
            f"{ctx.ptr(out)})")


@lowering("ADD", inplace_input=(0, 1))
def add(ctx: LowerContext) -> str:
    if int16x8.is_int16(ctx):
        return _add_s16(ctx)
    in1, in2, out, act_min, act_max = _common(ctx)
    try:
        q = quant.add_params(in1, in2, out)
    except ValueError as e:
        raise ctx.unsupported(f"scales do not quantize as TFLM needs: {e}") from e
    fields: dict[str, int | str] = dict(_bcast_fields(ctx, in1, in2, out))
    fields.update(q)
    fields.update({"act_min": act_min, "act_max": act_max})
    if tuple(in1.shape) == tuple(in2.shape) == tuple(out.shape):
        fields.update(_add_tables(ctx, q, act_min, act_max))
    ctx.include("th_elementwise.h")
    return _call(ctx, "th_add_s8", ctx.params("th_add_params", fields), in1, in2, out)


def _srdhm(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul on Python ints (th_srdhm)."""
    if a == b == -(2**31):
        return 2**31 - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = abs(ab + nudge) >> 31  # C's division truncates toward zero
    return q if ab + nudge >= 0 else -q


def _rdbpot(x: int, exponent: int) -> int:
    """gemmlowp RoundingDivideByPOT (th_rdbpot)."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def add_input_table(offset: int, left_shift: int, multiplier: int, shift: int) -> list[int]:
    """One ADD input's rescaled value for every int8 byte v (index v + 128): what
    th_add_one computes per element, MultiplyByQuantizedMultiplierSmallerThanOneExp
    ((v + offset) << left_shift, multiplier, shift), on the host once."""
    return [_rdbpot(_srdhm((v + offset) << left_shift, multiplier), -shift) for v in range(-128, 128)]


def _add_tables(ctx: LowerContext, q: dict[str, int], act_min: int, act_max: int) -> dict[str, int | str]:
    """The same-shape fast path's two tables (th_add_s8.c th_add_lut) and its requantization mode."""
    from harness.engines.builtin import requant

    t1 = add_input_table(q["input1_offset"], q["left_shift"], q["input1_multiplier"], q["input1_shift"])
    t2 = add_input_table(q["input2_offset"], q["left_shift"], q["input2_multiplier"], q["input2_shift"])
    bound = max(abs(v) for v in t1) + max(abs(v) for v in t2)
    shift = q["output_shift"]
    mode = requant.EXACT
    if bound < 2**30 and -31 <= shift <= -1:
        mode = requant.FAST_SAT8 if (act_min, act_max) == (-128, 127) else requant.FAST
    return {
        "lut1": ctx.weight_array(f"th_w_op{ctx.op.index}_add_lut1", "int32_t", np.asarray(t1, dtype=np.int32)),
        "lut2": ctx.weight_array(f"th_w_op{ctx.op.index}_add_lut2", "int32_t", np.asarray(t2, dtype=np.int32)),
        "requant_mode": mode,
    }


@lowering("MUL", inplace_input=(0, 1))
def mul(ctx: LowerContext) -> str:
    in1, in2, out, act_min, act_max = _common(ctx)
    mult, shift = quant.mul_multiplier(in1, in2, out)
    fields: dict[str, int | str] = dict(_bcast_fields(ctx, in1, in2, out))
    fields.update({
        "input1_offset": -quant.require_quant(in1).zero_point,
        "input2_offset": -quant.require_quant(in2).zero_point,
        "output_offset": quant.require_quant(out).zero_point,
        "output_multiplier": mult,
        "output_shift": shift,
        "act_min": act_min,
        "act_max": act_max,
    })
    ctx.include("th_elementwise.h")
    return _call(ctx, "th_mul_s8", ctx.params("th_mul_params", fields), in1, in2, out)


def _add_s16(ctx: LowerContext) -> str:
    """int16 ADD: TFLM's general int16 path, the int8 arithmetic with left_shift 15."""
    in1, in2, out = ctx.input(0), ctx.input(1), ctx.output()
    int16x8.require_int16(ctx, in1, in2, out)
    act = ctx.op.options.get("fused_activation_function", "NONE")
    ctx.require(act in _ACTIVATIONS, f"fused activation {act}")
    act_min, act_max = quant.activation_range(act, out)
    try:
        q = quant.add_params(in1, in2, out, left_shift=15)
    except ValueError as e:
        raise ctx.unsupported(f"scales do not quantize as TFLM needs: {e}") from e
    fields: dict[str, int | str] = dict(_bcast_fields(ctx, in1, in2, out))
    fields.update(q)
    fields.update({"act_min": act_min, "act_max": act_max})
    ctx.include("th_int16.h")
    return _call(ctx, "th_add_s16", ctx.params("th_add_params", fields), in1, in2, out)
