"""tflite-micro LUT compression, decoded at build time for the builtin engine.

A LUT-compressed model (``tflite_micro.compression``) stores a weight tensor as
packed indices (uint8) plus an ancillary tensor (a 16-byte DECODE common metadata
header and the value tables), and runs a custom TFLM_DECODE op before each
consumer. :func:`decode_model` turns each DECODE output back into a plain constant
and drops the DECODE ops, so every engine lowering sees ordinary int8 weights.

Why at build time: the builtin engine's kernels take their weights re-laid out and
folded into biases at build time (depthwise SIMD path), which needs the values then;
decoding at run time (TFLM's way) would keep only the packed form in flash but put the
decoded weights in the arena. So the builtin engine's flash holds int8 weights; the
model file's compressed size is reported next to it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.errors import ModelError
from harness.model import Model, Tensor

DECODE_OP = "CUSTOM:TFLM_DECODE"
_DCM_SIZE = 16
_LUT = 0
_PER_TENSOR_AXIS = 0xF


def decode_lut(encoded: np.ndarray, ancillary: np.ndarray, out: Tensor) -> np.ndarray:
    """Expand packed indices through the value tables into ``out``'s shape and type."""
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
    idx = bitstream.reshape(n, bits) @ weights
    tables = np.frombuffer(anc[_DCM_SIZE:], dtype=out.numpy_dtype)
    if axis == _PER_TENSOR_AXIS:
        values = tables[idx]
    else:
        shape = out.shape
        channel = (np.arange(n) // int(np.prod(shape[axis + 1:], dtype=np.int64))) % shape[axis]
        values = tables[channel * stride + idx]
    return values.reshape(out.shape).astype(out.numpy_dtype)


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
            tensors[o] = replace(model.tensors[o], data=decode_lut(enc.data, anc.data, model.tensors[o]))
    ops = tuple(replace(op, index=i) for i, op in enumerate(kept))
    return replace(model, tensors=tuple(tensors), operators=ops)
