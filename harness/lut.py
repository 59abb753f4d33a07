"""tflite-micro LUT compression: decoded at load time, the packed form kept beside it.

A LUT-compressed model (``tflite_micro.compression``) stores a weight tensor as
packed indices (uint8) plus an ancillary tensor (a 16-byte DECODE common metadata
header and the value tables), and runs a custom TFLM_DECODE op before each
consumer. :func:`decode_model` turns each DECODE output back into a plain constant
and drops the DECODE ops, so every engine lowering (and anything else reading the
model) sees ordinary int8 weights; the decoded tensor also carries what it was
decoded from (``Tensor.lut``, a :class:`LutWeights`: indices, bit width, value
tables, channel axis) and the model counts the dropped ops (``Model.decode_ops``,
which the TFLM engine registers DECODE for).

The builtin engine's int8 FULLY_CONNECTED lowering emits the indices and tables
instead of the int8 weights and looks each weight up inside the kernel
(``harness.engines.builtin.lutw``); other lowerings (CONV_2D, DEPTHWISE_CONV_2D,
the Helium kernels) use the decoded values, so their flash holds int8 weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from harness.errors import ModelError
from harness.model import Model, Tensor

DECODE_OP = "CUSTOM:TFLM_DECODE"
_DCM_SIZE = 16
_LUT = 0
_PER_TENSOR_AXIS = 0xF


@dataclass(frozen=True)
class LutWeights:
    """A constant as the file stores it LUT-compressed: value ``i`` of the tensor is
    ``tables[channel(i), indices.flat[i]]``, where ``channel(i)`` is ``i``'s coordinate
    along ``axis`` (``axis`` None: one table, ``tables`` has one row)."""

    indices: np.ndarray  # uint8, the tensor's shape, each below ``tables.shape[1]``
    bits: int  # 1..7: index width in the file
    tables: np.ndarray  # [tables, values per table] of the tensor's type
    axis: int | None  # the channel axis the tables run along; None: per tensor

    def values(self) -> np.ndarray:
        if self.axis is None:
            out: np.ndarray = self.tables[0][self.indices]
            return out
        shape = self.indices.shape
        channel = np.arange(shape[self.axis]).reshape([-1 if d == self.axis else 1 for d in range(len(shape))])
        out = self.tables[np.broadcast_to(channel, shape), self.indices]
        return out


def parse_lut(encoded: np.ndarray, ancillary: np.ndarray, out: Tensor) -> LutWeights:
    """Unpack the indices and value tables of ``out``'s DECODE inputs."""
    anc = np.asarray(ancillary, np.uint8).tobytes()
    if len(anc) < _DCM_SIZE or anc[0] != _LUT:
        kind = anc[0] if anc else None
        raise ModelError(f"DECODE of '{out.name}': decode type {kind} is not LUT (0); only LUT is supported")
    axis, bits, stride = anc[5] >> 4, anc[5] & 0x7, anc[6]
    if not 1 <= bits <= 7:
        raise ModelError(f"DECODE of '{out.name}': LUT index width {bits} bits is outside 1..7")
    n = out.num_elements
    bitstream = np.unpackbits(np.asarray(encoded, np.uint8).reshape(-1))[: n * bits]
    if bitstream.size < n * bits:
        raise ModelError(f"DECODE of '{out.name}': {encoded.size} bytes of indices for {n} values of {bits} bits")
    weights = 1 << np.arange(bits - 1, -1, -1)
    idx = (bitstream.reshape(n, bits) @ weights).astype(np.uint8).reshape(out.shape)
    flat = np.frombuffer(anc[_DCM_SIZE:], dtype=out.numpy_dtype)
    per_tensor = axis == _PER_TENSOR_AXIS
    if not per_tensor and not 0 <= axis < len(out.shape):
        raise ModelError(f"DECODE of '{out.name}': LUT axis {axis} outside the tensor's {len(out.shape)} dimensions")
    count = 1 if per_tensor else out.shape[axis]
    if stride < 1 or flat.size < count * stride or int(idx.max(initial=0)) >= stride:
        raise ModelError(f"DECODE of '{out.name}': {flat.size} table values for {count} tables of {stride} "
                         f"(largest index {int(idx.max(initial=0))}): corrupt file")
    tables = flat[: count * stride].reshape(count, stride).copy()
    return LutWeights(idx, bits, tables, None if per_tensor else int(axis))


def decode_lut(encoded: np.ndarray, ancillary: np.ndarray, out: Tensor) -> np.ndarray:
    """Expand packed indices through the value tables into ``out``'s shape and type."""
    return parse_lut(encoded, ancillary, out).values().reshape(out.shape).astype(out.numpy_dtype)


def decode_model(model: Model) -> Model:
    """``model`` with every TFLM_DECODE output a constant and the DECODE ops removed."""
    tensors = list(model.tensors)
    kept = []
    for op in model.operators:
        if op.name != DECODE_OP:
            kept.append(op)
            continue
        if len(op.inputs) != 2 * len(op.outputs):
            raise ModelError(f"{model.path}: operator #{op.index} TFLM_DECODE has {len(op.inputs)} inputs "
                             f"for {len(op.outputs)} outputs (expected 2 per output)")
        for k, o in enumerate(op.outputs):
            enc, anc = (model.tensors[i] for i in op.inputs[2 * k:2 * k + 2])
            if enc.data is None or anc.data is None:
                raise ModelError(f"{model.path}: operator #{op.index} TFLM_DECODE reads a non-constant tensor")
            out = model.tensors[o]
            lut = parse_lut(enc.data, anc.data, out)
            tensors[o] = replace(out, data=lut.values().reshape(out.shape).astype(out.numpy_dtype), lut=lut)
    ops = tuple(replace(op, index=i) for i, op in enumerate(kept))
    return replace(model, tensors=tuple(tensors), operators=ops, decode_ops=len(model.operators) - len(kept))
