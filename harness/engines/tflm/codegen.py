"""Emit the per-model glue of a TFLM firmware.

Generated for each model (the rest is ``firmware_templates/engines/tflm/th_tflm.cc``):

* ``th_model_config.h``: the model's constants for the engine ABI shared with the
  builtin engine (``firmware_templates/common/th_model.h``: ``tinyhil_invoke()``,
  input/output access, ``TH_ARENA_BYTES``, ``TH_MODEL_NAME``...), plus
  ``tinyhil_arena_used_bytes()`` (TFLM's ``arena_used_bytes()``), which the DUT's
  ``th-arena%`` reports as ``m-th-arena-used-bytes-<n>``;
* ``th_tflm_ops.h``: a ``MicroMutableOpResolver`` sized for the model's op types
  and a function adding each one (``CONV_2D`` -> ``AddConv2D()``, TFLM's own
  naming rule from ``generate_micro_mutable_op_resolver_from_model.py``);
* ``th_tflm_model.cc``: the ``.tflite`` file as ``th_w_model``, a const array
  aligned to 16 bytes (in flash; ELF tools count it as the weights).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from harness.firmware import TEMPLATES, IOSpec, model_config_header
from harness.errors import UnsupportedOpError
from harness.model import Model

GLUE_DIR = TEMPLATES / "engines" / "tflm"
RESOLVER_HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"


@dataclass(frozen=True)
class TflmModel:
    """One model's TFLM glue: C headers and C++ sources, and the facts a build needs.

    Has the shape ``harness.build.build_firmware`` takes (``model``, ``sources``,
    ``kernel_dir``, ``kernel_sources()``, ``arena_bytes``, ``inputs``, ``outputs``).
    """

    model: Model
    sources: dict[str, str]  # generated C headers: file name -> text
    cxx_sources: dict[str, str]  # generated C++ files: file name -> text
    kernel_dir: Path  # the glue templates (th_tflm.cc, th_tflm_libc.c)
    arena_bytes: int
    inputs: tuple[IOSpec, ...]
    outputs: tuple[IOSpec, ...]
    op_types: tuple[str, ...]  # the model's op types, in first-use order

    def kernel_sources(self) -> list[Path]:
        """C sources compiled with the firmware: the libc hooks (th_tflm_libc.c)."""
        return sorted(self.kernel_dir.glob("*.c"))

    def glue_sources(self) -> list[Path]:
        return sorted(self.kernel_dir.glob("*.cc"))


def resolver_method(op_name: str) -> str:
    """TFLM's MicroMutableOpResolver method for a builtin op: CONV_2D -> AddConv2D."""
    word = op_name.replace("TFLite", "")
    out = ""
    for part in re.split(r"[_-]", word):
        if len(part) > 1 and part[0].isalpha():
            out += part[0].upper() + part[1:].lower()
        else:
            out += part.upper()
    return "Add" + out.replace("Lstm", "LSTM").replace("BatchMatmul", "BatchMatMul")


def resolver_methods(tflm_dir: Path) -> frozenset[str]:
    """The ``Add...()`` methods the tree's MicroMutableOpResolver offers."""
    text = (tflm_dir / RESOLVER_HEADER).read_text()
    return frozenset(re.findall(r"TfLiteStatus (Add\w+)\(", text))


# LUT-compressed weights: the model loader drops the file's TFLM_DECODE ops
# (Model.decode_ops), but TFLM runs the file and needs the op registered.
DECODE_OP = "CUSTOM:TFLM_DECODE"


def op_method(op_name: str) -> str:
    """The resolver method registering ``op_name`` (TFLM_DECODE: AddDecode)."""
    return "AddDecode" if op_name == DECODE_OP else resolver_method(op_name)


def check_ops(model: Model, available: frozenset[str]) -> tuple[str, ...]:
    """The model's op types, each checked against what TFLM can register; TFLM_DECODE
    first when the file has DECODE ops (``Model.decode_ops``).

    Raises:
        UnsupportedOpError: a custom op or one TFLM's resolver lacks (before any compile).
    """
    seen: dict[str, str] = {}
    if model.decode_ops:
        if "AddDecode" not in available:
            raise UnsupportedOpError(model.path, 0, DECODE_OP, "tflm",
                                     "this TFLM tree's MicroMutableOpResolver has no AddDecode() "
                                     "(LUT-compressed weights)")
        seen[DECODE_OP] = "AddDecode"
    for op in model.operators:
        if op.name in seen:
            continue
        if op.name.startswith(("CUSTOM", "BUILTIN_")):
            raise UnsupportedOpError(model.path, op.index, op.name, "tflm",
                                     "tinyhil registers TFLM's builtin ops only")
        method = resolver_method(op.name)
        if method not in available or method in ("AddBuiltin", "AddCustom"):
            raise UnsupportedOpError(model.path, op.index, op.name, "tflm",
                                     f"TFLM's MicroMutableOpResolver has no {method}()")
        seen[op.name] = method
    return tuple(seen)


def _io(model: Model, idx: int) -> IOSpec:
    t = model.tensors[idx]
    q = t.quant
    return IOSpec(idx, t.name, t.shape, t.dtype, t.nbytes, q.scale if q else None, q.zero_point if q else None)


def generate(model: Model, arena_bytes: int, available: frozenset[str], measure: bool = False) -> TflmModel:
    """The glue for ``model`` with a ``arena_bytes`` tensor arena.

    ``measure`` makes the firmware search the smallest arena that works and report it
    (``m-th-tflm-arena-min-bytes-<n>``); give it a roomy ``arena_bytes``.
    """
    ops = check_ops(model, available)
    raw = Path(model.path).read_bytes()
    ins = tuple(_io(model, i) for i in model.inputs)
    outs = tuple(_io(model, i) for i in model.outputs)
    extra = [("TH_ARENA_USED_BYTES()", "tinyhil_arena_used_bytes()",
              "TFLM measures its arena: arena_used_bytes() after AllocateTensors (0 when that failed)")]
    if measure:
        extra.append(("TH_TFLM_MEASURE", "1", "Measuring build: the glue reports the smallest arena that works"))
    header = model_config_header(f"{Path(model.path).name} (sha256 {model.sha256[:16]}), TFLM engine", model.name,
                                 len(ins), len(outs), len(model.operators), arena_bytes, extra)
    adds = "\n".join(f"    TF_LITE_ENSURE_STATUS(r.{op_method(n)}());" for n in ops)
    ops_h = f"""/* Generated by tinyhil: the op types of {Path(model.path).name}. */
#ifndef TH_TFLM_OPS_H
#define TH_TFLM_OPS_H

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

typedef tflite::MicroMutableOpResolver<{len(ops)}> th_tflm_resolver;

static inline TfLiteStatus th_tflm_add_ops(th_tflm_resolver &r) {{
{adds}
    return kTfLiteOk;
}}

#endif /* TH_TFLM_OPS_H */
"""
    rows = [",".join(str(b) for b in raw[i:i + 40]) for i in range(0, len(raw), 40)]
    body = ",\n".join(rows)
    model_cc = f"""/* Generated by tinyhil: {Path(model.path).name}, {len(raw)} bytes. */
#include <stdint.h>

extern "C" {{
extern const uint8_t th_w_model[{len(raw)}];
alignas(16) const uint8_t th_w_model[{len(raw)}] = {{
{body}
}};
}}
"""
    return TflmModel(model, {"th_model_config.h": header, "th_tflm_ops.h": ops_h},
                     {"th_tflm_model.cc": model_cc}, GLUE_DIR, arena_bytes, ins, outs, ops)
