"""Issue 9 goals from result rows: ratios against TFLM + CMSIS-NN, peak RAM, cycles/MAC."""

from __future__ import annotations

from typing import Any

from harness.perf import goals_met, peak_ram, perf_lines, tflm_peak_ram


def _row(bench: str, target: str, engine: str, kernels: str = "", **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"benchmark": bench, "target": target, "engine": engine, "kernels": kernels,
                           "status": "ok", "instructions": None, "est_cycles": None, "cycles": None,
                           "ram_arena_bytes": None, "ram_stack_bytes": None, "flash_bytes": None,
                           "arena_used_bytes": None}
    row.update(kw)
    return row


ROWS = [
    _row("vww", "stm32f746", "builtin", instructions=7_000_000, est_cycles=7_000_000,
         ram_arena_bytes=55_296, ram_stack_bytes=500, flash_bytes=250_000),
    _row("vww", "stm32f746", "tflm", "ref", instructions=100_000_000, est_cycles=100_000_000,
         arena_used_bytes=100_660, ram_stack_bytes=1_000, flash_bytes=330_000),
    _row("vww", "stm32f746", "tflm", "cmsis-nn", instructions=24_000_000, est_cycles=24_000_000,
         arena_used_bytes=100_660, ram_stack_bytes=1_200, flash_bytes=340_000),
    _row("ic", "cortex-m4", "builtin", instructions=30_000_000, est_cycles=30_000_000,
         ram_arena_bytes=49_152, ram_stack_bytes=300, flash_bytes=95_000),
    _row("ic", "cortex-m4", "tflm", "cmsis-nn", instructions=29_860_000, est_cycles=29_860_000,
         arena_used_bytes=54_340, ram_stack_bytes=700, flash_bytes=150_000),
    _row("ad", "cortex-m4", "builtin", instructions=400_000, est_cycles=400_000,
         ram_arena_bytes=768, ram_stack_bytes=200, flash_bytes=290_000),
    _row("ad", "cortex-m4", "tflm", "cmsis-nn", status="failed"),
]
MACS = {"vww": 7_489_664, "ic": 12_501_632, "ad": 264_192}


def test_ratios_goals_and_cycles_per_mac_from_rows() -> None:
    vww, ic, ad = perf_lines(ROWS, MACS)
    assert (vww.benchmark, vww.target, vww.compared_to) == ("vww", "stm32f746", "tflm cmsis-nn")
    assert vww.tflm_ref_instructions == 100_000_000
    assert vww.instructions_ratio == 7_000_000 / 24_000_000 and vww.instructions_ok
    # Peak RAM on both sides counts the stack: builtin 55,296 + 500, TFLM 100,660 + 1,000
    # (the reference row's: the smaller sum).
    assert vww.builtin_peak_ram == 55_796 and vww.builtin_stack == 500
    assert (vww.tflm_peak_ram, vww.tflm_arena_used, vww.tflm_stack) == (101_660, 100_660, 1_000)
    assert vww.ram_ratio == 55_796 / 101_660 and vww.ram_ok
    # Arena and flash: the smaller TFLM figure (here the reference kernels' flash).
    assert vww.tflm_flash == 330_000 and vww.flash_ratio == 250_000 / 330_000 and vww.flash_ok
    assert vww.builtin_cycles_per_mac == 7_000_000 / 7_489_664 and vww.cycles_per_mac_ok
    assert vww.tflm_cmsis_cycles_per_mac == 24_000_000 / 7_489_664

    # IC on cortex-m4: slower than 0.8x, arena too big, no cycles/MAC goal off stm32f746.
    assert ic.instructions_ratio == 30_000_000 / 29_860_000 and ic.instructions_ok is False
    assert ic.ram_ratio == 49_452 / 55_040 and ic.ram_ok is False
    assert ic.cycles_per_mac_ok is None

    # A failed TFLM row is no comparison: nothing judged, not a pass.
    assert ad.compared_to == "" and ad.instructions_ratio is None and ad.instructions_ok is None
    assert not goals_met([vww, ad])
    assert not goals_met([vww, ic])
    assert goals_met([vww])


def test_reference_kernels_stand_in_for_ram_and_flash_but_not_instructions() -> None:
    rows = [ROWS[0], ROWS[1]]  # builtin and TFLM ref only
    (line,) = perf_lines(rows, MACS)
    assert line.compared_to == "tflm ref"
    assert line.instructions_ratio is None and line.instructions_ok is None
    assert line.ram_ratio == 55_796 / 101_660
    assert line.flash_ratio == 250_000 / 330_000


def test_kernel_scratch_counts_in_peak_ram() -> None:
    (line,) = perf_lines([ROWS[3], ROWS[4]], MACS, {"ic": 1152})
    assert line.builtin_peak_ram == 49_152 + 1152 + 300
    assert line.ram_ratio == (49_152 + 1152 + 300) / (54_340 + 700)


def test_kernel_scratch_per_target_wins_over_the_benchmark_default() -> None:
    """th_scratch depends on the target's kernels (cortex-m55's Helium conv needs other
    scratch): a (benchmark, target) entry is used for that target only."""
    target = str(ROWS[3]["target"])
    (mine,) = perf_lines([ROWS[3], ROWS[4]], MACS, {("ic", target): 64, "ic": 1152})
    (default,) = perf_lines([ROWS[3], ROWS[4]], MACS, {("ic", "elsewhere"): 64, "ic": 1152})
    assert mine.builtin_peak_ram is not None and default.builtin_peak_ram is not None
    assert default.builtin_peak_ram - mine.builtin_peak_ram == 1152 - 64


def test_peak_ram_needs_both_arena_and_stack() -> None:
    assert peak_ram({"ram_arena_bytes": 100, "ram_stack_bytes": 28}) == 128
    assert peak_ram({"ram_arena_bytes": 100, "ram_stack_bytes": 28}, 64) == 192
    assert peak_ram({"ram_arena_bytes": 100, "ram_stack_bytes": None}) is None


def test_tflm_peak_ram_needs_both_arena_used_and_stack() -> None:
    assert tflm_peak_ram({"arena_used_bytes": 2_260, "ram_stack_bytes": 900}) == 3_160
    assert tflm_peak_ram({"arena_used_bytes": 2_260, "ram_stack_bytes": None}) is None
    assert tflm_peak_ram({"arena_used_bytes": None, "ram_stack_bytes": 900}) is None
    # The builtin row's ram_arena_bytes is not TFLM's figure.
    assert tflm_peak_ram({"ram_arena_bytes": 2_260, "ram_stack_bytes": 900}) is None


def test_the_smaller_tflm_peak_ram_is_the_yardstick() -> None:
    # The smaller sum, not the smaller arena: ref 99,000 + 3,000 against CMSIS-NN 100,660 + 1,200.
    ref = dict(ROWS[1], arena_used_bytes=99_000, ram_stack_bytes=3_000)
    (line,) = perf_lines([ROWS[0], ref, ROWS[2]], MACS)
    assert (line.tflm_peak_ram, line.tflm_arena_used, line.tflm_stack) == (101_860, 100_660, 1_200)
    assert line.ram_ratio == 55_796 / 101_860
    assert line.compared_to == "tflm cmsis-nn" and line.instructions_ratio == 7_000_000 / 24_000_000


def test_a_tflm_row_without_its_stack_leaves_ram_unjudged() -> None:
    """Never TFLM's arena alone against builtin's arena + stack: no ratio, no pass."""
    for missing in (1, 2):  # either TFLM row (the other could be the smaller)
        rows = [dict(r, ram_stack_bytes=None) if i == missing else r for i, r in enumerate(ROWS[:3])]
        (line,) = perf_lines(rows, MACS)
        assert line.tflm_peak_ram is None and line.tflm_stack is None
        assert line.ram_ratio is None and line.ram_ok is None
        assert line.instructions_ok and line.flash_ok and line.cycles_per_mac_ok
        assert not goals_met([line])
    (line,) = perf_lines(ROWS[:3], MACS)
    assert goals_met([line])


def test_a_builtin_row_without_its_stack_leaves_ram_unjudged() -> None:
    (line,) = perf_lines([dict(ROWS[0], ram_stack_bytes=None), ROWS[1], ROWS[2]], MACS)
    assert line.builtin_peak_ram is None and line.ram_ratio is None and line.ram_ok is None
    assert line.tflm_peak_ram == 101_660
    assert not goals_met([line])


def test_issue21_instructions_per_mac_and_helium_goals() -> None:
    """Instructions per MAC on cortex-m4 against each benchmark's goal (IC 1.25, VWW 1.6,
    KWS 1.5; none for AD or other targets), and on a Helium core builtin's instructions
    over its own portable/DSP kernels' (goal <= 0.5), unjudged without that count."""
    ic = _row("ic", "cortex-m4", "builtin", instructions=15_000_000)  # 1.20 per MAC
    vww = _row("vww", "cortex-m4", "builtin", instructions=13_000_000)  # 1.74
    ad = _row("ad", "cortex-m4", "builtin", instructions=400_000)
    m55 = _row("ic", "cortex-m55", "builtin", instructions=5_000_000)
    m55_vww = _row("vww", "cortex-m55", "builtin", instructions=9_000_000)
    lines = perf_lines([ic, vww, ad, m55, m55_vww], MACS,
                       portable={("ic", "cortex-m55"): 17_000_000, ("vww", "cortex-m55"): 16_000_000})
    by = {(ln.benchmark, ln.target): ln for ln in lines}
    assert by[("ic", "cortex-m4")].instructions_per_mac_ok is True
    assert by[("vww", "cortex-m4")].instructions_per_mac_ok is False
    assert by[("ad", "cortex-m4")].instructions_per_mac_ok is None  # no goal for AD
    assert by[("ic", "cortex-m55")].instructions_per_mac_ok is None  # the goal is cortex-m4's
    assert by[("ic", "cortex-m55")].helium_ratio == 5_000_000 / 17_000_000 and by[("ic", "cortex-m55")].helium_ok
    assert by[("vww", "cortex-m55")].helium_ok is False  # 0.56
    assert by[("ic", "cortex-m4")].helium_ratio is None
    assert not goals_met(lines)
