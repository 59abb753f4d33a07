"""The SMLAD paths of int8 CONV_2D and FULLY_CONNECTED (th_simd.h, th_conv2d_s8.c,
th_fully_connected_s8.c) at sizes that are not multiples of their blocks.

The kernels pad rows to 8, take output channels in pairs, conv pixels in
threes and FC rows in fours; these shapes leave a remainder in each. On the host they run th_simd.h's C
emulation; under QEMU (cortex-m4, cortex-m7) the real DSP instructions.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import random_samples
from harness.engines.builtin import generate, requant
from harness.engines.builtin.codegen import KERNEL_DIR
from harness.engines.builtin.ops.conv import conv_weights
from harness.engines.builtin.ops.fully_connected import fc_weights
from harness.engines.builtin.scratch import scratch_bytes
from harness.model import Model, load_model
from harness.reference import Reference
from harness.synth import ModelBuilder
from tests.conftest import check_synthetic
from tests.test_conv import _model as conv_model


@pytest.mark.parametrize("in_c,out_c", [(1, 1), (3, 7), (5, 2), (7, 9), (9, 3)])
@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (2, 5)])
def test_conv_odd_channels(tmp_path: Path, in_c: int, out_c: int, kernel: tuple[int, int]) -> None:
    check_synthetic(conv_model("CONV_2D", in_shape=(1, 7, 5, in_c), kernel=kernel, out_c=out_c), tmp_path)


@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (2, 1)])
def test_pointwise_whole_words(tmp_path: Path, stride: tuple[int, int]) -> None:
    """1x1 with in_c a multiple of 4: the word-at-a-time column fill, across batches."""
    check_synthetic(conv_model("CONV_2D", in_shape=(2, 5, 7, 8), kernel=(1, 1), out_c=5,
                               stride=stride), tmp_path)


def _patch_rows(raw: bytes, tmp_path: Path) -> list[int]:
    path = tmp_path / "rows.tflite"
    path.write_bytes(raw)
    return [int(m) for m in re.findall(r"\.patch_row = (\d+)", generate(load_model(path)).sources["th_model.c"])]


# An RGB first layer (VWW, IC): 3x3 over 3 channels, rows of 9 bytes padded to 12.
FEW_CHANNELS = [
    dict(in_shape=(1, 9, 8, 3), out_c=8, stride=(1, 1), padding="SAME"),
    dict(in_shape=(2, 9, 7, 3), out_c=8, stride=(2, 2), padding="SAME"),
    dict(in_shape=(1, 7, 9, 3), out_c=6, stride=(1, 2), padding="VALID"),
    dict(in_shape=(1, 8, 8, 3), out_c=8, stride=(1, 1), padding="SAME", dilation=(2, 2)),
    dict(in_shape=(1, 6, 7, 1), out_c=4, kernel=(3, 3), stride=(1, 1), padding="SAME"),
]


def test_few_channel_rows_are_padded(tmp_path: Path) -> None:
    """Rows of k_w * in_c bytes are padded to whole words when the zero weights cost
    less than a byte-by-byte copy: 3x3 RGB to 8 channels yes, 5 wide by 1 to 64 no."""
    assert _patch_rows(conv_model("CONV_2D", **FEW_CHANNELS[0]), tmp_path) == [12]
    assert _patch_rows(conv_model("CONV_2D", in_shape=(1, 9, 8, 1), kernel=(3, 5), out_c=64),
                       tmp_path) == [5]
    assert _patch_rows(conv_model("CONV_2D", in_shape=(1, 9, 8, 8), out_c=8), tmp_path) == [24]
    w = np.arange(1, 2 * 3 * 3 * 3 + 1).astype(np.int8).reshape(2, 3, 3, 3)
    got = np.array(conv_weights(w)).reshape(-1, 2, 4)  # [group][channel][4]
    ch0 = got[:, 0].reshape(-1)
    # Channel 0: each 9-weight row then three zeros; 36 -> kp 40.
    assert ch0.tolist() == [*range(1, 10), 0, 0, 0, *range(10, 19), 0, 0, 0, *range(19, 28), 0, 0, 0,
                            0, 0, 0, 0]


@pytest.mark.parametrize("case", range(len(FEW_CHANNELS)))
def test_few_channel_conv(tmp_path: Path, case: int) -> None:
    """Padded rows: borders, strides, batches, dilation, and the last pixels, whose whole
    padded row would read past the input tensor (they copy just the row)."""
    check_synthetic(conv_model("CONV_2D", **FEW_CHANNELS[case]), tmp_path)


@pytest.mark.parametrize("in_shape", [(3, 5, 3, 6), (2, 5, 4, 6), (2, 5, 5, 6)])
def test_conv_batches_and_pixel_remainders(tmp_path: Path, in_shape: tuple[int, int, int, int]) -> None:
    """Pixels go three at a time across the batch boundary: 45, 40 and 50 pixels leave
    none, one and two for the last pass (its spare slots repeat the last pixel)."""
    check_synthetic(conv_model("CONV_2D", in_shape=in_shape, out_c=5, stride=(1, 1)), tmp_path)


def test_conv_input_zero_point_extremes(tmp_path: Path) -> None:
    """x + input_offset spans -255..255 in the int16 columns."""
    for zp in (-128, 127):
        check_synthetic(conv_model("CONV_2D", in_shape=(1, 6, 5, 5), out_c=3, in_zp=zp), tmp_path)


def _fc(depth: int, units: int, batches: int, in_zp: int = 9) -> bytes:
    rng = np.random.default_rng(depth * 31 + units)
    b = ModelBuilder()
    x = b.tensor("x", [batches, depth], scale=0.07, zero_point=in_zp)
    scales = list(rng.uniform(0.002, 0.02, units))
    w = b.const("w", rng.integers(-127, 128, (units, depth)), scales=scales, axis=0)
    bias = b.const("b", rng.integers(-3000, 3000, units), dtype="int32", scales=[0.07 * s for s in scales])
    y = b.tensor("y", [batches, units], scale=0.07 * 0.01 * 73 * 74 * math.sqrt(depth) / 40, zero_point=-3)
    b.op("FULLY_CONNECTED", [x, w, bias], [y], fused_activation_function="NONE")
    return b.build([x], [y])


@pytest.mark.parametrize("depth,units", [(1, 1), (3, 2), (5, 7), (9, 4), (13, 3), (31, 5), (17, 11),
                                         (8, 4), (24, 7)])
@pytest.mark.parametrize("batches", [1, 2])
def test_fc_odd_sizes(tmp_path: Path, depth: int, units: int, batches: int) -> None:
    """Depths with and without a tail of depth % 8 inputs, rows by four, pairs and singles;
    a second batch starts at any byte (depth odd)."""
    check_synthetic(_fc(depth, units, batches), tmp_path)


def test_fc_input_zero_point_extremes(tmp_path: Path) -> None:
    """x + input_offset spans -255..255 in the lanes widened inside the block loop."""
    for zp in (-128, 127):
        check_synthetic(_fc(21, 7, 2, in_zp=zp), tmp_path)


def test_fc_needs_no_scratch(tmp_path: Path) -> None:
    """FULLY_CONNECTED widens its input group by group: no th_scratch, none counted."""
    path = tmp_path / "fc.tflite"
    path.write_bytes(_fc(640, 128, 1))
    model = load_model(path)
    assert scratch_bytes(model) == 0
    src = generate(model).sources["th_model.c"]
    assert "th_fully_connected_s8_simd(" in src and "th_scratch" not in src


def test_conv_weight_layout() -> None:
    """Channel pairs interleaved by groups of 4, rows padded to 8, an odd channel last."""
    w = np.arange(3 * 1 * 1 * 5, dtype=np.int8).reshape(3, 1, 1, 5)
    got = conv_weights(w).tolist()
    assert got == [0, 1, 2, 3, 5, 6, 7, 8, 4, 0, 0, 0, 9, 0, 0, 0,
                   10, 11, 12, 13, 14, 0, 0, 0]
    assert fc_weights(w.reshape(3, 5)).tolist() == got
    # Seven rows: a block of four, a pair, a single row.
    rows = np.arange(1, 8, dtype=np.int8).reshape(7, 1).repeat(8, axis=1)
    assert fc_weights(rows).reshape(-1, 4)[:, 0].tolist() == [1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 5, 6, 7, 7]


def _chain(conv_act: str = "NONE", huge_bias: bool = False, pruned: bool = False) -> bytes:
    """CONV_2D (3 -> 7 channels, 35 pixels) feeding FULLY_CONNECTED (245 -> 13).

    ``conv_act`` RELU makes the conv's requantization clamp (not SSAT);
    ``huge_bias`` gives one FC output a bias of 2^30 (that output saturates), so
    no bound proves the fast requantization and the FC takes th_requant's
    general path. ``pruned`` zeroes conv channel 2 and FC row 3 the way
    quantizers leave pruned channels (VWW has such): a weight scale so small that
    the multiplier quantizes to 0 (shift 0) and a bias of INT32_MIN, which must
    not force the general path; conv channels 4 and 5 get zero weights and
    biases beyond +-2^30 (constant outputs, requant.constant_channels).
    """
    rng = np.random.default_rng(5)
    b = ModelBuilder()
    x = b.tensor("x", (1, 7, 5, 3), scale=0.02, zero_point=7)
    cw_scales = list(rng.uniform(0.5, 1.5, 7) * 0.004)
    cw_values = rng.integers(-127, 128, (7, 3, 3, 3))
    cb_values = rng.integers(-2000, 2000, 7)
    if pruned:
        cw_scales[2], cw_values[2], cb_values[2] = 1e-30, 0, -(2**31)
        # Dead channels with a live scale: constant outputs from biases of +-2^30.
        cw_values[4], cb_values[4] = 0, 2**30 + 77
        cw_values[5], cb_values[5] = 0, -(2**30) - 3
    cw = b.const("cw", cw_values, scales=cw_scales, axis=0)
    cb = b.const("cb", cb_values, dtype="int32", scales=[0.02 * s for s in cw_scales])
    h = b.tensor("h", (1, 7, 5, 7), scale=0.05, zero_point=-4)
    b.op("CONV_2D", [x, cw, cb], [h], padding="SAME", stride_h=1, stride_w=1,
         dilation_h_factor=1, dilation_w_factor=1, fused_activation_function=conv_act)
    fw_scales = list(rng.uniform(0.002, 0.006, 13))
    fw_values = rng.integers(-127, 128, (13, 245))
    fb_values = rng.integers(-2000, 2000, 13)
    if huge_bias:
        fb_values[0] = 2**30
    if pruned:
        fw_scales[3], fw_values[3], fb_values[3] = 1e-30, 0, -(2**31)
    fw = b.const("fw", fw_values, scales=fw_scales, axis=0)
    fb = b.const("fb", fb_values, dtype="int32", scales=[0.05 * s for s in fw_scales])
    y = b.tensor("y", (1, 13), scale=0.05 * 0.004 * 73 * 60 * math.sqrt(245) / 40, zero_point=2)
    b.op("FULLY_CONNECTED", [h, fw, fb], [y], fused_activation_function="NONE")
    return b.build([x], [y])


CHAINS = [("NONE", False, False), ("RELU", True, False), ("RELU", False, True)]


def _modes(raw: bytes, tmp_path: Path) -> list[int]:
    path = tmp_path / "modes.tflite"
    path.write_bytes(raw)
    gen = generate(load_model(path))
    return [int(m) for m in re.findall(r"\.requant_mode = (\d+)", gen.sources["th_model.c"])]


def test_chain_requant_modes(tmp_path: Path) -> None:
    """The two chains between them take all three requantization paths."""
    assert _modes(_chain(*CHAINS[0]), tmp_path) == [requant.FAST_SAT8, requant.FAST_SAT8]
    assert _modes(_chain(*CHAINS[1]), tmp_path) == [requant.FAST, requant.EXACT]
    # Pruned channels (multiplier 0, bias INT32_MIN) leave both on the fast paths.
    assert _modes(_chain(*CHAINS[2]), tmp_path) == [requant.FAST, requant.FAST_SAT8]


@pytest.mark.parametrize("conv_act,huge_bias,pruned", CHAINS)
def test_chain_on_host(tmp_path: Path, conv_act: str, huge_bias: bool, pruned: bool) -> None:
    check_synthetic(_chain(conv_act, huge_bias, pruned), tmp_path)


def test_requant_mode_bounds() -> None:
    rows = np.full((2, 4), 127)
    assert requant.mode(rows, None, 0, [-1, -31], -128, 127) == requant.FAST_SAT8
    assert requant.mode(rows, None, 0, [-1, -5], 0, 127) == requant.FAST
    assert requant.mode(rows, None, 0, [0, -5], -128, 127) == requant.EXACT
    assert requant.mode(rows, np.array([2**30, 0]), 0, [-1, -5], -128, 127) == requant.EXACT
    # |acc| reaches 4 * 127 * 255 with input offset 127 (x = 128 + 127).
    assert requant.mode(np.full((1, 34000), 127), None, 127, [-3], -128, 127) == requant.EXACT


def test_constant_channels_keep_their_value() -> None:
    """A dead channel's new (4 V, 2^30, -1) gives the same clamped output as its own
    bias and scale on TFLite's arithmetic; live channels are left alone."""
    mbqm = requant.multiply_by_quantized_multiplier
    assert [mbqm(100, 1 << 30, -1), mbqm(-100, 1 << 30, -1), mbqm(3, 1 << 30, 0)] == [25, -25, 2]
    rng = np.random.default_rng(3)
    rows = rng.integers(-5, 6, (40, 9))
    rows[::2] = 0
    bias = rng.integers(-(2**31), 2**31, 40)
    mults = [int(m) for m in rng.integers(1 << 30, 1 << 31, 40)]
    shifts = [int(v) for v in rng.integers(-31, 3, 40)]
    got = requant.constant_channels(rows, bias, mults, shifts)
    assert got is not None
    b2, m2, s2 = got
    for c in range(40):
        if c % 2:
            assert (b2[c], m2[c], s2[c]) == (bias[c], mults[c], shifts[c])
            continue
        assert (m2[c], s2[c]) == (1 << 30, -1) and abs(int(b2[c])) < 2**30
        for off in (-128, 0, 127):
            want = min(127, max(-128, mbqm(int(bias[c]), mults[c], shifts[c]) + off))
            assert min(127, max(-128, mbqm(int(b2[c]), m2[c], s2[c]) + off)) == want
    assert requant.constant_channels(rows[1::2], bias[1::2], mults[1::2], shifts[1::2]) is None


@pytest.mark.qemu
@pytest.mark.parametrize("conv_act,huge_bias,pruned", CHAINS)
@pytest.mark.parametrize("target_name", ["cortex-m4", "cortex-m7"])
def test_chain_on_qemu_matches_tflm(tmp_path: Path, arm_tools: tuple[str, str], target_name: str,
                                    conv_act: str, huge_bias: bool, pruned: bool) -> None:
    """The DSP instructions themselves (SXTB16, SXTAB16, SMLAD, SMMULR, SSAT) against TFLM."""
    _qemu_matches_tflm(_chain(conv_act, huge_bias, pruned), target_name, tmp_path)


@pytest.mark.qemu
@pytest.mark.parametrize("target_name", ["cortex-m4", "cortex-m7"])
def test_fc_on_qemu_matches_tflm(tmp_path: Path, arm_tools: tuple[str, str], target_name: str) -> None:
    """The FULLY_CONNECTED assembly loop reading its input in place: three batches of 29
    (rows start at unaligned addresses, a 5-input tail), 7 rows (four, a pair, one)."""
    _qemu_matches_tflm(_fc(29, 7, 3, in_zp=-128), target_name, tmp_path)


@pytest.mark.qemu
@pytest.mark.parametrize("target_name", ["cortex-m4"])
def test_few_channel_conv_on_qemu_matches_tflm(tmp_path: Path, arm_tools: tuple[str, str],
                                               target_name: str) -> None:
    """The padded-row column fill on the DSP build, two batches of an RGB stride-2 conv."""
    _qemu_matches_tflm(conv_model("CONV_2D", **FEW_CHANNELS[1]), target_name, tmp_path)


@pytest.mark.qemu
def test_conv_without_bias_on_qemu_matches_tflm(tmp_path: Path, arm_tools: tuple[str, str]) -> None:
    """No bias tensor: the assembly pair loop reads a block of zeros instead; 21 output
    channels are a block of 16, one of 4 and a last single channel."""
    _qemu_matches_tflm(conv_model("CONV_2D", in_shape=(1, 6, 5, 8), out_c=21, bias="absent"), "cortex-m4",
                       tmp_path)


@pytest.mark.qemu
def test_pointwise_on_qemu_matches_tflm(tmp_path: Path, arm_tools: tuple[str, str]) -> None:
    """1x1, stride 1: columns filled straight from input pixels n, n + 1, n + 2 (no
    geometry), two batches of 35 pixels (the last pass has one real pixel)."""
    _qemu_matches_tflm(conv_model("CONV_2D", in_shape=(2, 5, 7, 8), kernel=(1, 1), out_c=10), "cortex-m4",
                       tmp_path)


def _qemu_matches_tflm(raw: bytes, target_name: str, tmp_path: Path) -> None:
    from harness.build import build_firmware
    from harness.targets import find_target
    from tests import test_firmware as fw

    path = tmp_path / "gemm.tflite"
    path.write_bytes(raw)
    model: Model = load_model(path)
    target = find_target(target_name)
    image = build_firmware(generate(model), target, cache_dir=tmp_path / "fw")
    reference = Reference(model)
    dut = fw.QemuDut(target, image.elf)
    try:
        for sample in random_samples(model, 3, seed=4):
            got = dut.infer_output(sample.inputs[0].tobytes())
            want = b"".join(a.tobytes() for a in reference.run(sample.inputs))
            assert len(set(want)) >= 5, "degenerate test: outputs barely vary"
            assert got == want, sample.name
    finally:
        dut.close()


_SHIM_MAIN = r"""
#include <stdio.h>
#include "th_simd.h"
int main(void) {
    uint32_t a, b;
    long acc;
    while (scanf("%lu %lu %ld", (unsigned long *)&a, (unsigned long *)&b, &acc) == 3) {
        printf("%lu %lu %lu %lu %ld\n", (unsigned long)th_sxtb16(a), (unsigned long)th_sxtb16_ror8(a),
               (unsigned long)th_sxtab16(b, a), (unsigned long)th_sxtab16_ror8(b, a),
               (long)th_smlad(a, b, (int32_t)acc));
    }
    return 0;
}
"""


def _lanes(v: int) -> tuple[int, int]:
    lo, hi = v & 0xFFFF, v >> 16
    return (lo - (1 << 16) if lo >= 1 << 15 else lo), (hi - (1 << 16) if hi >= 1 << 15 else hi)


def _byte(v: int, i: int) -> int:
    x = (v >> (8 * i)) & 0xFF
    return x - 256 if x >= 128 else x


def _pack(lo: int, hi: int) -> int:
    return (lo & 0xFFFF) | ((hi & 0xFFFF) << 16)


def test_simd_shim_emulation(tmp_path: Path) -> None:
    """th_simd.h's C emulation (the host and RV32 build) against the Arm definitions."""
    cc = shutil.which("gcc") or pytest.skip("no host gcc")
    src = tmp_path / "shim.c"
    src.write_text(_SHIM_MAIN)
    exe = tmp_path / "shim"
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Werror", f"-I{KERNEL_DIR}", str(src), "-o", str(exe)],
                   check=True)
    rng = np.random.default_rng(3)
    words = [0, 0xFFFFFFFF, 0x80808080, 0x7F7F7F7F, 0x807F7F80, *rng.integers(0, 2**32, 60).tolist()]
    cases = [(a, b, int(rng.integers(-2**31, 2**31))) for a in words for b in words[::7]]
    cases += [(0x80008000, 0x80008000, 2**31 - 1)]  # SMLAD wraps
    out = subprocess.run([str(exe)], input="".join(f"{a} {b} {c}\n" for a, b, c in cases),
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert len([ln for ln in out if ln]) == len(cases)
    for (a, b, acc), line in zip(cases, out):
        got = [int(v) for v in line.split()]
        b0, b1 = _lanes(b)
        a0, a1 = _lanes(a)
        smlad = (acc + a0 * b0 + a1 * b1 + 2**31) % 2**32 - 2**31
        want = [_pack(_byte(a, 0), _byte(a, 2)), _pack(_byte(a, 1), _byte(a, 3)),
                _pack(b0 + _byte(a, 0), b1 + _byte(a, 2)), _pack(b0 + _byte(a, 1), b1 + _byte(a, 3)),
                smlad]
        assert got == want, (hex(a), hex(b), acc)
