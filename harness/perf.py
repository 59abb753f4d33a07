"""Issue 9's goals for the builtin engine, computed from result rows.

For each (benchmark, target) the builtin row is set against TFLM's: the
instruction count against TFLM with CMSIS-NN kernels, peak RAM against peak
RAM, flash against the TFLM firmware's (for RAM and flash: the smaller of the
reference and CMSIS-NN figures), and est. cycles per MAC (est_cycles / the
model's MACs) on the cycles/MAC target. Pure functions of rows; the CLI
(``tinyhil perf``) runs the bench and renders these lines.

Peak RAM is like with like: builtin's is its arena, plus the kernels' working
memory ``th_scratch`` that lives beside it, plus the stack high-water mark its
firmware measured; TFLM's is ``arena_used_bytes()`` plus the stack high-water
mark the TFLM firmware measured the same way (th_stack.c). A row without its
stack figure leaves the RAM goal unjudged: it is never compared without it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

# Builtin must be at most this fraction of TFLM + CMSIS-NN (instructions, flash)
# and of TFLM's peak RAM (arena_used_bytes() + stack high-water).
RATIO_GOAL = 0.8
# est. cycles per MAC on this target must be at most CYCLES_PER_MAC_GOAL for these models.
CYCLES_PER_MAC_TARGET = "stm32f746"
CYCLES_PER_MAC_GOAL = 1.0
CYCLES_PER_MAC_BENCHMARKS = ("vww", "ic")
# TFLM kernels to compare against, best first: CMSIS-NN when it was run, else the reference.
TFLM_KERNELS = ("cmsis-nn", "ref")
# Issue 21: instructions per MAC on this target at most these, per benchmark.
INSTR_PER_MAC_TARGET = "cortex-m4"
INSTR_PER_MAC_GOALS = {"kws": 1.5, "vww": 1.6, "ic": 1.25}
# On a core with Helium, builtin's instructions at most this fraction of its own
# portable/DSP kernels' on the same core (the C it ran before the MVE kernels).
HELIUM_RATIO_GOAL = 0.5


@dataclass(frozen=True)
class PerfLine:
    """Builtin against TFLM for one benchmark on one target; None where unknown."""

    benchmark: str
    target: str
    macs: int | None
    builtin_instructions: int | None
    tflm_ref_instructions: int | None
    tflm_cmsis_instructions: int | None
    builtin_cycles_per_mac: float | None  # est_cycles / MACs
    tflm_cmsis_cycles_per_mac: float | None
    builtin_peak_ram: int | None  # arena + kernel scratch + stack high-water
    builtin_stack: int | None  # builtin's stack high-water, part of builtin_peak_ram
    # arena_used_bytes() + stack high-water: the smaller of the TFLM rows' (ref, CMSIS-NN);
    # None when a TFLM row lacks either figure.
    tflm_peak_ram: int | None
    tflm_arena_used: int | None  # the parts of tflm_peak_ram (from the same row)
    tflm_stack: int | None
    builtin_flash: int | None
    tflm_flash: int | None  # the smaller TFLM firmware flash
    compared_to: str  # "tflm cmsis-nn", "tflm ref" or "" (no TFLM row)
    instructions_ratio: float | None  # builtin / TFLM + CMSIS-NN
    ram_ratio: float | None  # builtin peak RAM / TFLM peak RAM
    flash_ratio: float | None  # builtin flash / TFLM flash
    instructions_ok: bool | None  # None: no TFLM + CMSIS-NN row to judge against
    ram_ok: bool | None
    flash_ok: bool | None
    cycles_per_mac_ok: bool | None  # None: no cycles/MAC goal for this case
    builtin_instructions_per_mac: float | None = None
    instructions_per_mac_ok: bool | None = None  # None: no instructions/MAC goal for this case
    # A Helium core: the same model through builtin's portable/DSP kernels on the same
    # core (generate(model, isa="")), and builtin's instructions over those.
    builtin_portable_instructions: int | None = None
    helium_ratio: float | None = None
    helium_ok: bool | None = None


def _ok_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get("status") == "ok"]


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _smallest(values: Iterable[Any]) -> int | None:
    known = [int(v) for v in values if v is not None]
    return min(known) if known else None


def _within(ratio: float | None) -> bool | None:
    return None if ratio is None else ratio <= RATIO_GOAL


def peak_ram(row: Mapping[str, Any], scratch: int = 0) -> int | None:
    """Builtin: arena, kernel scratch and stack high-water, the RAM the engine needs
    beyond the firmware's own buffers; None without the arena or the stack figure."""
    arena, stack = row.get("ram_arena_bytes"), row.get("ram_stack_bytes")
    return None if arena is None or stack is None else int(arena) + scratch + int(stack)


def tflm_peak_ram(row: Mapping[str, Any]) -> int | None:
    """TFLM: what its arena held at most (``arena_used_bytes()``, its scratch buffers
    included) plus the firmware's stack high-water; None without either figure."""
    used, stack = row.get("arena_used_bytes"), row.get("ram_stack_bytes")
    return None if used is None or stack is None else int(used) + int(stack)


def cycles_per_mac(row: Mapping[str, Any] | None, macs: int | None) -> float | None:
    if row is None or not macs:
        return None
    cycles = row.get("cycles") if row.get("cycles") is not None else row.get("est_cycles")
    return None if cycles is None else float(cycles) / macs


def perf_lines(rows: Sequence[Mapping[str, Any]], macs: Mapping[str, int],
               scratch: Mapping[Any, int] | None = None,
               portable: Mapping[tuple[str, str], int] | None = None) -> list[PerfLine]:
    """One line per (benchmark, target) that has a builtin row, in first-seen order.

    The newest ok row of each engine counts (rows are read in file order).
    ``macs`` maps a benchmark to its model's multiply-accumulates, ``scratch``
    a (benchmark, target) pair, or a benchmark for every target, to the builtin
    kernels' static working memory (bytes outside the arena; it depends on the
    target's kernels: Helium's differ). ``portable`` maps (benchmark, target) of a
    Helium core to the instructions of builtin's portable/DSP kernels there.
    """
    cases: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for r in _ok_rows(rows):
        engine = str(r["engine"]) + (f" {r['kernels']}" if r.get("kernels") else "")
        cases.setdefault((str(r["benchmark"]), str(r["target"])), {})[engine] = r
    lines = []
    for (bench, target), by_engine in cases.items():
        b = by_engine.get("builtin")
        if b is None:
            continue
        cmsis, ref = by_engine.get("tflm cmsis-nn"), by_engine.get("tflm ref")
        tflm = cmsis if cmsis is not None else ref
        compared = "" if tflm is None else ("tflm cmsis-nn" if cmsis is not None else "tflm ref")
        n_macs = macs.get(bench)
        b_instr = b.get("instructions")
        c_instr = cmsis.get("instructions") if cmsis else None
        sc = scratch or {}
        b_ram = peak_ram(b, sc.get((bench, target), sc.get(bench, 0)))
        # The stricter TFLM figure: the reference kernels need a little less arena and
        # flash than CMSIS-NN's (its scratch buffers, its larger kernels).
        tflm_rows = [r for r in (ref, cmsis) if r is not None]
        # Peak RAM: every TFLM row must carry both figures, or the smaller could be the
        # one missing; then the RAM goal stays unjudged.
        t_peaks = [(v, r) for r in tflm_rows if (v := tflm_peak_ram(r)) is not None]
        t_ram: int | None = None
        t_ram_row: Mapping[str, Any] | None = None
        if t_peaks and len(t_peaks) == len(tflm_rows):
            t_ram, t_ram_row = min(t_peaks, key=lambda vr: vr[0])
        b_flash, t_flash = b.get("flash_bytes"), _smallest(r.get("flash_bytes") for r in tflm_rows)
        instr_ratio = _ratio(b_instr, c_instr)
        ram_ratio = _ratio(b_ram, t_ram)
        flash_ratio = _ratio(b_flash, t_flash)
        b_cpm = cycles_per_mac(b, n_macs)
        cpm_ok = None
        if target == CYCLES_PER_MAC_TARGET and bench in CYCLES_PER_MAC_BENCHMARKS and b_cpm is not None:
            cpm_ok = b_cpm <= CYCLES_PER_MAC_GOAL
        ipm = float(b_instr) / n_macs if b_instr is not None and n_macs else None
        ipm_goal = INSTR_PER_MAC_GOALS.get(bench) if target == INSTR_PER_MAC_TARGET else None
        b_portable = (portable or {}).get((bench, target))
        helium = _ratio(b_instr, b_portable)
        lines.append(PerfLine(
            benchmark=bench, target=target, macs=n_macs,
            builtin_instructions=b_instr,
            tflm_ref_instructions=ref.get("instructions") if ref else None,
            tflm_cmsis_instructions=c_instr,
            builtin_cycles_per_mac=b_cpm,
            tflm_cmsis_cycles_per_mac=cycles_per_mac(cmsis, n_macs),
            builtin_peak_ram=b_ram, builtin_stack=b.get("ram_stack_bytes"), tflm_peak_ram=t_ram,
            tflm_arena_used=t_ram_row.get("arena_used_bytes") if t_ram_row else None,
            tflm_stack=t_ram_row.get("ram_stack_bytes") if t_ram_row else None,
            builtin_flash=b_flash, tflm_flash=t_flash,
            compared_to=compared,
            instructions_ratio=instr_ratio, ram_ratio=ram_ratio, flash_ratio=flash_ratio,
            instructions_ok=_within(instr_ratio), ram_ok=_within(ram_ratio),
            flash_ok=_within(flash_ratio), cycles_per_mac_ok=cpm_ok,
            builtin_instructions_per_mac=ipm,
            instructions_per_mac_ok=None if ipm is None or ipm_goal is None else ipm <= ipm_goal,
            builtin_portable_instructions=b_portable, helium_ratio=helium,
            helium_ok=None if helium is None else helium <= HELIUM_RATIO_GOAL,
        ))
    return lines


def goals_met(lines: Sequence[PerfLine]) -> bool:
    """Every goal that could be judged holds, and the instruction and RAM goals were
    judged on every line (an unjudged goal is not a pass)."""
    flags = [f for ln in lines for f in (ln.instructions_ok, ln.ram_ok, ln.flash_ok, ln.cycles_per_mac_ok,
                                         ln.instructions_per_mac_ok, ln.helium_ok)]
    return bool(lines) and all(f is not False for f in flags) and \
        all(ln.instructions_ok is not None and ln.ram_ok is not None for ln in lines)


def goals() -> dict[str, Any]:
    """The goals the lines are judged against, for ``--json``."""
    return {"ratio_goal": RATIO_GOAL, "cycles_per_mac_goal": CYCLES_PER_MAC_GOAL,
            "cycles_per_mac_target": CYCLES_PER_MAC_TARGET,
            "cycles_per_mac_benchmarks": list(CYCLES_PER_MAC_BENCHMARKS),
            "instructions_per_mac_target": INSTR_PER_MAC_TARGET,
            "instructions_per_mac_goals": dict(INSTR_PER_MAC_GOALS), "helium_ratio_goal": HELIUM_RATIO_GOAL}


def json_records(lines: Sequence[PerfLine]) -> list[dict[str, Any]]:
    """``tinyhil perf --json``: one ``"kind": "perf"`` object per line (builtin against the
    TFLM row named by ``compared_to``), then one ``"kind": "goals"`` object with the goals
    and whether all were met. Each carries ``schema_version``."""
    from harness.results import SCHEMA_VERSION

    out: list[dict[str, Any]] = [{"schema_version": SCHEMA_VERSION, "kind": "perf", "engine": "builtin",
                                  **asdict(ln)} for ln in lines]
    out.append({"schema_version": SCHEMA_VERSION, "kind": "goals", **goals(), "lines": len(lines),
                "goals_met": goals_met(lines)})
    return out
