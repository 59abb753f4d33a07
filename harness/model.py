"""Read a .tflite file into frozen dataclasses: tensors, quantization, operators, MACs.

The flatbuffer schema comes from the tflite-micro wheel, so tinyhil reads
exactly the format TFLM reads. Everything an engine needs is decoded once here;
engines never touch the flatbuffer.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import ModelError

if TYPE_CHECKING:
    from harness.lut import LutWeights

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
    # A constant the file stores LUT-compressed (a TFLM_DECODE output): ``data`` holds the
    # decoded values, ``lut`` the indices and value tables they came from (harness.lut).
    lut: LutWeights | None = field(default=None, compare=False, repr=False)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def num_elements(self) -> int:
        return math.prod(self.shape)

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
    # TFLM_DECODE ops in the file, dropped at load (their outputs are constants now,
    # carrying ``Tensor.lut``); an interpreter of the file itself runs them.
    decode_ops: int = 0

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


def _quantization(t: Any, where: str, shape: tuple[int, ...], dtype: str) -> Quantization | None:
    """The tensor's quantization, checked: ``where`` names the tensor in errors."""
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scales = tuple(float(s) for s in np.asarray(q.scale, dtype=np.float32))
    zps = q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint) > 0 else [0]
    zero_points = tuple(int(z) for z in zps)
    axis = int(q.quantizedDimension)
    bad = next((s for s in scales if not (math.isfinite(s) and s > 0)), None)
    if bad is not None:
        raise ModelError(f"{where} has quantization scale {bad}; scales must be finite and positive: "
                         "corrupt file, or re-run the converter's quantization")
    if len(zero_points) not in (1, len(scales)):
        raise ModelError(f"{where} has {len(scales)} quantization scales but {len(zero_points)} "
                         "zero points (needs 1 or one per scale): corrupt file")
    if dtype in _NUMPY_TYPES and np.issubdtype(_NUMPY_TYPES[dtype], np.integer):
        info = np.iinfo(_NUMPY_TYPES[dtype])
        bad_zp = next((z for z in zero_points if not info.min <= z <= info.max), None)
        if bad_zp is not None:
            raise ModelError(f"{where} of type {dtype} has zero point {bad_zp}, outside "
                             f"{info.min}..{info.max}: corrupt file")
    if len(zero_points) == 1 and len(scales) > 1:
        zero_points = zero_points * len(scales)
    return Quantization(scales, zero_points, axis)


def _text(value: Any) -> str:
    """A name from the file as one printable line (control bytes become '?')."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")
    return "".join(c if c.isprintable() else "?" for c in text)


def _op_name(model: Any, op: Any) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    name = _OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        custom = _text(code.customCode)
        return f"CUSTOM:{custom}"
    return name



def op_macs(op_name: str, ins: list[Tensor | None], outs: list[Tensor]) -> int:
    """Multiply-accumulates of one op (0 for data movement and pooling, and for
    an op whose weights are missing or misshapen: the engine reports those)."""
    if not outs or len(ins) < 2 or ins[0] is None:
        return 0
    out = outs[0]
    w = ins[1]
    if op_name == "CONV_2D" and w is not None and len(w.shape) == 4:
        _, kh, kw, kc = w.shape
        return out.num_elements * kh * kw * kc
    if op_name == "DEPTHWISE_CONV_2D" and w is not None and len(w.shape) == 4:
        _, kh, kw, _ = w.shape
        return out.num_elements * kh * kw
    if op_name == "FULLY_CONNECTED" and w is not None and w.shape:
        return out.num_elements * w.shape[-1]
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


def _check_dataflow(path: str, ops: list[Operator], tensors: tuple[Tensor, ...], inputs: tuple[int, ...],
                    outputs: tuple[int, ...], variables: set[int]) -> None:
    """Operators run in file order: each reads tensors that exist by then (constants,
    model inputs, variables, earlier outputs) and writes a tensor no one else writes."""
    writer: dict[int, int] = {}

    def label(i: int) -> str:
        return f"tensor #{i} '{tensors[i].name}'"

    for op in ops:
        for i in op.inputs:
            if i < 0 or i in writer or i in inputs or i in variables or tensors[i].is_const:
                continue
            if tensors[i].num_elements == 0:
                continue  # an empty placeholder: nothing to read
            raise ModelError(f"{path}: operator #{op.index} {op.name} reads {label(i)}, which no earlier "
                             "operator writes (operators out of order, or a dangling tensor): corrupt file")
        for i in op.outputs:
            if i in writer:
                raise ModelError(f"{path}: {label(i)} is written by operators #{writer[i]} and #{op.index}: "
                                 "corrupt file")
            if i in inputs or tensors[i].is_const:
                what = "a model input" if i in inputs else "a constant"
                raise ModelError(f"{path}: operator #{op.index} {op.name} writes {label(i)}, {what}: corrupt file")
            writer[i] = op.index
    for pos, i in enumerate(outputs):
        if i not in writer and i not in inputs and not tensors[i].is_const:
            raise ModelError(f"{path}: model output {pos} is {label(i)}, which no operator writes: corrupt file")


def load_model(path: str | Path) -> Model:
    """Read and validate a .tflite file.

    Raises:
        ModelError: the file is missing, corrupt or truncated, has more than one
            subgraph, or has compute ops that are neither int8 nor int16; or its
            structure is broken: no inputs or outputs, a tensor, buffer or opcode
            index out of range, a tensor of 2**31 bytes or more, a bad
            quantization, operators out of order or writing the same tensor.
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
    raw_tensors = sg.tensors or []
    n_tensors = len(raw_tensors)

    def graph_io(side: str, idxs: Any) -> tuple[int, ...]:
        out = tuple(int(i) for i in (idxs if idxs is not None else []))
        if not out:
            raise ModelError(f"{path}: the model has no {side} (its subgraph lists none): "
                             "corrupt file, or export the model with its inputs and outputs")
        for pos, i in enumerate(out):
            if not 0 <= i < n_tensors:
                raise ModelError(f"{path}: subgraph {side[:-1]} {pos} refers to tensor {i}, but the model has "
                                 f"{n_tensors} tensors (0..{n_tensors - 1}): corrupt file")
        return out

    graph_inputs = graph_io("inputs", sg.inputs)
    graph_outputs = graph_io("outputs", sg.outputs)

    tensors: list[Tensor] = []
    for i, t in enumerate(raw_tensors):
        dtype = _TYPE_NAMES.get(int(t.type), f"type{t.type}")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        name = _text(t.name)
        where = f"{path}: tensor #{i} '{name}'"
        if dtype.startswith("type"):
            raise ModelError(f"{where} has unknown type code {t.type}: corrupt file")
        if any(d == -1 for d in shape):
            raise ModelError(f"{where} has a dynamic shape {shape}; "
                             "fix the batch size to 1 when converting")
        if any(d < 0 for d in shape):
            raise ModelError(f"{where} has a negative dimension in shape {shape}: corrupt file")
        itemsize = np.dtype(_NUMPY_TYPES[dtype]).itemsize if dtype in _NUMPY_TYPES else 1
        nbytes = math.prod(shape) * itemsize
        if nbytes >= 2**31:
            raise ModelError(f"{where} of shape {list(shape)} {dtype} needs {nbytes} bytes, more than "
                             "2**31 - 1 (a 32-bit target's limit): corrupt file, or fix the input size "
                             "and batch 1 when converting")
        data = None
        if t.buffer >= len(buffers):
            raise ModelError(f"{where} points at buffer {t.buffer}, "
                             f"but the file has {len(buffers)}: corrupt file")
        buf = buffers[t.buffer]
        blob: bytes | None = None
        if buf is not None and buf.data is not None and len(buf.data) > 0:
            blob = np.asarray(buf.data, dtype=np.uint8).tobytes()
        elif buf is not None and getattr(buf, "offset", 0) > 1:
            blob = raw[buf.offset : buf.offset + buf.size]
        if blob is not None:
            if dtype not in _NUMPY_TYPES:
                raise ModelError(f"{where} has unsupported type {dtype}")
            if len(blob) != nbytes:
                raise ModelError(
                    f"{path}: constant tensor #{i} '{name}' holds {len(blob)} bytes but "
                    f"shape {shape} of {dtype} needs {nbytes}: corrupt or truncated file"
                )
            data = np.frombuffer(blob, dtype=_NUMPY_TYPES[dtype]).reshape(shape)
        tensors.append(Tensor(i, name, shape, dtype, _quantization(t, where, shape, dtype), data))
    tensor_tuple = tuple(tensors)

    def check_index(i: int, what: str, optional: bool) -> int:
        if not (0 <= i < n_tensors or (optional and i == -1)):
            raise ModelError(f"{path}: {what} refers to tensor {i}, but the model has {n_tensors} tensors "
                             f"(0..{n_tensors - 1}{', or -1 for an omitted input' if optional else ''}): "
                             "corrupt file")
        return i

    ops: list[Operator] = []
    for k, op in enumerate(sg.operators or []):
        if op.opcodeIndex >= len(fb.operatorCodes or []):
            raise ModelError(f"{path}: operator #{k} has opcode index {op.opcodeIndex} out of range: corrupt file")
        name = _op_name(fb, op)
        ins = tuple(check_index(int(i), f"operator #{k} {name} input {pos}", True)
                    for pos, i in enumerate(op.inputs if op.inputs is not None else []))
        outs = tuple(check_index(int(i), f"operator #{k} {name} output {pos}", False)
                     for pos, i in enumerate(op.outputs if op.outputs is not None else []))
        if not outs:
            raise ModelError(f"{path}: operator #{k} {name} has no outputs: corrupt file")
        in_t = [tensor_tuple[i] if i >= 0 else None for i in ins]
        out_t = [tensor_tuple[i] for i in outs]
        options = _decode_options(op.builtinOptions)
        for key in ("padding", "fused_activation_function"):
            if key in options and not isinstance(options[key], str):
                raise ModelError(f"{path}: operator #{k} {name} has {key.replace('_', ' ')} code {options[key]}, "
                                 "which TFLite does not define: corrupt file")
        operator = Operator(k, name, ins, outs, options, op_macs(name, in_t, out_t))
        _check_int8_compute(path, operator, tensor_tuple)
        ops.append(operator)
    _check_dataflow(path, ops, tensor_tuple, graph_inputs, graph_outputs,
                    {i for i, t in enumerate(raw_tensors) if t.isVariable})

    desc = fb.description.decode(errors="replace") if isinstance(fb.description, bytes) else str(fb.description or "")
    model = Model(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        tensors=tensor_tuple,
        operators=tuple(ops),
        inputs=graph_inputs,
        outputs=graph_outputs,
        description=desc,
    )
    if any(op.name == "CUSTOM:TFLM_DECODE" for op in ops):
        from harness.lut import decode_model  # LUT-compressed weights become plain constants

        model = decode_model(model)
    _check_per_channel(model)
    return model


def _check_per_channel(model: Model) -> None:
    """One scale per slice along the quantized dimension, for the tensors the graph
    uses (after LUT decoding: the packed indices, now unused, carry their weight's scales)."""
    used = {i for op in model.operators for i in (*op.inputs, *op.outputs) if i >= 0}
    for i in sorted(used | set(model.inputs) | set(model.outputs)):
        t = model.tensors[i]
        q = t.quant
        if q is not None and q.per_channel and not (0 <= q.axis < len(t.shape) and t.shape[q.axis] == len(q.scales)):
            raise ModelError(f"{model.path}: tensor #{t.index} '{t.name}' of shape {list(t.shape)} has "
                             f"{len(q.scales)} per-channel scales along dimension {q.axis}, which does not "
                             "match: corrupt file")
