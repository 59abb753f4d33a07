"""Static arena planning from tensor lifetimes.

Every non-constant tensor gets an offset in one static arena. Two tensors may
overlap in memory only when their lifetimes (first op writing, last op
reading, inclusive) do not overlap. Beyond TFLM's greedy planner, two things
make the arena smaller:

* aliases: RESHAPE outputs share their input's buffer (no copy, no kernel);
* in-place ops: an element-wise op may write its output over an input that
  dies at that op;
* fused pairs: a producer computed in bands of rows straight into its
  consumer (codegen's CONV -> ADD bands) needs only a band-sized scratch for
  the tensor between them, and the pair counts as one op for lifetimes.

The placement is TFLM's greedy first-fit, tried over several orderings; the
smallest arena wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from harness.errors import ModelError
from harness.model import Model

ALIGN = 16  # TFLM's kBufferAlignment; also keeps int32 scratch aligned.
ARENA_LIMIT = 2**31  # a C array on a 32-bit target must be smaller


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Buffer:
    """One arena buffer: a group of tensors sharing memory."""

    root: int  # representative tensor index
    size: int  # bytes (aligned)
    first: int  # op index that first writes it (0 for graph inputs)
    last: int  # op index that last reads it


@dataclass(frozen=True)
class Plan:
    """Where each non-constant tensor lives."""

    arena_bytes: int
    offsets: dict[int, int]  # tensor index -> byte offset in the arena
    const_alias: dict[int, int]  # tensor index -> constant tensor it reinterprets
    buffers: tuple[Buffer, ...]


def _overlap(a: Buffer, b: Buffer) -> bool:
    return a.first <= b.last and b.first <= a.last


def _place(buffers: list[Buffer], order: list[Buffer]) -> tuple[int, dict[int, int]]:
    """TFLM GreedyMemoryPlanner: first gap among time-overlapping placed buffers."""
    placed: list[tuple[int, Buffer]] = []
    offsets: dict[int, int] = {}
    for buf in order:
        live = sorted(((off, b) for off, b in placed if _overlap(b, buf)), key=lambda p: p[0])
        candidate = 0
        for off, b in live:
            if off >= candidate + buf.size:
                break
            candidate = max(candidate, off + b.size)
        offsets[buf.root] = candidate
        placed.append((candidate, buf))
    total = max((off + b.size for off, b in placed), default=0)
    return total, offsets


_ORDERINGS: tuple[Callable[[Buffer], tuple[int, ...]], ...] = (
    lambda b: (-b.size, b.first),  # TFLM's order
    lambda b: (-b.size, -(b.last - b.first)),
    lambda b: (-(b.last - b.first + 1) * b.size, -b.size),
    lambda b: (b.first, -b.size),
    lambda b: (-(b.last - b.first), -b.size),
)


def plan_arena(
    model: Model,
    alias_ops: frozenset[str],
    inplace: dict[str, tuple[int, ...]],
    fused: dict[int, int] | None = None,
    scratch: dict[int, int] | None = None,
) -> Plan:
    """Plan the arena for ``model``.

    Args:
        alias_ops: op names whose output is input 0 reinterpreted.
        inplace: op name -> input positions the output may overwrite.
        fused: consumer op index -> producer op index run together with it.
        scratch: tensor index -> bytes it needs (less than its size: a band).
    """
    fused = fused or {}
    scratch = scratch or {}
    tensors = model.tensors
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while i in parent:
            i = parent[i]
        return i

    const_alias: dict[int, int] = {}
    for op in model.operators:
        if op.name in alias_ops and op.inputs and op.outputs:
            src = root(op.inputs[0])
            if tensors[src].is_const:
                const_alias[op.outputs[0]] = src
            else:
                parent[op.outputs[0]] = src

    n_ops = len(model.operators)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    size: dict[int, int] = {}

    def touch(i: int, k: int, writes: bool) -> None:
        r = root(i)
        if tensors[r].is_const or i in const_alias:
            return
        size[r] = max(size.get(r, 0), _align(scratch.get(i, tensors[i].nbytes)))
        if writes:
            first[r] = min(first.get(r, k), k)
        last[r] = max(last.get(r, k), k)
        first.setdefault(r, k)

    for i in model.inputs:
        touch(i, 0, True)
    for op in model.operators:
        k = fused.get(op.index, op.index)
        for i in op.inputs:
            if i >= 0:
                touch(i, k, False)
        for i in op.outputs:
            touch(i, k, True)
    for i in model.outputs:
        touch(i, n_ops - 1 if n_ops else 0, False)

    # In-place: merge an op's output into an input that dies here.
    for op in model.operators:
        k = fused.get(op.index, op.index)
        # A fused consumer writes while its producer still reads the producer's inputs.
        producer_inputs = ({root(i) for i in model.operators[k].inputs if i >= 0}
                           if op.index in fused else set())
        for pos in inplace.get(op.name, ()):
            if pos >= len(op.inputs) or op.inputs[pos] < 0 or not op.outputs:
                continue
            src, dst = root(op.inputs[pos]), root(op.outputs[0])
            if src == dst or src not in size or dst not in size:
                continue
            if op.inputs[pos] in scratch or src in producer_inputs:
                continue
            if any(root(o) == src for o in model.outputs):  # must survive invoke
                continue
            if last[src] != k or first[dst] != k:
                continue
            if tensors[op.inputs[pos]].nbytes != tensors[op.outputs[0]].nbytes:
                continue
            parent[dst] = src
            size[src] = max(size[src], size.pop(dst))
            last[src] = max(last[src], last.pop(dst))
            first.pop(dst)
            break

    buffers = [Buffer(r, size[r], first[r], last[r]) for r in sorted(size)]
    best: tuple[int, dict[int, int]] | None = None
    for key in _ORDERINGS:
        result = _place(buffers, sorted(buffers, key=key))
        if best is None or result[0] < best[0]:
            best = result
    total, root_offsets = best if best is not None else (0, {})
    if total >= ARENA_LIMIT:
        big = sorted(buffers, key=lambda b: -b.size)[:3]
        names = ", ".join(f"#{b.root} '{model.tensors[b.root].name}' {b.size} bytes" for b in big)
        raise ModelError(f"{model.path}: the tensor arena needs {total} bytes, more than a 32-bit target "
                         f"can address (2**31 - 1); largest tensors: {names}: reduce the input size "
                         "when converting")

    offsets: dict[int, int] = {}
    for op_tensors in ([*model.inputs, *model.outputs],
                       *[[*op.inputs, *op.outputs] for op in model.operators]):
        for i in op_tensors:
            if i >= 0 and root(i) in root_offsets:
                offsets[i] = root_offsets[root(i)]
    return Plan(total, offsets, const_alias, tuple(buffers))
