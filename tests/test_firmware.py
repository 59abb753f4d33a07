"""The firmware build and the firmware itself: toolchain lookup logic (no tools
needed), linker script and overflow reporting (arm-none-eabi-gcc), and the DUT
protocol on QEMU's boards (qemu-system-arm): outputs byte-exact with TFLM,
deterministic tick counts, calibrated timers, stack and arena reports."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from harness import build
from harness.build import (STACK_BYTES, FirmwareImage, System, Toolchain, build_firmware,
                           find_qemu, find_toolchain, linker_script)
from harness.datasets import load_dataset
from harness.engines.builtin import GeneratedModel, generate
from harness.errors import DoesNotFitError, ToolMissingError
from harness.model import load_model
from harness.reference import Reference
from harness.targets import MemoryRegion, TargetDescriptor, find_target, load_target
from tests.conftest import MODELS

needs_arm_gcc = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                   reason="arm-none-eabi-gcc not on PATH")
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None,
                                reason="qemu-system-arm not on PATH")

DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n'
FEDORA = 'NAME="Fedora Linux"\nID=fedora\n'


# ----------------------------------------------------------------- tool lookup (no tools)

class FakeSystem:
    """Records what tool lookup would run; tools appear once "installed"."""

    def __init__(self, euid: int = 0, os_release: str = DEBIAN, have: tuple[str, ...] = ("apt-get",),
                 install_works: bool = True) -> None:
        self.have = set(have)
        self.euid, self.os_release_text, self.install_works = euid, os_release, install_works
        self.ran: list[list[str]] = []
        self.said: list[str] = []

    def which(self, name: str) -> str | None:
        return f"/usr/bin/{name}" if name in self.have else None

    def run(self, cmd: list[str]) -> int:
        self.ran.append(cmd)
        if self.install_works:
            if "gcc-arm-none-eabi" in cmd:
                self.have |= {"arm-none-eabi-gcc", "arm-none-eabi-objcopy", "arm-none-eabi-size"}
            if "qemu-system-arm" in cmd:
                self.have.add("qemu-system-arm")
            return 0
        return 100

    def system(self) -> System:
        return System(which=self.which, euid=lambda: self.euid, os_release=lambda: self.os_release_text,
                      run=self.run, say=self.said.append)


def test_missing_toolchain_without_root_names_the_command() -> None:
    fake = FakeSystem(euid=1000)
    with pytest.raises(ToolMissingError) as e:
        find_toolchain(system=fake.system())
    assert str(e.value) == ("arm-none-eabi-gcc not found: install it with "
                            "`sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi`")
    assert fake.ran == []


def test_missing_qemu_without_root_names_the_command() -> None:
    fake = FakeSystem(euid=1000)
    with pytest.raises(ToolMissingError) as e:
        find_qemu(system=fake.system())
    assert str(e.value) == "qemu-system-arm not found: install it with `sudo apt-get install qemu-system-arm`"


@pytest.mark.parametrize("os_release", [DEBIAN, UBUNTU])
def test_missing_toolchain_as_root_on_debian_installs(os_release: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSystem(os_release=os_release)
    monkeypatch.setattr(build, "_gcc_version", lambda gcc: "arm-none-eabi-gcc 12.2")
    tc = find_toolchain(system=fake.system())
    expected = ["apt-get", "install", "-y", "gcc-arm-none-eabi", "libnewlib-arm-none-eabi"]
    assert fake.ran == [expected]
    assert any(" ".join(expected) in line for line in fake.said)  # printed before running
    assert tc == Toolchain(Path("/usr/bin/arm-none-eabi-gcc"), Path("/usr/bin/arm-none-eabi-objcopy"),
                           Path("/usr/bin/arm-none-eabi-size"), "arm-none-eabi-gcc 12.2")


def test_missing_qemu_as_root_on_debian_installs() -> None:
    fake = FakeSystem()
    assert find_qemu(system=fake.system()) == Path("/usr/bin/qemu-system-arm")
    assert fake.ran == [["apt-get", "install", "-y", "qemu-system-arm"]]


@pytest.mark.parametrize("case", ["not-debian", "no-apt-get", "install-disabled"])
def test_no_install_when_not_allowed(case: str) -> None:
    fake = FakeSystem(os_release=FEDORA if case == "not-debian" else DEBIAN,
                      have=() if case == "no-apt-get" else ("apt-get",))
    with pytest.raises(ToolMissingError,
                       match="^qemu-system-arm not found: install it with `sudo apt-get install qemu-system-arm`$"):
        find_qemu(install=case != "install-disabled", system=fake.system())
    assert fake.ran == []


def test_failed_install_is_an_error() -> None:
    fake = FakeSystem(install_works=False)
    with pytest.raises(ToolMissingError, match="still missing"):
        find_qemu(system=fake.system())
    install = ["apt-get", "install", "-y", "qemu-system-arm"]
    assert fake.ran == [install, ["apt-get", "update"], install]


def test_present_tool_is_used_as_is() -> None:
    fake = FakeSystem(euid=1000, have=("qemu-system-arm",))
    assert find_qemu(system=fake.system()) == Path("/usr/bin/qemu-system-arm")
    assert fake.ran == []


# ----------------------------------------------------------------- linker script, overflow

def test_linker_script_uses_the_real_chips_memory() -> None:
    t = find_target("stm32f746")
    script = linker_script(t)
    assert "FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 1048576" in script
    assert "RAM (rw) : ORIGIN = 0x20000000, LENGTH = 327680" in script
    assert f"__th_stack_size = {STACK_BYTES};" in script
    assert "> RAM AT > FLASH" in script  # .data initialised from flash


def test_overflow_message_parsing() -> None:
    stderr = ("ld: firmware.elf section `.rodata' will not fit in region `FLASH'\n"
              "ld: region `FLASH' overflowed by 12345 bytes\n"
              "ld: region `RAM' overflowed by 8 bytes\n")
    assert build._overflow(stderr) == "FLASH overflowed by 12345 bytes; RAM overflowed by 8 bytes"
    assert build._overflow("undefined reference to `foo'") == ""


# ----------------------------------------------------------------- builds (toolchain)

@pytest.fixture(scope="module")
def kws() -> GeneratedModel:
    path = MODELS / "kws_ref_model.tflite"
    if not path.exists():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    return generate(load_model(path))


@pytest.fixture(scope="module")
def fw_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("firmware-cache")


@needs_arm_gcc
def test_build_is_cached(kws: GeneratedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tc = find_toolchain(install=False)
    messages: list[str] = []
    first = build_firmware(kws, find_target("cortex-m4"), cache_dir=tmp_path, progress=messages.append,
                           toolchain=tc)
    assert not first.cache_hit and first.elf.is_file()
    assert first.elf.parent.parent == tmp_path and first.elf.name == "firmware.elf"
    assert (first.model, first.target, first.engine) == ("kws_ref_model", "cortex-m4", "builtin")
    assert (first.input_bytes, first.output_bytes, first.arena_bytes) == (490, 12, kws.arena_bytes)
    assert "-mcpu=cortex-m4" in first.cflags and "-mfpu=fpv4-sp-d16" in first.cflags
    assert first.compiler == tc.version

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"compiled on a cache hit: {args}")

    monkeypatch.setattr(subprocess, "run", no_compiling)  # harness.build's too
    second = build_firmware(kws, find_target("cortex-m4"), cache_dir=tmp_path, toolchain=tc)
    assert second.cache_hit and second.elf == first.elf
    assert second == replace(first, cache_hit=True)


@needs_arm_gcc
def test_default_cache_dir_respects_tinyhil_cache(kws: GeneratedModel, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINYHIL_CACHE", str(tmp_path))
    image = build_firmware(kws, find_target("stm32f405"))
    assert image.elf.parent.parent == tmp_path / "firmware"


@needs_arm_gcc
def test_firmware_layout(kws: GeneratedModel, fw_cache: Path) -> None:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    t = find_target("cortex-m4")
    image = build_firmware(kws, t, cache_dir=fw_cache)
    with image.elf.open("rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection)
        symbols = {s.name: s for s in symtab.iter_symbols()}
        assert symbols["__th_stack_top"]["st_value"] == t.ram.origin + t.ram.size
        assert symbols["__th_stack_bottom"]["st_value"] == t.ram.origin + t.ram.size - STACK_BYTES
        assert symbols["th_vectors"]["st_value"] == t.flash.origin
        assert symbols["th_db_buf"]["st_size"] == 490
        undefined = {n for n, s in symbols.items() if s["st_shndx"] == "SHN_UNDEF" and n}
        assert not undefined & {"malloc", "free", "printf", "_sbrk"}


@needs_arm_gcc
def test_model_too_big_for_flash(shared_models: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny64k.toml"
    tiny.write_text(
        'name = "tiny64k"\ncore = "cortex-m4"\nclock_mhz = 48.0\n'
        '[board]\nfamily = "mps2"\n'
        'defines = { TH_UART_BASE = 0x40004000, TH_TIMER_BASE = 0x40000000 }\n'
        '[memory]\nflash = { origin = 0x00000000, size_kb = 64 }\n'
        'ram = { origin = 0x20000000, size_kb = 512 }\n'
        '[power]\nactive_mw = 10.0\nsource = "test"\n')
    gen = generate(load_model(shared_models / "vww_96_int8.tflite"))
    with pytest.raises(DoesNotFitError) as e:
        build_firmware(gen, load_target(tiny), cache_dir=tmp_path / "cache")
    first_line = str(e.value).splitlines()[0]
    m = re.match(r"vww_96_int8 does not fit tiny64k: FLASH overflowed by (\d+) bytes", first_line)
    assert m, first_line
    # The weights alone are several times 64 KB.
    assert int(m.group(1)) > gen.weights_bytes - 64 * 1024


@needs_arm_gcc
def test_ram_overflow_is_reported(kws: GeneratedModel, tmp_path: Path) -> None:
    t = find_target("cortex-m4")
    small = replace(t, name="tiny-ram", ram=MemoryRegion(t.ram.origin, 16 * 1024))
    with pytest.raises(DoesNotFitError, match=r"^kws_ref_model does not fit tiny-ram: RAM overflowed by \d+ bytes"):
        build_firmware(kws, small, cache_dir=tmp_path)


# ----------------------------------------------------------------- on QEMU

class QemuDut:
    """A firmware under QEMU, spoken to over its UART as a TCP socket."""

    def __init__(self, target: TargetDescriptor, elf: Path) -> None:
        assert target.qemu is not None
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            ["qemu-system-arm", "-M", target.qemu.machine, "-display", "none", "-monitor", "none",
             "-icount", "shift=0", "-kernel", str(elf),
             "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise
                time.sleep(0.05)
        self.buf = b""
        self.boot = self.read_until_ready()

    def read_until_ready(self) -> list[str]:
        lines: list[str] = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(4096)
                assert chunk, f"QEMU closed the connection after {lines}"
                self.buf += chunk
            raw, self.buf = self.buf.split(b"\r\n", 1)
            line = raw.decode()
            if line == "m-ready":
                return lines
            lines.append(line)

    def command(self, text: str) -> list[str]:
        self.sock.sendall(text.encode() + b"%")
        return self.read_until_ready()

    def value(self, text: str, prefix: str) -> str:
        lines = self.command(text)
        hits = [ln[len(prefix):] for ln in lines if ln.startswith(prefix)]
        assert hits, f"{text}% -> {lines}"
        return hits[-1]

    def load(self, data: bytes, chunk: int = 512) -> list[str]:
        assert self.command(f"db load {len(data)}") == [f"m-[Expecting {len(data)} bytes]"]
        lines: list[str] = []
        for pos in range(0, len(data), chunk):
            lines = self.command("db " + data[pos:pos + chunk].hex())
        return lines

    def infer_output(self, data: bytes) -> bytes:
        """Load ``data``, infer once (status 0 asserted) and return the raw output bytes."""
        assert self.load(data) == ["m-load-done"]
        lines = self.command("infer 1 0")
        assert "m-th-status-0" in lines, lines
        return bytes.fromhex(self.value("results", "m-th-output-"))

    def close(self) -> None:
        if getattr(self, "sock", None):
            self.sock.close()
        self.proc.kill()
        self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


StartQemu = Callable[[TargetDescriptor, FirmwareImage], "QemuDut"]


@pytest.fixture
def run_qemu() -> Iterator[StartQemu]:
    duts: list[QemuDut] = []

    def start(target: TargetDescriptor, image: FirmwareImage) -> QemuDut:
        duts.append(QemuDut(target, image.elf))
        return duts[-1]

    yield start
    for d in duts:
        d.close()


QEMU_TARGETS = ["cortex-m4", "stm32f405", "cortex-m7", "stm32f746", "cortex-m33", "cortex-m55"]


@pytest.mark.qemu
@needs_qemu
@needs_arm_gcc
@pytest.mark.parametrize("target_name", QEMU_TARGETS)
def test_kws_on_qemu_matches_tflm(target_name: str, kws: GeneratedModel, fw_cache: Path,
                                  shared_datasets: Path, run_qemu: StartQemu) -> None:
    target = find_target(target_name)
    image = build_firmware(kws, target, cache_dir=fw_cache)
    sample = load_dataset(shared_datasets / "kws01", kws.model, limit=1)[0]
    expected = Reference(kws.model).run(sample.inputs)

    dut = run_qemu(target, image)
    assert dut.boot == ["m-timestamp-mode-performance", f"m-th-build-[{image.build_id}]", "m-init-done"]
    assert dut.command("name") == ["m-name-dut-[tinyhil]"]
    # The MLPerf Tiny benchmark id the official runner looks its test up by.
    assert dut.command("profile") == ["m-profile-[tinyhil]", "m-model-[kws01]"]
    assert dut.load(sample.inputs[0].tobytes()) == ["m-load-done"]

    replies = [dut.command("infer 1 0") for _ in range(2)]
    for lines in replies:
        assert lines[:3] == ["m-warmup-start-0", "m-warmup-done", "m-infer-start-1"]
        assert lines[3].startswith("m-lap-us-") and lines[4].startswith("m-lap-us-")
        assert lines[5:6] == ["m-infer-done"]
        # infer ends with m-results, as the reference's th_results() after the timed loop.
        assert lines[7:9] == ["m-th-runs-1", "m-th-status-0"] and lines[9].startswith("m-results-[")
        assert len(lines) == 10
    ticks = [int(lines[6].removeprefix("m-th-ticks-")) for lines in replies]
    assert ticks[0] > 0 and ticks[0] == ticks[1], ticks  # deterministic under -icount
    # The m-lap-us clock is virtual time: 1 ns per instruction under -icount shift=0.
    assert target.qemu is not None
    lap_us = int(replies[0][4][9:]) - int(replies[0][3][9:])
    invoke_us = ticks[0] * target.qemu.instructions_per_tick / 1000
    assert invoke_us <= lap_us <= invoke_us * 1.01 + 100, (lap_us, invoke_us)

    results = dut.command("results")
    out_hex = results[1].removeprefix("m-th-output-")
    assert bytes.fromhex(out_hex) == b"".join(a.tobytes() for a in expected)
    # Dequantized scores, 3 decimals, rounded half up.
    q = expected[0].reshape(-1).astype(np.int64)
    io = kws.outputs[0]
    assert io.scale is not None and io.zero_point is not None
    milli = np.floor((q - io.zero_point) * io.scale * 1000 + 0.5).astype(np.int64)
    assert results[0] == "m-results-[" + ",".join(f"{m / 1000:.3f}" for m in milli) + "]"
    assert replies[0][9] == results[0]

    stack = int(dut.value("th-stack", "m-th-stack-bytes-"))
    assert 0 < stack < STACK_BYTES
    assert int(dut.value("th-arena", "m-th-arena-bytes-")) == kws.arena_bytes

    # Two timed runs take twice the ticks of one, plus warm-ups that are not timed.
    lines = dut.command("infer 2 3")
    assert "m-warmup-start-3" in lines and "m-th-runs-2" in lines
    assert f"m-th-ticks-{2 * ticks[0]}" in lines


@pytest.mark.qemu
@needs_qemu
@needs_arm_gcc
@pytest.mark.parametrize("target_name", ["cortex-m4", "cortex-m7", "stm32f405", "cortex-m33", "cortex-m55"])
def test_timer_calibration(target_name: str, kws: GeneratedModel, fw_cache: Path, run_qemu: StartQemu) -> None:
    """A 2e7-instruction loop reads ticks x instructions_per_tick within 0.1%."""
    target = find_target(target_name)
    assert target.qemu is not None
    dut = run_qemu(target, build_firmware(kws, target, cache_dir=fw_cache))
    iterations = 10_000_000
    ticks = int(dut.value(f"th-calibrate {iterations}", "m-th-ticks-"))
    instructions = ticks * target.qemu.instructions_per_tick
    assert abs(instructions - 2 * iterations) <= 2 * iterations * 0.001, (ticks, instructions)


@pytest.mark.qemu
@needs_qemu
@needs_arm_gcc
def test_protocol_errors(kws: GeneratedModel, fw_cache: Path, run_qemu: StartQemu) -> None:
    target = find_target("cortex-m4")
    image = build_firmware(kws, target, cache_dir=fw_cache, extra_cflags=("-DTH_TEST_COMMANDS",))
    dut = run_qemu(target, image)
    assert dut.command("bogus 1") == ["e-[unknown command: bogus 1]"]
    assert dut.command("\r\nname") == ["m-name-dut-[tinyhil]"]
    # Any N up to the buffer loads, as the reference's; infer then names the sizes it takes.
    assert dut.command("db load 491") == ["e-[db load: 491 bytes; the input buffer holds 1 to 490]"]
    assert dut.command("db load 0") == ["e-[db load: 0 bytes; the input buffer holds 1 to 490]"]
    assert dut.command("db load 5") == ["m-[Expecting 5 bytes]"]
    assert dut.command("db 0011223344") == ["m-load-done"]
    assert dut.command("infer 1 0") == ["e-[infer: 5 bytes loaded; the model's input is 490 bytes]"]
    assert dut.command("db 00") == ["e-[db: no transfer in progress (send db load N first)]"]
    assert dut.command("db load 490") == ["m-[Expecting 490 bytes]"]
    assert dut.command("db 0g") == ["e-[db: not a hex digit in: 0g]"]
    assert dut.command("db 000") == ["e-[db: odd number of hex digits]"]
    assert dut.command("db 0011") == []
    assert dut.command("infer 1 0") == ["e-[infer: input incomplete: 2 of 490 bytes loaded]"]
    assert dut.command("db " + "00" * 489) == ["e-[db: 1 bytes more than expected]"]
    assert dut.command("db " + "00" * 488) == ["m-load-done"]
    assert dut.command("infer 0 1")[0].startswith("e-[infer: expected N >= 1 [W]")
    assert dut.command("infer x")[0].startswith("e-[infer: expected N >= 1 [W]")
    assert dut.command("th-calibrate") == ["e-[th-calibrate: expected N >= 1, got: ]"]
    assert dut.command("x" * 2000) == ["e-[command too long: more than 1100 characters]"]
    assert dut.command("timestamp")[0].startswith("m-lap-us-")
    assert dut.command("th-fault") == ["", "m-th-fault-[hardfault]"]
