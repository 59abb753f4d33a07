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


def _residual(shortcut_is_conv_input: bool) -> bytes:
    """x -> conv -> a -> conv -> b -> conv -> c; y = ADD(a or b, c) (b: the last conv's input)."""
    rng = np.random.default_rng(2)
    b = ModelBuilder()
    x = b.tensor("x", [1, 8, 6, 8], scale=0.05, zero_point=1)
    prev, outs = x, []
    for k in range(3):
        w = b.const(f"w{k}", rng.integers(-127, 128, (8, 3, 3, 8)), scales=0.002, axis=0)
        bias = b.const(f"b{k}", rng.integers(-300, 300, 8), dtype="int32", scales=0.0001)
        t = b.tensor(f"t{k}", [1, 8, 6, 8], scale=0.08, zero_point=-2)
        b.op("CONV_2D", [prev, w, bias], [t], padding="SAME", stride_h=1, stride_w=1,
             dilation_h_factor=1, dilation_w_factor=1, fused_activation_function="RELU")
        outs.append(t)
        prev = t
    y = b.tensor("y", [1, 8, 6, 8], scale=0.1, zero_point=3)
    b.op("ADD", [outs[1] if shortcut_is_conv_input else outs[0], outs[2]], [y],
         fused_activation_function="NONE")
    return b.build([x], [y])


@pytest.mark.parametrize("shortcut_is_conv_input", [False, True])
def test_conv_add_band_fusion_is_exact_and_smaller(tmp_path: Path, shortcut_is_conv_input: bool) -> None:
    from harness.engines.builtin.codegen import band_fusions, generate
    from tests.conftest import check_synthetic

    raw = _residual(shortcut_is_conv_input)
    model = parse_model(raw, str(tmp_path / "res.tflite"))
    (band,) = band_fusions(model)
    assert (band.producer, band.consumer, band.rows) == (2, 3, 1)
    unfused = plan_arena(model, frozenset({"RESHAPE"}), {"ADD": (0, 1)})
    fused = plan_arena(model, frozenset({"RESHAPE"}), {"ADD": (0, 1)}, {3: 2}, {band.tensor: 48})
    gen = generate(model)
    add_out, conv_in = model.operators[3].outputs[0], model.operators[2].inputs[0]
    if shortcut_is_conv_input:
        # The ADD may not write over the conv's input while later bands still read it,
        # so fusing saves nothing here (b, the band and y against b and c): not used.
        assert fused.offsets[add_out] != fused.offsets[conv_in]
        assert fused.arena_bytes == 384 + 48 + 384 > unfused.arena_bytes == gen.arena_bytes
    else:
        # Three 384-byte activations live at the last conv; fused, its output is a 48-byte band.
        assert unfused.arena_bytes == 3 * 384
        assert gen.arena_bytes == fused.arena_bytes == 2 * 384 + 48
    check_synthetic(raw, tmp_path, name=f"res{int(shortcut_is_conv_input)}")


def test_ic_arena_with_band_fusion_is_within_the_ram_goal(shared_models: Path) -> None:
    """IC (ResNet): 0.8 x TFLM's arena_used_bytes (54,340) leaves 43,472 for arena and stack."""
    from harness.engines.builtin.codegen import generate

    from harness.engines.builtin.codegen import band_fusions
    from harness.engines.builtin.lowering import REGISTRY
    from harness.engines.builtin.scratch import scratch_bytes

    model = load_model(shared_models / "pretrainedResnet_quant.tflite")
    unfused = plan_arena(model, frozenset({"RESHAPE"}), {"ADD": (0, 1)})
    assert unfused.arena_bytes == 3 * 16384
    gen = generate(model)
    # The kernels' th_scratch sits beside the arena; 1 KiB is room for the stack.
    assert gen.arena_bytes + scratch_bytes(model) + 1024 <= 0.8 * 54_340

    # The fused plan is sound: with each (conv, ADD) pair counted as one op and the
    # conv's output a band, no two live buffers overlap, except an ADD's output
    # (or SOFTMAX, ...) written in place over its own input.
    bands = band_fusions(model)
    assert [(b.producer, b.consumer) for b in bands] == [(2, 3), (6, 7), (10, 11)]
    at = {b.consumer: b.producer for b in bands}
    nbytes = {i: t.nbytes for i, t in enumerate(model.tensors)}
    nbytes.update({b.tensor: b.scratch_bytes for b in bands})
    life: dict[int, list[int]] = {i: [0, 0] for i in model.inputs}
    for op in model.operators:
        k = at.get(op.index, op.index)
        for i in op.outputs:
            life.setdefault(i, [k, k])
        for i in op.inputs:
            if i >= 0 and not model.tensors[i].is_const:
                life[i][1] = max(life[i][1], k)
    for i in model.outputs:
        life[i][1] = len(model.operators) - 1
    shared = {frozenset((op.inputs[0], op.outputs[0])) for op in model.operators if op.name == "RESHAPE"}
    inplace = {n for n, spec in REGISTRY.items() if spec.inplace_input}  # ADD, MUL, SOFTMAX, QUANTIZE
    shared |= {frozenset((i, op.outputs[0])) for op in model.operators if op.name in inplace for i in op.inputs}
    items = sorted(gen.plan.offsets.items())
    for n, (a, off_a) in enumerate(items):
        assert off_a + nbytes[a] <= gen.arena_bytes
        for b, off_b in items[n + 1:]:
            if frozenset((a, b)) in shared:
                continue
            if life[a][0] <= life[b][1] and life[b][0] <= life[a][1]:
                assert off_a + nbytes[a] <= off_b or off_b + nbytes[b] <= off_a, (a, b)


@pytest.mark.parametrize("producer,stride", [("DEPTHWISE_CONV_2D", 1), ("CONV_2D", 2)])
def test_band_fusion_with_depthwise_and_strided_producers(tmp_path: Path, producer: str, stride: int) -> None:
    """y = ADD(s, conv(x)) with x dying at the conv: the conv runs in bands (odd band sizes,
    padding at the top and bottom bands), its output never exists whole, outputs equal TFLM."""
    from harness.engines.builtin.codegen import band_fusions, generate
    from tests.conftest import check_synthetic

    rng = np.random.default_rng(7)
    b = ModelBuilder()
    h = 19 * stride
    x0 = b.tensor("x0", [1, h, 5, 1], scale=0.05, zero_point=1)  # one channel: the peak is at the producer
    s = b.tensor("s", [1, 19, 5, 8], scale=0.07, zero_point=-4)
    x = b.tensor("x", [1, h, 5, 8], scale=0.06, zero_point=2)
    c = b.tensor("c", [1, 19, 5, 8], scale=0.08, zero_point=-2)
    y = b.tensor("y", [1, 19, 5, 8], scale=0.1, zero_point=3)
    # s = a strided 1x1 view of x0 (keeps s alive across the conv), x = a 3x3 conv of x0.
    w1 = b.const("w1", rng.integers(-127, 128, (8, 1, 1, 1)), scales=0.01, axis=0)
    b.op("CONV_2D", [x0, w1, -1], [s], padding="SAME", stride_h=stride, stride_w=1,
         dilation_h_factor=1, dilation_w_factor=1, fused_activation_function="NONE")
    w2 = b.const("w2", rng.integers(-127, 128, (8, 3, 3, 1)), scales=0.01, axis=0)
    b.op("CONV_2D", [x0, w2, -1], [x], padding="SAME", stride_h=1, stride_w=1,
         dilation_h_factor=1, dilation_w_factor=1, fused_activation_function="RELU")
    bias = b.const("b", rng.integers(-300, 300, 8), dtype="int32", scales=0.0002)
    if producer == "DEPTHWISE_CONV_2D":
        w = b.const("w", rng.integers(-127, 128, (1, 3, 3, 8)), scales=0.01, axis=3)
        b.op(producer, [x, w, bias], [c], padding="SAME", stride_h=stride, stride_w=1,
             dilation_h_factor=1, dilation_w_factor=1, fused_activation_function="RELU",
             depth_multiplier=1)
    else:
        w = b.const("w", rng.integers(-127, 128, (8, 3, 3, 8)), scales=0.003, axis=0)
        b.op(producer, [x, w, bias], [c], padding="SAME", stride_h=stride, stride_w=1,
             dilation_h_factor=1, dilation_w_factor=1, fused_activation_function="RELU")
    b.op("ADD", [s, c], [y], fused_activation_function="NONE")
    raw = b.build([x0], [y])
    model = parse_model(raw, str(tmp_path / "band.tflite"))
    (band,) = band_fusions(model)
    assert (band.producer, band.rows) == (2, 2)  # 19 rows: bands of 2, the last of 1
    gen = generate(model)
    assert gen.arena_bytes < plan_arena(model, frozenset({"RESHAPE"}), {"ADD": (0, 1)}).arena_bytes
    assert "output rows at a time" in gen.sources["th_model.c"]
    check_synthetic(raw, tmp_path, name=f"band_{producer}_{stride}")
