"""DEPTHWISE_CONV_2D fast path (depth multiplier 1): build-time weight layout,
folded bias and requantization choice, and bit-exactness against TFLM on the
shapes that reach each branch of th_depthwise_conv2d_s8_dm1.c (the unrolled
3x3 interior, border pixels, other kernel sizes, channels % 4 tails, the exact
requantization), on the host and on Cortex-M4 (DSP) under QEMU."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import random_samples
from harness.engines.builtin.codegen import generate
from harness.engines.builtin.ops.conv import (
    depthwise_dm1_weights,
    depthwise_fast_requant,
    depthwise_folded_bias,
)
from harness.model import load_model
from harness.reference import Reference
from harness.synth import ModelBuilder
from tests.conftest import check_synthetic
from tests.test_conv import _check, _model


def test_weights_are_grouped_by_four_channels_then_the_tail() -> None:
    w = np.arange(2 * 2 * 6).reshape(1, 2, 2, 6).astype(np.int8)  # taps 0..3, channels 0..5
    got = depthwise_dm1_weights(w)
    taps = w.reshape(4, 6)
    want = [taps[t, c] for t in range(4) for c in range(4)] + [taps[t, c] for t in range(4) for c in (4, 5)]
    assert got.tolist() == want


def test_folded_bias_is_bias_plus_offset_times_weight_sums() -> None:
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (1, 3, 3, 5)).astype(np.int8)
    b = rng.integers(-1000, 1000, 5).astype(np.int32)
    x = rng.integers(-128, 128, (9, 5))
    fb = depthwise_folded_bias(w, b, 17)
    taps = w.reshape(9, 5).astype(np.int64)
    # TFLM's sum for one window: sum_t w * (x + offset) + bias.
    assert np.array_equal((taps * (x + 17)).sum(axis=0) + b, (taps * x).sum(axis=0) + fb)
    assert np.array_equal(depthwise_folded_bias(w, None, 0), np.zeros(5, dtype=np.int32))


def test_folded_bias_wraps_like_the_int32_accumulator() -> None:
    """Quantizers emit a bias of INT32_MIN for an all-zero (pruned) channel: folding
    must not refuse it, and a fold past int32 wraps as TFLM's int32 sum does."""
    w = np.zeros((1, 3, 3, 4), dtype=np.int8)
    w[..., 1] = 127
    b = np.array([-(2**31), 2**31 - 1, 5, -7], dtype=np.int32)
    fb = depthwise_folded_bias(w, b, 100)
    assert fb.dtype == np.int32 and fb[0] == -(2**31) and fb[2] == 5 and fb[3] == -7
    true = 2**31 - 1 + 100 * 9 * 127
    assert int(fb[1]) == true - 2**32  # the same integer modulo 2^32, as int32 arithmetic gives


def test_fast_requantization_needs_small_accumulators_and_right_shifts() -> None:
    w = np.full((1, 3, 3, 4), 127, dtype=np.int8)
    fb = np.zeros(4, dtype=np.int32)
    assert depthwise_fast_requant(w, fb, [-1, -7, -31, -9])
    assert not depthwise_fast_requant(w, fb, [-1, 0, -3, -3])  # shift 0: no rounding shift
    assert not depthwise_fast_requant(w, fb, [-1, -1, -32, -1])
    assert not depthwise_fast_requant(w, np.array([2**30, 0, 0, 0], dtype=np.int32), [-1] * 4)


DW = "DEPTHWISE_CONV_2D"


@pytest.mark.parametrize("channels", [4, 8, 6, 12, 16])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (2, 1)])
def test_3x3_groups_of_four_and_tails(tmp_path: Path, channels: int, padding: str,
                                      stride: tuple[int, int]) -> None:
    """Channels % 4 == 0 take the unrolled interior; 6 takes the generic path with a tail."""
    _check(_model(DW, in_shape=(1, 9, 11, channels), padding=padding, stride=stride), tmp_path)


@pytest.mark.parametrize("kernel,dilation", [((5, 5), (1, 1)), ((3, 3), (2, 2)), ((1, 3), (1, 1)),
                                             ((3, 1), (1, 2))])
def test_other_kernels_on_the_generic_path(tmp_path: Path, kernel: tuple[int, int],
                                           dilation: tuple[int, int]) -> None:
    _check(_model(DW, in_shape=(1, 10, 9, 8), kernel=kernel, dilation=dilation), tmp_path)


def test_extreme_input_zero_points_in_the_padding(tmp_path: Path) -> None:
    """Padding taps read the input zero point: -128 and 127 are both representable."""
    for zp in (-128, 127):
        _check(_model(DW, in_shape=(1, 6, 7, 8), in_zp=zp, bias="omitted"), tmp_path)


def _dw_model(channels: int = 8, in_scale: float = 0.02, w_scale: float = 0.01,
              out_scale: float = 0.05, hw: tuple[int, int] = (8, 9), stride: int = 1,
              kernel: int = 3, wmax: int = 127, act: str | None = None, seed: int = 5) -> bytes:
    rng = np.random.default_rng(seed)
    h, w = hw
    oh, ow = math.ceil(h / stride), math.ceil(w / stride)
    b = ModelBuilder()
    x = b.tensor("x", (1, h, w, channels), scale=in_scale, zero_point=-3)
    wt = b.const("w", rng.integers(-wmax, wmax + 1, (1, kernel, kernel, channels)),
                 scales=list(rng.uniform(0.5, 1.5, channels) * w_scale), axis=3)
    bias = b.const("b", rng.integers(-500, 500, channels), dtype="int32",
                   scales=[in_scale * w_scale] * channels)
    y = b.tensor("y", (1, oh, ow, channels), scale=out_scale, zero_point=4)
    b.op(DW, [x, wt, bias], [y], padding="SAME", stride_h=stride, stride_w=stride,
         dilation_h_factor=1, dilation_w_factor=1, fused_activation_function=act or ("RELU6" if wmax > 2 else "NONE"),
         depth_multiplier=1)
    return b.build([x], [y])


def _fast_flags(raw: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "dw.tflite"
    path.write_bytes(raw)
    src = generate(load_model(path)).sources["th_model.c"]
    return [ln.strip() for ln in src.splitlines() if ".fast_requant" in ln]


def test_left_shift_scales_use_the_exact_requantization(tmp_path: Path) -> None:
    """A requantization scale above 0.5 gives shift >= 0: the general path, still exact."""
    raw = _dw_model(in_scale=0.3, w_scale=0.02, out_scale=0.01, wmax=1)
    assert _fast_flags(raw, tmp_path) == [".fast_requant = 0,"]
    check_synthetic(raw, tmp_path)
    raw = _dw_model()
    assert _fast_flags(raw, tmp_path) == [".fast_requant = 1,"]
    check_synthetic(raw, tmp_path)


def _pairs_defined(raw: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "pairs.tflite"
    path.write_bytes(raw)
    src = generate(load_model(path)).sources["th_model.c"]
    return [ln for ln in src.splitlines() if ln.startswith("TH_DW_PAIRS_DEFINE(")]


def test_paired_rows_where_the_geometry_fits_immediates(tmp_path: Path) -> None:
    """3x3 layers of stride 1 or 2 with channels % 4 == 0 get a pairs function with their
    channel count, window row stride (in_w + 2 pixels) and stride compiled in; stride
    (2, 1), 6 channels, or a window row whose taps are out of LDR immediate reach
    (2 RS + (2 + stride) CH >= 4096) keep the one-pixel paths; every case equals TFLM."""
    fits = _model(DW, in_shape=(1, 5, 9, 16))
    assert _pairs_defined(fits, tmp_path) == ["TH_DW_PAIRS_DEFINE(th_op0_dwpairs, 16, 176, 1, TH_RQ_FAST_SAT8)"]
    relu = _model(DW, in_shape=(1, 5, 9, 16), act="RELU6")
    assert [ln.split(", ")[-1] for ln in _pairs_defined(relu, tmp_path)] == ["TH_RQ_FAST)"]
    strided = _model(DW, in_shape=(1, 9, 11, 8), stride=(2, 2))
    assert _pairs_defined(strided, tmp_path) == ["TH_DW_PAIRS_DEFINE(th_op0_dwpairs, 8, 104, 2, TH_RQ_FAST_SAT8)"]
    too_wide = _model(DW, in_shape=(1, 4, 62, 32))  # RS = 64 * 32: the bottom taps are past 4095
    for raw in (_model(DW, in_shape=(1, 9, 11, 8), stride=(2, 1)), _model(DW, in_shape=(1, 9, 11, 6)), too_wide):
        assert _pairs_defined(raw, tmp_path) == []
    for raw in (fits, relu, strided, too_wide):
        _check(raw, tmp_path)


@pytest.mark.qemu
@pytest.mark.parametrize("case", ["3x3-stride1", "3x3-full-range", "3x3-stride2-exact", "5x5-tail",
                                  "pairs-valid-odd-batches", "pairs-relu6-odd", "pairs-stride2-even",
                                  "pairs-stride2-odd-valid"])
def test_dsp_paths_on_qemu_cortex_m4_match_tflm(tmp_path: Path, arm_tools: tuple[str, str],
                                                case: str) -> None:
    """The SXTB16/SMLAxy/SMMULR code only runs on a DSP core: check it there."""
    from harness.build import build_firmware
    from harness.targets import find_target
    from tests import test_firmware as fw

    raw = {
        "3x3-stride1": lambda: _dw_model(channels=12, hw=(9, 10)),
        # No activation: the clamp is the int8 range, a plain SSAT.
        "3x3-full-range": lambda: _dw_model(channels=8, hw=(7, 8), act="NONE"),
        "3x3-stride2-exact": lambda: _dw_model(channels=8, hw=(9, 10), stride=2, in_scale=0.3,
                                               w_scale=0.02, out_scale=0.01, wmax=1),
        "5x5-tail": lambda: _dw_model(channels=7, hw=(7, 6), kernel=5),
        # The paired rows (th_dw_pairs.h): no padding columns, an odd width (a last
        # pixel alone), two batches; then a clamp narrower than int8.
        "pairs-valid-odd-batches": lambda: _model(DW, in_shape=(2, 6, 9, 16), padding="VALID"),
        "pairs-relu6-odd": lambda: _model(DW, in_shape=(1, 7, 7, 24), act="RELU6"),
        # Stride 2: an even input (SAME pads only after), an odd one with VALID.
        "pairs-stride2-even": lambda: _model(DW, in_shape=(1, 8, 12, 16), stride=(2, 2)),
        "pairs-stride2-odd-valid": lambda: _model(DW, in_shape=(2, 9, 11, 8), stride=(2, 2), padding="VALID"),
    }[case]()
    path = tmp_path / f"dw_{case}.tflite"
    path.write_bytes(raw)
    model = load_model(path)
    target = find_target("cortex-m4")
    image = build_firmware(generate(model), target, cache_dir=tmp_path / "fw")
    reference = Reference(model)
    dut = fw.QemuDut(target, image.elf)
    try:
        for sample in random_samples(model, 3, seed=4):
            got = dut.infer_output(sample.inputs[0].tobytes())
            want = reference.run(sample.inputs)[0]
            assert len(np.unique(want)) > 8, "degenerate test"
            assert got == want.tobytes(), sample.name
    finally:
        dut.close()
