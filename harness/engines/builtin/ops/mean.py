"""MEAN lowering, int8 (TFLM reduce.cc / reduce_common.cc).

TFLM runs every int8 MEAN through ``QuantizedMeanOrSum``: an int32 sum over
the reduced axes, minus ``input_zp * count``, rescaled by
``QuantizeMultiplier(in_scale / out_scale)`` with ``1/count`` folded into the
multiplier at Eval (see ``quant.mean_multiplier``), plus the output zero
point. There is no separate path for equal input/output quantization or for
the 4-D axes {1, 2} case in int8 (that special kernel is float-only), so one
kernel covers all configurations. keep_dims only changes the output shape,
not its element order.
"""

from __future__ import annotations

from harness.engines.builtin import quant
from harness.engines.builtin.lowering import LowerContext, lowering

_MAX_DIMS = 8  # TH_MEAN_MAX_DIMS


def _index_space(shape: tuple[int, ...], strides: list[int], keep: list[bool],
                 want: bool) -> tuple[list[int], list[int]]:
    """Dims/strides of the axes whose ``keep`` flag is ``want``, size-1 dropped, neighbours merged."""
    dims: list[int] = []
    strd: list[int] = []
    prev = -2
    for axis, (n, s, k) in enumerate(zip(shape, strides, keep)):
        if k != want or n == 1:
            continue
        # Row-major: axis a and the next same-kind axis a' are contiguous when
        # every axis between them has size 1 (then stride[a] == n[a'] * stride[a']).
        if dims and all(shape[j] == 1 for j in range(prev + 1, axis)) and strd[-1] == n * s:
            dims[-1] *= n
            strd[-1] = s
        else:
            dims.append(n)
            strd.append(s)
        prev = axis
    return dims, strd


@lowering("MEAN")
def mean(ctx: LowerContext) -> str:
    inp, axis_t, out = ctx.input(0), ctx.input(1), ctx.output()
    ctx.require_int8(inp, out)
    ctx.require(len(ctx.op.inputs) == 2, "MEAN takes exactly 2 inputs (input, axis)")
    ctx.require(axis_t.dtype == "int32", f"axis tensor must be int32 (as TFLM requires), got {axis_t.dtype}")
    if axis_t.data is None:
        raise ctx.unsupported("axis must be a constant tensor")
    axis_data = axis_t.data
    ctx.require(not quant.require_quant(inp).per_channel and not quant.require_quant(out).per_channel,
                "per-channel quantized MEAN tensors are not supported")
    shape = inp.shape
    rank = len(shape)
    ctx.require(rank >= 1, "MEAN of a scalar is not supported")
    ctx.require(all(d > 0 for d in shape), f"input shape {list(shape)} has an empty dimension")

    resolved: list[int] = []
    for a in (int(v) for v in axis_data.reshape(-1)):
        ctx.require(-rank <= a < rank, f"axis {a} out of range for a {rank}-D input")
        a = a + rank if a < 0 else a
        if a not in resolved:
            resolved.append(a)
    reduced = [i in resolved for i in range(rank)]
    count = 1
    for i in resolved:
        count *= shape[i]
    num_outputs = inp.num_elements // count
    ctx.require(out.num_elements == num_outputs,
                f"output has {out.num_elements} elements, reducing {list(shape)} over axes "
                f"{sorted(resolved)} gives {num_outputs}")

    strides = [1] * rank
    for i in range(rank - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    keep = [not r for r in reduced]
    outer_dims, outer_strides = _index_space(shape, strides, keep, True)
    inner_dims, inner_strides = _index_space(shape, strides, keep, False)
    ctx.require(len(outer_dims) <= _MAX_DIMS and len(inner_dims) <= _MAX_DIMS,
                f"input of rank {rank} has too many non-contiguous dimensions")

    mult, shift = quant.rescale_multiplier(inp, out)
    mult, shift = quant.mean_multiplier(mult, shift, count)
    ctx.include("th_mean.h")
    p = ctx.params("th_mean_params", {
        "num_outputs": num_outputs,
        "n_outer": len(outer_dims),
        "outer_dims": ctx.array("outer_dims", "int32_t", outer_dims),
        "outer_strides": ctx.array("outer_strides", "int32_t", outer_strides),
        "n_inner": len(inner_dims),
        "inner_dims": ctx.array("inner_dims", "int32_t", inner_dims),
        "inner_strides": ctx.array("inner_strides", "int32_t", inner_strides),
        "count": count,
        "input_zp": quant.require_quant(inp).zero_point,
        "mult": mult,
        "shift": shift,
        "output_zp": quant.require_quant(out).zero_point,
    })
    return f"th_mean_s8({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"
