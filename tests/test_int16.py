"""int16x8 (16-bit activations, 8-bit weights) against TFLM, byte for byte: each op's
edge cases on the host, refusals that name the op, a small model as firmware under
QEMU, and every path of the SIMD CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED
kernels (requantizations, tails, gathered and in-place patches) on the host (their
portable C) and under QEMU on cortex-m4 (the DSP instructions)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest

from harness.datasets import Sample, random_samples
from harness.engines.builtin.check import check_model
from harness.engines.builtin.codegen import generate
from harness.engines.builtin.int16x8 import (MAX_PATCH, RQ16_ACC32, RQ16_EXACT64, RQ16_FAST, dw_s16_weights,
                                             fast_multipliers, s16_weights, softmax_luts)
from harness.errors import UnsupportedOpError
from harness.model import Model, load_model, parse_model
from harness.reference import Reference
from harness.synth import ModelBuilder
from tests.conftest import check_synthetic

W_STD = 73.0  # std of uniform int8 weights in [-127, 127]
X_STD = 18918.0  # std of uniform int16 inputs
SCHEMA_INT32 = 2  # TensorType.INT32, for quantized_bias_type


def _check(raw: bytes, tmp_path: Path, min_distinct: int = 50, count: int = 8) -> None:
    """Bit-exact on random inputs, and the outputs spread (a saturated test proves little)."""
    check_synthetic(raw, tmp_path, count=count)
    model = parse_model(raw, str(tmp_path / "synth.tflite"))
    want = Reference(model, raw).run(random_samples(model, 1, seed=99)[0].inputs)[0]
    distinct = len(np.unique(want))
    assert distinct >= min(min_distinct, want.size // 2), f"degenerate test: {distinct} output values"


def _out_size(padding: str, size: int, k: int, stride: int, dil: int) -> int:
    eff = (k - 1) * dil + 1
    return math.ceil(size / stride) if padding == "SAME" else math.ceil((size - eff + 1) / stride)


def _conv_model(
    op: str,
    in_shape: tuple[int, int, int, int] = (1, 9, 8, 3),
    kernel: tuple[int, int] = (3, 3),
    out_c: int = 5,
    dm: int = 1,
    padding: str = "SAME",
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    per_channel: bool = True,
    act: str = "NONE",
    bias: str = "int64",
    bias_type_option: int | None = None,
    seed: int = 3,
) -> bytes:
    """One int16x8 conv; scales put the outputs' spread at ~8000 quanta.

    ``bias``: "int64", "int32", or "none" (a two-input op).
    """
    rng = np.random.default_rng(seed)
    n, h, w, c = in_shape
    kh, kw = kernel
    if op == "DEPTHWISE_CONV_2D":
        out_c = c * dm
        w_shape, axis, fan_in = (1, kh, kw, out_c), 3, kh * kw
    else:
        w_shape, axis, fan_in = (out_c, kh, kw, c), 0, kh * kw * c
    oh = _out_size(padding, h, kh, stride[0], dilation[0])
    ow = _out_size(padding, w, kw, stride[1], dilation[1])
    in_scale, w_base = 1.0 / 32768, 0.01
    out_scale = in_scale * w_base * W_STD * X_STD * math.sqrt(fan_in) / 8000
    w_scales = list(rng.uniform(0.5, 1.5, out_c) * w_base) if per_channel else w_base

    b = ModelBuilder()
    x = b.tensor("x", in_shape, dtype="int16", scale=in_scale)
    wt = b.const("w", rng.integers(-127, 128, w_shape), scales=w_scales, axis=axis)
    inputs = [x, wt]
    if bias != "none":
        b_scales = [in_scale * s for s in w_scales] if per_channel else in_scale * w_base
        bound = int(W_STD * X_STD * math.sqrt(fan_in))
        inputs.append(b.const("b", rng.integers(-bound, bound, out_c), dtype=bias, scales=b_scales))
    y = b.tensor("y", (n, oh, ow, out_c), dtype="int16", scale=out_scale)
    opts: dict[str, object] = dict(padding=padding, stride_h=stride[0], stride_w=stride[1],
                                   dilation_h_factor=dilation[0], dilation_w_factor=dilation[1],
                                   fused_activation_function=act)
    if op == "DEPTHWISE_CONV_2D":
        opts["depth_multiplier"] = dm
    if bias_type_option is not None:
        opts["quantized_bias_type"] = bias_type_option
    b.op(op, inputs, [y], **opts)
    return b.build([x], [y])


CONV_OPS = ["CONV_2D", "DEPTHWISE_CONV_2D"]


# ----------------------------------------------------------------- CONV_2D / DEPTHWISE_CONV_2D

@pytest.mark.parametrize("op", CONV_OPS)
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (2, 1)])
def test_conv_padding_and_stride(tmp_path: Path, op: str, padding: str, stride: tuple[int, int]) -> None:
    _check(_conv_model(op, in_shape=(1, 10, 9, 3), padding=padding, stride=stride), tmp_path)


@pytest.mark.parametrize("op", CONV_OPS)
@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
def test_conv_scales_and_activation(tmp_path: Path, op: str, per_channel: bool, act: str) -> None:
    _check(_conv_model(op, in_shape=(1, 6, 7, 7), out_c=3, per_channel=per_channel, act=act), tmp_path,
           min_distinct=20)


@pytest.mark.parametrize("op", CONV_OPS)
def test_conv_dilation_odd_channels_batch_two(tmp_path: Path, op: str) -> None:
    _check(_conv_model(op, in_shape=(2, 11, 12, 5), out_c=7, dilation=(2, 3), stride=(1, 2)), tmp_path)


@pytest.mark.parametrize("in_c,dm", [(3, 1), (5, 2), (7, 3), (17, 2)])
def test_depthwise_depth_multiplier(tmp_path: Path, in_c: int, dm: int) -> None:
    """Odd channel counts, multipliers that straddle the kernel's 16-channel blocks."""
    _check(_conv_model("DEPTHWISE_CONV_2D", in_shape=(1, 7, 6, in_c), dm=dm, stride=(2, 1)), tmp_path)


@pytest.mark.parametrize("op", CONV_OPS)
def test_conv_without_bias(tmp_path: Path, op: str) -> None:
    _check(_conv_model(op, bias="none"), tmp_path)


def test_conv_int32_bias_accumulates_in_int32(tmp_path: Path) -> None:
    _check(_conv_model("CONV_2D", bias="int32"), tmp_path)
    # Without a bias, quantized_bias_type INT32 selects TFLM's int32 path too.
    _check(_conv_model("CONV_2D", bias="none", bias_type_option=SCHEMA_INT32), tmp_path)


@pytest.mark.parametrize("bias", ["int32", "int64"])
def test_conv_large_accumulators(tmp_path: Path, bias: str) -> None:
    """All-maximum inputs and weights over 1,152 taps: 4.8e9 overflows an int32
    accumulator, which wraps in TFLM's int32 path; the int64 path holds it."""
    b = ModelBuilder()
    x = b.tensor("x", [1, 4, 4, 128], dtype="int16", scale=1.0 / 32768)
    w = b.const("w", np.full((2, 3, 3, 128), 127), scales=[0.01, 0.02], axis=0)
    bias_t = b.const("b", [1000, -1000], dtype=bias, scales=[0.01 / 32768, 0.02 / 32768])
    y = b.tensor("y", [1, 4, 4, 2], dtype="int16", scale=0.02)
    b.op("CONV_2D", [x, w, bias_t], [y], padding="SAME", stride_h=1, stride_w=1)
    path = tmp_path / "big.tflite"
    path.write_bytes(b.build([x], [y]))
    model = load_model(path)
    high = Sample("max", (np.full((1, 4, 4, 128), 32767, dtype=np.int16),))
    low = Sample("min", (np.full((1, 4, 4, 128), -32768, dtype=np.int16),))
    result = check_model(model, [high, low, *random_samples(model, 2)])
    assert result.ok, result


# ----------------------------------------------------------------- FULLY_CONNECTED

def _fc_model(batches: int = 3, depth: int = 40, units: int = 9, per_channel: bool = True,
              bias: str = "int64", act: str = "NONE", in_zp: int = 0, out_zp: int = 0,
              bias_type_option: int | None = None, seed: int = 5) -> bytes:
    rng = np.random.default_rng(seed)
    in_scale, w_base = 1.0 / 32768, 0.01
    out_scale = in_scale * w_base * W_STD * X_STD * math.sqrt(depth) / 8000
    w_scales = list(rng.uniform(0.5, 1.5, units) * w_base) if per_channel else w_base
    b = ModelBuilder()
    x = b.tensor("x", [batches, depth], dtype="int16", scale=in_scale, zero_point=in_zp)
    w = b.const("w", rng.integers(-127, 128, (units, depth)), scales=w_scales, axis=0)
    inputs = [x, w]
    if bias != "none":
        b_scales = [in_scale * s for s in w_scales] if per_channel else in_scale * w_base
        bound = int(W_STD * X_STD * math.sqrt(depth))
        inputs.append(b.const("b", rng.integers(-bound, bound, units), dtype=bias, scales=b_scales))
    y = b.tensor("y", [batches, units], dtype="int16", scale=out_scale, zero_point=out_zp)
    opts: dict[str, object] = {"fused_activation_function": act}
    if bias_type_option is not None:
        opts["quantized_bias_type"] = bias_type_option
    b.op("FULLY_CONNECTED", inputs, [y], **opts)
    return b.build([x], [y])


@pytest.mark.parametrize("per_channel", [True, False])
@pytest.mark.parametrize("bias", ["int64", "int32", "none"])
def test_fully_connected(tmp_path: Path, per_channel: bool, bias: str) -> None:
    _check(_fc_model(per_channel=per_channel, bias=bias), tmp_path)


def test_fully_connected_without_bias_int32_accumulator(tmp_path: Path) -> None:
    _check(_fc_model(bias="none", bias_type_option=SCHEMA_INT32), tmp_path)


@pytest.mark.parametrize("act", ["RELU", "RELU6"])
def test_fully_connected_activation(tmp_path: Path, act: str) -> None:
    _check(_fc_model(act=act, units=11, depth=33), tmp_path, min_distinct=15)


def test_fully_connected_applies_zero_points(tmp_path: Path) -> None:
    """TFLM's int16 fully connected kernel, unlike its conv, honours zero points."""
    _check(_fc_model(in_zp=7, out_zp=-300), tmp_path)


# ----------------------------------------------------------------- ADD

def _add_model(shape1: Sequence[int], shape2: Sequence[int], s1: float = 1.0 / 32768, s2: float = 0.5 / 32768,
               so: float = 1.5 / 32768, act: str = "NONE", const2: bool = False) -> bytes:
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    x1 = b.tensor("x1", shape1, dtype="int16", scale=s1)
    if const2:
        x2 = b.const("x2", rng.integers(-32768, 32768, shape2), dtype="int16", scales=s2)
    else:
        x2 = b.tensor("x2", shape2, dtype="int16", scale=s2)
    out_shape = np.broadcast_shapes(tuple(shape1), tuple(shape2))
    y = b.tensor("y", out_shape, dtype="int16", scale=so)
    b.op("ADD", [x1, x2], [y], fused_activation_function=act)
    return b.build([x1] if const2 else [x1, x2], [y])


ADD_CASES = {
    "same_shape": ([1, 5, 3, 8], [1, 5, 3, 8], False),
    "channel_bcast": ([1, 4, 4, 3], [1, 1, 1, 3], False),
    "both_bcast": ([2, 1, 3], [1, 4, 1], False),
    "scalar_const": ([1, 6, 5], [1], True),
    "lower_rank_const": ([2, 3, 4, 5], [4, 5], True),
}


@pytest.mark.parametrize("case", sorted(ADD_CASES))
def test_add_broadcast(tmp_path: Path, case: str) -> None:
    shape1, shape2, const2 = ADD_CASES[case]
    _check(_add_model(shape1, shape2, const2=const2), tmp_path, min_distinct=20)


@pytest.mark.parametrize("scales", [(1.0, 1.0, 1.5), (3.0, 0.1, 2.5), (0.25, 4.0, 3.0)])
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6"])
def test_add_scales_and_activation(tmp_path: Path, scales: tuple[float, float, float], act: str) -> None:
    s1, s2, so = (s / 32768 for s in scales)
    _check(_add_model([1, 5, 3, 8], [1, 5, 3, 8], s1, s2, so, act=act), tmp_path, min_distinct=20)


# ----------------------------------------------------------------- pooling

def _pool_model(op: str, in_hw: tuple[int, int], filt: tuple[int, int], stride: tuple[int, int],
                padding: str, channels: int = 3, act: str = "NONE", scale: float = 1.0 / 32768) -> bytes:
    h, w = in_hw
    oh = _out_size(padding, h, filt[0], stride[0], 1)
    ow = _out_size(padding, w, filt[1], stride[1], 1)
    b = ModelBuilder()
    x = b.tensor("x", [2, h, w, channels], dtype="int16", scale=scale)
    y = b.tensor("y", [2, oh, ow, channels], dtype="int16", scale=scale)
    b.op(op, [x], [y], padding=padding, stride_h=stride[0], stride_w=stride[1],
         filter_height=filt[0], filter_width=filt[1], fused_activation_function=act)
    return b.build([x], [y])


POOL_CASES = {
    "same_s2_k3": ((7, 7), (3, 3), (2, 2), "SAME"),
    "valid_s2_k2": ((8, 6), (2, 2), (2, 2), "VALID"),
    "same_s1_k5x4": ((5, 6), (5, 4), (1, 1), "SAME"),
    "global": ((6, 5), (6, 5), (1, 1), "VALID"),
}


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("case", sorted(POOL_CASES))
def test_pool(tmp_path: Path, op: str, case: str) -> None:
    in_hw, filt, stride, padding = POOL_CASES[case]
    _check(_pool_model(op, in_hw, filt, stride, padding, channels=5), tmp_path, min_distinct=10)


@pytest.mark.parametrize("act", ["RELU", "RELU6"])
def test_avg_pool_activation(tmp_path: Path, act: str) -> None:
    # Scale 1/4096: 6.0 is 24576, inside the int16 range, so RELU6 clamps.
    _check(_pool_model("AVERAGE_POOL_2D", (7, 7), (2, 2), (1, 1), "SAME", act=act, scale=1.0 / 4096),
           tmp_path, min_distinct=10)


# ----------------------------------------------------------------- SOFTMAX

def _softmax_model(shape: Sequence[int], scale: float, beta: float = 1.0,
                   out_scale: float = 1.0 / 32768, out_zp: int = 0) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", shape, dtype="int16", scale=scale)
    y = b.tensor("y", shape, dtype="int16", scale=out_scale, zero_point=out_zp)
    b.op("SOFTMAX", [x], [y], beta=beta)
    return b.build([x], [y])


SOFTMAX_CASES = {
    # name: (shape, input scale); random inputs span the whole int16 range.
    "w10_narrow": ([6, 10], 1.0 / 32768),
    "w10": ([6, 10], 10.0 / 32768),
    "w10_wide": ([6, 10], 0.01),
    "w12_3d": ([2, 4, 12], 4.0 / 32768),
    "w1001": ([2, 1001], 8.0 / 32768),
    "w1": ([7, 1], 0.01),
    "w2_huge_scale": ([16, 2], 1.0),
}


@pytest.mark.parametrize("beta", [1.0, 0.5])
@pytest.mark.parametrize("case", sorted(SOFTMAX_CASES))
def test_softmax(tmp_path: Path, case: str, beta: float) -> None:
    shape, scale = SOFTMAX_CASES[case]
    check_synthetic(_softmax_model(shape, scale, beta), tmp_path, name=case, count=12)


def test_softmax_rows_are_distributions(tmp_path: Path) -> None:
    """Sanity of the tables, apart from TFLM: each row sums to ~1 (32768)."""
    raw = _softmax_model([16, 10], 4.0 / 32768)
    check_synthetic(raw, tmp_path)
    model = parse_model(raw, "sm.tflite")
    out = Reference(model, raw).run(random_samples(model, 1)[0].inputs)[0].astype(np.int64)
    assert np.all(np.abs(out.sum(axis=1) - 32768) < 32768 * 0.01), out.sum(axis=1)
    exp_lut, recip_lut = softmax_luts()
    assert len(exp_lut) == len(recip_lut) == 513
    assert exp_lut[-1] == 32767 and recip_lut[0] == 32767 and recip_lut[-1] == 16384


def test_softmax_after_add_in_place(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [4, 12], dtype="int16", scale=1.0 / 32768)
    c = b.const("c", np.arange(12).reshape(1, 12) * 4000 - 24000, dtype="int16", scales=1.0 / 32768)
    s = b.tensor("s", [4, 12], dtype="int16", scale=3.0 / 32768)
    y = b.tensor("y", [4, 12], dtype="int16", scale=1.0 / 32768)
    b.op("ADD", [x, c], [s])
    b.op("SOFTMAX", [s], [y], beta=1.0)
    check_synthetic(b.build([x], [y]), tmp_path)


@pytest.mark.parametrize("out_scale,out_zp", [(1.0 / 32000, 0), (1.0 / 32768, 5)])
def test_softmax_refuses_other_output_quantization(tmp_path: Path, out_scale: float, out_zp: int) -> None:
    path = tmp_path / "bad.tflite"
    path.write_bytes(_softmax_model([1, 10], 0.001, out_scale=out_scale, out_zp=out_zp))
    with pytest.raises(UnsupportedOpError, match="SOFTMAX.*output scale 1/32768"):
        generate(load_model(path))


# ----------------------------------------------------------------- QUANTIZE / DEQUANTIZE

@pytest.mark.parametrize("scale,zp", [(0.001, 0), (1e-4, 0), (0.05, 1000)])
def test_float_edges(tmp_path: Path, scale: float, zp: int) -> None:
    """float32 -> int16 -> float32: rounding halves away, saturation at both ends."""
    b = ModelBuilder()
    x = b.tensor("x", [3, 50], dtype="float32", scale=None)
    q = b.tensor("q", [3, 50], dtype="int16", scale=scale, zero_point=zp)
    y = b.tensor("y", [3, 50], dtype="float32", scale=None)
    b.op("QUANTIZE", [x], [q])
    b.op("DEQUANTIZE", [q], [y])
    raw = b.build([x], [y])
    check_synthetic(raw, tmp_path)
    path = tmp_path / "edges.tflite"
    path.write_bytes(raw)
    model = load_model(path)
    halves = np.array([[0.5, -0.5, 1.5, -1.5, 2.5, 40000.5, -40000.5, 1e9, -1e9, 0.0] * 5] * 3,
                      dtype=np.float32) * np.float32(scale)
    result = check_model(model, [Sample("halves", (halves,))])
    assert result.ok, result


@pytest.mark.parametrize("pair", [("int16", "int16"), ("int8", "int16"), ("int16", "int8")])
def test_requantize(tmp_path: Path, pair: tuple[str, str]) -> None:
    src, dst = pair
    scales = {"int8": 0.02, "int16": 3.0 / 32768}
    b = ModelBuilder()
    x = b.tensor("x", [4, 30], dtype=src, scale=scales[src], zero_point=3 if src == "int8" else 0)
    y = b.tensor("y", [4, 30], dtype=dst, scale=scales[dst] * 0.7, zero_point=-2 if dst == "int8" else 0)
    b.op("QUANTIZE", [x], [y])
    check_synthetic(b.build([x], [y]), tmp_path)


# ----------------------------------------------------------------- a small model

def small_model(float_edges: bool = False) -> bytes:
    """CONV -> DEPTHWISE -> ADD (residual) -> AVERAGE_POOL -> RESHAPE -> FULLY_CONNECTED
    -> SOFTMAX, all int16x8; optionally float32 in and out through QUANTIZE/DEQUANTIZE."""
    rng = np.random.default_rng(8)
    s_x = 1.0 / 32768
    s_c1 = s_x * 0.01 * W_STD * X_STD * math.sqrt(27) / 8000
    s_c2 = s_c1 * 0.01 * W_STD * 5000 * 3 / 8000  # RELU halves the spread of c1
    s_r = max(s_c1, s_c2) * 1.5
    s_logits = s_r * 0.01 * W_STD * 6000 * math.sqrt(32) / 12000

    def per_channel(n: int) -> list[float]:
        return list(rng.uniform(0.005, 0.015, n))

    b = ModelBuilder()
    x = b.tensor("x", [1, 10, 10, 3], dtype="int16", scale=s_x)
    if float_edges:
        xf = b.tensor("xf", [1, 10, 10, 3], dtype="float32", scale=None)
        b.op("QUANTIZE", [xf], [x])
    w1s, w2s, w3s = per_channel(8), per_channel(8), per_channel(10)
    w1 = b.const("w1", rng.integers(-127, 128, (8, 3, 3, 3)), scales=w1s)
    b1 = b.const("b1", rng.integers(-200000, 200000, 8), dtype="int64", scales=[s_x * v for v in w1s])
    c1 = b.tensor("c1", [1, 5, 5, 8], dtype="int16", scale=s_c1)
    b.op("CONV_2D", [x, w1, b1], [c1], padding="SAME", stride_h=2, stride_w=2,
         fused_activation_function="RELU")
    w2 = b.const("w2", rng.integers(-127, 128, (1, 3, 3, 8)), scales=w2s, axis=3)
    b2 = b.const("b2", rng.integers(-50000, 50000, 8), dtype="int64", scales=[s_c1 * v for v in w2s])
    c2 = b.tensor("c2", [1, 5, 5, 8], dtype="int16", scale=s_c2)
    b.op("DEPTHWISE_CONV_2D", [c1, w2, b2], [c2], padding="SAME", stride_h=1, stride_w=1,
         depth_multiplier=1)
    r = b.tensor("r", [1, 5, 5, 8], dtype="int16", scale=s_r)
    b.op("ADD", [c2, c1], [r])
    p = b.tensor("p", [1, 2, 2, 8], dtype="int16", scale=s_r)
    b.op("AVERAGE_POOL_2D", [r], [p], padding="VALID", stride_h=2, stride_w=2, filter_height=2,
         filter_width=2)
    shape = b.const("shape", [1, 32], dtype="int32")
    f = b.tensor("f", [1, 32], dtype="int16", scale=s_r)
    b.op("RESHAPE", [p, shape], [f], new_shape=[1, 32])
    w3 = b.const("w3", rng.integers(-127, 128, (10, 32)), scales=w3s)
    b3 = b.const("b3", rng.integers(-1000, 1000, 10), dtype="int64", scales=[s_r * v for v in w3s])
    logits = b.tensor("logits", [1, 10], dtype="int16", scale=s_logits)
    b.op("FULLY_CONNECTED", [f, w3, b3], [logits])
    y = b.tensor("y", [1, 10], dtype="int16", scale=1.0 / 32768)
    b.op("SOFTMAX", [logits], [y], beta=1.0)
    if not float_edges:
        return b.build([x], [y])
    yf = b.tensor("yf", [1, 10], dtype="float32", scale=None)
    b.op("DEQUANTIZE", [y], [yf])
    return b.build([xf], [yf])


def _intermediates_spread(raw: bytes) -> None:
    """Every layer of the small model keeps a spread of values (no saturated layer)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    fb = schema.ModelT.InitFromPackedBuf(raw, 0)
    sg = fb.subgraphs[0]
    names = [t.name.decode() for t in sg.tensors]
    for name in ("c1", "c2", "r", "logits"):
        sg.outputs = np.array([names.index(name)], dtype=np.int32)
        builder = flatbuffers.Builder(1024)
        builder.Finish(fb.Pack(builder), file_identifier=b"TFL3")
        cut = bytes(builder.Output())
        model = parse_model(cut, f"{name}.tflite")
        out = Reference(model, cut).run(random_samples(model, 1, seed=4)[0].inputs)[0]
        assert len(np.unique(out)) >= min(10, out.size // 2), (name, out)
        assert np.mean(np.abs(out.astype(np.int64)) >= 32767) < 0.2, (name, out)


@pytest.mark.parametrize("float_edges", [False, True])
def test_small_model(tmp_path: Path, float_edges: bool) -> None:
    raw = small_model(float_edges)
    check_synthetic(raw, tmp_path, count=16)
    if not float_edges:
        _intermediates_spread(raw)


# ----------------------------------------------------------------- refusals

def _generate(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "refused.tflite"
    path.write_bytes(raw)
    generate(load_model(path))


def test_int16_op_without_int16_kernel_is_refused_by_name(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 8], dtype="int16", scale=0.001)
    c = b.tensor("c", [1, 8], dtype="int16", scale=0.001)
    y = b.tensor("y", [1, 8], dtype="int16", scale=0.001)
    b.op("MUL", [x, c], [y])
    with pytest.raises(UnsupportedOpError, match=r"operator #0 MUL .*'x' is int16, the kernel takes int8"):
        _generate(b.build([x, c], [y]), tmp_path)


def test_int16_weights_are_refused(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 4, 4, 2], dtype="int16", scale=0.001)
    w = b.const("w", np.ones((3, 1, 1, 2)), dtype="int16", scales=0.01)
    y = b.tensor("y", [1, 4, 4, 3], dtype="int16", scale=0.01)
    b.op("CONV_2D", [x, w], [y], padding="SAME", stride_h=1, stride_w=1)
    with pytest.raises(UnsupportedOpError, match=r"CONV_2D .*weights 'w' are int16; int16 activations take int8"):
        _generate(b.build([x], [y]), tmp_path)


def test_mixed_int8_int16_activations_are_refused(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [2, 8], dtype="int16", scale=0.001)
    w = b.const("w", np.ones((3, 8)), scales=0.01)
    y = b.tensor("y", [2, 3], dtype="int8", scale=0.01)
    b.op("FULLY_CONNECTED", [x, w], [y])
    with pytest.raises(UnsupportedOpError, match=r"FULLY_CONNECTED .*'y' is int8; with int16 activations"):
        _generate(b.build([x], [y]), tmp_path)


def test_conv_zero_point_is_refused(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 4, 4, 2], dtype="int16", scale=0.001, zero_point=10)
    w = b.const("w", np.ones((3, 1, 1, 2)), scales=0.01)
    y = b.tensor("y", [1, 4, 4, 3], dtype="int16", scale=0.01)
    b.op("CONV_2D", [x, w], [y], padding="SAME", stride_h=1, stride_w=1)
    with pytest.raises(UnsupportedOpError, match=r"CONV_2D .*zero point 10; TFLM's int16 CONV_2D ignores"):
        _generate(b.build([x], [y]), tmp_path)


def test_depthwise_int32_bias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedOpError, match=r"DEPTHWISE_CONV_2D .*int64"):
        _generate(_conv_model("DEPTHWISE_CONV_2D", bias="int32"), tmp_path)


# ----------------------------------------------------------------- firmware under QEMU

@pytest.mark.qemu
def test_small_model_on_qemu_matches_tflm(tmp_path: Path, arm_tools: tuple[str, str]) -> None:
    from harness.build import build_firmware
    from harness.targets import find_target
    from tests import test_firmware as fw

    path = tmp_path / "int16_small.tflite"
    path.write_bytes(small_model())
    model: Model = load_model(path)
    gen = generate(model)
    target = find_target("cortex-m4")
    image = build_firmware(gen, target, cache_dir=tmp_path / "fw")
    reference = Reference(model)
    dut = fw.QemuDut(target, image.elf)
    try:
        for sample in random_samples(model, 3, seed=21):
            got = dut.infer_output(sample.inputs[0].tobytes())
            want = reference.run(sample.inputs)
            assert got == b"".join(a.tobytes() for a in want), sample.name
    finally:
        dut.close()


def test_generated_int16_model_builds_warning_free_for_arm(tmp_path: Path, arm_tools: tuple[str, str]) -> None:
    """The generated C (int64 biases, int16 tables) compiles with -Werror for Cortex-M4."""
    from tests import test_cross_compile as cc

    path = tmp_path / "int16_small.tflite"
    path.write_bytes(small_model(float_edges=True))
    out = tmp_path / "gen"
    for src in generate(load_model(path)).write(out):
        if src.suffix == ".c":
            cc._compile(src, out, out)


# ----------------------------------------------------------------- SIMD kernels (th_*_s16_simd)

def test_simd_weight_layouts() -> None:
    """Groups of four stored w0, w2, w1, w3 (SXTB16 -> (w0, w1), ROR #8 -> (w2, w3));
    blocks of four channels then single channels; tails after the groups."""
    w = np.arange(5 * 6).reshape(5, 6)
    assert s16_weights(w).tolist() == [0, 2, 1, 3, 6, 8, 7, 9, 12, 14, 13, 15, 18, 20, 19, 21,
                                       4, 5, 10, 11, 16, 17, 22, 23,
                                       24, 26, 25, 27, 28, 29]
    # Depthwise [1, 1, 2, 6]: per group of four channels one word per tap, then [tap][channel].
    assert dw_s16_weights(np.arange(12).reshape(1, 1, 2, 6)).tolist() == [0, 2, 1, 3, 6, 8, 7, 9, 4, 5, 10, 11]
    assert s16_weights(np.arange(3).reshape(1, 3)).tolist() == [0, 1, 2]


def _mbqm64(x: int, multiplier: int, shift: int) -> int:
    """th_mbqm64 (TFLM's 64-bit MultiplyByQuantizedMultiplier), in Python."""
    reduced = (multiplier + (1 << 15)) >> 16 if multiplier < 0x7FFF0000 else 0x7FFF
    total = 15 - shift
    r = (x * reduced + (1 << (total - 1))) >> total
    return (r + 2**31) % 2**32 - 2**31


def test_fast_multipliers_equal_the_64_bit_requantization() -> None:
    """SMMULR(x, r << (17 + shift)) = th_mbqm64(x) for every int32 x, shift in [-17, -1]."""
    rng = np.random.default_rng(7)
    mults = [2**30, 2**31 - 1, 0x7FFF0000, 0x7FFEFFFF, *rng.integers(2**30, 2**31, 60).tolist()]
    xs = [0, 1, -1, 2**31 - 1, -2**31, 12345, -12345, *rng.integers(-2**31, 2**31, 300).tolist()]
    for shift in range(-17, 0):
        fast = fast_multipliers(mults, [shift] * len(mults))
        assert fast is not None and max(fast) < 2**31
        for m, f in zip(mults, fast):
            for x in xs:
                assert (x * f + 2**31) >> 32 == _mbqm64(x, m, shift), (x, m, shift)
    assert fast_multipliers([2**30], [0]) is None and fast_multipliers([2**30], [-18]) is None


def _huge_bias(raw: bytes, value: int = 3_000_000_000) -> bytes:
    """The same model with its first bias element set to ``value`` (beyond int32: that
    channel saturates, the others vary): no bound proves the FAST requantization."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    fb = schema.ModelT.InitFromPackedBuf(raw, 0)
    sg = fb.subgraphs[0]
    t = next(t for t in sg.tensors if t.name.decode() == "b")
    data = np.frombuffer(bytes(fb.buffers[t.buffer].data), dtype=np.int64).copy()
    data[0] = value
    fb.buffers[t.buffer].data = np.frombuffer(data.tobytes(), dtype=np.uint8)
    builder = flatbuffers.Builder(1024)
    builder.Finish(fb.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _pointwise_big(bias: str, in_c: int = 1200) -> bytes:
    """A 1x1 conv whose weights are all positive: an all-maximum input sums to ~3.7e9,
    which wraps TFLM's int32 accumulator (int32 bias) and needs the int64 one otherwise."""
    rng = np.random.default_rng(11)
    in_scale, w_scales = 1.0 / 32768, list(rng.uniform(0.005, 0.015, 5))
    b = ModelBuilder()
    x = b.tensor("x", (1, 1, 2, in_c), dtype="int16", scale=in_scale)
    wt = b.const("w", rng.integers(60, 128, (5, 1, 1, in_c)), scales=w_scales, axis=0)
    bias_t = b.const("b", rng.integers(-10**6, 10**6, 5), dtype=bias, scales=[in_scale * s for s in w_scales])
    y = b.tensor("y", (1, 1, 2, 5), dtype="int16", scale=in_scale * 0.01 * 95 * X_STD * math.sqrt(in_c) / 8000)
    b.op("CONV_2D", [x, wt, bias_t], [y], padding="VALID", stride_h=1, stride_w=1)
    return b.build([x], [y])


# name: (model, kernel, mode, wide); modes as int16x8.RQ16_*.
SIMD_CASES: dict[str, tuple[Callable[[], bytes], str, int, int]] = {
    # 3x3 SAME: gathered patches, k = 45 (a tail of 1), 7 channels (a block and 3 singles); RELU: USAT.
    "conv_gather_relu": (lambda: _conv_model("CONV_2D", in_shape=(1, 9, 7, 5), out_c=7, stride=(2, 1),
                                             act="RELU"), "th_conv2d_s16_simd", RQ16_FAST, 0),
    # 5x2 over 2 channels: rows of whole groups, skipped where the window leaves the input; NONE: SSAT.
    "conv_row_skip": (lambda: _conv_model("CONV_2D", in_shape=(1, 11, 6, 2), kernel=(5, 2), out_c=6,
                                          stride=(2, 2)), "th_conv2d_s16_simd", RQ16_FAST, 0),
    "conv_dilated_relu6": (lambda: _conv_model("CONV_2D", in_shape=(1, 11, 12, 3), out_c=5, dilation=(2, 3),
                                               act="RELU6", bias="none"), "th_conv2d_s16_simd", RQ16_FAST, 0),
    # 1x1 over 7 channels: read in place at odd (unaligned) addresses; int32 bias.
    "pointwise_acc32": (lambda: _conv_model("CONV_2D", in_shape=(2, 5, 3, 7), kernel=(1, 1), out_c=9,
                                            bias="int32"), "th_conv2d_s16_simd", RQ16_ACC32, 0),
    "conv_exact64": (lambda: _huge_bias(_conv_model("CONV_2D", in_shape=(1, 7, 6, 6), out_c=6, act="RELU_N1_TO_1")),
                     "th_conv2d_s16_simd", RQ16_EXACT64, 0),
    "pointwise_wraps_int32": (lambda: _pointwise_big("int32"), "th_conv2d_s16_simd", RQ16_ACC32, 0),
    "pointwise_wide_int64": (lambda: _pointwise_big("int64"), "th_conv2d_s16_simd", RQ16_EXACT64, 1),
    # 7 channels: a group of four and 3 last channels; borders of a 3x3 window.
    "dw_odd": (lambda: _conv_model("DEPTHWISE_CONV_2D", in_shape=(1, 7, 6, 7), stride=(2, 1)),
               "th_depthwise_conv2d_s16_simd", RQ16_FAST, 0),
    "dw_dilated_relu6": (lambda: _conv_model("DEPTHWISE_CONV_2D", in_shape=(1, 9, 8, 17), dilation=(2, 2),
                                             act="RELU6", bias="none"), "th_depthwise_conv2d_s16_simd", RQ16_FAST, 0),
    "dw_exact64": (lambda: _huge_bias(_conv_model("DEPTHWISE_CONV_2D", in_shape=(1, 6, 5, 9), kernel=(2, 3),
                                                  act="RELU")), "th_depthwise_conv2d_s16_simd", RQ16_EXACT64, 0),
    # Zero points: the input offset folded into the bias, the output offset after SMMULR.
    "fc_zero_points": (lambda: _fc_model(depth=33, units=11, in_zp=7, out_zp=-300),
                       "th_fully_connected_s16_simd", RQ16_FAST, 0),
    "fc_acc32_zero_point": (lambda: _fc_model(depth=35, units=6, bias="int32", in_zp=-40, act="RELU"),
                            "th_fully_connected_s16_simd", RQ16_ACC32, 0),
    "fc_exact64": (lambda: _huge_bias(_fc_model(depth=42, units=9)), "th_fully_connected_s16_simd", RQ16_EXACT64, 0),
    # 1501 inputs: sums beyond int32, flushed into int64 every 64 groups; a tail of 1.
    "fc_wide": (lambda: _fc_model(batches=2, depth=1501, units=6), "th_fully_connected_s16_simd", RQ16_EXACT64, 1),
}


def _simd_paths(raw: bytes, tmp_path: Path) -> list[tuple[str, int, int]]:
    path = tmp_path / "paths.tflite"
    path.write_bytes(raw)
    src = generate(load_model(path)).sources["th_model.c"]
    kernels = re.findall(r"(th_\w+_s16(?:_\w+)?)\(", src)
    modes = [int(m) for m in re.findall(r"\.mode = (\d+)", src)]
    wides = [int(m) for m in re.findall(r"\.wide = (\d+)", src)]
    return list(zip(kernels, modes, wides))


def _extremes(model: Model) -> list[Sample]:
    shape = model.input_tensors()[0].shape
    return [Sample("max", (np.full(shape, 32767, dtype=np.int16),)),
            Sample("min", (np.full(shape, -32768, dtype=np.int16),))]


@pytest.mark.parametrize("case", sorted(SIMD_CASES))
def test_simd_kernels_on_host(tmp_path: Path, case: str) -> None:
    """Each case takes the kernel and requantization it names, and equals TFLM (the
    portable C path; the DSP one runs under QEMU below)."""
    build, kernel, mode, wide = SIMD_CASES[case]
    raw = build()
    assert _simd_paths(raw, tmp_path) == [(kernel, mode, wide)]
    _check(raw, tmp_path, min_distinct=20)
    path = tmp_path / f"{case}.tflite"
    path.write_bytes(raw)
    model = load_model(path)
    result = check_model(model, _extremes(model))
    assert result.ok, result


def test_plain_kernels_remain_for_what_simd_does_not_take(tmp_path: Path) -> None:
    """Depth multipliers other than 1 and patches above MAX_PATCH keep the plain kernels."""
    assert [k for k, _, _ in _simd_paths(_conv_model("DEPTHWISE_CONV_2D", dm=2), tmp_path)] == []
    b = ModelBuilder()
    x = b.tensor("x", [1, 4, 4, 128], dtype="int16", scale=1.0 / 32768)
    w = b.const("w", np.ones((2, 3, 3, 128)), scales=0.01)
    y = b.tensor("y", [1, 4, 4, 2], dtype="int16", scale=0.02)
    b.op("CONV_2D", [x, w], [y], padding="SAME", stride_h=1, stride_w=1)
    path = tmp_path / "big_patch.tflite"
    path.write_bytes(b.build([x], [y]))
    src = generate(load_model(path)).sources["th_model.c"]
    assert 3 * 3 * 128 > MAX_PATCH and "th_conv2d_s16(" in src and "_simd" not in src


@pytest.mark.qemu
@pytest.mark.parametrize("case", sorted(SIMD_CASES))
def test_simd_kernels_on_qemu_match_tflm(tmp_path: Path, arm_tools: tuple[str, str], case: str) -> None:
    """The DSP instructions (SXTB16, SMLAD, SMLABB/SMLATT, SMMULR, SSAT/USAT) on cortex-m4."""
    from harness.build import build_firmware
    from harness.targets import find_target
    from tests import test_firmware as fw

    path = tmp_path / f"{case}.tflite"
    path.write_bytes(SIMD_CASES[case][0]())
    model = load_model(path)
    target = find_target("cortex-m4")
    image = build_firmware(generate(model), target, cache_dir=tmp_path / "fw")
    reference = Reference(model)
    dut = fw.QemuDut(target, image.elf)
    try:
        for sample in [*random_samples(model, 2, seed=17), *_extremes(model)]:
            got = dut.infer_output(sample.inputs[0].tobytes())
            want = b"".join(a.tobytes() for a in reference.run(sample.inputs))
            assert got == want, (case, sample.name)
    finally:
        dut.close()
