"""PAD and PADV2 lowerings, int8 (TFLM pad.cc / pad_common.cc).

The output is the input with constant borders: PAD fills with the output
zero point, PADV2 with its scalar constant, which TFLM requires to carry the
output's scale and zero point. Like TFLM, the input bytes are copied as they
are (no requantization), up to 5-D, with constant int32 paddings.
"""

from __future__ import annotations

from harness.engines.builtin import quant
from harness.engines.builtin.lowering import LowerContext, lowering

_DIMS = 5  # TFLM's PadKernelMaxDimensionCount; TH_PAD_DIMS


def _normalize(shape: tuple[int, ...], pads: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(size, left, right) per axis; an unpadded axis is folded into its outer neighbour."""
    dims: list[tuple[int, int, int]] = []
    for n, (lo, hi) in zip(shape, pads):
        if dims and lo == 0 and hi == 0:
            d, left, right = dims[-1]
            dims[-1] = (d * n, left * n, right * n)
        else:
            dims.append((n, lo, hi))
    return [(1, 0, 0)] * (_DIMS - len(dims)) + dims


def _lower_pad(ctx: LowerContext) -> str:
    inp, pads_t, out = ctx.input(0), ctx.input(1), ctx.output()
    ctx.require_int8(inp, out)
    n_in = len(ctx.op.inputs)
    ctx.require(n_in in (2, 3), f"{ctx.op.name} takes 2 or 3 inputs, got {n_in}")
    rank = len(inp.shape)
    ctx.require(1 <= rank <= _DIMS, f"input rank {rank} outside 1..{_DIMS} (TFLM pads up to 5-D)")
    ctx.require(len(out.shape) == rank, f"output rank {len(out.shape)} differs from input rank {rank}")
    ctx.require(pads_t.dtype == "int32", f"paddings must be int32, got {pads_t.dtype}")
    if pads_t.data is None:
        raise ctx.unsupported("paddings must be a constant tensor (TFLM rejects non-constant paddings)")
    flat = [int(v) for v in pads_t.data.reshape(-1)]
    ctx.require(len(flat) == 2 * rank, f"paddings hold {len(flat)} values, {2 * rank} needed")
    pads = [(flat[2 * i], flat[2 * i + 1]) for i in range(rank)]
    ctx.require(all(lo >= 0 and hi >= 0 for lo, hi in pads), f"negative paddings {pads} are not supported")
    for i, ((lo, hi), n, m) in enumerate(zip(pads, inp.shape, out.shape)):
        ctx.require(m == n + lo + hi, f"output dim {i} is {m}, input {n} + paddings {lo}+{hi} give {n + lo + hi}")

    oq = quant.require_quant(out)
    cval = ctx.optional_input(2) if n_in == 3 else None
    if cval is None:
        ctx.require(quant.INT8_MIN <= oq.zero_point <= quant.INT8_MAX,
                    f"output zero point {oq.zero_point} is outside int8")
        pad_value = oq.zero_point
    else:
        ctx.require(cval.dtype == "int8", f"constant_values is {cval.dtype}, the input is int8")
        ctx.require(cval.num_elements == 1, f"constant_values must be a scalar, has {cval.num_elements} elements")
        if cval.data is None:
            raise ctx.unsupported("constant_values must be a constant tensor")
        cq = cval.quant
        ctx.require(cq is not None and cq.zero_point == oq.zero_point and cq.scale == oq.scale,
                    "constant_values must have the output's scale and zero point (TFLM requires it)")
        pad_value = int(cval.data.reshape(-1)[0])

    dims = _normalize(inp.shape, pads)
    ctx.include("th_pad.h")

    def braces(vals: list[int]) -> str:
        return "{" + ", ".join(str(v) for v in vals) + "}"

    p = ctx.params("th_pad_params", {
        "in_dims": braces([d for d, _, _ in dims]),
        "left": braces([lo for _, lo, _ in dims]),
        "right": braces([hi for _, _, hi in dims]),
        "pad_value": pad_value,
    })
    return f"th_pad_s8({p}, {ctx.ptr(inp, const=True)}, {ctx.ptr(out)})"


@lowering("PAD")
def pad(ctx: LowerContext) -> str:
    return _lower_pad(ctx)


@lowering("PADV2")
def padv2(ctx: LowerContext) -> str:
    return _lower_pad(ctx)
