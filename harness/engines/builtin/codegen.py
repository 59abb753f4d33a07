"""Emit the C sources of one model for the builtin engine.

Output, all plain C99:

* ``th_model_config.h``: the model's constants for the engine ABI
  (``firmware_templates/common/th_model.h``: ``tinyhil_invoke()``, input/output access);
* ``th_model.c``: the static arena, per-op parameter tables, ``tinyhil_invoke``;
* ``th_weights.c``: weights and biases as ``const`` arrays (they go to flash),
  each named ``th_w_<tensor>`` so ELF tools can total them.

Weights re-laid for a kernel (conv, fully connected, depthwise with its folded
bias) are ``static const th_w_*`` arrays in ``th_model.c``. ``weights_bytes``
totals every ``th_w_*`` array either file declares: the figure the firmware's ELF
gives as ``flash_weights_bytes`` (harness.metrics.elf_sizes).

Kernel sources are copied from ``firmware_templates/engines/builtin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.engines.builtin import lowering as lw
from harness.engines.builtin.planner import Plan, plan_arena
from harness.firmware import TEMPLATES, IOSpec, model_config_header
from harness.model import Model

KERNEL_DIR = TEMPLATES / "engines" / "builtin"
# The instruction sets the lowerings target: "" is portable C, with the DSP
# extension's SIMD where the compiler defines __ARM_FEATURE_DSP (th_simd.h);
# "mve" is Helium (th_mve.h), whose kernels take the weights in their TFLite
# layout, so the generated C differs. The host check emulates either.
ISAS = ("", "mve")


@dataclass(frozen=True)
class GeneratedModel:
    """C sources plus the facts a build and a report need."""

    model: Model
    sources: dict[str, str]  # file name -> text (generated files only)
    kernel_dir: Path
    arena_bytes: int
    weights_bytes: int  # every th_w_* array's bytes: the ELF's flash_weights_bytes
    inputs: tuple[IOSpec, ...]
    outputs: tuple[IOSpec, ...]
    plan: Plan
    isa: str = ""  # ISAS

    def kernel_sources(self) -> list[Path]:
        return sorted(KERNEL_DIR.glob("*.c"))

    def write(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in self.sources.items():
            path = directory / name
            path.write_text(text)
            paths.append(path)
        return paths


def _comment(text: str) -> str:
    """Text from the model (a tensor name) made safe inside a C block comment."""
    while "*/" in text or "/*" in text:
        text = text.replace("*/", "* /").replace("/*", "/ *")
    return text


def _io(model: Model, idx: int) -> IOSpec:
    t = model.tensors[idx]
    q = t.quant
    return IOSpec(idx, t.name, t.shape, t.dtype, t.nbytes,
                  q.scale if q else None, q.zero_point if q else None)


def generate(model: Model, isa: str = "") -> GeneratedModel:
    """Lower every op of ``model`` and emit its C sources, for kernels of ``isa``
    (ISAS; a target's is ``TargetDescriptor.builtin_isa``).

    Raises:
        UnsupportedOpError: an op (or an op's configuration) the engine lacks,
            before any C is written.
    """
    if isa not in ISAS:
        raise ValueError(f"isa {isa!r}: expected one of {ISAS}")
    lw.check_supported(model)
    alias_ops = frozenset(n for n, s in lw.REGISTRY.items() if s.alias)
    inplace = {n: s.inplace_input for n, s in lw.REGISTRY.items() if s.inplace_input}
    plan = plan_arena(model, alias_ops, inplace)
    bands = band_fusions(model)
    if bands:
        fused_plan = plan_arena(model, alias_ops, inplace, {b.consumer: b.producer for b in bands},
                                {b.tensor: b.scratch_bytes for b in bands})
        if fused_plan.arena_bytes < plan.arena_bytes:
            plan = fused_plan
        else:
            bands = []
    band_of = {b.producer: b for b in bands}
    fused_into = {b.consumer: b.producer for b in bands}

    used_consts: set[int] = set()

    def tensor_expr(i: int) -> str:
        i = plan.const_alias.get(i, i)
        t = model.tensors[i]
        if t.is_const:
            used_consts.add(i)
            return f"th_w_{i}"
        return f"th_arena + {plan.offsets[i]}"

    decls: list[str] = []
    calls: list[str] = []
    headers: set[str] = set()
    weight_arrays: dict[str, int] = {}  # th_w_* arrays the lowerings declare: name -> bytes
    for op in model.operators:
        spec = lw.REGISTRY[op.name]
        if spec.lower is None:
            calls.append(f"    /* #{op.index} {op.name}: aliases its input, no code */")
            continue
        if op.index in fused_into:
            calls.append(f"    /* #{op.index} {op.name}: computed band by band in #{fused_into[op.index]} */")
            continue
        if op.index in band_of:
            band = band_of[op.index]
            calls.append(_band_call(model, band, tensor_expr, decls, headers, weight_arrays, isa))
            continue
        ctx = lw.LowerContext(model, op, tensor_expr, isa)
        call = spec.lower(ctx)
        decls.extend(ctx.decls)
        headers |= ctx.headers
        weight_arrays.update(ctx.weights)
        produced = _comment(", ".join(model.tensors[i].name for i in op.outputs))
        calls.append(
            f"    /* #{op.index} {op.name} -> {produced} */\n"
            f"    TH_LAYER_BEGIN({op.index});\n"
            f"    st = {call};\n"
            f"    TH_LAYER_END({op.index});\n"
            f"    if (st != TH_OK) {{ return st; }}"
        )

    ins = tuple(_io(model, i) for i in model.inputs)
    outs = tuple(_io(model, i) for i in model.outputs)
    in_ptrs = [f"(void *)({tensor_expr(io.index)})" for io in ins]
    out_ptrs = [f"(void *)({tensor_expr(io.index)})" for io in outs]
    consts = sorted(used_consts)
    weights = sum(lw.c_array_bytes(lw.c_type(model.tensors[i]), model.tensors[i].num_elements)
                  for i in consts) + sum(weight_arrays.values())

    sources = {
        "th_model_config.h": _header(model, plan, ins, outs),
        "th_model.c": _model_c(model, plan, decls, calls, headers, consts,
                               (in_ptrs, [str(io.nbytes) for io in ins]),
                               (out_ptrs, [str(io.nbytes) for io in outs])),
        "th_weights.c": _weights_c(model, consts),
    }
    return GeneratedModel(model, sources, KERNEL_DIR, plan.arena_bytes, weights, ins, outs, plan, isa)


# Band fusion: a CONV_2D / DEPTHWISE_CONV_2D whose output only feeds the next op,
# an element-wise ADD of equal shapes, runs a few output rows at a time into a
# small scratch, and the ADD runs on each band right after. The full tensor
# between them never exists: in a residual block that is one activation less.
BAND_PRODUCERS = ("CONV_2D", "DEPTHWISE_CONV_2D")
BAND_SCRATCH_FRACTION = 8  # bands of about out_h / 8 rows


@dataclass(frozen=True)
class BandFusion:
    producer: int  # op index
    consumer: int  # op index (producer + 1)
    tensor: int  # the producer's output, an input of the consumer
    rows: int  # output rows per band
    scratch_bytes: int


def band_fusions(model: Model) -> list[BandFusion]:
    """The (conv, ADD) pairs that can run in bands."""
    ops = model.operators
    outputs = set(model.outputs)
    readers: dict[int, int] = {}
    for op in ops:
        for i in op.inputs:
            if i >= 0:
                readers[i] = readers.get(i, 0) + 1
    found = []
    for p, q in zip(ops, ops[1:]):
        if p.name not in BAND_PRODUCERS or q.name != "ADD" or len(p.outputs) != 1:
            continue
        t = p.outputs[0]
        tensors = [model.tensors[i] for i in (*q.inputs, *q.outputs) if i >= 0]
        if t in outputs or readers.get(t) != 1 or t not in q.inputs or len(q.inputs) != 2:
            continue
        if any(x.dtype != "int8" or tuple(x.shape) != tuple(model.tensors[t].shape) for x in tensors):
            continue
        if model.tensors[p.inputs[0]].dtype != "int8":
            continue
        shape = model.tensors[t].shape
        if len(shape) != 4 or shape[0] != 1 or shape[1] < 2:
            continue
        rows = max(1, shape[1] // BAND_SCRATCH_FRACTION)
        found.append(BandFusion(p.index, q.index, t, rows, rows * shape[2] * shape[3]))
    return found


def _params_type(ctx: lw.LowerContext) -> str:
    """The C type of the parameter struct a lowering declared (a copy is changed per band)."""
    head = "static const "
    for d in ctx.decls:
        if d.startswith(head) and f" {ctx.prefix}_p = " in d:
            return d[len(head):d.index(f" {ctx.prefix}_p = ")]
    raise AssertionError(f"{ctx.op.name} declared no {ctx.prefix}_p")


def _band_call(model: Model, band: BandFusion, tensor_expr: Callable[[int], str],
               decls: list[str], headers: set[str], weight_arrays: dict[str, int], isa: str) -> str:
    """The producer's and consumer's calls in a loop over bands of output rows."""
    p, q = model.operators[band.producer], model.operators[band.consumer]
    x = p.inputs[0]
    _, in_h, in_w, in_c = model.tensors[x].shape
    _, out_h, out_w, out_c = model.tensors[band.tensor].shape
    stride_h = int(p.options.get("stride_h", 1))

    def band_expr(i: int) -> str:
        if i == x:
            return "th_bx"
        if i == band.tensor:
            return tensor_expr(i)  # the scratch, the same for every band
        return f"{tensor_expr(i)} + th_bo"

    pctx = lw.LowerContext(model, p, lambda i: "th_bx" if i == x else tensor_expr(i), isa)
    pcall = lw.REGISTRY[p.name].lower(pctx)  # type: ignore[misc]
    qctx = lw.LowerContext(model, q, band_expr, isa)
    qcall = lw.REGISTRY[q.name].lower(qctx)  # type: ignore[misc]
    for ctx in (pctx, qctx):
        decls.extend(ctx.decls)
        headers.update(ctx.headers)
        weight_arrays.update(ctx.weights)
    ptype, qtype = _params_type(pctx), _params_type(qctx)
    pcall = pcall.replace(f"&{pctx.prefix}_p", "&th_bp")
    qcall = qcall.replace(f"&{qctx.prefix}_p", "&th_ap")
    row_out = out_w * out_c
    return f"""    /* #{p.index} {p.name} and #{q.index} ADD, {band.rows} output rows at a time */
    TH_LAYER_BEGIN({p.index});
    {{
        {ptype} th_bp = {pctx.prefix}_p;
        {qtype} th_ap = {qctx.prefix}_p;
        for (int32_t th_y = 0; th_y < {out_h} && st == TH_OK; th_y += {band.rows}) {{
            const int32_t th_rows = {out_h} - th_y < {band.rows} ? {out_h} - th_y : {band.rows};
            const int32_t th_iy = th_y * {stride_h} - {pctx.prefix}_p.pad_h;
            const int32_t th_lo = th_iy > 0 ? th_iy : 0;
            const int8_t *th_bx = (const int8_t *)({tensor_expr(x)}) + th_lo * {in_w * in_c};
            const int32_t th_bo = th_y * {row_out};
            th_bp.in_h = {in_h} - th_lo;
            th_bp.pad_h = th_lo - th_iy;
            th_bp.out_h = th_rows;
            th_ap.shape[0] = th_rows * {row_out};
            st = {pcall};
            if (st == TH_OK) {{
                st = {qcall};
            }}
        }}
    }}
    TH_LAYER_END({p.index});
    if (st != TH_OK) {{ return st; }}"""


def _header(model: Model, plan: Plan, ins: tuple[IOSpec, ...], outs: tuple[IOSpec, ...]) -> str:
    return model_config_header(f"{Path(model.path).name} (sha256 {model.sha256[:16]})", model.name, len(ins),
                               len(outs), len(model.operators), plan.arena_bytes)


def _switch(name: str, items: list[str], default: str) -> str:
    cases = "\n".join(f"    case {k}: return {v};" for k, v in enumerate(items))
    return f"    switch ({name}) {{\n{cases}\n    default: return {default};\n    }}"


def _model_c(
    model: Model, plan: Plan, decls: list[str], calls: list[str], headers: set[str],
    consts: list[int], ins: tuple[list[str], list[str]], outs: tuple[list[str], list[str]],
) -> str:
    includes = "\n".join(f'#include "{h}"' for h in sorted(headers))
    externs = "\n".join(
        f"extern const {lw.c_type(model.tensors[i])} th_w_{i}[{max(model.tensors[i].num_elements, 1)}];"
        for i in consts
    )
    return f"""/* Generated by tinyhil from {Path(model.path).name}: {len(model.operators)} ops,
 * {model.macs} MACs, arena {plan.arena_bytes} bytes. */
#include <stddef.h>
#include <stdint.h>

#include "th_model.h"
#include "th_nn_common.h"
{includes}

/* Per-layer timing hooks; a firmware may define them before including this. */
#ifndef TH_LAYER_BEGIN
#define TH_LAYER_BEGIN(op) ((void)0)
#endif
#ifndef TH_LAYER_END
#define TH_LAYER_END(op) ((void)0)
#endif

{externs}

/* Activations; offsets planned from tensor lifetimes. */
static uint8_t th_arena[{max(plan.arena_bytes, 16)}] __attribute__((aligned(16)));

{chr(10).join(decls)}

int tinyhil_invoke(void) {{
    th_status st = TH_OK;
{chr(10).join(calls)}
    return (int)st;
}}

void *tinyhil_input(int index) {{
{_switch("index", ins[0], "NULL")}
}}

size_t tinyhil_input_bytes(int index) {{
{_switch("index", ins[1], "0")}
}}

void *tinyhil_output(int index) {{
{_switch("index", outs[0], "NULL")}
}}

size_t tinyhil_output_bytes(int index) {{
{_switch("index", outs[1], "0")}
}}
"""


def _weights_c(model: Model, consts: list[int]) -> str:
    parts = [f"/* Generated by tinyhil: constant tensors of {Path(model.path).name}. */",
             "#include <stdint.h>", ""]
    for i in consts:
        t = model.tensors[i]
        assert t.data is not None
        ctype = lw.c_type(t)
        values = t.data.reshape(-1)
        if t.dtype == "float32":
            literal = "{" + ", ".join(f"{float(v)!r}f" for v in values) + "}"
        else:
            literal = lw.c_array_literal(values)
        parts.append(f"/* {_comment(t.name)} {list(t.shape)} */")
        parts.append(f"extern const {ctype} th_w_{i}[{max(t.num_elements, 1)}];")
        parts.append(f"const {ctype} th_w_{i}[{max(t.num_elements, 1)}] = {literal};")
    return "\n".join(parts) + "\n"
