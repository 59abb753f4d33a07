"""Metrics are pure functions of a run record, ELF sizes and the target."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.metrics import ElfSizes, compute_metrics
from harness.runners.base import RunRecord
from harness.targets import find_target

SIZES = ElfSizes(text=10_000, rodata=60_000, data=100, bss=20_000, weights=55_000, arena=16_000, db_buffer=490)


def test_instructions_latency_energy() -> None:
    target = find_target("stm32f746")  # 216 MHz, 330 mW
    rec = RunRecord(runner="qemu", target=target.name, elf=Path("x.elf"), counter="instructions",
                    ticks=2_000_000, runs=4, units_per_tick=40, stack_bytes=1500, est_cycles=17_000_000,
                    cycle_model="tinyhil-cycles cortex-m7 v3")
    m = compute_metrics(rec, SIZES, target)
    assert m.instructions == 20_000_000 and m.cycles is None
    assert m.est_cycles == 17_000_000  # the timing model's figure, never instructions x 1
    assert m.latency_source == "est_cycles"
    assert m.latency_ms == pytest.approx(m.est_cycles / 216e6 * 1e3)
    assert m.energy_uj == pytest.approx(m.latency_ms * target.power.active_mw)
    assert m.flash_bytes == 70_100 and m.flash_code_bytes == 10_000
    assert m.flash_weights_bytes == 55_000 and m.flash_other_bytes == 5_100
    assert m.ram_static_bytes == 20_100 and m.ram_bytes == 21_600 and m.ram_arena_bytes == 16_000


def test_hardware_cycles_are_not_instructions() -> None:
    target = find_target("cortex-m4")
    rec = RunRecord(runner="board", target=target.name, elf=Path("x.elf"), counter="cycles",
                    ticks=1_680_000, runs=1, units_per_tick=1)
    m = compute_metrics(rec, SIZES, target)
    assert m.instructions is None and m.est_cycles is None
    assert m.cycles == 1_680_000 and m.latency_source == "cycles"
    assert m.latency_ms == pytest.approx(10.0)


def test_failed_run_has_no_numbers() -> None:
    target = find_target("cortex-m4")
    rec = RunRecord(runner="qemu", target=target.name, elf=Path("x.elf"), counter="instructions",
                    ticks=999, runs=1, error="no answer from the device")
    m = compute_metrics(rec, SIZES, target)
    assert m.instructions is None and m.latency_ms is None and m.energy_uj is None


def test_no_power_figure_means_no_energy_estimate() -> None:
    target = find_target("cortex-m55")  # its [power] names no active_mw, on purpose
    assert target.power.active_mw is None and "not estimated" in target.power.source
    rec = RunRecord(runner="qemu", target=target.name, elf=Path("x.elf"), counter="instructions",
                    ticks=1_000, runs=1, units_per_tick=32, stack_bytes=300, est_cycles=40_000)
    m = compute_metrics(rec, SIZES, target)
    assert m.latency_ms is not None and m.energy_uj is None


def test_no_cycle_model_means_no_latency() -> None:
    """Instructions without the timing model's figure are not passed off as cycles."""
    target = find_target("cortex-m4")
    rec = RunRecord(runner="renode", target=target.name, elf=Path("x.elf"), counter="instructions",
                    ticks=1_000, runs=1, units_per_tick=1)
    m = compute_metrics(rec, SIZES, target)
    assert m.instructions == 1_000 and m.est_cycles is None and m.latency_ms is None and m.energy_uj is None
