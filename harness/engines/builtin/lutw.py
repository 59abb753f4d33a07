"""LUT-compressed FULLY_CONNECTED weights kept packed in flash (th_fully_connected_s8_lut).

A weight tensor the model file stores LUT-compressed (``Tensor.lut``, harness.lut)
reaches the lowering decoded; for an int8 FULLY_CONNECTED on the portable / DSP
kernels (not Helium) the lowering emits the indices and value tables instead, and
the kernel looks each weight up where it multiplies it (two rows at a time, no
scratch; on Cortex-M4 57 instructions per 16 MACs for 4-bit indices, against 21
for int8 weights: each weight costs an extract, a table load and its own
multiply). The same int8 weights enter the same int32 sums; only where they come
from changes.

What the kernel takes (``th_fc_lut``, th_fully_connected.h):

* indices: each row's depth padded to a multiple of 8 (the padding is never read)
  and cut into groups of 8 indices, each packed into ``bits`` bytes (index ``j`` of
  a group in bits ``[j * bits, (j + 1) * bits)`` of the group's little-endian
  integer: byte-aligned for every width; for 4 bits one word whose nibble ``j`` is
  weight ``j``); rows in pairs, interleaved group by group (row 2k's group g, then
  row 2k + 1's), an odd last row alone, so the kernel reads a pair's indices for
  eight inputs with one LDRD;
* one table of ``stride`` int8 values per row (TFLM's per-channel tables along the
  output axis, as the file stores them), or one table for every row (per-tensor
  LUT: ``table_stride`` 0).

Anything else (tables along another axis, other weight types, Helium's kernel, a
packed form that would not be smaller than the int8 rows) keeps the decoded int8
weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.model import Model, Operator


@dataclass(frozen=True)
class FcLut:
    """What th_fully_connected_s8_lut takes for one FULLY_CONNECTED."""

    indices: np.ndarray  # uint8, packed as the module says
    tables: np.ndarray  # int8 [tables, stride]
    bits: int
    table_stride: int  # values per row's table; 0: one table for all rows

    @property
    def flash_bytes(self) -> int:
        return int(self.indices.size + self.tables.size)


def _groups(indices: np.ndarray, bits: int) -> np.ndarray:
    """[rows, depth] indices -> [rows, groups, bits] bytes: rows padded to a multiple of 8
    (index 0, never read), each group of 8 as ``bits`` little-endian bytes."""
    rows, depth = indices.shape
    dp = (depth + 7) // 8 * 8
    padded = np.zeros((rows, dp), dtype=np.uint64)
    padded[:, :depth] = indices
    groups = padded.reshape(rows, dp // 8, 8)
    words = (groups << (np.arange(8, dtype=np.uint64) * np.uint64(bits))).sum(axis=2, dtype=np.uint64)
    by = (words[..., None] >> (np.arange(bits, dtype=np.uint64) * np.uint64(8))) & np.uint64(0xFF)
    out: np.ndarray = by.astype(np.uint8)
    return out


def pack_indices(indices: np.ndarray, bits: int) -> np.ndarray:
    """[rows, depth] indices -> the kernel's bytes: pairs of rows interleaved group by
    group (row 2k's group g, row 2k + 1's group g, ...), an odd last row alone."""
    g = _groups(indices, bits)
    pairs = g.shape[0] // 2 * 2
    body = g[:pairs].reshape(pairs // 2, 2, g.shape[1], bits).transpose(0, 2, 1, 3).reshape(-1)
    out: np.ndarray = np.concatenate([body, g[pairs:].reshape(-1)])
    return out


def unpack_indices(packed: np.ndarray, bits: int, rows: int, depth: int) -> np.ndarray:
    """:func:`pack_indices` inverted (for tests and checks)."""
    n_groups = (depth + 7) // 8
    by = np.asarray(packed, np.uint8)
    pairs = rows // 2 * 2
    body = by[:pairs * n_groups * bits].reshape(pairs // 2, n_groups, 2, bits).transpose(0, 2, 1, 3)
    g = np.concatenate([body.reshape(pairs, n_groups, bits),
                        by[pairs * n_groups * bits:].reshape(rows - pairs, n_groups, bits)]).astype(np.uint64)
    words = (g << (np.arange(bits, dtype=np.uint64) * np.uint64(8))).sum(axis=2, dtype=np.uint64)
    idx = (words[..., None] >> (np.arange(8, dtype=np.uint64) * np.uint64(bits))) & np.uint64((1 << bits) - 1)
    out: np.ndarray = idx.reshape(rows, n_groups * 8)[:, :depth].astype(np.uint8)
    return out


def fc_lut(model: Model, op: Operator, isa: str = "") -> FcLut | None:
    """The packed weights of an int8 FULLY_CONNECTED whose weights came LUT-compressed,
    or None when the op takes its decoded int8 weights (see the module)."""
    from harness.engines.builtin.scratch import fc_depth

    if isa == "mve" or op.name != "FULLY_CONNECTED" or len(op.inputs) < 2 or min(op.inputs[:2]) < 0:
        return None
    inp, filt = model.tensors[op.inputs[0]], model.tensors[op.inputs[1]]
    lut = filt.lut
    if (lut is None or inp.dtype != "int8" or filt.dtype != "int8" or len(filt.shape) != 2
            or filt.quant is None or any(z != 0 for z in filt.quant.zero_points)
            or lut.tables.dtype != np.int8 or lut.axis not in (0, None)):
        return None
    out_depth, depth = filt.shape
    if depth < 1 or out_depth < 1 or (lut.axis == 0 and lut.tables.shape[0] != out_depth):
        return None
    tables = lut.tables if lut.axis == 0 else lut.tables[:1]
    packed = pack_indices(lut.indices.reshape(out_depth, depth), lut.bits)
    if packed.size + tables.size >= out_depth * fc_depth(depth):  # fc_weights' bytes
        return None
    return FcLut(packed, np.ascontiguousarray(tables, dtype=np.int8), lut.bits,
                 int(tables.shape[1]) if lut.axis == 0 else 0)
