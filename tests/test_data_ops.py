"""MEAN, QUANTIZE/DEQUANTIZE, PAD/PADV2 and CONCATENATION against TFLM, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from harness.datasets import Sample, random_samples
from harness.engines.builtin.check import check_model
from harness.engines.builtin.codegen import generate
from harness.errors import UnsupportedOpError
from harness.model import load_model
from harness.synth import ModelBuilder
from tests.conftest import check_synthetic


def _check_samples(raw: bytes, tmp_path: Path, samples_of: object, name: str = "synth") -> None:
    """Like check_synthetic, with hand-made inputs (``samples_of(model) -> [Sample]``)."""
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(raw)
    model = load_model(path)
    samples = samples_of(model)  # type: ignore[operator]
    result = check_model(model, samples)
    assert result.ok, f"{name}: max abs diff {result.max_abs_diff} on {result.mismatched_samples[:5]}"


# --------------------------------------------------------------------------- MEAN


def _mean_model(shape: Sequence[int], axes: Sequence[int], keep_dims: bool,
                in_q: tuple[float, int], out_q: tuple[float, int]) -> bytes:
    rank = len(shape)
    resolved = sorted({a + rank if a < 0 else a for a in axes})
    if keep_dims:
        out_shape = [1 if i in resolved else d for i, d in enumerate(shape)]
    else:
        out_shape = [d for i, d in enumerate(shape) if i not in resolved]
    b = ModelBuilder()
    x = b.tensor("x", shape, scale=in_q[0], zero_point=in_q[1])
    ax = b.const("axis", np.array(list(axes), dtype=np.int32), dtype="int32", scales=None)
    y = b.tensor("y", out_shape, scale=out_q[0], zero_point=out_q[1])
    b.op("MEAN", [x, ax], [y], keep_dims=keep_dims)
    return b.build([x], [y])


SAME_Q = ((0.05, -3), (0.05, -3))
DIFF_Q = ((0.05, -3), (0.02, 9))


@pytest.mark.parametrize("keep_dims", [True, False])
@pytest.mark.parametrize("quant", [SAME_Q, DIFF_Q], ids=["same_q", "diff_q"])
@pytest.mark.parametrize("axes", [[1, 2], [2, 1]])
def test_mean_global_average(tmp_path: Path, keep_dims: bool, quant: tuple, axes: list[int]) -> None:
    # 5x7 = 35 elements: not a power of two, so the folded 1/count multiplier matters.
    check_synthetic(_mean_model([2, 5, 7, 13], axes, keep_dims, *quant), tmp_path)


@pytest.mark.parametrize("shape,axes", [
    ([1, 6, 4, 10], [3]),      # single last axis
    ([1, 6, 4, 10], [-1]),     # the same, negative
    ([3, 6, 4, 10], [0]),      # batch axis, strided reduction
    ([2, 9, 5], [1]),          # middle axis of 3-D
    ([2, 9, 5], [-3, -2]),     # negative pair
    ([1, 12, 12, 8], [1, 2, 1]),  # duplicate axis, 144 elements
    ([4, 3, 5, 6], [0, 2]),    # non-adjacent axes
    ([17, 3], [0]),
    ([2, 3, 4], [0, 1, 2]),    # everything
])
@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean_other_axes(tmp_path: Path, shape: list[int], axes: list[int], keep_dims: bool) -> None:
    check_synthetic(_mean_model(shape, axes, keep_dims, (0.1, 4), (0.07, -11)), tmp_path)


@pytest.mark.parametrize("in_q,out_q", [
    ((0.02, -128), (0.02, -128)),  # extreme zero points, equal quantization
    ((0.02, 127), (0.03, 127)),    # extreme zero points, shrinking scale
    ((0.02, 127), (0.05, -3)),
    ((0.5, 0), (0.04, 0)),         # in/out = 12.5: multiplier above one
])
def test_mean_quantization_edges(tmp_path: Path, in_q: tuple, out_q: tuple) -> None:
    # A 2x3 window (count 6, even: halves are possible) keeps the means spread out.
    check_synthetic(_mean_model([2, 2, 3, 40], [1, 2], True, in_q, out_q), tmp_path, count=12)


def test_mean_large_window(tmp_path: Path) -> None:
    # 32x32 = 1024 elements per mean (a big global average pool).
    check_synthetic(_mean_model([1, 32, 32, 4], [1, 2], False, (0.03, -20), (0.011, 3)), tmp_path)


# ------------------------------------------------------------------ QUANTIZE / DEQUANTIZE


def _requantize_model(in_q: tuple[float, int], out_q: tuple[float, int]) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", [3, 257], scale=in_q[0], zero_point=in_q[1])
    y = b.tensor("y", [3, 257], scale=out_q[0], zero_point=out_q[1])
    b.op("QUANTIZE", [x], [y])
    return b.build([x], [y])


@pytest.mark.parametrize("in_q,out_q", [
    # Extreme zero points, ranges chosen so that most outputs do not clamp.
    ((0.05, -128), (0.06, -128)),  # multiplier below one
    ((0.05, 127), (0.04, 127)),    # multiplier above one, clamps the low end
    ((0.05, 0), (0.02, 0)),        # 2.5: every odd input is a rounding tie
    ((0.1, 3), (0.1, -7)),         # same scale: multiplier 1<<30, shift 1
    ((0.003, 0), (0.05, 0)),       # strong downscale
])
def test_quantize_int8_requantize(tmp_path: Path, in_q: tuple, out_q: tuple) -> None:
    check_synthetic(_requantize_model(in_q, out_q), tmp_path)


def _float_io_model(scale: float, zp: int, n: int, op: str) -> bytes:
    b = ModelBuilder()
    if op == "QUANTIZE":
        x = b.tensor("x", [n], dtype="float32", scale=None)
        y = b.tensor("y", [n], scale=scale, zero_point=zp)
    else:
        x = b.tensor("x", [n], scale=scale, zero_point=zp)
        y = b.tensor("y", [n], dtype="float32", scale=None)
    b.op(op, [x], [y])
    return b.build([x], [y])


@pytest.mark.parametrize("scale,zp", [(0.25, 0), (0.0123, -128), (0.0371, 127), (0.1, 5)])
def test_quantize_float_ties_and_clamps(tmp_path: Path, scale: float, zp: int) -> None:
    s = np.float32(scale)
    k = np.arange(-300, 300, dtype=np.float32)

    def samples(model: object) -> list[Sample]:
        # Exact halves (where the float32 quotient is exactly k + 0.5),
        # their float neighbours, plain random values, and out-of-range ones.
        halves = (k + np.float32(0.5)) * s
        return [
            Sample("halves", (halves.astype(np.float32),)),
            Sample("above", (np.nextafter(halves, np.float32(np.inf)).astype(np.float32),)),
            Sample("below", (np.nextafter(halves, np.float32(-np.inf)).astype(np.float32),)),
            Sample("ints", ((k * s).astype(np.float32),)),
            *random_samples(model, 4, seed=3),  # type: ignore[arg-type]
        ]

    _check_samples(_float_io_model(scale, zp, k.size, "QUANTIZE"), tmp_path, samples)


@pytest.mark.parametrize("scale,zp", [(0.0123, -128), (0.1, 127), (1.7e-5, 3), (3.3333333, -1)])
def test_dequantize_every_code(tmp_path: Path, scale: float, zp: int) -> None:
    codes = np.arange(-128, 128, dtype=np.int8)

    def samples(model: object) -> list[Sample]:
        return [Sample("all-codes", (codes,)), Sample("reversed", (codes[::-1].copy(),))]

    _check_samples(_float_io_model(scale, zp, 256, "DEQUANTIZE"), tmp_path, samples)


def _float_fc_model(in_zp: int, out_zp: int) -> bytes:
    rng = np.random.default_rng(11)
    depth, units = 24, 7
    b = ModelBuilder()
    xf = b.tensor("xf", [1, depth], dtype="float32", scale=None)
    xq = b.tensor("xq", [1, depth], scale=8.0 / 255, zero_point=in_zp)
    w = b.const("w", rng.integers(-127, 128, (units, depth)), scales=0.01)
    bias = b.const("b", rng.integers(-2000, 2000, units), dtype="int32", scales=8.0 / 255 * 0.01)
    yq = b.tensor("yq", [1, units], scale=0.35, zero_point=out_zp)
    yf = b.tensor("yf", [1, units], dtype="float32", scale=None)
    b.op("QUANTIZE", [xf], [xq])
    b.op("FULLY_CONNECTED", [xq, w, bias], [yq], fused_activation_function="NONE")
    b.op("DEQUANTIZE", [yq], [yf])
    return b.build([xf], [yf])


@pytest.mark.parametrize("in_zp,out_zp", [(-128, 127), (127, -128), (0, 0)])
def test_float_model_quantize_fc_dequantize(tmp_path: Path, in_zp: int, out_zp: int) -> None:
    check_synthetic(_float_fc_model(in_zp, out_zp), tmp_path, count=16)


# --------------------------------------------------------------------------- PAD


def _pad_model(shape: Sequence[int], pads: Sequence[tuple[int, int]], zp: int,
               constant: int | None = None) -> bytes:
    out_shape = [d + lo + hi for d, (lo, hi) in zip(shape, pads)]
    b = ModelBuilder()
    x = b.tensor("x", shape, scale=0.04, zero_point=zp)
    p = b.const("paddings", np.array(pads, dtype=np.int32), dtype="int32", scales=None)
    y = b.tensor("y", out_shape, scale=0.04, zero_point=zp)
    if constant is None:
        b.op("PAD", [x, p], [y])
    else:
        c = b.const("c", np.array(constant, dtype=np.int8), scales=0.04, zero_point=zp)
        b.op("PADV2", [x, p, c], [y])
    return b.build([x], [y])


PAD_CASES = [
    ([1, 5, 6, 3], [(0, 0), (1, 1), (2, 1), (0, 0)]),   # image style (H, W)
    ([2, 3, 4, 5], [(1, 2), (0, 1), (3, 0), (2, 1)]),   # every axis
    ([1, 4, 4, 2], [(0, 0), (0, 0), (0, 0), (0, 0)]),   # nothing
    ([1, 7, 3], [(0, 0), (2, 3), (0, 0)]),               # 3-D
    ([6, 5], [(1, 0), (0, 2)]),                          # 2-D
    ([9], [(4, 2)]),                                     # 1-D
    ([2, 2, 3, 2, 3], [(0, 1), (1, 0), (0, 0), (1, 1), (0, 0)]),  # 5-D
]


@pytest.mark.parametrize("shape,pads", PAD_CASES)
@pytest.mark.parametrize("zp", [-128, 127, -5])
def test_pad(tmp_path: Path, shape: list[int], pads: list[tuple[int, int]], zp: int) -> None:
    check_synthetic(_pad_model(shape, pads, zp), tmp_path)


@pytest.mark.parametrize("shape,pads", PAD_CASES[:2] + PAD_CASES[4:5])
@pytest.mark.parametrize("constant", [-128, 77])
def test_padv2_constant(tmp_path: Path, shape: list[int], pads: list[tuple[int, int]], constant: int) -> None:
    check_synthetic(_pad_model(shape, pads, zp=3, constant=constant), tmp_path)


# ------------------------------------------------------------------- CONCATENATION


def _concat_model(shapes: Sequence[Sequence[int]], axis: int, const_input: int | None = None,
                  scales: Sequence[float] | None = None) -> bytes:
    rng = np.random.default_rng(5)
    rank = len(shapes[0])
    pos = axis + rank if axis < 0 else axis
    out_shape = list(shapes[0])
    out_shape[pos] = sum(s[pos] for s in shapes)
    b = ModelBuilder()
    ins, graph_ins = [], []
    for i, s in enumerate(shapes):
        scale = scales[i] if scales else 0.06
        if i == const_input:
            ins.append(b.const(f"c{i}", rng.integers(-128, 128, s), scales=scale, zero_point=-17))
        else:
            t = b.tensor(f"x{i}", s, scale=scale, zero_point=-17)
            ins.append(t)
            graph_ins.append(t)
    y = b.tensor("y", out_shape, scale=0.06, zero_point=-17)
    b.op("CONCATENATION", ins, [y], axis=axis, fused_activation_function="NONE")
    return b.build(graph_ins, [y])


@pytest.mark.parametrize("shapes,axis", [
    ([[1, 4, 5, 3], [1, 4, 5, 2]], 3),
    ([[1, 4, 5, 3], [1, 4, 5, 1], [1, 4, 5, 6]], -1),
    ([[1, 2, 5, 3], [1, 3, 5, 3], [1, 1, 5, 3], [1, 4, 5, 3]], 1),
    ([[1, 4, 2, 3], [1, 4, 7, 3]], -2),
    ([[2, 4, 5, 3], [1, 4, 5, 3], [3, 4, 5, 3]], 0),
    ([[3, 7], [3, 2]], 1),
    ([[3, 7], [5, 7]], -2),
    ([[2, 3, 4], [2, 3, 1]], 2),
])
def test_concatenation(tmp_path: Path, shapes: list[list[int]], axis: int) -> None:
    check_synthetic(_concat_model(shapes, axis), tmp_path)


def test_concatenation_with_constant_input(tmp_path: Path) -> None:
    check_synthetic(_concat_model([[1, 3, 3, 2], [1, 3, 3, 4], [1, 3, 3, 1]], 3, const_input=1), tmp_path)


# ------------------------------------------------------------------- rejections


def _generate(raw: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bad.tflite"
    path.write_bytes(raw)
    generate(load_model(path))


def test_concatenation_rejects_differing_scales(tmp_path: Path) -> None:
    raw = _concat_model([[1, 4, 3], [1, 4, 2]], 2, scales=[0.06, 0.07])
    with pytest.raises(UnsupportedOpError, match="CONCATENATION.*equal quantization") as info:
        _generate(raw, tmp_path)
    assert info.value.op_name == "CONCATENATION"
    assert info.value.op_index == 0


def test_concatenation_rejects_fused_activation(tmp_path: Path) -> None:
    b = ModelBuilder()
    x0 = b.tensor("x0", [2, 3], scale=0.1)
    x1 = b.tensor("x1", [2, 3], scale=0.1)
    y = b.tensor("y", [4, 3], scale=0.1)
    b.op("CONCATENATION", [x0, x1], [y], axis=0, fused_activation_function="RELU")
    with pytest.raises(UnsupportedOpError, match="CONCATENATION.*RELU"):
        _generate(b.build([x0, x1], [y]), tmp_path)


def test_mean_rejects_int8_axis(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 4, 4, 2], scale=0.1)
    ax = b.const("axis", np.array([1, 2], dtype=np.int8), scales=None)
    y = b.tensor("y", [1, 2], scale=0.1)
    b.op("MEAN", [x, ax], [y], keep_dims=False)
    with pytest.raises(UnsupportedOpError, match="MEAN.*axis tensor must be int32") as info:
        _generate(b.build([x], [y]), tmp_path)
    assert info.value.op_name == "MEAN"


def test_quantize_rejects_per_channel_output(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [2, 3], dtype="float32", scale=None)
    y = b.tensor("y", [2, 3], scale=[0.1, 0.2, 0.3], zero_point=0, axis=1)
    b.op("QUANTIZE", [x], [y])
    with pytest.raises(UnsupportedOpError, match="QUANTIZE.*per-channel"):
        _generate(b.build([x], [y]), tmp_path)


def test_padv2_rejects_constant_with_other_quantization(tmp_path: Path) -> None:
    b = ModelBuilder()
    x = b.tensor("x", [1, 3, 3, 1], scale=0.1, zero_point=2)
    p = b.const("paddings", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], dtype=np.int32), dtype="int32", scales=None)
    c = b.const("c", np.array(5, dtype=np.int8), scales=0.2, zero_point=2)
    y = b.tensor("y", [1, 5, 5, 1], scale=0.1, zero_point=2)
    b.op("PADV2", [x, p, c], [y])
    with pytest.raises(UnsupportedOpError, match="PADV2.*scale and zero point"):
        _generate(b.build([x], [y]), tmp_path)
