"""Raw measurements -> named metrics. Pure functions; units are in the names.

Flash is what a part must store: .text + .rodata + the initial image of .data,
split into code, weights (the engine's ``th_w_*`` constant arrays) and other
(read-only data, .data init). RAM is static (.data + .bss, of which the
engine's arena and the DUT input buffer are shown) plus the stack's high-water
mark measured by painting.

Timing sources are named for what they are: ``instructions`` come from an
emulator; ``est_cycles`` are instructions times the target's documented CPI;
``cycles`` would come from a hardware counter. Latency and energy say which.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from harness.runners.base import RunRecord
from harness.targets import TargetDescriptor

WEIGHT_PREFIX = "th_w_"
ARENA_SYMBOL = "th_arena"
DB_BUFFER_SYMBOL = "th_db_buf"


@dataclass(frozen=True)
class ElfSizes:
    """Section and symbol sizes of a firmware ELF, in bytes."""

    text: int
    rodata: int
    data: int
    bss: int
    weights: int  # th_w_* arrays (inside .rodata)
    arena: int  # th_arena (inside .bss)
    db_buffer: int  # th_db_buf, the DUT protocol's input buffer (inside .bss)

    @property
    def flash(self) -> int:
        return self.text + self.rodata + self.data

    @property
    def flash_code(self) -> int:
        return self.text

    @property
    def flash_weights(self) -> int:
        return self.weights

    @property
    def flash_other(self) -> int:
        return self.flash - self.text - self.weights

    @property
    def ram_static(self) -> int:
        return self.data + self.bss


def _section_kind(name: str, flags: int) -> str:
    alloc, write, execinstr = 0x2, 0x1, 0x4
    if not flags & alloc or name.startswith((".stack", ".heap")):
        return ""
    if name.startswith(".bss") or name.startswith(".noinit"):
        return "bss"
    if flags & execinstr:
        return "text"
    if flags & write:
        return "data"
    return "rodata"


def elf_sizes(elf: Path) -> ElfSizes:
    """Sizes from the ELF's sections and symbols (pyelftools)."""
    totals = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    weights = arena = db = 0
    with elf.open("rb") as f:
        e = ELFFile(f)
        for sec in e.iter_sections():
            kind = _section_kind(sec.name, int(sec["sh_flags"]))
            if kind == "bss" or (kind and sec["sh_type"] == "SHT_NOBITS"):
                totals["bss"] += int(sec["sh_size"])
            elif kind:
                totals[kind] += int(sec["sh_size"])
        symtab = e.get_section_by_name(".symtab")
        if isinstance(symtab, SymbolTableSection):
            for sym in symtab.iter_symbols():
                size = int(sym["st_size"])
                if sym.name.startswith(WEIGHT_PREFIX):
                    weights += size
                elif sym.name == ARENA_SYMBOL:
                    arena = size
                elif sym.name == DB_BUFFER_SYMBOL:
                    db = size
    return ElfSizes(totals["text"], totals["rodata"], totals["data"], totals["bss"], weights, arena, db)


@dataclass(frozen=True)
class Metrics:
    """The numbers of one (model, target, engine) run, named with their units."""

    instructions: int | None  # per inference, from an emulator
    cycles: int | None  # per inference, from a hardware counter
    est_cycles: int | None  # from the timing model (harness/cycles), beside the instructions
    latency_ms: float | None
    latency_source: str  # "cycles", "est_cycles" or "timer" (a board timer)
    energy_uj: float | None
    power_source: str
    flash_bytes: int
    flash_code_bytes: int
    flash_weights_bytes: int
    flash_other_bytes: int
    ram_bytes: int
    ram_static_bytes: int
    ram_arena_bytes: int
    ram_db_buffer_bytes: int
    ram_stack_bytes: int


def compute_metrics(record: RunRecord, sizes: ElfSizes, target: TargetDescriptor) -> Metrics:
    """Combine a run's counters with the ELF's sizes and the target's figures."""
    count = record.count_per_inference if record.ok else None
    instructions = count if record.counter == "instructions" else None
    cycles = count if record.counter == "cycles" else None
    # The timing model's estimate; never instructions dressed up as cycles.
    est = record.est_cycles if record.ok and record.counter == "instructions" else None
    basis, source = (cycles, "cycles") if cycles is not None else (est, "est_cycles")
    latency = basis / target.clock_hz * 1e3 if basis is not None else None
    if latency is None:
        source = ""  # e.g. Renode's instruction count without a timing model: no latency, no source
    if record.counter == "timer" and record.timer_hz and count is not None:
        # A board without a cycle counter: its timer measures time itself.
        source, latency = "timer", count / record.timer_hz * 1e3
    # mW x ms = uJ
    energy = latency * target.power.active_mw if latency is not None and target.power.active_mw else None
    return Metrics(
        instructions=instructions,
        cycles=cycles,
        est_cycles=est,
        latency_ms=latency,
        latency_source=source,
        energy_uj=energy,
        power_source=target.power.source,
        flash_bytes=sizes.flash,
        flash_code_bytes=sizes.flash_code,
        flash_weights_bytes=sizes.flash_weights,
        flash_other_bytes=sizes.flash_other,
        ram_bytes=sizes.ram_static + record.stack_bytes,
        ram_static_bytes=sizes.ram_static,
        ram_arena_bytes=sizes.arena,
        ram_db_buffer_bytes=sizes.db_buffer,
        ram_stack_bytes=record.stack_bytes,
    )


# --------------------------------------------------------------------------- accuracy

def top1_accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Fraction (0..1) of predictions equal to their label."""
    if len(predictions) != len(labels) or not labels:
        raise ValueError(f"top-1 needs as many predictions as labels (got {len(predictions)}, {len(labels)})")
    return sum(int(p == y) for p, y in zip(predictions, labels)) / len(labels)


def predicted_class(scores: np.ndarray) -> int:
    """The class with the highest score (the first of equal ones)."""
    return int(np.argmax(np.asarray(scores).reshape(-1)))


def anomaly_score(features: np.ndarray, reconstruction: np.ndarray) -> float:
    """MLPerf Tiny AD: mean squared error between an autoencoder's input features and its
    (dequantized) output, as the reference firmware's th_results() computes it."""
    a = np.asarray(features, dtype=np.float64).reshape(-1)
    b = np.asarray(reconstruction, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"anomaly score: {a.size} features against {b.size} outputs")
    return float(np.mean((a - b) ** 2))


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve for "label 1 scores higher than label 0"
    (Mann-Whitney U with ties counted half)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0 or len(pos) + len(neg) != len(s):
        raise ValueError("AUC needs labels 0 and 1 only, and both present")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.arange(1, len(s) + 1)
    for value in np.unique(s):  # ties share their mean rank
        tied = s == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[y == 1].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


# --------------------------------------------------------------------------- per-layer profile

@dataclass(frozen=True)
class LayerOp:
    """What the model says about one op: for the profile table."""

    index: int
    op: str
    output_shape: tuple[int, ...]
    macs: int


def layer_rows(ops: Sequence[LayerOp], ticks: Sequence[tuple[int, int]],
               units_per_tick: int | Fraction) -> list[dict[str, Any]]:
    """Per-layer rows (execution order) from the firmware's (op index, ticks) pairs:
    index, op, output_shape, macs, count (ticks x units_per_tick: instructions on
    QEMU) and macs_per_count (None for an op without MACs or a zero count)."""
    by_index = {o.index: o for o in ops}
    rows = []
    for index, t in ticks:
        o = by_index.get(index)
        if o is None:
            raise ValueError(f"profile names op #{index}, which the model does not have")
        count = round(t * units_per_tick)
        rows.append({"index": o.index, "op": o.op, "output_shape": list(o.output_shape), "macs": o.macs,
                     "count": count, "macs_per_count": (o.macs / count) if o.macs and count else None})
    return rows
