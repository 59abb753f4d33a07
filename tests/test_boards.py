"""Boards, Renode and ESP32 targets.

Without hardware: the QEMU firmware stands in for a board (its UART on a TCP
socket, reached through the board runner as ``socket://`` and through an RFC
2217 bridge), a fake flasher records what would have been flashed, and fake
serial boards produce the faults (silence, a dropped connection, garbage).
RISC-V (esp32c3) runs under QEMU's riscv32 virt. Renode is not installable
here: its command sequence is checked against fakes, and the real run skips.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import pytest
import serial

from harness.bench import fixed_input, input_bytes
from harness.build import BuildError, System, Toolchain, build_firmware, variant_target
from harness.dut import Dut
from harness.engines.builtin import GeneratedModel, generate
from harness.errors import DutProtocolError, ToolMissingError, UserInputError
from harness.hosting import hosting, prepare_runner
from harness.model import load_model
from harness.reference import Reference
from harness.runners import flashers
from harness.runners.base import RunJob, RunRecord
from harness.runners.board import BoardRunner
from harness.runners.flashers import FlashError, esptool, openocd, st_flash
from harness.runners.qemu import QemuRunner, qemu_command
from harness.runners.renode import free_port
from harness.transport import open_url
from harness.runners.renode import (CliBackend, PyRenodeBackend, RenodeRunner, cli_command, find_backend,
                                    instructions_from_log, script)
from harness.targets import DescriptorError, QemuHost, find_target, load_target
from harness.testing.rfc2217 import Rfc2217Bridge
from tests.conftest import MODELS

REPO = Path(__file__).resolve().parents[1]
# pyserial 3.5's RFC 2217 client names and daemonizes its reader thread with
# threading's deprecated setName()/setDaemon().
pytestmark = [pytest.mark.filterwarnings(f"ignore:{m}\\(\\) is deprecated:DeprecationWarning")
              for m in ("setDaemon", "setName")]
F746 = (REPO / "targets" / "stm32f746.toml").read_text()


# ----------------------------------------------------------------- descriptors (no tools)

def test_targets_say_which_runners_and_why_not() -> None:
    f746 = find_target("stm32f746")
    assert f746.runners == ("qemu", "renode", "board", "labgrid")
    assert f746.chip is not None and f746.chip.family == "stm32f7"
    assert f746.chip.flash.origin == 0x08000000 and f746.chip.flash.size == f746.flash.size
    assert f746.renode is not None and f746.renode.uart == "sysbus.usart1"
    assert f746.renode.platform == "platforms/boards/stm32f7_discovery-bb.repl"
    l4 = find_target("nucleo-l4r5zi")
    assert l4.runners == ("qemu", "board", "labgrid") and "no STM32L4R5 platform" in l4.why_not("renode")
    assert l4.chip is not None and l4.chip.family == "stm32l4" and l4.chip.flash.origin == 0x08000000
    c3 = find_target("esp32c3")
    assert (c3.arch, c3.toolchain, c3.qemu and c3.qemu.system) == ("riscv", "riscv64-unknown-elf", "riscv32")
    esp32 = find_target("esp32")
    assert esp32.toolchain == "xtensa-esp32-elf" and esp32.clock_hz == 240_000_000
    assert esp32.runners == ("qemu", "board", "labgrid") and "no ESP32 platform" in esp32.why_not("renode")
    assert esp32.qemu == QemuHost("esp32", Fraction(25, 6), "", "xtensa", "rom")
    s3 = find_target("esp32s3")
    assert s3.toolchain == "xtensa-esp32s3-elf" and s3.clock_hz == 240_000_000 and s3.runners == ("board", "labgrid")
    assert "ESP32-S3" in s3.why_not("qemu")


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "stm32f746.toml"
    p.write_text(text)
    return p


def test_descriptor_errors_for_the_new_tables(tmp_path: Path) -> None:
    with pytest.raises(DescriptorError, match=r"chip.flashers: unknown flasher 'jlink' \(known: esptool, openocd"):
        load_target(_write(tmp_path, F746.replace('flashers = ["pyocd"', 'flashers = ["jlink", "pyocd"')))
    no_chip = F746[:F746.index("[chip]")] + F746[F746.index("[renode]"):]
    with pytest.raises(DescriptorError, match=r"renode.platform: Renode runs the chip build"):
        load_target(_write(tmp_path, no_chip))
    with pytest.raises(DescriptorError, match=r"renode.platform: unknown key \(known: unsupported\)"):
        load_target(_write(tmp_path, F746.replace('uart = "sysbus.usart1"',
                                                  'unsupported = "x"\nuart = "sysbus.usart1"')))


def test_build_variants() -> None:
    f746 = find_target("stm32f746")
    assert variant_target(f746, "emulator") is f746
    chip = variant_target(f746, "chip")
    assert chip.board_family == "stm32f7" and chip.flash.origin == 0x08000000
    board = dict(variant_target(f746, "board").board_defines)
    assert board["TH_COUNTER_CYCLES"] == "1" and board["TH_CLOCK_SETUP"] == "1"
    assert board["TH_CPU_HZ"] == "216000000u"
    with pytest.raises(DescriptorError, match="a generic Cortex-M4, not a chip"):
        variant_target(find_target("cortex-m4"), "board")


# ----------------------------------------------------------------- flashers (fakes)

def test_flasher_modules_load_by_name() -> None:
    assert set(flashers.NAMES) == {"esptool", "openocd", "pyocd", "st-flash"}
    for name in flashers.NAMES:
        module = flashers.load(name)
        assert callable(module.available) and callable(module.flash)
    with pytest.raises(Exception, match="unknown flasher 'jlink'"):
        flashers.load("jlink")


def test_flasher_selection_takes_the_first_available(monkeypatch: pytest.MonkeyPatch) -> None:
    f746 = find_target("stm32f746")
    modules = {n: flashers.load(n) for n in ("pyocd", "openocd", "st-flash")}
    monkeypatch.setattr(modules["pyocd"], "available", lambda t: "pyocd not installed")
    monkeypatch.setattr(modules["openocd"], "available", lambda t: None)
    monkeypatch.setattr(modules["st-flash"], "available", lambda t: None)
    name, chosen = flashers.select(f746)
    assert name == "openocd" and chosen is modules["openocd"]
    monkeypatch.setattr(modules["openocd"], "available", lambda t: "openocd not found")
    monkeypatch.setattr(modules["st-flash"], "available", lambda t: "st-flash not found")
    with pytest.raises(FlashError) as e:
        flashers.select(f746)
    assert str(e.value) == ("no flasher for stm32f746 here (pyocd: pyocd not installed; "
                            "openocd: openocd not found; st-flash: st-flash not found)")
    with pytest.raises(FlashError, match="a generic Cortex-M4, not a chip"):
        flashers.select(find_target("cortex-m4"))


def test_flasher_command_lines(tmp_path: Path) -> None:
    elf = tmp_path / "firmware.elf"
    f746, c3 = find_target("stm32f746"), find_target("esp32c3")
    assert openocd.command(elf, f746) == ["openocd", "-f", "board/stm32f7discovery.cfg",
                                          "-c", f"program {elf} verify reset exit"]
    assert st_flash.command(tmp_path / "firmware.bin", f746) == [
        "st-flash", "--reset", "write", str(tmp_path / "firmware.bin"), "0x08000000"]
    image, write = esptool.commands(elf, c3, "/dev/ttyUSB0")
    assert image[-4:] == ["elf2image", "--output", str(tmp_path / "firmware.esp.bin"), str(elf)]
    assert "--chip" in write and write[write.index("--chip") + 1] == "esp32c3"
    assert write[-3:] == ["write_flash", "0x0", str(tmp_path / "firmware.esp.bin")]
    assert write[write.index("--port") + 1] == "/dev/ttyUSB0"


def test_failing_flasher_is_a_failed_record(tmp_path: Path) -> None:
    class Broken:
        def available(self, target: object) -> None:
            return None

        def flash(self, elf: Path, target: object, port: str) -> None:
            raise FlashError("st-flash failed (exit 255): Couldn't find any ST-Link devices")

    opened: list[str] = []
    runner = BoardRunner("/dev/ttyACM0", flasher=Broken(), open_port=lambda url, **kw: opened.append(url))
    record = runner.run(tmp_path / "fw.elf", find_target("stm32f746"), RunJob(b""), 5)
    assert not record.ok and "Couldn't find any ST-Link" in record.error and record.count_per_inference == 0
    assert opened == []  # never talks to a board it could not flash


# ----------------------------------------------------------------- hosting, CLI (no tools)

class FakeSystem:
    def __init__(self, have: tuple[str, ...] = (), euid: int = 1000) -> None:
        self.have, self.euid_ = set(have), euid

    def system(self) -> System:
        return System(which=lambda n: f"/usr/bin/{n}" if n in self.have else None, euid=lambda: self.euid_,
                      os_release=lambda: "ID=debian\n", run=lambda cmd: 1, say=lambda m: None)


def test_hosting_says_why_not_here() -> None:
    sys_ = FakeSystem(have=("arm-none-eabi-gcc", "qemu-system-arm")).system()
    by_runner = {h.runner: h for h in hosting(find_target("esp32"), system=sys_)}
    assert not by_runner["board"].ok
    assert "needs --port" in by_runner["board"].reason
    assert "xtensa-esp32-elf-gcc not found (install ESP-IDF" in by_runner["board"].reason
    f746 = {h.runner: h for h in hosting(find_target("stm32f746"), system=sys_)}
    assert f746["qemu"].ok
    if find_backend() is None:
        assert f746["renode"].reason.startswith("not installed")
    c3 = {h.runner: h for h in hosting(find_target("esp32c3"), system=sys_)}
    assert not c3["qemu"].ok and "riscv64-unknown-elf-gcc not found (sudo apt-get install" in c3["qemu"].reason
    root = FakeSystem(have=("apt-get",), euid=0).system()
    c3_root = {h.runner: h for h in hosting(find_target("esp32c3"), system=root)}
    assert c3_root["qemu"].ok and "installs gcc-riscv64-unknown-elf" in c3_root["qemu"].reason


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from harness.cli import main

    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_targets_command_lists_runners_here(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "targets")
    assert code == 0
    for name in ("esp32c3", "esp32s3", "stm32f746", "nucleo-l4r5zi", "cortex-m55"):
        assert name in out
    code, out, _ = _cli(capsys, "targets", "--json")  # the reasons whole (the table wraps them)
    reasons = " ".join(r["reason"] for t in map(json.loads, out.splitlines()) for r in t["runners_not_here"])
    assert "needs --port" in reasons and "Renode has no" in reasons
    if importlib.util.find_spec("pyocd") is None:  # install hints are printed as written, not as markup
        assert "'tinyhil[board]'" in reasons


@pytest.mark.parametrize("argv,message", [
    (["--target", "nucleo-l4r5zi", "--runner", "renode"], "target nucleo-l4r5zi cannot run on renode: Renode has no"),
    (["--target", "stm32f746", "--runner", "board"], "--runner board needs --port"),
    (["--target", "cortex-m4", "--runner", "board", "--port", "/dev/ttyACM0"], "a generic Cortex-M4, not a chip"),
    (["--target", "esp32s3", "--runner", "qemu"], "ESP32-S3 is compile-checked only"),
    (["--target", "cortex-m4", "--port", "/dev/ttyACM0"], "--port is for --runner board"),
])
def test_bench_runner_mistakes_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
                                      shared_models: Path) -> None:
    code, _, err = _cli(capsys, "bench", "--model", "kws", *argv)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1


def test_a_named_qemu_xtensa_that_is_not_there_is_one_line(capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            shared_models: Path) -> None:
    """--qemu-xtensa names Espressif's QEMU: a path without it is exit 2, a QEMU without
    the esp32 machine exit 1 (a tool missing), each one line saying what to name or install."""
    monkeypatch.setenv("TINYHIL_QEMU_XTENSA", "")  # restored after: the CLI sets it in this process
    code, _, err = _cli(capsys, "bench", "--model", "kws", "--target", "esp32",
                        "--qemu-xtensa", str(tmp_path / "nowhere"))
    assert code == 2 and "no qemu-system-xtensa there" in err and "Traceback" not in err, err
    fake = tmp_path / "qemu-system-xtensa"  # a QEMU whose machines do not include esp32 (Debian's)
    fake.write_text("#!/bin/sh\necho 'Supported machines are:'\necho 'sim   sim machine (dc233c) (default)'\n")
    fake.chmod(0o755)
    code, _, err = _cli(capsys, "bench", "--model", "kws", "--target", "esp32", "--qemu-xtensa", str(tmp_path))
    assert code == 1 and "no esp32 machine" in err and "idf_tools.py install qemu-xtensa" in err, err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1


def test_missing_tools_for_a_runner_are_named() -> None:
    from harness.build import find_toolchain

    nothing = System(which=lambda _p: None, euid=lambda: 1000)  # no compiler at all, not root
    with pytest.raises(ToolMissingError, match=r"xtensa-esp32-elf-gcc not found \(install ESP-IDF.*, and no "
                                               r"fallback: .*sudo apt-get install gcc-xtensa-lx106 "
                                               r"picolibc-xtensa-lx106-elf"):
        find_toolchain(install=False, system=nothing, name="xtensa-esp32-elf")
    if find_backend() is None:
        with pytest.raises(ToolMissingError, match="renode: not installed"):
            prepare_runner("renode", None, [find_target("stm32f746")])
    with pytest.raises(UserInputError):
        prepare_runner("jtag", None, [])
    from harness import runners

    assert {k.name: k.build_variant for k in runners.kinds()} == {"qemu": "emulator", "renode": "chip",
                                                                   "board": "board", "labgrid": "board"}


# ----------------------------------------------------------------- Renode (fakes)

def test_renode_script_from_the_descriptor(tmp_path: Path) -> None:
    elf, log = tmp_path / "fw.elf", tmp_path / "renode.log"
    text = script(elf, find_target("stm32f746"), 4321, log)
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert lines[:2] + lines[3:7] == [
        'mach create "stm32f746"',
        "machine LoadPlatformDescription @platforms/boards/stm32f7_discovery-bb.repl",
        f"logFile @{log}",
        'emulation CreateServerSocketTerminal 4321 "th_uart" false',
        "connector Connect sysbus.usart1 th_uart",
        f"sysbus LoadELF @{elf}",
    ]
    # The platform's missing TIM2 (the firmware's timer), from the descriptor's [renode] repl.
    assert lines[2].startswith('machine LoadPlatformDescriptionFromString "timer2: Timers.STM32_Timer @ sysbus')
    assert lines[7].startswith('sysbus.cpu AddHook `sysbus GetSymbolAddress "th_time_mark"` ')
    assert "self.ExecutedInstructions" in lines[7] and "tinyhil-mark" in lines[7]
    assert lines[8].startswith('sysbus.cpu AddHook `sysbus GetSymbolAddress "th_time_since_mark"` ')
    assert lines[9:] == []  # started by the runner once it listens on the UART
    with pytest.raises(Exception, match="Renode has no STM32L4R5"):
        script(elf, find_target("nucleo-l4r5zi"), 1, log)


def test_renode_counts_come_from_the_hook_lines() -> None:
    log = ("12:00:01 [INFO] cpu: tinyhil-mark 1000\n"
           "12:00:01 [INFO] cpu: tinyhil-since 24001000\n"
           "12:00:02 [WARNING] sysbus: unrelated 5\n"
           "12:00:02 [INFO] cpu: tinyhil-mark 24100000\n"
           "12:00:03 [INFO] cpu: tinyhil-since 48100020\n")
    assert instructions_from_log(log) == [24_000_000, 24_000_020]
    assert instructions_from_log(log, since_line=3) == [24_000_020]
    assert instructions_from_log("tinyhil-since 5\n") == []


def test_renode_backends_command_sequences(tmp_path: Path) -> None:
    started: list[list[str]] = []

    class FakeProc:
        stdin = None

        def poll(self) -> int:
            return 0

        def wait(self, timeout: float | None = None) -> int:
            return 0

    def fake_popen(cmd: list[str], **kwargs: object) -> FakeProc:
        started.append(cmd)
        return FakeProc()

    cli = CliBackend("/opt/renode/renode", popen=fake_popen)  # type: ignore[arg-type]
    cli.start(tmp_path / "t.resc")
    cli.stop()
    assert started == [cli_command("/opt/renode/renode", tmp_path / "t.resc")]
    assert started[0] == ["/opt/renode/renode", "--disable-gui", "--console", "--plain", str(tmp_path / "t.resc")]

    class FakeMonitor:
        def __init__(self) -> None:
            self.commands: list[str] = []

        def execute(self, command: str) -> tuple[str, str]:
            self.commands.append(command)
            return "", ""

    monitor = FakeMonitor()
    py = PyRenodeBackend(monitor)
    py.start(tmp_path / "t.resc")
    py.stop()
    assert monitor.commands == [f"include @{tmp_path / 't.resc'}", "Clear"]


def test_renode_not_installed_is_a_failed_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.runners.renode.find_backend", lambda: None)
    record = RenodeRunner().run(tmp_path / "fw.elf", find_target("stm32f746"), RunJob(b""), 5)
    assert not record.ok and record.error.startswith("renode: not installed")


# ----------------------------------------------------------------- serial faults (fake boards)

BOOT = b"m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n"
NAME = b"m-name-dut-[tinyhil]\r\nm-ready\r\n"
INFO = b"m-th-counter-[cycles]\r\nm-th-counter-hz-216000000\r\nm-ready\r\n"


class FakeBoard:
    """A TCP 'board' that answers name% and th-info%, then misbehaves as told."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(10)
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            if self.mode == "silent":
                time.sleep(5)
                return
            conn.sendall(BOOT[:7])  # boot lines cut short by the port opening late
            buf = b""
            try:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                    while b"%" in buf:
                        cmd, buf = buf.split(b"%", 1)
                        if cmd == b"name":
                            conn.sendall(b"\r\n" + NAME)
                        elif cmd == b"th-info":
                            conn.sendall(INFO)
                        elif self.mode == "disconnect":
                            return  # the cable is pulled
                        elif self.mode == "garbage":
                            conn.sendall(b"\x93\x07\xfe!! 9600-baud noise\r\nm-ready\r\n")
            except OSError:
                return

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=10)


class FakeFlasher:
    """Records what would have been flashed, and where."""

    def __init__(self) -> None:
        self.flashed: list[tuple[Path, str, str]] = []

    def available(self, target: object) -> None:
        return None

    def flash(self, elf: Path, target: object, port: str) -> None:
        self.flashed.append((elf, getattr(target, "name"), port))


@pytest.mark.parametrize("mode,message", [
    ("silent", "no answer from the device"),
    ("disconnect", "serial connection lost mid-run"),
    ("garbage", "garbled line from the device"),
])
@pytest.mark.parametrize("via", ["socket", "rfc2217"])
def test_serial_faults_are_failed_records_not_hangs(mode: str, message: str, via: str, tmp_path: Path) -> None:
    board = FakeBoard(mode)
    url = f"socket://127.0.0.1:{board.port}"
    bridge = Rfc2217Bridge(url).start() if via == "rfc2217" else None
    fake = FakeFlasher()
    t0 = time.monotonic()
    try:
        runner = BoardRunner(bridge.url if bridge else url, flasher=fake, sync_timeout_s=2.0)
        record = runner.run(tmp_path / "fw.elf", find_target("stm32f746"), RunJob(bytes(490)), timeout_s=8.0)
    finally:
        if bridge:
            bridge.close()
        board.close()
    assert time.monotonic() - t0 < 15
    assert not record.ok and record.count_per_inference == 0 and record.output == b""
    if via == "rfc2217" and mode == "disconnect":
        assert "lost mid-run" in record.error or "no answer" in record.error, record.error
    else:
        assert message in record.error, record.error
    assert record.error.startswith(f"board on {runner.port}")
    assert [f[1:] for f in fake.flashed] == [("stm32f746", runner.port)]


def test_unopenable_port_is_a_failed_record(tmp_path: Path) -> None:
    record = BoardRunner(f"socket://127.0.0.1:{free_port()}", flasher=FakeFlasher()).run(
        tmp_path / "fw.elf", find_target("stm32f746"), RunJob(b""), 5)
    assert not record.ok and record.error.startswith("cannot open serial port socket://127.0.0.1:")


def test_sync_skips_noise_and_resends(monkeypatch: pytest.MonkeyPatch) -> None:
    class LatePort:
        """Drops the first command (UART not yet on), then answers."""

        def __init__(self) -> None:
            self.pending, self.writes = b"\xffnoise\r\nm-init-done\r\n", 0

        def write(self, data: bytes) -> int:
            self.writes += 1
            if self.writes > 1:
                self.pending += NAME
            return len(data)

        def read(self, size: int = 1) -> bytes:
            out, self.pending = self.pending[:size], self.pending[size:]
            if not out:
                time.sleep(0.01)
            return out

        def close(self) -> None:
            pass

    port = LatePort()
    dut = Dut(port, timeout_s=5)
    dut.sync(5, resend_s=0.2)
    assert port.writes == 2 and "m-name-dut-[tinyhil]" in dut.transcript


# ----------------------------------------------------------------- firmware (toolchains + QEMU)

@pytest.fixture(scope="module")
def kws() -> GeneratedModel:
    path = MODELS / "kws_ref_model.tflite"
    if not path.exists():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    return generate(load_model(path))


@pytest.fixture(scope="module")
def fw_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("firmware-cache")


@pytest.fixture(scope="session")
def riscv_tools() -> tuple[str, str]:
    """riscv64-unknown-elf-gcc + picolibc and qemu-system-riscv32, installed from Debian
    when we are root there (as `tinyhil bench` does), else the test skips naming the command."""
    from harness.build import find_qemu, find_toolchain

    try:
        return str(find_toolchain(name="riscv64-unknown-elf").gcc), str(find_qemu(qemu_system="riscv32"))
    except ToolMissingError as e:
        pytest.skip(str(e))


def _kws_job(kws: GeneratedModel) -> tuple[RunJob, bytes]:
    sample = fixed_input(kws.model, (MODELS.parent.parent / "datasets" / "kws01"))
    expected = b"".join(o.tobytes() for o in Reference(kws.model).run(sample.inputs))
    return RunJob(input_bytes(kws.model, sample)), expected


QemuStart = Callable[[str, Path], int]


@pytest.fixture
def qemu_uart() -> Iterator[QemuStart]:
    """Starts QEMU with a firmware, its UART a TCP server that waits for the first
    connection (the board runner's); returns the port without connecting to it."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(target_name: str, elf: Path) -> int:
        target = find_target(target_name)
        assert target.qemu is not None
        port = free_port()
        binary = shutil.which(f"qemu-system-{target.qemu.system}") or f"qemu-system-{target.qemu.system}"
        proc = subprocess.Popen(qemu_command(binary, elf, target, port),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "QEMU waiting for connection on: ..." once it listens
        assert b"waiting for connection" in line, line
        return port

    yield start
    for p in procs:
        p.kill()
        p.wait()
        if p.stderr:
            p.stderr.close()


@pytest.mark.qemu
@pytest.mark.parametrize("via", ["socket", "rfc2217"])
def test_qemu_firmware_as_a_board(via: str, kws: GeneratedModel, fw_cache: Path, arm_tools: tuple[str, str],
                                  qemu_uart: QemuStart) -> None:
    """The board runner end to end, with QEMU's firmware as the board on the far side of the port."""
    target = find_target("cortex-m4")
    image = build_firmware(kws, target, cache_dir=fw_cache)
    job, expected = _kws_job(kws)
    reference = QemuRunner(arm_tools[1]).run(image.elf, target, job, 120)
    assert reference.ok, reference.error

    url = f"socket://127.0.0.1:{qemu_uart('cortex-m4', image.elf)}"
    bridge = Rfc2217Bridge(url).start() if via == "rfc2217" else None
    fake = FakeFlasher()
    try:
        record = BoardRunner(bridge.url if bridge else url, flasher=fake).run(image.elf, target, job, 120)
    finally:
        if bridge:
            bridge.close()
    assert record.ok, record.error
    assert fake.flashed == [(image.elf, "cortex-m4", bridge.url if bridge else url)]
    assert record.output == expected
    # The QEMU firmware times with its board timer: ticks, as under the QEMU runner.
    assert (record.counter, record.timer_hz) == ("timer", 25_000_000)
    assert record.ticks == reference.ticks and record.runs == 1
    assert 0 < record.stack_bytes < 8192 and record.arena_bytes == kws.arena_bytes
    if bridge:
        assert bridge.clients == 1 and bridge.errors == []


def test_timer_counts_give_a_timer_latency() -> None:
    from harness.metrics import ElfSizes, compute_metrics

    record = RunRecord(runner="board", target="cortex-m4", elf=Path("x"), counter="timer", ticks=2_500_000,
                       runs=1, timer_hz=25_000_000)
    m = compute_metrics(record, ElfSizes(1, 1, 1, 1, 0, 0, 0), find_target("cortex-m4"))
    assert (m.instructions, m.cycles, m.latency_source) == (None, None, "timer")
    assert m.latency_ms == pytest.approx(100.0)
    cyc = compute_metrics(replace(record, counter="cycles", timer_hz=0, ticks=216_000),
                          ElfSizes(1, 1, 1, 1, 0, 0, 0), find_target("stm32f746"))
    assert (cyc.cycles, cyc.latency_source, cyc.latency_ms) == (216_000, "cycles", pytest.approx(1.0))


@pytest.mark.qemu
def test_board_build_boots_on_qemu_and_says_its_counter(kws: GeneratedModel, fw_cache: Path,
                                                        arm_tools: tuple[str, str], qemu_uart: QemuStart) -> None:
    """stm32f405's board build (168 MHz clock setup, DWT) on netduinoplus2, the same chip:
    the bounded clock waits pass QEMU's stub RCC, and the DWT, which QEMU does not count,
    is reported as missing (timer) rather than read as zero cycles."""
    target = find_target("stm32f405")
    image = build_firmware(kws, variant_target(target, "board"), cache_dir=fw_cache)
    assert "-DTH_COUNTER_CYCLES=1" in image.cflags and "-DTH_CLOCK_SETUP=1" in image.cflags
    port = open_url(f"socket://127.0.0.1:{qemu_uart('stm32f405', image.elf)}", timeout=0.2)
    try:
        dut = Dut(port, timeout_s=30)
        dut.sync(30)
        assert dut.command("th-info") == ["m-th-counter-[timer]", "m-th-counter-hz-84000000",
                                          f"m-th-build-[{image.build_id}]"]
    finally:
        port.close()


@pytest.mark.parametrize("target_name,variant", [("stm32f746", "chip"), ("stm32f746", "board"),
                                                 ("stm32f405", "board"), ("nucleo-l4r5zi", "board"),
                                                 ("esp32c3", "chip"), ("esp32c3", "board")])
def test_chip_builds_link_warning_free(target_name: str, variant: str, kws: GeneratedModel, fw_cache: Path,
                                       arm_tools: tuple[str, str], riscv_tools: tuple[str, str]) -> None:
    """Firmware for real chips (not runnable here) compiles and links warning-free at the chip's addresses."""
    from elftools.elf.elffile import ELFFile

    target = find_target(target_name)
    built = variant_target(target, variant)
    image = build_firmware(kws, built, cache_dir=fw_cache)
    assert target.chip is not None
    with image.elf.open("rb") as f:
        entry = ELFFile(f).header["e_entry"]
    assert target.chip.flash.origin <= entry < target.chip.flash.origin + target.chip.flash.size


def _lx106_toolchain() -> Toolchain:
    """ESP-IDF's compilers are not here: the ESP32 build falls back to Debian's lx106
    compiler with tinyhil's libgcc helpers (harness/lx106.py); skip when it cannot."""
    from harness.build import find_toolchain

    if shutil.which("xtensa-esp32-elf-gcc") is None and shutil.which("xtensa-lx106-elf-gcc") is None:
        pytest.skip("no Xtensa compiler here: sudo apt-get install gcc-xtensa-lx106 picolibc-xtensa-lx106-elf "
                    "gcc-12-source (Debian's, for the ESP8266 core) to build the ESP32/ESP32-S3 firmware")
    try:
        return find_toolchain(install=False, system=System(), name="xtensa-esp32-elf")
    except ToolMissingError as e:
        pytest.skip(f"no ESP32 compiler: {e}")


@pytest.mark.parametrize("target_name,variant", [("esp32", "chip"), ("esp32", "board"), ("esp32s3", "chip")])
def test_esp32_xtensa_builds_compile_and_lay_out(target_name: str, variant: str, kws: GeneratedModel,
                                                  fw_cache: Path) -> None:
    """The ESP32/ESP32-S3 firmware compiles warning-free and links completely (no
    unresolved symbol: the lx106 libgcc's gaps are filled), in the layout the ROM
    loader needs: code in IRAM from the entry, constants and data in DRAM, the
    stack at the top of DRAM."""
    from elftools.elf.elffile import ELFFile

    tc = _lx106_toolchain()
    target = find_target(target_name)
    assert target.chip is not None
    image = build_firmware(kws, variant_target(target, variant), cache_dir=fw_cache, toolchain=tc)
    iram, dram = target.chip.flash, target.chip.ram
    with image.elf.open("rb") as f:
        elf = ELFFile(f)
        entry = elf.header["e_entry"]
        sections = {s.name: (s["sh_addr"], s["sh_size"]) for s in elf.iter_sections()}
        symtab = elf.get_section_by_name(".symtab")
        entry_sym = symtab.get_symbol_by_name("th_reset_handler")[0]
        undefined = [sym.name for sym in symtab.iter_symbols()
                     if sym.name and sym["st_shndx"] == "SHN_UNDEF" and sym["st_info"]["bind"] == "STB_GLOBAL"]
    assert undefined == []  # a call to a missing helper would jump to address 0
    assert entry == entry_sym["st_value"]
    assert iram.origin <= entry < iram.origin + iram.size
    text_at, text_size = sections[".text"]
    assert iram.origin <= text_at and text_at + text_size <= iram.origin + iram.size
    for name in (".rodata", ".bss", ".stack"):  # IRAM takes only 32-bit loads: no constants there
        at, size = sections[name]
        assert dram.origin <= at and at + size <= dram.origin + dram.size, name
    stack_at, stack_size = sections[".stack"]
    assert stack_at + stack_size == dram.origin + dram.size
    assert sections[".rodata"][1] >= 24_000  # the KWS weights are constants in DRAM


def test_esp32s3_board_build_refuses_a_clock_it_does_not_set(kws: GeneratedModel, fw_cache: Path) -> None:
    """The ESP32-S3 has no PLL setup yet: its board build (which would time at the
    descriptor's 240 MHz) stops with the reason instead of reporting 6x-off times."""
    tc = _lx106_toolchain()
    with pytest.raises(BuildError, match="no clock setup for this chip"):
        build_firmware(kws, variant_target(find_target("esp32s3"), "board"), cache_dir=fw_cache, toolchain=tc)


@pytest.mark.qemu
def test_esp32c3_kws_on_qemu_matches_tflm(kws: GeneratedModel, fw_cache: Path, riscv_tools: tuple[str, str]) -> None:
    target = find_target("esp32c3")
    image = build_firmware(kws, target, cache_dir=fw_cache)
    assert "-march=rv32imc" in image.cflags and "-mabi=ilp32" in image.cflags
    job, expected = _kws_job(kws)
    runner = QemuRunner(riscv_tools[1])
    records = [runner.run(image.elf, target, job, 120) for _ in range(2)]
    assert all(r.ok for r in records), [r.error for r in records]
    assert all(r.output == expected for r in records)
    assert records[0].counter == "instructions" and records[0].units_per_tick == 100
    assert records[0].ticks == records[1].ticks  # the timer starts on a tick edge: counts repeat
    assert records[0].count_per_inference > 2_656_768  # at least one instruction per MAC


@pytest.mark.qemu
def test_esp32c3_timer_calibration_and_fault(kws: GeneratedModel, fw_cache: Path, riscv_tools: tuple[str, str],
                                             qemu_uart: QemuStart) -> None:
    """CLINT mtime under -icount shift=0: a 2e7-instruction loop reads 200,000 ticks (100 per tick)."""
    target = find_target("esp32c3")
    assert target.qemu is not None
    image = build_firmware(kws, target, cache_dir=fw_cache, extra_cflags=("-DTH_TEST_COMMANDS",))
    port = open_url(f"socket://127.0.0.1:{qemu_uart('esp32c3', image.elf)}", timeout=0.2)
    try:
        dut = Dut(port, timeout_s=30)
        assert dut.wait_boot(expect_build=image.build_id) == [
            "m-timestamp-mode-performance", f"m-th-build-[{image.build_id}]", "m-init-done"]
        iterations = 10_000_000
        ticks = int(dut.command(f"th-calibrate {iterations}")[0].removeprefix("m-th-ticks-"))
        instructions = ticks * target.qemu.instructions_per_tick
        assert abs(instructions - 2 * iterations) <= 2 * iterations * 0.001, (ticks, instructions)
        assert dut.command("th-info") == ["m-th-counter-[timer]", "m-th-counter-hz-10000000",
                                          f"m-th-build-[{image.build_id}]"]
        with pytest.raises(DutProtocolError, match=r"faulted: m-th-fault-\[exception-2\]"):
            dut.command("th-fault", 10)  # illegal instruction: mcause 2
    finally:
        port.close()


# ----------------------------------------------------------------- real tools (skip here)

@pytest.mark.renode
def test_kws_on_renode(kws: GeneratedModel, fw_cache: Path, arm_tools: tuple[str, str]) -> None:
    if find_backend() is None:
        pytest.skip("Renode is not installed (neither `renode` nor pyrenode3); it is not in Debian or on PyPI")
    target = find_target("stm32f746")
    image = build_firmware(kws, variant_target(target, "chip"), cache_dir=fw_cache)
    job, expected = _kws_job(kws)
    record = RenodeRunner().run(image.elf, target, job, 600)
    assert record.ok, record.error
    assert record.output == expected and record.counter == "instructions"
    assert record.count_per_inference > 2_656_768


@pytest.mark.board
def test_kws_on_a_physical_board(request: pytest.FixtureRequest, kws: GeneratedModel, fw_cache: Path) -> None:
    name, port = request.config.getoption("--board"), request.config.getoption("--board-port")
    if not name or not port:
        pytest.skip("needs a board: pytest -m board --board stm32f746 --board-port /dev/ttyACM0")
    target = find_target(name)
    runner = prepare_runner("board", port, [target])
    image = build_firmware(kws, variant_target(target, "board"), cache_dir=fw_cache)
    job, expected = _kws_job(kws)
    record = runner.run(image.elf, target, job, 300)
    assert record.ok, record.error
    assert record.output == expected
    assert record.counter == ("cycles" if target.has_cycle_counter else "timer")


class QemuFlasher:
    """'Flashes' by starting QEMU on the image: netduinoplus2 is an STM32F405, so the
    board build runs on an emulated board of the right chip, behind the port."""

    def __init__(self, start: QemuStart) -> None:
        self.start, self.port = start, 0

    def available(self, target: object) -> None:
        return None

    def flash(self, elf: Path, target: object, port: str) -> None:
        assert port == "pending"
        self.port = self.start("stm32f405", elf)


@pytest.mark.qemu
def test_bench_case_on_the_board_runner(kws: GeneratedModel, arm_tools: tuple[str, str], qemu_uart: QemuStart,
                                        shared_datasets: Path) -> None:
    """bench.run_case with --runner board: the chip's board build (clock setup, DWT) is
    what gets flashed; QEMU counts no DWT cycles, so the row's latency is the timer's."""
    from harness.bench import BenchCase, run_case

    flasher = QemuFlasher(qemu_uart)

    def open_port(url: str, **kwargs: object) -> serial.SerialBase:
        return open_url(f"socket://127.0.0.1:{flasher.port}", **kwargs)

    runner = BoardRunner("pending", flasher=flasher, open_port=open_port, sync_timeout_s=60)
    case = BenchCase("kws", MODELS / "kws_ref_model.tflite", shared_datasets / "kws01", find_target("stm32f405"))
    row = run_case(case, runner, runs=1, warmup=0, timeout_s=120)
    assert row.status == "ok", row.error
    assert row.runner == "board" and row.output_matches_reference is True
    assert "-DTH_COUNTER_CYCLES=1" in row.cflags and "-DTH_CLOCK_SETUP=1" in row.cflags
    assert row.instructions is None and row.cycles is None and row.latency_source == "timer"
    assert row.latency_ms is not None and row.latency_ms > 0


class QemuAsRenode:
    """A Renode backend stand-in: reads the generated script, serves its UART port with
    QEMU running its ELF, and writes the hook lines Renode's log would have."""

    def __init__(self, target_name: str, counts: tuple[int, ...]) -> None:
        self.target, self.counts = find_target(target_name), counts
        self.proc: subprocess.Popen[bytes] | None = None
        self.script = ""

    def start(self, script_path: Path) -> None:
        import re

        self.script = script_path.read_text()
        port = int(re.search(r"CreateServerSocketTerminal (\d+)", self.script).group(1))  # type: ignore[union-attr]
        elf = Path(re.search(r"sysbus LoadELF @(\S+)", self.script).group(1))  # type: ignore[union-attr]
        log = Path(re.search(r"logFile @(\S+)", self.script).group(1))  # type: ignore[union-attr]
        self.proc = subprocess.Popen(qemu_command(shutil.which("qemu-system-arm") or "qemu-system-arm", elf,
                                                  self.target, port),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log.write_text("".join(f"[INFO] cpu: tinyhil-mark {1000 * i}\n[INFO] cpu: tinyhil-since {1000 * i + n}\n"
                               for i, n in enumerate(self.counts)))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def resume(self) -> None:
        self.resumed = True

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


@pytest.mark.qemu
def test_renode_runner_sequence_with_a_stand_in(kws: GeneratedModel, fw_cache: Path,
                                                arm_tools: tuple[str, str]) -> None:
    """RenodeRunner end to end against a stand-in backend: script in, UART over socket://,
    the DUT conversation, the count from the log's hook lines labelled instructions."""
    target = find_target("stm32f746")
    image = build_firmware(kws, target, cache_dir=fw_cache)  # the mps2 build: the stand-in is QEMU
    job, expected = _kws_job(kws)
    backend = QemuAsRenode("stm32f746", (23_000_123,))
    record = RenodeRunner(backend).run(image.elf, target, job, 120)
    assert record.ok, record.error
    assert record.output == expected
    assert (record.counter, record.count_per_inference, record.runner) == ("instructions", 23_000_123, "renode")
    assert "machine LoadPlatformDescription @platforms/boards/stm32f7_discovery-bb.repl" in backend.script
    assert not backend.alive()  # stopped at the end

    short = RenodeRunner(QemuAsRenode("stm32f746", ()), log_timeout_s=0.5).run(image.elf, target, job, 120)
    assert not short.ok and "Renode's log has 0 of 1 instruction counts" in short.error
