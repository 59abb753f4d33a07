"""Engines side by side: per (benchmark, target), each engine's numbers and its ratio to builtin.

Pure data from result rows (the CLI renders it). Ratios are engine / builtin
(2.0 = twice builtin's instructions, flash or RAM); without a builtin row for
the case they are against the first engine listed. The arena is each engine's
own figure: builtin's planned arena, TFLM's ``arena_used_bytes()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from harness.results import ResultRow


@dataclass(frozen=True)
class EngineLine:
    """One engine's numbers for one case, with ratios to the baseline engine."""

    benchmark: str
    target: str
    engine: str  # "builtin", "tflm ref", "tflm cmsis-nn"
    status: str
    instructions: int | None
    arena_bytes: int | None
    flash_bytes: int | None
    ram_bytes: int | None
    output_matches_reference: bool | None
    baseline: str  # the engine the ratios are against
    instructions_ratio: float | None
    arena_ratio: float | None
    flash_ratio: float | None
    ram_ratio: float | None


def engine_label(row: ResultRow) -> str:
    return f"{row.engine} {row.kernels}" if row.kernels else row.engine


def arena_of(row: ResultRow) -> int | None:
    return row.arena_used_bytes if row.arena_used_bytes is not None else row.ram_arena_bytes


def _ratio(a: int | None, b: int | None) -> float | None:
    return a / b if a is not None and b else None


def compare_engines(rows: Sequence[ResultRow]) -> list[EngineLine]:
    """Group rows by (benchmark, target) in first-seen order; builtin first in each group."""
    groups: dict[tuple[str, str], list[ResultRow]] = {}
    for r in rows:
        groups.setdefault((r.benchmark, r.target), []).append(r)
    out: list[EngineLine] = []
    for (bench, target), group in groups.items():
        group = sorted(group, key=lambda r: r.engine != "builtin")  # stable: builtin first
        base = group[0]
        ok_base = base.status == "ok"
        for r in group:
            ok = r.status == "ok"
            out.append(EngineLine(
                benchmark=bench, target=target, engine=engine_label(r), status=r.status,
                instructions=r.instructions if ok else None, arena_bytes=arena_of(r),
                flash_bytes=r.flash_bytes, ram_bytes=r.ram_bytes if ok else None,
                output_matches_reference=r.output_matches_reference, baseline=engine_label(base),
                instructions_ratio=_ratio(r.instructions, base.instructions) if ok and ok_base else None,
                arena_ratio=_ratio(arena_of(r), arena_of(base)),
                flash_ratio=_ratio(r.flash_bytes, base.flash_bytes),
                ram_ratio=_ratio(r.ram_bytes, base.ram_bytes) if ok and ok_base else None,
            ))
    return out
