"""LUT-compressed FULLY_CONNECTED weights decoded at run time (th_fully_connected_s8_lut).

tflite-micro's compression (``tflite_micro.compression``, in the tflite-micro wheel)
stores a weight tensor as packed indices and per-channel value tables; the builtin
engine keeps that form in flash (harness.engines.builtin.lutw) and looks each weight
up in the kernel. These tests compress synthetic models at every index width, with
odd depths and row counts, and check every output against TFLM's interpreter (which
runs the DECODE ops itself): on the host (the portable C) and under QEMU on
cortex-m4 (the DSP loop), where the ELF's weight bytes must also shrink. Helium
keeps the decoded weights; the tflm engine registers DECODE.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import random_samples
from harness.engines.builtin import generate
from harness.engines.builtin.check import check_model
from harness.engines.builtin.lutw import fc_lut, pack_indices, unpack_indices
from harness.engines.tflm.codegen import DECODE_OP, check_ops
from harness.errors import UnsupportedOpError
from harness.model import Model, load_model
from harness.recipes.cluster import lut_compress
from harness.reference import Reference
from harness.synth import ModelBuilder
from tests.conftest import check_synthetic


def _fc(rows: int, depth: int, levels: int, batches: int = 1, per_tensor: bool = False, seed: int = 0,
        in_zp: int = 5) -> bytes:
    """One int8 FULLY_CONNECTED whose rows take ``levels`` distinct values each (or
    ``levels`` in all, ``per_tensor``), so the compressor picks ceil(log2 levels)-bit indices."""
    rng = np.random.default_rng(seed + 97 * rows + depth)
    b = ModelBuilder()
    x = b.tensor("x", [batches, depth], scale=0.05, zero_point=in_zp)
    if per_tensor:
        scales: list[float] = [0.01]
        values = rng.choice(np.arange(-127, 128), levels, replace=False)
        w = rng.choice(values, (rows, depth))
        w.reshape(-1)[:levels] = values
    else:
        scales = list(rng.uniform(0.004, 0.012, rows))
        w = np.empty((rows, depth), dtype=np.int64)
        for r in range(rows):
            values = rng.choice(np.arange(-127, 128), levels, replace=False)
            w[r] = rng.choice(values, depth)
            w[r, :levels] = values
    wt = b.const("w", w, scales=scales, axis=0)
    bias = b.const("b", rng.integers(-4000, 4000, rows), dtype="int32",
                   scales=[0.05 * s for s in (scales * rows if per_tensor else scales)])
    y = b.tensor("y", [batches, rows], scale=0.05 * 0.008 * 60 * 70 * math.sqrt(depth) / 40, zero_point=-2)
    b.op("FULLY_CONNECTED", [x, wt, bias], [y], fused_activation_function="NONE")
    return lut_compress(b.build([x], [y]), per_tensor=per_tensor)


def _load(raw: bytes, tmp_path: Path, name: str) -> Model:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(raw)
    return load_model(path)


# (bits, rows, depth): every width, odd and even row counts (pairs and a last single row),
# depths with and without a tail of depth % 8, and one below 8 (per tensor).
CASES = [(1, 3, 21), (2, 6, 17), (3, 5, 29), (4, 7, 45), (4, 8, 64), (4, 1, 80), (4, 2, 61), (5, 4, 97),
         (6, 3, 301), (7, 3, 1101)]


@pytest.mark.parametrize("bits,rows,depth", CASES)
@pytest.mark.parametrize("batches", [1, 2])
def test_lut_fc_on_host_equals_tflm(tmp_path: Path, bits: int, rows: int, depth: int, batches: int) -> None:
    raw = _fc(rows, depth, 1 << bits, batches)
    model = _load(raw, tmp_path, "lut")
    op = model.operators[0]
    filt = model.tensors[op.inputs[1]]
    assert model.decode_ops == 1 and filt.lut is not None and filt.lut.bits == bits
    lut = fc_lut(model, op)
    assert lut is not None and lut.bits == bits and lut.table_stride >= 1
    src = generate(model).sources["th_model.c"]
    assert "th_fully_connected_s8_lut(" in src and "th_fully_connected_s8_simd(" not in src
    assert f"th_w_{filt.index}[" not in src  # the decoded int8 weights are not in flash
    check_synthetic(raw, tmp_path, f"lut{bits}", count=6)


@pytest.mark.parametrize("bits,rows,depth", [(2, 5, 7), (4, 9, 70)])
def test_per_tensor_table(tmp_path: Path, bits: int, rows: int, depth: int) -> None:
    """One table for every row (per-tensor LUT on per-tensor weights): table_stride 0."""
    raw = _fc(rows, depth, 1 << bits, per_tensor=True)
    model = _load(raw, tmp_path, "lut_pt")
    lut = fc_lut(model, model.operators[0])
    assert lut is not None and lut.table_stride == 0 and lut.tables.shape[0] == 1
    check_synthetic(raw, tmp_path, "lut_pt", count=6)


def test_input_zero_point_extremes(tmp_path: Path) -> None:
    """x + input_offset spans -255..255 in the lanes SMLABB/SMLABT multiply."""
    for zp in (-128, 127):
        check_synthetic(_fc(6, 45, 16, in_zp=zp), tmp_path, f"lut_zp{zp}", count=6)


def test_index_packing() -> None:
    """Groups of 8 indices in `bits` little-endian bytes; rows in pairs, interleaved by group."""
    rng = np.random.default_rng(1)
    for bits in range(1, 8):
        for rows, depth in ((1, 5), (2, 8), (3, 17), (4, 31)):
            idx = rng.integers(0, 1 << bits, (rows, depth)).astype(np.uint8)
            packed = pack_indices(idx, bits)
            assert packed.size == rows * ((depth + 7) // 8) * bits
            assert np.array_equal(unpack_indices(packed, bits, rows, depth), idx)
    idx = np.array([list(range(8)) + [15] * 8, list(range(8, 16)) + [1] * 8, [3] * 16], dtype=np.uint8)
    words = pack_indices(idx, 4).view("<u4").tolist()
    # row 0 group 0, row 1 group 0, row 0 group 1, row 1 group 1, then row 2 alone.
    assert words == [0x76543210, 0xFEDCBA98, 0xFFFFFFFF, 0x11111111, 0x33333333, 0x33333333]


def test_not_smaller_keeps_int8_weights(tmp_path: Path) -> None:
    """A packed form no smaller than the int8 rows is not used (the same tensor's
    indices counted at 7 bits: 7/8 of the rows plus the tables)."""
    model = _load(_fc(3, 150, 32), tmp_path, "lut_big")
    assert fc_lut(model, model.operators[0]) is not None
    from dataclasses import replace

    from harness.lut import LutWeights

    op = model.operators[0]
    filt = model.tensors[op.inputs[1]]
    assert filt.lut is not None
    wide = LutWeights(filt.lut.indices, 7, filt.lut.tables, 0)
    tensors = list(model.tensors)
    tensors[filt.index] = replace(filt, lut=wide)
    assert fc_lut(replace(model, tensors=tuple(tensors)), op) is None


def test_helium_keeps_the_decoded_weights(tmp_path: Path) -> None:
    raw = _fc(6, 45, 16)
    model = _load(raw, tmp_path, "lut_mve")
    assert fc_lut(model, model.operators[0], "mve") is None
    src = generate(model, "mve").sources["th_model.c"]
    assert "th_fully_connected_s8_mve(" in src and "_lut" not in src
    result = check_model(model, random_samples(model, 4, 0), isa="mve")
    assert result.ok, result.mismatched_samples


def test_tflm_registers_decode(tmp_path: Path) -> None:
    model = _load(_fc(4, 61, 16), tmp_path, "lut_tflm")
    assert check_ops(model, frozenset({"AddFullyConnected", "AddDecode"})) == (DECODE_OP, "FULLY_CONNECTED")
    with pytest.raises(UnsupportedOpError, match="AddDecode"):
        check_ops(model, frozenset({"AddFullyConnected"}))


def _chain() -> bytes:
    """Two FULLY_CONNECTED: 4-bit per channel (41 rows: pairs and a single; depth 150:
    a tail of 6), then 3-bit (the generic path) over the first one's output; batch 2."""
    rng = np.random.default_rng(11)
    b = ModelBuilder()
    x = b.tensor("x", [2, 150], scale=0.05, zero_point=-7)
    tensors = []
    for name, rows, depth, levels in (("w1", 41, 150, 16), ("w2", 7, 41, 8)):
        scales = list(rng.uniform(0.004, 0.012, rows))
        w = np.empty((rows, depth), dtype=np.int64)
        for r in range(rows):
            values = rng.choice(np.arange(-127, 128), levels, replace=False)
            w[r] = rng.choice(values, depth)
            w[r, :levels] = values
        tensors.append((b.const(name, w, scales=scales, axis=0), scales, rows, depth))
    (w1, s1, r1, d1), (w2, s2, r2, _) = tensors
    b1 = b.const("b1", rng.integers(-4000, 4000, r1), dtype="int32", scales=[0.05 * s for s in s1])
    h_scale = 0.05 * 0.008 * 60 * 70 * math.sqrt(d1) / 40
    h = b.tensor("h", [2, r1], scale=h_scale, zero_point=3)
    b.op("FULLY_CONNECTED", [x, w1, b1], [h], fused_activation_function="NONE")
    b2 = b.const("b2", rng.integers(-2000, 2000, r2), dtype="int32", scales=[h_scale * s for s in s2])
    y = b.tensor("y", [2, r2], scale=h_scale * 0.008 * 60 * 70 * math.sqrt(r1) / 40, zero_point=-1)
    b.op("FULLY_CONNECTED", [h, w2, b2], [y], fused_activation_function="RELU")
    return lut_compress(b.build([x], [y]))


def test_chain_on_host(tmp_path: Path) -> None:
    model = _load(_chain(), tmp_path, "lut_chain")
    assert [fc_lut(model, op).bits for op in model.operators] == [4, 3]  # type: ignore[union-attr]
    check_synthetic(_chain(), tmp_path, "lut_chain")


@pytest.mark.qemu
def test_chain_on_qemu_cortex_m4_equals_tflm(tmp_path: Path, arm_tools: tuple[str, str]) -> None:
    """The DSP loop (LDRD of a pair's indices, UBFX, LDRSB, SMLABB/SMLABT) byte for byte
    against the interpreter, and the ELF's weights smaller than with int8 weights."""
    from dataclasses import replace

    from harness.build import build_firmware
    from harness.metrics import elf_sizes
    from harness.targets import find_target
    from tests import test_firmware as fw

    model = _load(_chain(), tmp_path, "lut_chain")
    target = find_target("cortex-m4")
    image = build_firmware(generate(model), target, cache_dir=tmp_path / "fw")
    plain = replace(model, tensors=tuple(replace(t, lut=None) for t in model.tensors))
    plain_image = build_firmware(generate(plain), target, cache_dir=tmp_path / "fw")
    lut_w, int8_w = elf_sizes(image.elf).flash_weights, elf_sizes(plain_image.elf).flash_weights
    # w1: 41 rows x 152 int8 -> 41 x 19 groups x 4 bytes + 41 x 16 table values.
    assert int8_w - lut_w >= 41 * 152 - (41 * 19 * 4 + 41 * 16), (lut_w, int8_w)
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
