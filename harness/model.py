"""Read a .tflite file into frozen dataclasses: tensors, quantization, operators, MACs.

The flatbuffer schema comes from the tflite-micro wheel, so tinyhil reads
exactly the format TFLM reads. Everything an engine needs is decoded once here;
engines never touch the flatbuffer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import ModelError

# Import lazily-heavy schema module once; it is plain generated Python.
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

_OP_NAMES: dict[int, str] = {
    v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")
}
_TYPE_NAMES: dict[int, str] = {
    v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")
}
_NUMPY_TYPES: dict[str, Any] = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "bool": np.bool_,
}
_PADDING = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}
_ACTIVATION = {
    v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")
}

# Ops whose job is to cross the float/int8 boundary at a model's edges.
BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of one tensor: real = scale * (q - zero_point)."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def scale(self) -> float:
        """The per-tensor scale (first channel's for per-channel tensors)."""
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0]


@dataclass(frozen=True)
class Tensor:
    """One tensor of the subgraph; ``data`` is set for constant tensors."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quantization | None
    data: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def itemsize(self) -> int:
        return int(np.dtype(_NUMPY_TYPES[self.dtype]).itemsize)

    @property
    def nbytes(self) -> int:
        return self.num_elements * self.itemsize

    @property
    def numpy_dtype(self) -> Any:
        return _NUMPY_TYPES[self.dtype]


@dataclass(frozen=True)
class Operator:
    """One operator: its builtin name, tensor indices (-1 = omitted), options."""

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(compare=False)
    macs: int = 0


@dataclass(frozen=True)
class Model:
    """A single-subgraph TFLite model."""

    path: str
    sha256: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @cached_property
    def macs(self) -> int:
        return sum(op.macs for op in self.operators)

    @cached_property
    def weights_bytes(self) -> int:
        """Bytes of constant tensors that operators read (weights, biases, shapes)."""
        used = {i for op in self.operators for i in op.inputs if i >= 0}
        return sum(self.tensors[i].nbytes for i in used if self.tensors[i].is_const)

    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    def op_inputs(self, op: Operator) -> list[Tensor | None]:
        return [self.tensors[i] if i >= 0 else None for i in op.inputs]

    def op_outputs(self, op: Operator) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _decode_options(opts: Any) -> dict[str, Any]:
    """Builtin options object -> dict with snake_case keys and enum names."""
    if opts is None:
        return {}
    out: dict[str, Any] = {}
    for key, value in vars(opts).items():
        k = _snake(key)
        if k == "padding":
            value = _PADDING.get(value, value)
        elif k == "fused_activation_function":
            value = _ACTIVATION.get(value, value)
        elif isinstance(value, np.ndarray):
            value = [int(v) for v in value]
        out[k] = value
    return out


def _quantization(t: Any) -> Quantization | None:
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scales = tuple(float(s) for s in np.asarray(q.scale, dtype=np.float32))
    zps = q.zeroPoint if q.zeroPoint is not None else [0] * len(scales)
    zero_points = tuple(int(z) for z in zps)
    if len(zero_points) == 1 and len(scales) > 1:
        zero_points = zero_points * len(scales)
    return Quantization(scales, zero_points, int(q.quantizedDimension))


def _op_name(model: Any, op: Any) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    name = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        return f"CUSTOM:{custom}"
    return name



def op_macs(op_name: str, ins: list[Tensor | None], outs: list[Tensor]) -> int:
    """Multiply-accumulates of one op (0 for data movement and pooling)."""
    if not outs or not ins or ins[0] is None:
        return 0
    out = outs[0]
    if op_name == "CONV_2D" and ins[1] is not None:
        _, kh, kw, kc = ins[1].shape
        return out.num_elements * kh * kw * kc
    if op_name == "DEPTHWISE_CONV_2D" and ins[1] is not None:
        _, kh, kw, _ = ins[1].shape
        return out.num_elements * kh * kw
    if op_name == "FULLY_CONNECTED" and ins[1] is not None:
        return out.num_elements * ins[1].shape[-1]
    if op_name == "MUL":
        return out.num_elements
    return 0


def _check_int8_compute(path: str, op: Operator, tensors: tuple[Tensor, ...]) -> None:
    """Compute ops must be int8 or int16x8 (int16 activations, int8 weights);
    QUANTIZE/DEQUANTIZE may touch float at the edges. Which ops an engine runs
    at int16 is the engine's check."""
    if op.name in BOUNDARY_OPS or op.name == "CUSTOM:TFLM_DECODE":  # uint8 LUT indices (harness.lut)
        return
    for role, idxs in (("input", op.inputs), ("output", op.outputs)):
        for pos, i in enumerate(idxs):
            if i < 0:
                continue
            t = tensors[i]
            if t.is_const and role == "input" and t.dtype in ("int32", "int64"):
                continue  # biases and shape/axis/padding operands
            if t.dtype not in ("int8", "int16"):
                kind = "float" if t.dtype.startswith("float") else t.dtype
                raise ModelError(
                    f"{path}: operator #{op.index} {op.name} has {role} {pos} "
                    f"'{t.name}' of type {t.dtype}: tinyhil runs int8 and int16x8 models only "
                    f"({kind} kernels are not supported); quantize the model to int8 "
                    "(float inputs/outputs through QUANTIZE/DEQUANTIZE are fine)"
                )


def load_model(path: str | Path) -> Model:
    """Read and validate a .tflite file.

    Raises:
        ModelError: the file is missing, corrupt or truncated, has more than one
            subgraph, or has compute ops that are neither int8 nor int16.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ModelError(f"{p}: cannot read model file ({e.strerror})") from e
    return parse_model(raw, str(p))


def parse_model(raw: bytes, path: str = "<bytes>") -> Model:
    """Decode a .tflite flatbuffer held in memory (see load_model)."""
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ModelError(
            f"{path}: not a TFLite flatbuffer (file identifier 'TFL3' missing; "
            f"{len(raw)} bytes): is the file truncated or not a .tflite model?"
        )
    try:
        fb = schema.ModelT.InitFromPackedBuf(raw, 0)
    except Exception as e:  # the generated reader raises anything on bad offsets
        raise ModelError(f"{path}: corrupt or truncated .tflite file ({type(e).__name__}: {e})") from e

    subgraphs = fb.subgraphs or []
    if len(subgraphs) != 1:
        raise ModelError(
            f"{path}: model has {len(subgraphs)} subgraphs; tinyhil supports "
            "single-subgraph models only (no control flow ops such as WHILE/IF)"
        )
    sg = subgraphs[0]
    buffers = fb.buffers or []

    tensors: list[Tensor] = []
    for i, t in enumerate(sg.tensors or []):
        dtype = _TYPE_NAMES.get(int(t.type), f"type{t.type}")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name)
        if any(d < 0 for d in shape):
            raise ModelError(f"{path}: tensor #{i} '{name}' has a dynamic shape {shape}; "
                             "fix the batch size to 1 when converting")
        data = None
        if t.buffer >= len(buffers):
            raise ModelError(f"{path}: tensor #{i} '{name}' points at buffer {t.buffer}, "
                             f"but the file has {len(buffers)}: corrupt file")
        buf = buffers[t.buffer]
        blob: bytes | None = None
        if buf is not None and buf.data is not None and len(buf.data) > 0:
            blob = np.asarray(buf.data, dtype=np.uint8).tobytes()
        elif buf is not None and getattr(buf, "offset", 0) > 1:
            blob = raw[buf.offset : buf.offset + buf.size]
        if blob is not None:
            if dtype not in _NUMPY_TYPES:
                raise ModelError(f"{path}: tensor #{i} '{name}' has unsupported type {dtype}")
            tensor = Tensor(i, name, shape, dtype, None)
            if len(blob) != tensor.nbytes:
                raise ModelError(
                    f"{path}: constant tensor #{i} '{name}' holds {len(blob)} bytes but "
                    f"shape {shape} of {dtype} needs {tensor.nbytes}: corrupt or truncated file"
                )
            data = np.frombuffer(blob, dtype=_NUMPY_TYPES[dtype]).reshape(shape)
        tensors.append(Tensor(i, name, shape, dtype, _quantization(t), data))
    tensor_tuple = tuple(tensors)

    def check_index(i: int, what: str) -> int:
        if i >= len(tensor_tuple) or i < -1:
            raise ModelError(f"{path}: {what} refers to tensor {i} of {len(tensor_tuple)}: corrupt file")
        return i

    ops: list[Operator] = []
    for k, op in enumerate(sg.operators or []):
        if op.opcodeIndex >= len(fb.operatorCodes or []):
            raise ModelError(f"{path}: operator #{k} has opcode index {op.opcodeIndex} out of range: corrupt file")
        name = _op_name(fb, op)
        ins = tuple(check_index(int(i), f"operator #{k} {name}") for i in (op.inputs if op.inputs is not None else []))
        outs = tuple(check_index(int(i), f"operator #{k} {name}") for i in (op.outputs if op.outputs is not None else []))
        in_t = [tensor_tuple[i] if i >= 0 else None for i in ins]
        out_t = [tensor_tuple[i] for i in outs]
        operator = Operator(k, name, ins, outs, _decode_options(op.builtinOptions), op_macs(name, in_t, out_t))
        _check_int8_compute(path, operator, tensor_tuple)
        ops.append(operator)

    desc = fb.description.decode(errors="replace") if isinstance(fb.description, bytes) else str(fb.description or "")
    model = Model(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        tensors=tensor_tuple,
        operators=tuple(ops),
        inputs=tuple(int(i) for i in sg.inputs),
        outputs=tuple(int(i) for i in sg.outputs),
        description=desc,
    )
    if any(op.name == "CUSTOM:TFLM_DECODE" for op in ops):
        from harness.lut import decode_model  # LUT-compressed weights become plain constants

        return decode_model(model)
    return model
