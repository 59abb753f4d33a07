"""EnergyRunner's energy mode: the timestamp pin of the board families.

No energy monitor here: the descriptors' [energy] pins are checked, each board
family's timestamp code is compiled warning-free for every target that names a
pin (and its GPIO and RCC addresses read back from the object code), and the
whole energy-mode firmware links for each. Nothing is measured.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness.build import ARCH_DIR, BOARDS_DIR, COMMON_DIR, build_firmware, compile_flags, find_target_toolchain, \
    variant_target
from harness.engines.builtin import GeneratedModel
from harness.errors import ToolMissingError, UserInputError
from harness.targets import DescriptorError, TargetDescriptor, available_targets, energy_defines, find_target, \
    load_target
from tests.test_boards import fw_cache, kws  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
F746 = (REPO / "targets" / "stm32f746.toml").read_text()
ENERGY_TARGETS = ("stm32f405", "stm32f746", "nucleo-l4r5zi")

# Per family: GPIOA's base address, the RCC register enabling the GPIO clocks
# (RM0090 / RM0385: AHB1 at 0x40020000, RCC_AHB1ENR 0x40023830; RM0432: AHB2 at
# 0x48000000, RCC_AHB2ENR 0x4002104C).

GPIO = {"stm32f4": (0x40020000, 0x40023830), "stm32f7": (0x40020000, 0x40023830),
        "stm32l4": (0x48000000, 0x4002104C)}


# ----------------------------------------------------------------- descriptors

def test_board_targets_name_their_d7_pins() -> None:
    pins = {t.name: t.energy.name for t in available_targets() if t.energy is not None}
    assert pins == {"stm32f405": "PA1", "stm32f746": "PI3", "nucleo-l4r5zi": "PF13"}
    f746 = find_target("stm32f746")
    assert f746.energy is not None and "UM1907" in f746.energy.source and f746.energy.drive == "open-drain"
    assert dict(f746.energy.defines) == {"TH_TIMESTAMP_PORT": "8", "TH_TIMESTAMP_PIN": "3"}
    # The chip build carries the pin; the emulator build (mps2, a core proxy) does not.
    assert {"TH_TIMESTAMP_PORT": "8", "TH_TIMESTAMP_PIN": "3"}.items() <= dict(f746.chip_target().board_defines).items()
    assert "TH_TIMESTAMP_PORT" not in dict(f746.board_defines)
    assert "UM2179" in (find_target("nucleo-l4r5zi").energy or f746.energy).source


def test_energy_defines() -> None:
    l4 = find_target("nucleo-l4r5zi")
    assert energy_defines(l4) == ["-DTH_ENERGY_MODE=1", "-DTH_TIMESTAMP_PORT=5", "-DTH_TIMESTAMP_PIN=13"]
    # The board build already has the pin: only the mode switch is added.
    assert energy_defines(variant_target(l4, "board")) == ["-DTH_ENERGY_MODE=1"]
    with pytest.raises(UserInputError, match=r"esp32c3: no energy-mode timestamp pin: esp32c3.toml has no "
                                             r"\[energy\] table.*stm32f746"):
        energy_defines(find_target("esp32c3"))
    with pytest.raises(UserInputError, match=r"cortex-m4: no energy-mode timestamp pin"):
        energy_defines(find_target("cortex-m4"))


def _energy(tmp_path: Path, table: str, text: str = F746) -> Path:
    start = text.index("[energy]")
    end = text.index("[power]")
    p = tmp_path / "stm32f746.toml"
    p.write_text(text[:start] + table + "\n" + text[end:])
    return p


def test_bad_pins_name_the_field(tmp_path: Path) -> None:
    src = 'source = "UM1907"'
    cases = {
        f'[energy]\ntimestamp_pin = "PZ99"\n{src}':
            r"stm32f746.toml: energy.timestamp_pin: 'PZ99': the stm32f7 family has no GPIO port Z \(ports A-K\)",
        f'[energy]\ntimestamp_pin = "PI16"\n{src}':
            r"energy.timestamp_pin: 'PI16': pin 16 does not exist \(a GPIO port has pins 0-15\)",
        f'[energy]\ntimestamp_pin = "D7"\n{src}':
            r'energy.timestamp_pin: expected a GPIO pin like "PF13" .*got \'D7\'',
        f'[energy]\ntimestamp_pin = 7\n{src}': r"energy.timestamp_pin: expected string, got 7",
        '[energy]\ntimestamp_pin = "PI3"': r"energy.source: missing \(required\)",
        f'[energy]\ntimestamp_pin = "PI3"\n{src}\ndrive = "totem"':
            r"energy.drive: expected one of open-drain, push-pull, got 'totem'",
        f'[energy]\ntimestamp_pin = "PI3"\n{src}\npin = 3': r"energy.pin: unknown key",
    }
    for table, message in cases.items():
        with pytest.raises(DescriptorError, match=message):
            load_target(_energy(tmp_path, table))
    # Port K exists on the F7, not on the F4 (GPIOA..GPIOI), nor without a [chip] table.
    assert (load_target(_energy(tmp_path, f'[energy]\ntimestamp_pin = "pk15"\n{src}')).energy or
            pytest.fail("no pin")).name == "PK15"
    f405 = (REPO / "targets" / "stm32f405.toml").read_text()
    p = tmp_path / "stm32f405.toml"
    p.write_text(f405.replace('timestamp_pin = "PA1"', 'timestamp_pin = "PK1"'))
    with pytest.raises(DescriptorError, match=r"energy.timestamp_pin: 'PK1': the stm32f4 family has no GPIO "
                                              r"port K \(ports A-I\)"):
        load_target(p)
    no_chip = F746[:F746.index("[chip]")] + F746[F746.index("[energy]"):]
    with pytest.raises(DescriptorError, match=r"energy.timestamp_pin: the timestamp pin is on the real chip"):
        load_target(_energy(tmp_path, f'[energy]\ntimestamp_pin = "PI3"\n{src}', no_chip))
    pp = load_target(_energy(tmp_path, f'[energy]\ntimestamp_pin = "PI3"\n{src}\ndrive = "push-pull"'))
    assert pp.energy is not None and ("TH_TIMESTAMP_PUSH_PULL", "1") in pp.energy.defines


# ----------------------------------------------------------------- compile checks

def _gcc(target: TargetDescriptor) -> str:
    try:
        return str(find_target_toolchain(target).gcc)
    except ToolMissingError as e:
        pytest.skip(str(e))


def _compile_board(target: TargetDescriptor, out: Path, extra: list[str]) -> subprocess.CompletedProcess[str]:
    gcc = _gcc(target)
    board = BOARDS_DIR / target.board_family
    cmd = [gcc, *compile_flags(target), *extra, f"-I{COMMON_DIR}", f"-I{ARCH_DIR / target.arch}", f"-I{board}",
           "-c", str(next(board.glob("th_board_*.c"))), "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True)


def _code(gcc: str, obj: Path, symbol: str) -> tuple[set[int], set[int]]:
    """One function of an object file: the addresses it reaches (literal words, plus
    each with every load/store offset), and its constants (immediates and words)."""
    objdump = gcc.replace("-gcc", "-objdump")
    text = subprocess.run([objdump, "-d", f"--disassemble={symbol}", str(obj)], capture_output=True, text=True,
                          check=True).stdout
    text = text[text.index(f"<{symbol}>:"):]
    text = text[:text.index("Disassembly of section")] if "Disassembly of section" in text else text
    words = {int(w, 16) for w in re.findall(r"\.word\s+0x([0-9a-f]+)", text)}
    offsets = {0, *(int(o) for o in re.findall(r"\[r\d+, #(\d+)\]", text))}
    immediates = {int(i) for i in re.findall(r"#(\d+)", text)}
    return {w + o for w in words for o in offsets}, immediates | words



@pytest.mark.parametrize("target_name", ENERGY_TARGETS)
@pytest.mark.parametrize("variant", ["chip", "board"])
def test_timestamp_pin_compiles_warning_free(target_name: str, variant: str, tmp_path: Path) -> None:
    """The board family's th_board_timestamp_init/th_board_timestamp at the descriptor's
    pin: no warning, and the object code addresses that pin's GPIO port and the RCC
    register clocking it."""
    target = variant_target(find_target(target_name), variant)
    assert target.energy is not None
    obj = tmp_path / "board.o"
    proc = _compile_board(target, obj, energy_defines(target))
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    gpio0, enr = GPIO[target.board_family]
    port = ord(target.energy.port) - ord("A")
    gpio = gpio0 + 0x400 * port
    gcc = _gcc(target)
    init, init_k = _code(gcc, obj, "th_board_timestamp_init")
    pulse, pulse_k = _code(gcc, obj, "th_board_timestamp")
    bit = 1 << target.energy.pin
    assert enr in init, [hex(a) for a in init]  # the port's clock
    assert {gpio + 0x00, gpio + 0x04, gpio + 0x0C, gpio + 0x18} <= init, [hex(a) for a in init]  # MODER..BSRR
    assert gpio + 0x18 in pulse and {bit, bit << 16} <= pulse_k, ([hex(a) for a in pulse], pulse_k)  # BSRR set/reset
    assert bit in init_k


@pytest.mark.parametrize("target_name,port", [("stm32f405", 9), ("nucleo-l4r5zi", 10), ("stm32f746", 11)])
def test_timestamp_port_out_of_range_is_a_compile_error(target_name: str, port: int, tmp_path: Path) -> None:
    """A port past the family's last (GPIOI on F4/L4, GPIOK on F7) stops the build, named."""
    message = "this STM32 family has no such GPIO port"
    target = find_target(target_name).chip_target()
    flags = ["-DTH_ENERGY_MODE=1", "-UTH_TIMESTAMP_PORT", f"-DTH_TIMESTAMP_PORT={port}"]
    proc = _compile_board(target, tmp_path / "board.o", flags)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_without_energy_mode_nothing_changes(tmp_path: Path) -> None:
    """Performance builds (no -DTH_ENERGY_MODE) have no timestamp pin code."""
    target = find_target("stm32f746").chip_target()
    obj = tmp_path / "board.o"
    proc = _compile_board(target, obj, [])
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    nm = _gcc(target).replace("-gcc", "-nm")
    symbols = subprocess.run([nm, str(obj)], capture_output=True, text=True, check=True).stdout
    assert "th_board_timestamp" not in symbols


@pytest.mark.parametrize("target_name", ENERGY_TARGETS)
def test_energy_firmware_links_warning_free(target_name: str, kws: GeneratedModel,  # noqa: F811
                                            fw_cache: Path) -> None:  # noqa: F811
    """The whole energy-mode board firmware (th_dut.c's th_timestamp on the pin) compiles
    and links warning-free at the chip's addresses."""
    target = variant_target(find_target(target_name), "board")
    image = build_firmware(kws, target, cache_dir=fw_cache, extra_cflags=energy_defines(target))
    assert "-DTH_ENERGY_MODE=1" in image.cflags and image.elf.is_file()
    assert sum(f.startswith("-DTH_TIMESTAMP_PORT=") for f in image.cflags) == 1


@pytest.mark.qemu
def test_stm32f405_energy_firmware_pulses_pa1_on_qemu(kws: GeneratedModel, fw_cache: Path,  # noqa: F811
                                                     arm_tools: tuple[str, str], tmp_path: Path) -> None:
    """QEMU's netduinoplus2 is the STM32F405 itself, its GPIO ports unimplemented devices
    whose accesses `-d unimp` logs: the energy build makes PA1 an open-drain output
    latched high (BSRR set before MODER turns it output), says m-timestamp-mode-energy,
    and each `timestamp%` is a reset then a set of PA1 through BSRR."""
    from harness.dut import Dut
    from harness.runners.qemu import qemu_command
    from harness.runners.renode import free_port
    from harness.transport import open_url

    target = find_target("stm32f405")
    built = variant_target(target, "board")
    image = build_firmware(kws, built, cache_dir=fw_cache, extra_cflags=energy_defines(built))
    nm = subprocess.run([arm_tools[0].replace("-gcc", "-nm"), str(image.elf)], capture_output=True, text=True,
                        check=True).stdout
    if "th_board_timestamp_init" not in nm:
        pytest.skip("th_dut.c does not call th_board_timestamp_init() in energy mode yet")
    log, port = tmp_path / "unimp.log", free_port()
    proc = subprocess.Popen(qemu_command(arm_tools[1], image.elf, target, port, extra=["-d", "unimp", "-D", str(log)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None and b"waiting for connection" in proc.stderr.readline()
        uart = open_url(f"socket://127.0.0.1:{port}", timeout=0.2)
        try:
            dut = Dut(uart, timeout_s=30)
            dut.sync(30)
            dut.command("timestamp")
            dut.command("timestamp")
        finally:
            uart.close()
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert any("m-timestamp-mode-energy" in line for line in dut.transcript)
    writes = re.findall(r"GPIOA: unimplemented device write \(size 4, offset (0x[0-9a-f]+), value (0x[0-9a-f]+)\)",
                        log.read_text())
    pa1 = [(int(o, 16), int(v, 16)) for o, v in writes if int(o, 16) != 0x24]  # AFRH: the UART's PA9/PA10
    init = pa1.index((0x18, 0x2))  # BSRR: PA1 latched high first
    assert (0x04, 0x2) in pa1[init:]  # OTYPER: open drain (QEMU reads 0, so the write is the bit alone)
    assert (0x0C, 0x4) in pa1[init:]  # PUPDR: pull-up
    moder = pa1.index((0x00, 0x4), init)  # MODER: general-purpose output, after the latch
    pulses = pa1[moder + 1:]
    assert pulses == [(0x18, 0x20000), (0x18, 0x2)] * 3, pulses  # boot (idle high) + two timestamps
