"""Connections that lose no byte and talk only to their own firmware (issue 13).

Unit level: the transport keeps what arrives before the first read (pyserial's
socket:// and rfc2217:// handlers discard it in open()), and the DUT client
refuses a session whose boot banner is incomplete or names another build.
QEMU level: a client slower than the guest still reads the whole banner, and
two runs started at the same instant each talk to the firmware they started.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from harness.build import build_firmware
from harness.dut import Dut, firmware_build_id
from harness.engines.builtin import GeneratedModel, generate
from harness.errors import DutProtocolError
from harness.model import load_model
from harness.reference import Reference
from harness.runners.base import RunJob, RunRecord
from harness.runners.board import BoardRunner
from harness.runners.qemu import QemuRunner
from harness.targets import find_target
from harness.testing.rfc2217 import Rfc2217Bridge
from harness.transport import open_url
from tests.fakes import BytesPort

# pyserial's RFC 2217 client (used by a board on another host) calls threading's
# deprecated setName()/setDaemon().
pytestmark = [pytest.mark.filterwarnings(f"ignore:{m}\\(\\) is deprecated:DeprecationWarning")
              for m in ("setDaemon", "setName")]

BUILD = "0123456789abcdef0123456789abcdef"
BANNER = f"m-timestamp-mode-performance\r\nm-th-build-[{BUILD}]\r\nm-init-done\r\nm-ready\r\n".encode()


class Talker:
    """A TCP server that sends ``greeting`` the instant it accepts (as QEMU's guest
    does under wait=on), then echoes 'name%' with a reply."""

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.sendall(self.greeting)
            buf = b""
            while True:
                data = conn.recv(64)
                if not data:
                    return
                buf += data
                if b"name%" in buf:
                    conn.sendall(b"m-name-dut-[tinyhil]\r\nm-ready\r\n")
                    buf = b""

    def close(self) -> None:
        self.server.close()


def test_socket_url_keeps_what_arrived_before_the_first_read() -> None:
    talker = Talker(BANNER)
    try:
        port = open_url(f"socket://127.0.0.1:{talker.port}", timeout=0.2)
        time.sleep(0.3)  # the client is slow: the whole banner is already in the socket
        dut = Dut(port, timeout_s=5)
        assert dut.wait_boot(expect_build=BUILD) == [
            "m-timestamp-mode-performance", f"m-th-build-[{BUILD}]", "m-init-done"]
        assert dut.build == BUILD
        assert dut.name() == "tinyhil"
        port.close()
    finally:
        talker.close()


def test_rfc2217_url_keeps_what_arrived_before_the_first_read() -> None:
    """Through an RFC 2217 server whose serial side greets on connection: the client's
    open() no longer purges the greeting."""
    talker = Talker(BANNER)
    try:
        with Rfc2217Bridge(f"socket://127.0.0.1:{talker.port}") as bridge:
            port = open_url(bridge.url, timeout=0.2)
            try:
                time.sleep(0.3)
                dut = Dut(port, timeout_s=5)
                assert dut.wait_boot(expect_build=BUILD)[0] == "m-timestamp-mode-performance"
                assert dut.name() == "tinyhil"
            finally:
                port.close()
    finally:
        talker.close()


@pytest.mark.parametrize("cut", [4, 20, 34, len(BANNER) - len("m-init-done\r\nm-ready\r\n")])
def test_a_banner_that_begins_mid_stream_is_refused(cut: int) -> None:
    """The tail of a banner (what a discard on open() leaves) is never taken as a boot."""
    dut = Dut(BytesPort(BANNER[cut:]), timeout_s=1)
    with pytest.raises(DutProtocolError, match="began mid-stream"):
        dut.wait_boot(expect_build=BUILD)


def test_a_banner_of_another_build_is_refused() -> None:
    other = BANNER.replace(BUILD.encode(), b"f" * 32)
    with pytest.raises(DutProtocolError, match=f"another firmware: its banner names build f{{32}}, .* build {BUILD}"):
        Dut(BytesPort(other), timeout_s=1).wait_boot(expect_build=BUILD)


def test_build_id_is_read_from_the_elf(tmp_path: Path) -> None:
    elf = tmp_path / "fw.elf"
    elf.write_bytes(b"\x7fELF" + b"\0" * 100 + f"m-th-build-[{BUILD}]\0".encode() + b"\0" * 10)
    assert firmware_build_id(elf) == BUILD
    (tmp_path / "other.elf").write_bytes(b"\x7fELF m-th-build-[unknown]")
    assert firmware_build_id(tmp_path / "other.elf") is None
    assert firmware_build_id(tmp_path / "missing.elf") is None


def test_board_still_running_another_build_is_refused(tmp_path: Path) -> None:
    """th-info% names the build: a board whose flash or reset failed runs the old image."""
    elf = tmp_path / "fw.elf"
    elf.write_bytes(f"m-th-build-[{BUILD}]".encode())

    class OldBoard(BytesPort):
        def write(self, data: bytes) -> int:
            if data == b"name%":
                self.data += b"m-name-dut-[tinyhil]\r\nm-ready\r\n"
            elif data == b"th-info%":
                self.data += (b"m-th-counter-[cycles]\r\nm-th-counter-hz-216000000\r\n"
                              b"m-th-build-[" + b"a" * 32 + b"]\r\nm-ready\r\n")
            return len(data)

    class NoFlash:
        def available(self, target: object) -> None:
            return None

        def flash(self, elf: Path, target: object, port: str) -> None:
            pass

    runner = BoardRunner("fake", flasher=NoFlash(), open_port=lambda *_a, **_k: OldBoard(b""),  # type: ignore[arg-type]
                         sync_timeout_s=2)
    record = runner.run(elf, find_target("stm32f746"), RunJob(b""), 5)
    assert not record.ok and f"not the image flashed (build {BUILD})" in record.error, record.error


# ----------------------------------------------------------------- on QEMU

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf_tiny"


@pytest.fixture(scope="module")
def kws() -> GeneratedModel:
    path = MODELS / "kws_ref_model.tflite"
    if not path.exists():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    return generate(load_model(path))


@pytest.mark.qemu
def test_slow_client_reads_the_whole_banner(kws: GeneratedModel, arm_tools: tuple[str, str],
                                            tmp_path: Path) -> None:
    """The guest prints its banner the moment QEMU accepts; a client that reads only
    half a second later (a busy host) must still see all of it."""
    target = find_target("cortex-m4")
    image = build_firmware(kws, target, cache_dir=tmp_path)
    session = QemuRunner(arm_tools[1]).start(image.elf, target, time.monotonic() + 10)
    try:
        time.sleep(0.5)
        assert session.port is not None
        dut = Dut(session.port, timeout_s=10)
        lines = dut.wait_boot(expect_build=image.build_id)
        assert lines == ["m-timestamp-mode-performance", f"m-th-build-[{image.build_id}]", "m-init-done"]
        assert session.uart.parent.stat().st_mode & 0o777 == 0o700  # nobody else can reach the socket
    finally:
        session.close()
    assert not session.uart.parent.exists()


@pytest.mark.qemu
def test_two_runs_started_at_once_each_talk_to_their_own_firmware(kws: GeneratedModel, arm_tools: tuple[str, str],
                                                                  shared_datasets: Path, tmp_path: Path) -> None:
    """Two different builds started at the same instant, three times over: every record
    names the build of the ELF it was given, and its output is the reference's."""
    from harness.bench import fixed_input, input_bytes

    target = find_target("cortex-m4")
    images = [build_firmware(kws, target, cache_dir=tmp_path),
              build_firmware(kws, target, cache_dir=tmp_path, extra_cflags=("-DTH_TEST_COMMANDS",))]
    assert images[0].build_id != images[1].build_id
    sample = fixed_input(kws.model, shared_datasets / "kws01")
    expected = b"".join(o.tobytes() for o in Reference(kws.model).run(sample.inputs))
    job = RunJob(input_bytes(kws.model, sample))
    runner = QemuRunner(arm_tools[1])
    for _ in range(3):
        barrier = threading.Barrier(len(images))
        records: list[RunRecord | None] = [None] * len(images)

        def go(i: int) -> None:
            barrier.wait()
            records[i] = runner.run(images[i].elf, target, job, 60)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(images))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for image, record in zip(images, records):
            assert record is not None and record.ok, record.error if record else None
            assert record.firmware_build == image.build_id
            assert record.output == expected


# ----------------------------------------------------------------- tinyhil stress's verdicts

def test_stress_fails_a_bench_whose_numbers_differ_from_the_idle_run(tmp_path: Path) -> None:
    """A crossed wire or a lost byte shows up as another count, another build, or no row."""
    import json
    import subprocess as sp

    from harness.stress import CaseTally, StressCase, _verdict

    tally = CaseTally(StressCase("kws", "cortex-m4"), idle_instructions=100, idle_est_cycles=130, idle_build="ab")
    out = tmp_path / "row.jsonl"
    done = sp.CompletedProcess(["tinyhil"], 0, "", "")

    def verdict(**row: object) -> str:
        out.write_text(json.dumps({"status": "ok", "instructions": 100, "est_cycles": 130, "firmware_build": "ab",
                                   **row}) + "\n")
        return _verdict(tally, done, out, accuracy=False)

    assert verdict() == ""
    assert verdict(instructions=140) == "instructions 140 != idle 100"
    assert verdict(est_cycles=131) == "est. cycles 131 != idle 130"
    assert verdict(firmware_build="cd") == "firmware build cd != idle ab"
    assert verdict(status="failed", error="no answer") == "failed row: no answer"
    out.unlink()
    assert _verdict(tally, sp.CompletedProcess(["tinyhil"], 2, "", "error: boom\n"), out, False) == \
        "no row (exit 2): error: boom"
