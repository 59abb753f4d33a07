"""AVERAGE_POOL_2D, MAX_POOL_2D, ADD and MUL edge cases against TFLM, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.engines.builtin.codegen import generate
from harness.engines.builtin.ops.elementwise import loop_nest
from harness.errors import UnsupportedOpError
from harness.model import load_model
from harness.synth import ModelBuilder
from tests.conftest import check_synthetic


# --------------------------------------------------------------------------- pooling

def _pool_model(op: str, in_hw: tuple[int, int], filt: tuple[int, int], stride: tuple[int, int],
                padding: str, act: str = "NONE", zp: int = 3, scale: float = 0.05,
                channels: int = 5, batches: int = 1) -> bytes:
    ih, iw = in_hw
    fh, fw = filt
    sh, sw = stride
    if padding == "SAME":
        oh, ow = -(-ih // sh), -(-iw // sw)
    else:
        oh, ow = (ih - fh) // sh + 1, (iw - fw) // sw + 1
    b = ModelBuilder()
    x = b.tensor("x", [batches, ih, iw, channels], scale=scale, zero_point=zp)
    y = b.tensor("y", [batches, oh, ow, channels], scale=scale, zero_point=zp)
    b.op(op, [x], [y], padding=padding, stride_w=sw, stride_h=sh, filter_width=fw,
         filter_height=fh, fused_activation_function=act)
    return b.build([x], [y])


POOL_CASES = {
    # name: (in_hw, filter, stride, padding)
    "same_s2_odd": ((9, 7), (3, 3), (2, 2), "SAME"),        # clipped windows on both sides
    "same_s2_even_filter": ((7, 9), (2, 2), (2, 2), "SAME"),
    "same_s2_big_filter": ((11, 10), (5, 4), (2, 3), "SAME"),  # filter larger than stride
    "same_3x3_s1": ((6, 5), (3, 3), (1, 1), "SAME"),
    "valid_s2": ((9, 8), (3, 2), (2, 2), "VALID"),
    "valid_3x3_s1": ((6, 7), (3, 3), (1, 1), "VALID"),
    "valid_non_square_stride": ((10, 9), (3, 3), (3, 1), "VALID"),
    "global": ((5, 7), (5, 7), (1, 1), "VALID"),
    "global_same": ((4, 6), (4, 6), (4, 6), "SAME"),
}


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pool_matches_tflm(tmp_path: Path, op: str, case: str) -> None:
    in_hw, filt, stride, padding = POOL_CASES[case]
    check_synthetic(_pool_model(op, in_hw, filt, stride, padding, batches=2), tmp_path, name=case)


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("act", ["RELU", "RELU6", "RELU_N1_TO_1"])
@pytest.mark.parametrize("zp", [-128, 127, 4])
def test_pool_activation_and_zero_points(tmp_path: Path, op: str, act: str, zp: int) -> None:
    # scale 0.05: RELU6 clamps at zp + 120, inside the int8 range only for low zero points.
    check_synthetic(_pool_model(op, (7, 7), (3, 3), (2, 2), "SAME", act=act, zp=zp), tmp_path)


@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_avg_pool_four_channels_a_word(tmp_path: Path, case: str) -> None:
    """depth % 4 == 0 sums four channels per word in 16-bit lanes (SXTAB16)."""
    in_hw, filt, stride, padding = POOL_CASES[case]
    check_synthetic(_pool_model("AVERAGE_POOL_2D", in_hw, filt, stride, padding, channels=8, batches=2),
                    tmp_path, name=case)


@pytest.mark.parametrize("window", [(15, 17), (16, 16)])
@pytest.mark.parametrize("zp", [-128, 127])
def test_avg_pool_lane_sums_at_their_limit(tmp_path: Path, window: tuple[int, int], zp: int) -> None:
    """255 inputs of -128 (or 127) sum to -32,640 (32,385): the most a 16-bit lane holds;
    a 256-input window takes the 32-bit path. Inputs pinned to one extreme by a
    zero point at the other end and random samples around it."""
    check_synthetic(_pool_model("AVERAGE_POOL_2D", window, window, (1, 1), "VALID", zp=zp, channels=12),
                    tmp_path, count=8)


def test_avg_pool_large_window_rounding(tmp_path: Path) -> None:
    """Big windows: sums far from zero, both signs, many distinct counts at the borders."""
    check_synthetic(_pool_model("AVERAGE_POOL_2D", (13, 11), (6, 5), (1, 1), "SAME", zp=-128,
                                channels=3), tmp_path, count=16)


def test_pool_rejects_requantization(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 4, 4, 2], scale=0.05, zero_point=0)
    y = b.tensor("y", [1, 2, 2, 2], scale=0.1, zero_point=0)
    b.op("AVERAGE_POOL_2D", [x], [y], padding="VALID", stride_w=2, stride_h=2,
         filter_width=2, filter_height=2)
    path = tmp_path / "bad_pool.tflite"
    path.write_bytes(b.build([x], [y]))
    with pytest.raises(UnsupportedOpError, match="quantization must match"):
        generate(load_model(path))


# --------------------------------------------------------------------------- ADD / MUL

def _binary_model(op: str, shape1: list[int], shape2: list[int], *, act: str = "NONE",
                  s1: float = 0.05, z1: int = -3, s2: float = 0.02, z2: int = 7,
                  so: float = 0.08, zo: int = 2, const2: bool = False, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    out_shape = list(np.broadcast_shapes(tuple(shape1), tuple(shape2)))
    b = ModelBuilder()
    x = b.tensor("x", shape1, scale=s1, zero_point=z1)
    if const2:
        y = b.const("c", rng.integers(-128, 128, shape2), scales=s2, zero_point=z2)
    else:
        y = b.tensor("y", shape2, scale=s2, zero_point=z2)
    z = b.tensor("z", out_shape, scale=so, zero_point=zo)
    b.op(op, [x, y], [z], fused_activation_function=act)
    return b.build([x] if const2 else [x, y], [z])


BROADCASTS = {
    # name: (shape1, shape2, second input constant)
    "same": ([1, 6, 5, 7], [1, 6, 5, 7], False),
    "channel": ([1, 6, 5, 7], [1, 1, 1, 7], False),
    "channel_const": ([1, 6, 5, 7], [1, 1, 1, 7], True),
    "channel_first": ([1, 1, 1, 7], [1, 6, 5, 7], False),
    "row": ([1, 6, 5, 7], [1, 6, 1, 1], False),
    "scalar_const": ([1, 6, 5, 7], [1], True),
    "scalar_first": ([1], [2, 3, 4], False),
    "rank_mismatch": ([2, 4, 3, 5], [3, 5], False),
    "both_broadcast": ([1, 4, 1, 3], [2, 1, 5, 1], False),
    "five_d": ([2, 1, 3, 1, 4], [1, 3, 1, 2, 4], False),
    "flat": ([37], [37], False),
}


@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("case", sorted(BROADCASTS))
def test_binary_broadcast_matches_tflm(tmp_path: Path, op: str, case: str) -> None:
    shape1, shape2, const2 = BROADCASTS[case]
    check_synthetic(_binary_model(op, shape1, shape2, const2=const2), tmp_path, name=case)


@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("act", ["RELU", "RELU6", "RELU_N1_TO_1"])
def test_binary_activations(tmp_path: Path, op: str, act: str) -> None:
    check_synthetic(_binary_model(op, [1, 4, 4, 6], [1, 1, 1, 6], act=act, so=0.03, zo=-20), tmp_path)


SCALES = {
    # name: (s1, z1, s2, z2, so, zo)
    "equal_scales": (0.04, 0, 0.04, 0, 0.04, 0),
    "first_larger": (0.3, -128, 0.001, 127, 0.05, -128),
    "second_larger": (0.0007, 127, 0.9, -128, 0.6, 127),
    "tiny_output": (0.02, 5, 0.03, -5, 0.0004, 0),
    "huge_output": (0.02, 5, 0.03, -5, 40.0, 0),
}


@pytest.mark.parametrize("op", ["ADD", "MUL"])
@pytest.mark.parametrize("case", sorted(SCALES))
def test_binary_scales_and_zero_points(tmp_path: Path, op: str, case: str) -> None:
    s1, z1, s2, z2, so, zo = SCALES[case]
    check_synthetic(_binary_model(op, [1, 5, 3, 8], [1, 5, 3, 8], s1=s1, z1=z1, s2=s2, z2=z2,
                                  so=so, zo=zo), tmp_path, name=case)
    check_synthetic(_binary_model(op, [1, 5, 3, 8], [1, 1, 1, 8], s1=s1, z1=z1, s2=s2, z2=z2,
                                  so=so, zo=zo), tmp_path, name=case + "_bc")


def test_binary_chain_in_place(tmp_path: Path) -> None:
    """ADD then MUL on arena tensors that die there: outputs overwrite their inputs."""
    b = ModelBuilder()
    x = b.tensor("x", [1, 8, 8, 4], scale=0.05, zero_point=-3)
    y = b.tensor("y", [1, 8, 8, 4], scale=0.03, zero_point=10)
    s = b.tensor("s", [1, 8, 8, 4], scale=0.06, zero_point=1)
    c = b.const("c", np.array([[[[-50, -20, 10, 40]]]]), scales=0.01, zero_point=0)
    m = b.tensor("m", [1, 8, 8, 4], scale=0.02, zero_point=-1)
    o = b.tensor("o", [1, 8, 8, 4], scale=0.05, zero_point=0)
    b.op("ADD", [x, y], [s])
    b.op("MUL", [s, c], [m], fused_activation_function="RELU")
    b.op("ADD", [m, m], [o])
    check_synthetic(b.build([x, y], [o]), tmp_path)


def test_loop_nest_fuses_and_broadcasts() -> None:
    assert loop_nest([1, 6, 5, 7], [1, 6, 5, 7], [1, 6, 5, 7]) == ([210], [1], [1])
    assert loop_nest([1, 6, 5, 7], [1, 1, 1, 7], [1, 6, 5, 7]) == ([30, 7], [7, 1], [0, 1])
    assert loop_nest([1, 6, 5, 7], [1, 6, 1, 1], [1, 6, 5, 7]) == ([6, 35], [35, 1], [1, 0])
    assert loop_nest([1, 6, 5, 7], [1], [1, 6, 5, 7]) == ([210], [1], [0])


def test_binary_unsupported_activation(tmp_path: Path) -> None:
    path = tmp_path / "tanh_add.tflite"
    path.write_bytes(_binary_model("ADD", [1, 4], [1, 4], act="TANH"))
    with pytest.raises(UnsupportedOpError, match="TANH"):
        generate(load_model(path))


# Scales whose ADD output multiplier is in [0.5, 1): shift 0, which the fast
# requantization cannot take (th_requant_out's exact form runs).
ADD_EXACT_SCALES = {"unit_output_shift": (0.3, 3, 0.2, -7, 7e-7, 0)}
ADD_TABLE_CASES = {**SCALES, **ADD_EXACT_SCALES}


@pytest.mark.parametrize("case", sorted(ADD_TABLE_CASES))
def test_same_shape_add_tables_every_byte_pair(tmp_path: Path, case: str) -> None:
    """The same-shape ADD reads each input's rescaling from a 256-entry table built at
    generation time (th_add_s8.c th_add_lut): all 65,536 pairs of input bytes, with
    each scale case's requantization (the fast form for SCALES, the exact one for
    ADD_EXACT_SCALES), equal TFLM's."""
    import re

    from harness.datasets import Sample
    from harness.engines.builtin.check import check_model

    s1, z1, s2, z2, so, zo = ADD_TABLE_CASES[case]
    path = tmp_path / f"{case}.tflite"
    path.write_bytes(_binary_model("ADD", [1, 256, 256, 1], [1, 256, 256, 1], s1=s1, z1=z1, s2=s2, z2=z2,
                                   so=so, zo=zo))
    model = load_model(path)
    src = generate(model).sources["th_model.c"]
    assert "th_w_op0_add_lut1" in src
    mode = re.search(r"\.requant_mode = (\d+)", src)
    assert mode is not None and (mode.group(1) == "0") == (case in ADD_EXACT_SCALES)
    a, b = np.meshgrid(np.arange(-128, 128, dtype=np.int8), np.arange(-128, 128, dtype=np.int8))
    sample = Sample("pairs", (a.reshape(1, 256, 256, 1), b.reshape(1, 256, 256, 1)), None)
    result = check_model(model, [sample])
    assert result.ok, result
