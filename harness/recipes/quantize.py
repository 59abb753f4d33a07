"""Full-integer post-training quantization with ai-edge-quantizer, shared by the recipes.

Steps: prepare the float model for the quantizer (:func:`prepare_float`), calibrate
on the given data, quantize, then check the result the way TFLM would prepare it
(:func:`check_and_fix`): an int8/int16 model tinyhil can run, or a RecipeError.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Callable

import flatbuffers
import numpy as np

from harness.recipes import Calibration, RecipeError, require_quantizer

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

SIGNATURE = "serving_default"
FloatEdit = Callable[[Any], None]  # edits a schema.ModelT in place (pruning, clustering)


def read(raw: bytes) -> Any:
    return schema.ModelT.InitFromPackedBuf(raw, 0)


def write(model: Any) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def inline_buffers(raw: bytes) -> bytes:
    """Buffers stored after the flatbuffer (``offset``/``size``, as ai-edge-quantizer writes
    models over a few hundred KB) moved inside it: tflite-micro's compressor reads only
    inline data."""
    m = read(raw)
    moved = False
    for buf in m.buffers or []:
        if buf is not None and int(getattr(buf, "offset", 0) or 0) > 1:
            buf.data = np.frombuffer(raw[buf.offset:buf.offset + buf.size], np.uint8)
            buf.offset, buf.size = 0, 0
            moved = True
    return write(m) if moved else raw

def buffer_array(model: Any, t: Any) -> np.ndarray | None:
    """A constant tensor's values (float32 or int8 etc.), or None."""
    buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
    if buf is None or buf.data is None or len(buf.data) == 0:
        return None
    dtype = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT8: np.int8,
             schema.TensorType.INT32: np.int32}.get(t.type)
    if dtype is None:
        return None
    return np.frombuffer(np.asarray(buf.data, np.uint8).tobytes(), dtype).reshape(list(t.shape))


def set_buffer(model: Any, t: Any, values: np.ndarray) -> None:
    model.buffers[t.buffer].data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)


def weight_tensors(model: Any) -> list[tuple[str, Any]]:
    """(op name, weights tensor) of every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED."""
    sg = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)), "")
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1:
            out.append((name, sg.tensors[op.inputs[1]]))
    return out


def prepare_float(raw: bytes, edit: FloatEdit | None = None) -> bytes:
    """The float model as ai-edge-quantizer needs it.

    - ``builtinCode`` set from ``deprecatedBuiltinCode``: older converters leave it 0
      (ADD), and the quantizer then quantizes every op as an ADD (int8 biases,
      per-tensor weights, pooling rescaled; TFLM refuses the result).
    - int8 weights of a hybrid "float" model (the MLPerf KWS float model has them)
      dequantized back to float32, so the recipe decides their quantization.
    - a ``serving_default`` SignatureDef (the MLPerf Tiny files have none).
    """
    m = read(raw)
    if len(m.subgraphs) != 1:
        raise RecipeError(f"the float model has {len(m.subgraphs)} subgraphs; recipes take one")
    for c in m.operatorCodes:
        c.builtinCode = max(int(c.builtinCode), int(c.deprecatedBuiltinCode))
    sg = m.subgraphs[0]
    for i in list(sg.inputs) + list(sg.outputs):
        if sg.tensors[i].type != schema.TensorType.FLOAT32:
            raise RecipeError(f"model input/output '{sg.tensors[i].name.decode()}' is not float32: "
                              "recipes start from a float model")
    for t in sg.tensors:
        q = t.quantization
        values = buffer_array(m, t)
        if t.type == schema.TensorType.INT8 and values is not None and q is not None and q.scale is not None:
            scales = np.asarray(q.scale, np.float32)
            zps = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0], np.float32)
            shape = [1] * values.ndim
            if len(scales) > 1:
                shape[int(q.quantizedDimension)] = len(scales)
            f = ((values.astype(np.float32) - zps.reshape(shape if len(zps) > 1 else [1] * values.ndim))
                 * scales.reshape(shape)).astype(np.float32)
            set_buffer(m, t, f)
            t.type = schema.TensorType.FLOAT32
            t.quantization = None
    if edit is not None:
        edit(m)

    def tmap(name: str, i: int) -> Any:
        x = schema.TensorMapT()
        x.name, x.tensorIndex = name, int(i)
        return x

    sd = schema.SignatureDefT()
    sd.signatureKey, sd.subgraphIndex = SIGNATURE, 0
    sd.inputs = [tmap(f"input_{k}", i) for k, i in enumerate(sg.inputs)]
    sd.outputs = [tmap(f"output_{k}", i) for k, i in enumerate(sg.outputs)]
    m.signatureDefs = [sd]
    return write(m)


def quantize(raw: bytes, calibration: Calibration | None, activation_bits: int = 8,
             per_channel: bool = True, edit: FloatEdit | None = None) -> bytes:
    """Full-integer PTQ: int8 (or int16) activations and I/O, int8 weights, int32/int64 biases."""
    require_quantizer()
    if calibration is None or not calibration.samples:
        raise RecipeError("no calibration data: quantizing needs representative inputs (the benchmark's "
                          "dataset, or --dataset DIR); tinyhil never calibrates on random data")
    from ai_edge_quantizer import qtyping, quantizer

    prepared = prepare_float(raw, edit)
    m = read(prepared)
    sg = m.subgraphs[0]
    shapes = [tuple(int(d) for d in sg.tensors[i].shape) for i in sg.inputs]
    data = []
    for s in calibration.samples:
        if len(s) != len(shapes):
            raise RecipeError(f"calibration sample has {len(s)} inputs, the model {len(shapes)}")
        data.append({f"input_{k}": np.asarray(a, np.float32).reshape(shapes[k]) for k, a in enumerate(s)})
    q = quantizer.Quantizer(prepared)
    granularity = (qtyping.QuantGranularity.CHANNELWISE if per_channel
                   else qtyping.QuantGranularity.TENSORWISE)
    q.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, activation_bits, 8, granularity)
    # The quantizer and LiteRT talk on stdout/stderr and warn; none of it is for the user.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        result = q.calibrate({SIGNATURE: data}, num_threads=1)
        out = bytes(q.quantize(result, enable_progress_report=False).quantized_model)
    from harness.recipes.check import check_and_fix

    return check_and_fix(inline_buffers(out), activation_bits)
