"""SOFTMAX int8 -> int8 against TFLM, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.engines.builtin import quant
from harness.engines.builtin.codegen import generate
from harness.errors import UnsupportedOpError
from harness.model import load_model
from harness.synth import ModelBuilder
from tests.conftest import check_synthetic


def _softmax_model(shape: list[int], scale: float, zp: int = 0, beta: float = 1.0,
                   out_scale: float = 1.0 / 256, out_zp: int = -128) -> bytes:
    b = ModelBuilder()
    x = b.tensor("x", shape, scale=scale, zero_point=zp)
    y = b.tensor("y", shape, scale=out_scale, zero_point=out_zp)
    b.op("SOFTMAX", [x], [y], beta=beta)
    return b.build([x], [y])


# Random int8 inputs span 255 quanta. TFLM aborts once a row's sum of exps
# reaches 512, so wide rows need an input scale that spreads them out.
CASES = {
    # name: (shape, input scale, zero point)
    "w2_small_scale": ([64, 2], 0.004, 0),
    "w2_large_scale": ([64, 2], 0.5, -10),
    "w10": ([3, 10], 0.05, 17),
    "w12_tiny_scale": ([2, 4, 12], 0.0009, -128),
    "w12_large_scale": ([5, 12], 0.25, 127),
    "w12_huge_scale": ([5, 12], 8.0, 0),
    "w1001": ([1, 1001], 0.03, 0),
    "w1001_large_scale": ([2, 1001], 0.2, -50),
    "w1": ([7, 1], 0.1, 0),
}


@pytest.mark.parametrize("beta", [1.0, 0.5])
@pytest.mark.parametrize("case", sorted(CASES))
def test_softmax_matches_tflm(tmp_path: Path, case: str, beta: float) -> None:
    shape, scale, zp = CASES[case]
    check_synthetic(_softmax_model(shape, scale, zp, beta), tmp_path, name=case, count=12)


@pytest.mark.parametrize("beta", [0.25, 2.0, 3.7])
def test_softmax_other_betas(tmp_path: Path, beta: float) -> None:
    check_synthetic(_softmax_model([16, 10], 0.03, 3, beta), tmp_path, count=12)


def test_softmax_in_place_after_add(tmp_path: Path) -> None:
    """SOFTMAX reading an arena tensor that dies there writes over it."""
    b = ModelBuilder()
    x = b.tensor("x", [4, 12], scale=0.02, zero_point=0)
    c = b.const("c", np.arange(12).reshape(1, 12) * 20 - 120, scales=0.01, zero_point=0)
    s = b.tensor("s", [4, 12], scale=0.03, zero_point=-5)
    y = b.tensor("y", [4, 12], scale=1.0 / 256, zero_point=-128)
    b.op("ADD", [x, c], [s])
    b.op("SOFTMAX", [s], [y], beta=1.0)
    check_synthetic(b.build([x], [y]), tmp_path)


def test_softmax_scaling_matches_tflm_formula() -> None:
    # beta * scale * 2^26, capped at 2^31 - 1: a huge scale saturates the multiplier.
    m, shift = quant.preprocess_softmax_scaling(1.0, 1000.0, 5)
    assert (m, shift) == ((1 << 31) - 1, 31)
    assert quant.calculate_input_radius(5, shift) == 0
    m, shift = quant.preprocess_softmax_scaling(1.0, 1.0 / 16, 5)
    assert (m, shift) == (1 << 30, 23)
    assert quant.calculate_input_radius(5, shift) == 248


@pytest.mark.parametrize("out_scale,out_zp", [(1.0 / 255, -128), (1.0 / 256, 0)])
def test_softmax_rejects_other_output_quantization(tmp_path: Path, out_scale: float, out_zp: int) -> None:
    path = tmp_path / "bad_softmax.tflite"
    path.write_bytes(_softmax_model([1, 10], 0.1, 0, 1.0, out_scale, out_zp))
    with pytest.raises(UnsupportedOpError, match="zero point -128 and scale 1/256"):
        generate(load_model(path))
