"""FULLY_CONNECTED edge cases against TFLM, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.synth import ModelBuilder
from tests.conftest import check_synthetic


def _fc_model(per_channel: bool, act: str, in_zp: int, out_zp: int, batches: int, bias: bool) -> bytes:
    rng = np.random.default_rng(7)
    depth, units = 37, 11  # odd sizes on purpose
    b = ModelBuilder()
    x = b.tensor("x", [batches, depth], scale=0.07, zero_point=in_zp)
    scales = list(rng.uniform(0.002, 0.02, units)) if per_channel else 0.01
    w = b.const("w", rng.integers(-127, 128, (units, depth)), scales=scales, axis=0)
    inputs = [x, w]
    if bias:
        bscales = [0.07 * s for s in scales] if per_channel else 0.07 * 0.01
        inputs.append(b.const("b", rng.integers(-3000, 3000, units), dtype="int32", scales=bscales))
    else:
        inputs.append(-1)
    y = b.tensor("y", [batches, units], scale=0.9, zero_point=out_zp)
    b.op("FULLY_CONNECTED", inputs, [y], fused_activation_function=act)
    return b.build([x], [y])


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6"])
def test_fc_matches_tflm(tmp_path: Path, per_channel: bool, act: str) -> None:
    check_synthetic(_fc_model(per_channel, act, in_zp=5, out_zp=-7, batches=3, bias=True), tmp_path)


@pytest.mark.parametrize("in_zp,out_zp", [(-128, 127), (127, -128)])
def test_fc_zero_point_extremes_without_bias(tmp_path: Path, in_zp: int, out_zp: int) -> None:
    check_synthetic(_fc_model(False, "NONE", in_zp, out_zp, batches=1, bias=False), tmp_path)
