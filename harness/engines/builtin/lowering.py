"""Op lowering: one function per TFLite op turns an Operator into a C call.

A lowering validates the op (types, options the kernel handles), precomputes
its quantization parameters with ``quant.py``, declares them as ``static
const`` data through the :class:`LowerContext`, and returns the C statement
that calls the kernel. Lowerings register themselves with :func:`lowering`;
``ops/__init__.py`` imports every module so the registry is complete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from harness.errors import UnsupportedOpError
from harness.metrics import WEIGHT_PREFIX
from harness.model import Model, Operator, Tensor

ENGINE = "builtin"
# Fused activations quant.activation_range clamps to.
FUSED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")

_C_TYPES = {
    "int8": "int8_t",
    "uint8": "uint8_t",
    "int16": "int16_t",
    "int32": "int32_t",
    "int64": "int64_t",
    "float32": "float",
}
_C_SIZES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "int32_t": 4, "int64_t": 8, "float": 4}


def c_array_bytes(ctype: str, elements: int) -> int:
    """The size of a C array ``ctype name[max(elements, 1)]`` (what the ELF's symbol says)."""
    return _C_SIZES[ctype] * max(elements, 1)


@dataclass(frozen=True)
class OpSpec:
    """How the engine handles one TFLite op."""

    name: str
    lower: Callable[["LowerContext"], str] | None
    # The output may share the buffer of input ``inplace_input`` when that
    # input dies at this op (element i is written only after input i is read).
    inplace_input: tuple[int, ...] = ()
    # The output is the input's bytes reinterpreted (no kernel call at all).
    alias: bool = False


REGISTRY: dict[str, OpSpec] = {}


def lowering(
    name: str, *, inplace_input: Iterable[int] = ()
) -> Callable[[Callable[["LowerContext"], str]], Callable[["LowerContext"], str]]:
    """Register ``fn`` as the lowering of TFLite op ``name``."""

    def register(fn: Callable[["LowerContext"], str]) -> Callable[["LowerContext"], str]:
        REGISTRY[name] = OpSpec(name, fn, tuple(inplace_input))
        return fn

    return register


def register_alias(name: str) -> None:
    """Register an op whose output is its first input, reinterpreted (RESHAPE)."""
    REGISTRY[name] = OpSpec(name, None, alias=True)


def c_type(t: Tensor) -> str:
    return _C_TYPES[t.dtype]


def c_array_literal(values: Sequence[int] | np.ndarray, per_line: int = 24) -> str:
    flat = [int(v) for v in np.asarray(values).reshape(-1)]
    if not flat:
        return "{0}"
    lines = []
    for i in range(0, len(flat), per_line):
        lines.append("    " + ", ".join(str(v) for v in flat[i : i + per_line]))
    return "{\n" + ",\n".join(lines) + "\n}"


@dataclass
class LowerContext:
    """What a lowering sees: the model, its op, the instruction set the kernels may
    use (``isa``), and ways to emit C.

    ``ptr`` gives the C expression of a tensor's data; ``array`` and ``params``
    add ``static const`` declarations named after the op; ``weight_array`` adds
    one that counts as weights (named ``th_w_*``, recorded in ``weights``).
    """

    model: Model
    op: Operator
    tensor_expr: Callable[[int], str]
    isa: str = ""  # "" (portable C and the DSP extension) or "mve" (codegen.ISAS)
    decls: list[str] = field(default_factory=list)
    headers: set[str] = field(default_factory=set)
    weights: dict[str, int] = field(default_factory=dict)  # th_w_* arrays declared: name -> bytes

    @property
    def prefix(self) -> str:
        return f"th_op{self.op.index}"

    def input(self, pos: int) -> Tensor:
        if pos >= len(self.op.inputs) or self.op.inputs[pos] < 0:
            raise self.unsupported(f"input {pos} is missing")
        return self.model.tensors[self.op.inputs[pos]]

    def optional_input(self, pos: int) -> Tensor | None:
        if pos >= len(self.op.inputs) or self.op.inputs[pos] < 0:
            return None
        return self.model.tensors[self.op.inputs[pos]]

    def output(self, pos: int = 0) -> Tensor:
        return self.model.tensors[self.op.outputs[pos]]

    def ptr(self, t: Tensor | None, const: bool = False) -> str:
        """C expression for a tensor's data, cast to its element type."""
        if t is None:
            return "0"
        qual = "const " if const else ""
        return f"({qual}{c_type(t)} *)({self.tensor_expr(t.index)})"

    def include(self, header: str) -> None:
        self.headers.add(header)

    def array(self, suffix: str, ctype: str, values: Sequence[int] | np.ndarray) -> str:
        name = f"{self.prefix}_{suffix}"
        n = int(np.asarray(values).size)
        self.decls.append(f"static const {ctype} {name}[{max(n, 1)}] = {c_array_literal(values)};")
        return name

    def weight_array(self, name: str, ctype: str, values: np.ndarray, align: int = 0) -> str:
        """Declare a ``static const`` array of (re-laid) weights named ``name`` (``th_w_*``, so the
        firmware's ELF counts it as weights) and record its size; returns ``name``."""
        assert name.startswith(WEIGHT_PREFIX), name
        attr = f" __attribute__((aligned({align})))" if align else ""
        self.decls.append(f"static const {ctype} {name}[{values.size}]{attr} = {c_array_literal(values)};")
        self.weights[name] = c_array_bytes(ctype, int(values.size))
        return name

    def params(self, ctype: str, fields: dict[str, int | str]) -> str:
        """Declare the op's parameter struct; returns ``&name`` for the call."""
        name = f"{self.prefix}_p"
        body = ",\n".join(f"    .{k} = {v}" for k, v in fields.items())
        self.decls.append(f"static const {ctype} {name} = {{\n{body}\n}};")
        return f"&{name}"

    def unsupported(self, why: str) -> UnsupportedOpError:
        return UnsupportedOpError(self.model.path, self.op.index, self.op.name, ENGINE, why)

    def require(self, cond: bool, why: str) -> None:
        if not cond:
            raise self.unsupported(why)

    def require_int8(self, *tensors: Tensor | None) -> None:
        for t in tensors:
            if t is not None and t.dtype != "int8":
                raise self.unsupported(f"tensor '{t.name}' is {t.dtype}, the kernel takes int8")
            if t is not None and t.quant is None:
                raise self.unsupported(f"tensor '{t.name}' has no quantization parameters")


def supported_ops() -> list[str]:
    from harness.engines.builtin import ops  # noqa: F401  (fills the registry)

    return sorted(REGISTRY)


def check_supported(model: Model) -> None:
    """Raise UnsupportedOpError for the first op the engine lacks."""
    from harness.engines.builtin import ops  # noqa: F401

    for op in model.operators:
        if op.name not in REGISTRY:
            raise UnsupportedOpError(
                model.path, op.index, op.name, ENGINE,
                "supported ops are " + ", ".join(sorted(REGISTRY)),
            )
        act = op.options.get("fused_activation_function", "NONE")
        if act not in FUSED_ACTIVATIONS:
            raise UnsupportedOpError(
                model.path, op.index, op.name, ENGINE,
                f"fused activation {act}; supported are " + ", ".join(FUSED_ACTIVATIONS),
            )
