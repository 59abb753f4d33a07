"""CONCATENATION lowering, int8 (TFLM concatenation.cc).

TFLM's int8 kernel copies bytes: its Prepare requires every input to have the
output's scale and zero point, no fused activation, at most 10 inputs and at
most 6 dimensions. The same limits apply here, so a model TFLM refuses is
refused before any C is generated.
"""

from __future__ import annotations

from harness.engines.builtin import quant
from harness.engines.builtin.lowering import LowerContext, lowering

_MAX_INPUTS = 10  # TFLM kMaxInputNum
_MAX_DIMS = 6  # RuntimeShape::kMaxSmallSize


@lowering("CONCATENATION")
def concatenation(ctx: LowerContext) -> str:
    out = ctx.output()
    ins = [ctx.input(i) for i in range(len(ctx.op.inputs))]
    ctx.require(1 <= len(ins) <= _MAX_INPUTS, f"{len(ins)} inputs; TFLM takes 1..{_MAX_INPUTS}")
    ctx.require_int8(*ins, out)
    act = ctx.op.options.get("fused_activation_function", "NONE")
    ctx.require(act == "NONE", f"fused activation {act} is not supported (TFLM requires NONE)")
    rank = len(out.shape)
    ctx.require(1 <= rank <= _MAX_DIMS, f"output rank {rank} outside 1..{_MAX_DIMS}")
    axis = int(ctx.op.options.get("axis", 0))
    ctx.require(-rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
    axis = axis + rank if axis < 0 else axis

    oq = quant.require_quant(out)
    for t in ins:
        q = quant.require_quant(t)
        ctx.require(q.scale == oq.scale and q.zero_point == oq.zero_point,
                    f"input '{t.name}' has scale {q.scale} zero point {q.zero_point}, the output "
                    f"{oq.scale} / {oq.zero_point}: TFLM's int8 CONCATENATION requires equal quantization")
        ctx.require(len(t.shape) == rank, f"input '{t.name}' has rank {len(t.shape)}, the output {rank}")
        ctx.require(all(t.shape[d] == out.shape[d] for d in range(rank) if d != axis),
                    f"input '{t.name}' shape {list(t.shape)} does not match output {list(out.shape)} "
                    f"off axis {axis}")
    total = sum(t.shape[axis] for t in ins)
    ctx.require(total == out.shape[axis], f"inputs sum to {total} along axis {axis}, the output has {out.shape[axis]}")

    outer = 1
    for d in out.shape[:axis]:
        outer *= d
    inner = 1
    for d in out.shape[axis + 1:]:
        inner *= d
    ctx.include("th_concat.h")
    p = ctx.params("th_concat_params", {
        "outer": outer,
        "num_inputs": len(ins),
        "copy_size": ctx.array("copy_size", "int32_t", [t.shape[axis] * inner for t in ins]),
    })
    ptrs = ", ".join(ctx.ptr(t, const=True) for t in ins)
    return f"th_concat_s8({p}, (const int8_t *const[]){{{ptrs}}}, {ctx.ptr(out)})"
