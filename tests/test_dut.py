"""The DUT protocol client against canned UART text (no emulator)."""

from __future__ import annotations

import pytest

from harness.dut import Dut, parse_values
from harness.errors import DutProtocolError, RunTimeout


class FakePort:
    """Answers each command with canned lines; records what was written."""

    def __init__(self, boot: str, replies: dict[str, str]) -> None:
        self.pending = boot.encode()
        self.replies = replies
        self.written: list[str] = []

    def write(self, data: bytes) -> int:
        cmd = data.decode().rstrip("%")
        self.written.append(cmd)
        key = max((k for k in self.replies if cmd.startswith(k)), key=len, default=None)
        self.pending += (self.replies[key] if key is not None else "e-[unknown]\r\nm-ready\r\n").encode()
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out, self.pending = self.pending[:size], self.pending[size:]
        return out

    def close(self) -> None:
        pass


BOOT = "m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n"


def test_full_conversation() -> None:
    port = FakePort(BOOT, {
        "db load": "m-[Expecting 600 bytes]\r\nm-ready\r\n",
        "db ": "m-ready\r\n",
        "infer": ("m-warmup-start-1\r\nm-warmup-done\r\nm-infer-start-2\r\nm-lap-us-10\r\nm-lap-us-990\r\n"
                  "m-infer-done\r\nm-th-ticks-123456\r\nm-th-runs-2\r\nm-th-status-0\r\nm-ready\r\n"),
        "results": "m-results-[0.000,0.996]\r\nm-th-output-80ff\r\nm-ready\r\n",
        "th-stack": "m-th-stack-bytes-1234\r\nm-ready\r\n",
    })
    # the last db chunk completes the load
    port.replies["db 00"] = "m-load-done\r\nm-ready\r\n"
    dut = Dut(port, timeout_s=1)
    dut.wait_boot()
    data = bytes(range(256)) * 2 + bytes(88)
    dut.load(data)
    assert port.written[0] == "db load 600"
    assert port.written[1] == "db " + data[:512].hex()  # 512-byte chunks
    reply = dut.infer(2, 1)
    assert (reply.runs, reply.ticks, reply.status, reply.lap_us) == (2, 123456, 0, (10, 990))
    assert dut.output_bytes() == b"\x80\xff"
    assert dut.stack_bytes() == 1234


def test_error_line_is_protocol_error() -> None:
    dut = Dut(FakePort(BOOT, {"db load": "e-[db load: expected 490 bytes, got 12]\r\nm-ready\r\n"}), 1)
    dut.wait_boot()
    with pytest.raises(DutProtocolError, match="expected 490 bytes"):
        dut.load(bytes(12))


def test_garbled_line_is_protocol_error() -> None:
    """Once the firmware has spoken, a line that is not protocol is an error (boot too)."""
    dut = Dut(FakePort("m-timestamp-mode-performance\r\n\x07\x93garbage here\r\nm-ready\r\n", {}), 1)
    with pytest.raises(DutProtocolError, match="garbled line"):
        dut.wait_boot()


ESP32_ROM_TEXT = ("ets Jul 29 2019 12:21:46\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x12 (SPI_FAST_FLASH_BOOT)\r\n"
                  "configsip: 0, SPIWP:0xee\r\nmode:DIO, clock div:2\r\nload:0x3ffb0000,len:31548\r\n"
                  "load:0x40080000,len:26416\r\nentry 0x40085d38\r\n")


@pytest.mark.parametrize("expect_build", [None, "0123456789abcdef"])
def test_rom_boot_text_before_the_banner_is_skipped(expect_build: str | None) -> None:
    """An ESP32's ROM prints its boot text before the firmware's banner (a board and
    Espressif's QEMU alike): the session starts at the banner, the transcript keeps the text."""
    banner = "m-timestamp-mode-performance\r\nm-th-build-[0123456789abcdef]\r\nm-init-done\r\nm-ready\r\n"
    dut = Dut(FakePort(ESP32_ROM_TEXT + banner, {}), 1)
    assert dut.wait_boot(expect_build=expect_build) == [
        "m-timestamp-mode-performance", "m-th-build-[0123456789abcdef]", "m-init-done"]
    assert dut.build == "0123456789abcdef"
    assert "entry 0x40085d38" in dut.transcript and "ets Jul 29 2019 12:21:46" in dut.transcript


def test_boot_text_does_not_hide_a_banner_that_began_mid_stream() -> None:
    """Skipping a ROM's text does not accept a banner whose start was lost."""
    dut = Dut(FakePort(ESP32_ROM_TEXT + "m-th-build-[0123456789abcdef]\r\nm-init-done\r\nm-ready\r\n", {}), 1)
    with pytest.raises(DutProtocolError, match="began mid-stream"):
        dut.wait_boot(expect_build="0123456789abcdef")


def test_silent_device_times_out() -> None:
    dut = Dut(FakePort("m-init-done\r\n", {}), timeout_s=0.2)
    with pytest.raises(RunTimeout, match="no answer .* m-init-done"):
        dut.wait_boot()


def test_fault_report_stops_the_run() -> None:
    dut = Dut(FakePort(BOOT, {"infer": "m-th-fault-[hardfault]\r\nm-ready\r\n"}), 1)
    dut.wait_boot()
    with pytest.raises(DutProtocolError, match="faulted"):
        dut.infer(1)


def test_incomplete_infer_reply() -> None:
    dut = Dut(FakePort(BOOT, {"infer": "m-infer-done\r\nm-ready\r\n"}), 1)
    dut.wait_boot()
    with pytest.raises(DutProtocolError, match="incomplete"):
        dut.infer(1)


def test_parse_values() -> None:
    v = parse_values(["m-name-dut-[tinyhil]", "m-th-ticks-42", "m-th-output-00ff", "m-lap-us-7"])
    assert v == {"name-dut": "tinyhil", "th-ticks": "42", "th-output": "00ff", "lap-us": "7"}
