"""Target descriptors: every shipped one loads; bad files name the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.targets import DescriptorError, available_targets, find_target, load_target

GOOD = (Path(__file__).resolve().parents[1] / "targets" / "stm32f746.toml").read_text()


def test_shipped_targets_load() -> None:
    names = {t.name for t in available_targets()}
    assert {"cortex-m4", "cortex-m7", "cortex-m33", "stm32f405", "stm32f746", "nucleo-l4r5zi"} <= names
    f746 = find_target("stm32f746")
    assert f746.clock_hz == 216_000_000
    assert f746.flash.size == 1024 * 1024 and f746.ram.size == 320 * 1024
    assert f746.qemu is not None and f746.qemu.machine == "mps2-an500" and "proxy" in f746.qemu.proxy
    assert "DS10916" in f746.power.source and f746.cycle_model.source and f746.cycle_model.memory.caches


def test_cortex_m55_on_mps3_an547() -> None:
    m55 = find_target("cortex-m55")
    assert "-mcpu=cortex-m55" in m55.core_flags and "-mfloat-abi=hard" in m55.core_flags
    assert m55.has_cycle_counter and m55.board_family == "mps3"
    assert m55.qemu is not None and (m55.qemu.machine, m55.qemu.instructions_per_tick) == ("mps3-an547", 32)
    assert (m55.flash.origin, m55.ram.origin) == (0x10000000, 0x30000000)  # ITCM, DTCM (secure aliases)
    assert dict(m55.board_defines)["TH_TIMER_HZ"] == hex(31_250_000)


def _write(tmp_path: Path, text: str, name: str = "stm32f746") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return p


def test_wrong_type_names_file_and_field(tmp_path: Path) -> None:
    p = _write(tmp_path, GOOD.replace("size_kb = 320", 'size_kb = "320k"'))
    with pytest.raises(DescriptorError, match=r"stm32f746.toml: memory.ram.size_kb: expected integer, got '320k'"):
        load_target(p)


def test_unknown_key_rejected(tmp_path: Path) -> None:
    p = _write(tmp_path, GOOD.replace("[power]", "[power]\nactive_ma = 3"))
    with pytest.raises(DescriptorError, match=r"power.active_ma: unknown key"):
        load_target(p)


def test_missing_field_and_unknown_core(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError, match=r"clock_mhz: missing"):
        load_target(_write(tmp_path, GOOD.replace("clock_mhz = 216.0", "")))
    with pytest.raises(DescriptorError, match=r"core: unknown core 'cortex-m9'"):
        load_target(_write(tmp_path, GOOD.replace('core = "cortex-m7"', 'core = "cortex-m9"')))


def test_bad_toml_and_unknown_target(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError, match=r"not valid TOML"):
        load_target(_write(tmp_path, "name = "))
    with pytest.raises(DescriptorError, match=r"unknown target 'stm32f999' \(known: .*stm32f746"):
        find_target("stm32f999")
