"""Arena planning: no two live tensors overlap, aliases share, and we never exceed TFLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.engines.builtin.planner import Plan, plan_arena
from harness.model import Model, load_model, parse_model
from harness.reference import Reference
from harness.synth import ModelBuilder

MLPERF = ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8"]


def _lifetimes(model: Model) -> dict[int, tuple[int, int]]:
    life: dict[int, list[int]] = {}
    last_op = len(model.operators) - 1
    for i in model.inputs:
        life[i] = [0, 0]
    for op in model.operators:
        for i in op.outputs:
            life.setdefault(i, [op.index, op.index])
        for i in op.inputs:
            if i >= 0 and not model.tensors[i].is_const:
                life[i][1] = max(life[i][1], op.index)
    for i in model.outputs:
        life[i][1] = last_op
    return {i: (a, b) for i, (a, b) in life.items()}


def assert_no_live_overlap(model: Model, plan: Plan, shared: set[frozenset[int]]) -> None:
    life = _lifetimes(model)
    items = sorted(plan.offsets.items())
    for n, (a, off_a) in enumerate(items):
        end_a = off_a + model.tensors[a].nbytes
        assert end_a <= plan.arena_bytes
        assert off_a % 16 == 0
        for b, off_b in items[n + 1:]:
            if frozenset((a, b)) in shared:
                continue
            (fa, la), (fb, lb) = life[a], life[b]
            if fa <= lb and fb <= la:  # both live at some op
                end_b = off_b + model.tensors[b].nbytes
                assert end_a <= off_b or end_b <= off_a, (
                    f"tensors {a} and {b} overlap in memory while both live")


@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_plans_are_sound_and_no_larger_than_tflm(shared_models: Path, name: str) -> None:
    model = load_model(shared_models / f"{name}.tflite")
    plan = plan_arena(model, frozenset({"RESHAPE"}), {})
    aliases = {frozenset((op.inputs[0], op.outputs[0])) for op in model.operators if op.name == "RESHAPE"}
    assert_no_live_overlap(model, plan, aliases)
    tflm = Reference(model).arena_usage()
    assert plan.arena_bytes <= tflm.head


def test_reshape_aliases_its_input_and_inplace_reuses_a_dying_input() -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 4, 4, 8], scale=0.1)
    r = b.tensor("r", [1, 128], scale=0.1)
    c = b.const("c", np.ones((1, 128)), scales=0.1)
    s = b.tensor("s", [1, 128], scale=0.2)
    y = b.tensor("y", [1, 128], scale=0.2)
    b.op("RESHAPE", [x], [r])
    b.op("ADD", [r, c], [s], fused_activation_function="NONE")
    b.op("ADD", [s, c], [y], fused_activation_function="NONE")
    model = parse_model(b.build([x], [y]), "chain.tflite")

    plain = plan_arena(model, frozenset(), {})
    assert plain.offsets[x] != plain.offsets[r]
    assert plain.arena_bytes == 256  # two 128-byte buffers ping-pong

    smart = plan_arena(model, frozenset({"RESHAPE"}), {"ADD": (0, 1)})
    assert smart.offsets[x] == smart.offsets[r]
    # s overwrites r (dies at op 1); y must not overwrite s: y is a graph output
    # but s is not, so in-place is allowed there too.
    assert smart.offsets[s] == smart.offsets[r]
    assert smart.arena_bytes == 128
    assert c not in smart.offsets  # constants live in flash


def test_graph_output_is_never_overwritten_in_place() -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 64], scale=0.1)
    y = b.tensor("y", [1, 64], scale=0.1)
    z = b.tensor("z", [1, 64], scale=0.1)
    b.op("ADD", [x, x], [y], fused_activation_function="NONE")
    b.op("ADD", [y, y], [z], fused_activation_function="NONE")
    model = parse_model(b.build([x], [y, z]), "outs.tflite")
    plan = plan_arena(model, frozenset(), {"ADD": (0, 1)})
    assert plan.offsets[y] != plan.offsets[z]
