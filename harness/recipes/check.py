"""Check a quantized model the way TFLM prepares it; fix what is safe to fix, else refuse.

Fixed (both are exact, no value changes meaning):
- AVERAGE_POOL_2D / MAX_POOL_2D whose output scale or zero point differs from its
  input's (TFLM: ``pooling_common.cc scale_diff``): the output takes the input's
  parameters (pooling never leaves its input's range), and RESHAPEs after it follow.
- SOFTMAX output not at TFLM's fixed parameters (int8: 1/256, -128; int16: 1/32768, 0).
Refused: compute ops left in float, and a model TFLM's interpreter will not prepare.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.errors import ModelError
from harness.model import parse_model
from harness.recipes import RecipeError
from harness.recipes.quantize import read, write

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema


def _quant(t: Any) -> tuple[tuple[float, ...], tuple[int, ...]] | None:
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    return (tuple(float(s) for s in q.scale), tuple(int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [0])))


def _set_quant(t: Any, scale: float, zp: int) -> None:
    q = schema.QuantizationParametersT()
    q.scale = np.array([scale], np.float32)
    q.zeroPoint = np.array([zp], np.int64)
    q.quantizedDimension = 0
    t.quantization = q


def check_and_fix(raw: bytes, activation_bits: int) -> bytes:
    m = read(raw)
    sg = m.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    fixed = False
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        name = names.get(max(int(code.builtinCode), int(code.deprecatedBuiltinCode)), "")
        inp, out = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
        if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and _quant(inp) and _quant(out) != _quant(inp):
            src = _quant(inp)
            assert src is not None
            _set_quant(out, src[0][0], src[1][0])
            # Ops that only move bytes (RESHAPE) must keep the same parameters.
            for nxt in sg.operators:
                ncode = m.operatorCodes[nxt.opcodeIndex]
                nname = names.get(max(int(ncode.builtinCode), int(ncode.deprecatedBuiltinCode)), "")
                if nname == "RESHAPE" and nxt.inputs[0] == op.outputs[0]:
                    _set_quant(sg.tensors[nxt.outputs[0]], src[0][0], src[1][0])
            fixed = True
        if name == "SOFTMAX" and _quant(out) is not None:
            want = ((1 / 256,), (-128,)) if out.type == schema.TensorType.INT8 else ((1 / 32768,), (0,))
            q = _quant(out)
            assert q is not None
            if abs(q[0][0] - want[0][0]) > 1e-9 or q[1] != want[1]:
                _set_quant(out, want[0][0], want[1][0])
                fixed = True
    data = write(m) if fixed else raw
    try:
        model = parse_model(data, "<quantized>")
    except ModelError as e:
        raise RecipeError(f"the quantized model is not full-integer: {e}") from e
    want_type = "int8" if activation_bits == 8 else "int16"
    for t in model.input_tensors() + model.output_tensors():
        if t.dtype != want_type:
            raise RecipeError(f"the quantized model's input/output '{t.name}' is {t.dtype}, expected {want_type}")
    _check_tflm(data)
    return data


def _check_tflm(data: bytes) -> None:
    """TFLM's host interpreter must prepare and run the model (one zero input)."""
    from tflite_micro.python.tflite_micro import runtime

    model = parse_model(data, "<quantized>")
    try:
        interp = runtime.Interpreter.from_bytes(data, arena_size=max(512 * 1024, len(data) * 10))
        for i, t in enumerate(model.input_tensors()):
            interp.set_input(np.zeros(t.shape, t.numpy_dtype), i)
        interp.invoke()
    except Exception as e:  # TFLM reports prepare failures as RuntimeError
        raise RecipeError(f"the quantized model is refused by TFLM's interpreter ({e}); "
                          "tinyhil does not benchmark it") from e
