"""Write small .tflite models with the schema's object API.

Used by the tests to cover each kernel's edge cases (padding, strides,
dilation, depth multipliers, per-channel scales, activation clamps, extreme
zero points) without TensorFlow:

    b = ModelBuilder()
    x = b.tensor("x", [1, 8, 8, 3], scale=0.05, zero_point=-3)
    w = b.const("w", rng.integers(-127, 128, (4, 3, 3, 3)), scales=[0.01] * 4, axis=0)
    bias = b.const("b", np.zeros(4), dtype="int32", scales=[0.0005] * 4)
    y = b.tensor("y", [1, 8, 8, 4], scale=0.1, zero_point=2)
    b.op("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    raw = b.build(inputs=[x], outputs=[y])
"""

from __future__ import annotations

from typing import Any, Sequence

import flatbuffers
import numpy as np

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

_OPTIONS = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "ADD": "AddOptions",
    "MUL": "MulOptions",
    "RESHAPE": "ReshapeOptions",
    "SOFTMAX": "SoftmaxOptions",
    "PAD": "PadOptions",
    "PADV2": "PadV2Options",
    "CONCATENATION": "ConcatenationOptions",
    "MEAN": "ReducerOptions",
    "QUANTIZE": "QuantizeOptions",
    "DEQUANTIZE": "DequantizeOptions",
}
_DTYPES = {
    "int8": (schema.TensorType.INT8, np.int8),
    "int16": (schema.TensorType.INT16, np.int16),
    "int32": (schema.TensorType.INT32, np.int32),
    "int64": (schema.TensorType.INT64, np.int64),
    "uint8": (schema.TensorType.UINT8, np.uint8),
    "float32": (schema.TensorType.FLOAT32, np.float32),
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class ModelBuilder:
    """Accumulates tensors and operators of one subgraph, then packs a .tflite."""

    def __init__(self) -> None:
        self._tensors: list[Any] = []
        self._buffers: list[Any] = [schema.BufferT()]  # buffer 0: the empty buffer
        self._opcodes: list[str] = []
        self._ops: list[Any] = []

    def tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: str = "int8",
        scale: float | Sequence[float] | None = 1.0,
        zero_point: int | Sequence[int] = 0,
        axis: int = 0,
        data: np.ndarray | None = None,
    ) -> int:
        """Add a tensor; ``scale=None`` leaves it unquantized. Returns its index."""
        t = schema.TensorT()
        t.name = name
        t.shape = np.array(list(shape), dtype=np.int32)
        t.type = _DTYPES[dtype][0]
        if scale is not None:
            q = schema.QuantizationParametersT()
            scales = [scale] if np.isscalar(scale) else list(scale)  # type: ignore[arg-type]
            zps = [zero_point] * len(scales) if np.isscalar(zero_point) else list(zero_point)  # type: ignore[arg-type]
            q.scale = np.array(scales, dtype=np.float32)
            q.zeroPoint = np.array(zps, dtype=np.int64)
            q.quantizedDimension = axis
            t.quantization = q
        if data is not None:
            buf = schema.BufferT()
            arr = np.asarray(data).astype(_DTYPES[dtype][1]).reshape(list(shape))
            buf.data = np.frombuffer(arr.tobytes(), dtype=np.uint8)
            self._buffers.append(buf)
            t.buffer = len(self._buffers) - 1
        else:
            t.buffer = 0
        self._tensors.append(t)
        return len(self._tensors) - 1

    def const(
        self,
        name: str,
        values: np.ndarray | Sequence[Any],
        dtype: str = "int8",
        scales: float | Sequence[float] | None = None,
        zero_point: int | Sequence[int] = 0,
        axis: int = 0,
    ) -> int:
        """Add a constant tensor holding ``values`` (its shape is theirs)."""
        arr = np.asarray(values)
        return self.tensor(name, arr.shape, dtype, scales, zero_point, axis, data=arr)

    def op(self, name: str, inputs: Sequence[int], outputs: Sequence[int], **options: Any) -> None:
        """Add operator ``name``; options use the schema's field names in snake_case.

        ``padding`` takes "SAME"/"VALID" and ``fused_activation_function``
        takes "NONE"/"RELU"/"RELU6"/... .
        """
        if name not in self._opcodes:
            self._opcodes.append(name)
        op = schema.OperatorT()
        op.opcodeIndex = self._opcodes.index(name)
        op.inputs = np.array(list(inputs), dtype=np.int32)
        op.outputs = np.array(list(outputs), dtype=np.int32)
        kind = _OPTIONS.get(name)
        if kind is not None:
            opts = getattr(schema, kind + "T")()
            for key, value in options.items():
                if key == "padding" and isinstance(value, str):
                    value = getattr(schema.Padding, value)
                elif key == "fused_activation_function" and isinstance(value, str):
                    value = getattr(schema.ActivationFunctionType, value)
                attr = _camel(key)
                if not hasattr(opts, attr):
                    raise ValueError(f"{kind} has no field {attr}")
                setattr(opts, attr, value)
            op.builtinOptionsType = getattr(schema.BuiltinOptions, kind)
            op.builtinOptions = opts
        elif options:
            raise ValueError(f"{name} takes no options")
        self._ops.append(op)

    def build(self, inputs: Sequence[int], outputs: Sequence[int]) -> bytes:
        model = schema.ModelT()
        model.version = 3
        model.description = "tinyhil synthetic model"
        codes = []
        for name in self._opcodes:
            c = schema.OperatorCodeT()
            code = getattr(schema.BuiltinOperator, name)
            c.builtinCode = code
            c.deprecatedBuiltinCode = min(code, 127)
            c.version = 1
            codes.append(c)
        model.operatorCodes = codes
        sg = schema.SubGraphT()
        sg.tensors = self._tensors
        sg.operators = self._ops
        sg.inputs = np.array(list(inputs), dtype=np.int32)
        sg.outputs = np.array(list(outputs), dtype=np.int32)
        sg.name = "main"
        model.subgraphs = [sg]
        model.buffers = self._buffers
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())
