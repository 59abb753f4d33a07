"""CONV_2D and DEPTHWISE_CONV_2D edge cases against TFLM, byte for byte."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import random_samples
from harness.engines.builtin.codegen import generate
from harness.errors import UnsupportedOpError
from harness.model import parse_model
from harness.reference import Reference
from harness.synth import ModelBuilder
from tests.conftest import check_synthetic


def _out_size(padding: str, size: int, k: int, stride: int, dil: int) -> int:
    """TensorFlow's windowed output size, written independently of the lowering."""
    eff = (k - 1) * dil + 1
    return math.ceil(size / stride) if padding == "SAME" else math.ceil((size - eff + 1) / stride)


def _model(
    op: str,
    in_shape: tuple[int, int, int, int] = (1, 9, 8, 3),
    kernel: tuple[int, int] = (3, 3),
    out_c: int = 5,
    depth_multiplier: int = 1,
    padding: str = "SAME",
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    per_channel: bool = True,
    act: str = "NONE",
    in_zp: int = 3,
    out_zp: int = -5,
    bias: bool | str = True,
    filter_in_c: int | None = None,
    seed: int = 11,
    gain0: float = 1.0,
) -> bytes:
    """One conv op; scales are chosen so the outputs spread over the int8 range.

    ``bias``: True for an int32 bias, "absent" to pass tensor -1 as input 2,
    "omitted" for a two-input op. TFLM's DEPTHWISE_CONV_2D Prepare crashes on
    an absent (-1) bias, so depthwise models leave it out instead.
    """
    rng = np.random.default_rng(seed)
    n, h, w, c = in_shape
    kh, kw = kernel
    if op == "DEPTHWISE_CONV_2D":
        out_c = c * depth_multiplier
        w_shape = (1, kh, kw, out_c)
        axis, fan_in = 3, kh * kw
    else:
        w_shape = (out_c, kh, kw, filter_in_c or c)
        axis, fan_in = 0, kh * kw * (filter_in_c or c)
    oh = _out_size(padding, h, kh, stride[0], dilation[0])
    ow = _out_size(padding, w, kw, stride[1], dilation[1])

    out_scale = 0.05
    w_base = 0.004
    # accumulator std ~ 73 (weights) * 74 (inputs) * sqrt(fan_in); aim at ~40 output steps.
    in_scale = out_scale * 40 / (w_base * 73 * 74 * math.sqrt(fan_in))
    w_scales = list(rng.uniform(0.5, 1.5, out_c) * w_base) if per_channel else w_base
    if per_channel and gain0 != 1.0:  # channel 0's scale (a multiplier above 1: a left shift)
        w_scales[0] *= gain0

    b = ModelBuilder()
    x = b.tensor("x", in_shape, scale=in_scale, zero_point=in_zp)
    wt = b.const("w", rng.integers(-127, 128, w_shape), scales=w_scales, axis=axis)
    inputs = [x, wt]
    if bias is True:
        b_scales = [in_scale * s for s in w_scales] if per_channel else in_scale * w_base
        bound = int(73 * 74 * math.sqrt(fan_in))
        inputs.append(b.const("b", rng.integers(-bound, bound, out_c), dtype="int32", scales=b_scales))
    elif bias == "absent" and op != "DEPTHWISE_CONV_2D":
        inputs.append(-1)
    y = b.tensor("y", (n, oh, ow, out_c), scale=out_scale, zero_point=out_zp)
    opts: dict[str, object] = dict(
        padding=padding, stride_h=stride[0], stride_w=stride[1],
        dilation_h_factor=dilation[0], dilation_w_factor=dilation[1],
        fused_activation_function=act,
    )
    if op == "DEPTHWISE_CONV_2D":
        opts["depth_multiplier"] = depth_multiplier
    b.op(op, inputs, [y], **opts)
    return b.build([x], [y])


NO_BIAS = {"CONV_2D": "absent", "DEPTHWISE_CONV_2D": "omitted"}


def _check(raw: bytes, tmp_path: Path, min_distinct: int = 12) -> None:
    """Bit-exact against TFLM, and TFLM's output is varied enough to catch a broken kernel."""
    check_synthetic(raw, tmp_path)
    model = parse_model(raw, str(tmp_path / "synth.tflite"))
    want = Reference(model, raw).run(random_samples(model, 1, seed=99)[0].inputs)[0]
    distinct = len(np.unique(want))
    assert distinct >= min(min_distinct, want.size // 2), f"degenerate test: {distinct} output values"


OPS = ["CONV_2D", "DEPTHWISE_CONV_2D"]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (1, 2), (2, 1)])
def test_padding_and_stride(tmp_path: Path, op: str, padding: str, stride: tuple[int, int]) -> None:
    _check(_model(op, in_shape=(1, 10, 9, 3), padding=padding, stride=stride), tmp_path)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("dilation", [(2, 2), (1, 2), (3, 1)])
def test_dilation(tmp_path: Path, op: str, padding: str, dilation: tuple[int, int]) -> None:
    _check(_model(op, in_shape=(1, 11, 12, 5), dilation=dilation, padding=padding), tmp_path)


@pytest.mark.parametrize("op", OPS)
def test_dilation_with_stride(tmp_path: Path, op: str) -> None:
    _check(_model(op, in_shape=(1, 13, 12, 3), kernel=(3, 2), dilation=(2, 3), stride=(2, 3)), tmp_path)


@pytest.mark.parametrize("dm", [1, 2, 3])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_depth_multiplier(tmp_path: Path, dm: int, padding: str) -> None:
    _check(_model("DEPTHWISE_CONV_2D", in_shape=(1, 7, 6, 5), depth_multiplier=dm, padding=padding,
                  stride=(2, 1)), tmp_path)


@pytest.mark.parametrize("in_c,dm", [(35, 1), (13, 3), (7, 5), (33, 2)])
def test_depthwise_many_channels(tmp_path: Path, in_c: int, dm: int) -> None:
    """Channel counts beyond one accumulator block, depth multipliers straddling it."""
    _check(_model("DEPTHWISE_CONV_2D", in_shape=(1, 5, 6, in_c), depth_multiplier=dm), tmp_path)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
def test_scales_and_activation(tmp_path: Path, op: str, per_channel: bool, act: str) -> None:
    raw = _model(op, in_shape=(1, 6, 7, 7), out_c=3, per_channel=per_channel, act=act, out_zp=-20)
    _check(raw, tmp_path, min_distinct=3 if act == "RELU_N1_TO_1" else 12)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("in_zp,out_zp", [(-128, 127), (127, -128), (-128, -128), (127, 127)])
def test_zero_point_extremes_without_bias(tmp_path: Path, op: str, in_zp: int, out_zp: int) -> None:
    # A real-valued output near zero would saturate at out_zp = +-127; a bias-free
    # layer on shifted inputs still spreads, and clamping at the rail is part of the check.
    _check(_model(op, in_shape=(1, 6, 5, 3), in_zp=in_zp, out_zp=out_zp, bias=NO_BIAS[op]), tmp_path,
           min_distinct=6)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("stride", [(1, 1), (2, 2)])
def test_1x1_kernel(tmp_path: Path, op: str, stride: tuple[int, int]) -> None:
    _check(_model(op, in_shape=(1, 5, 7, 7), kernel=(1, 1), out_c=5, stride=stride, padding="VALID"), tmp_path)
    _check(_model(op, in_shape=(1, 5, 7, 7), kernel=(1, 1), out_c=5, stride=stride, padding="SAME"), tmp_path)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (3, 1)])
def test_kernel_larger_than_input(tmp_path: Path, op: str, stride: tuple[int, int]) -> None:
    _check(_model(op, in_shape=(1, 4, 3, 3), kernel=(7, 6), stride=stride, padding="SAME"), tmp_path,
           min_distinct=6)


@pytest.mark.parametrize("op", OPS)
def test_dilated_kernel_larger_than_input(tmp_path: Path, op: str) -> None:
    _check(_model(op, in_shape=(1, 5, 4, 3), kernel=(3, 3), dilation=(3, 3), padding="SAME"), tmp_path,
           min_distinct=6)


@pytest.mark.parametrize("op", OPS)
def test_batch_two(tmp_path: Path, op: str) -> None:
    _check(_model(op, in_shape=(2, 7, 6, 3), depth_multiplier=2, stride=(2, 2)), tmp_path)


@pytest.mark.parametrize("op,bias", [("CONV_2D", "absent"), ("CONV_2D", "omitted"),
                                     ("DEPTHWISE_CONV_2D", "omitted")])
def test_no_bias(tmp_path: Path, op: str, bias: str) -> None:
    _check(_model(op, in_shape=(1, 8, 8, 5), bias=bias, per_channel=False), tmp_path)


def test_conv_many_channels(tmp_path: Path) -> None:
    _check(_model("CONV_2D", in_shape=(1, 6, 6, 19), out_c=37, stride=(2, 2)), tmp_path)


def test_grouped_conv_is_rejected(tmp_path: Path) -> None:
    raw = _model("CONV_2D", in_shape=(1, 6, 6, 4), out_c=4, filter_in_c=2)
    model = parse_model(raw, str(tmp_path / "grouped.tflite"))
    with pytest.raises(UnsupportedOpError, match="CONV_2D.*grouped") as e:
        generate(model)
    assert e.value.op_name == "CONV_2D"


def test_depth_multiplier_mismatch_is_rejected(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 4, 4, 3), scale=0.05)
    wt = b.const("w", np.ones((1, 3, 3, 6)), scales=0.01, axis=3)
    y = b.tensor("y", (1, 4, 4, 6), scale=0.1)
    b.op("DEPTHWISE_CONV_2D", [x, wt, -1], [y], padding="SAME", stride_h=1, stride_w=1, depth_multiplier=1)
    model = parse_model(b.build([x], [y]), str(tmp_path / "dm.tflite"))
    with pytest.raises(UnsupportedOpError, match="DEPTHWISE_CONV_2D.*depth_multiplier"):
        generate(model)


def test_non_constant_filter_is_rejected(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", (1, 4, 4, 3), scale=0.05)
    wt = b.tensor("w", (2, 3, 3, 3), scale=0.01)
    y = b.tensor("y", (1, 4, 4, 2), scale=0.1)
    b.op("CONV_2D", [x, wt, -1], [y], padding="SAME", stride_h=1, stride_w=1)
    model = parse_model(b.build([x, wt], [y]), str(tmp_path / "dyn.tflite"))
    with pytest.raises(UnsupportedOpError, match="CONV_2D.*constant"):
        generate(model)
