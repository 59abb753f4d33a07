"""Board runner: a physical board over a serial port.

Lifecycle of one run: pick the target's first flasher that is usable here
(``[chip] flashers``: pyOCD, OpenOCD, st-flash, esptool), flash the image
(the flasher resets the chip), open the port, find the firmware's prompt
(``name%``: the boot lines may have gone by before the port opened), ask
which counter it times with and which build it is (``th-info%``: a board
still running an earlier image is refused), then the same DUT conversation
as every runner (:func:`harness.runners.base.drive`).

The port is any pyserial URL: ``/dev/ttyACM0``, ``COM3``, ``socket://host:port``,
``rfc2217://host:port`` (a board on another host, e.g. behind
``ser2net``/``esp_rfc2217_server``), opened by :func:`harness.transport.open_url`
so that nothing the board sends after the connection is thrown away. The image is the descriptor's chip build
with the core's cycle counter (``-DTH_COUNTER_CYCLES``, DWT CYCCNT on
Cortex-M) and the board family's clock setup; its counts are ``cycles``, a
hardware count. A firmware that reports a board timer instead (a core
without a cycle counter, or the QEMU firmware standing in for a board in the
tests) gives ``timer`` ticks, which measure time, never instructions.

Every wait is bounded: a board that never answers, stops mid-run or sends
garbage is a failed record with the reason, never a hang or a number.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, TYPE_CHECKING

import serial

from harness.dut import Dut, firmware_build_id, parse_values
from harness.errors import DutProtocolError, TinyhilError
from harness.runners.base import RunJob, RunRecord, drive, failed
from harness.runners.flashers import Flasher, FlashError, load, select
from harness.targets import TargetDescriptor
from harness.transport import open_url

if TYPE_CHECKING:  # pragma: no cover
    from harness.build import System

OpenPort = Callable[..., serial.SerialBase]

# A board that has been reset answers within this (the prompt, not an inference).
SYNC_TIMEOUT_S = 15.0


class BoardRunner:
    """Flashes and drives a board at ``port``; counts are ``cycles`` (or ``timer`` ticks)."""

    name = "board"
    build_variant = "board"  # harness.build.variant_target: chip build + cycle counter + clocks

    def __init__(self, port: str, flasher: str | Flasher | None = None, baudrate: int = 115200,
                 open_port: OpenPort = open_url, sync_timeout_s: float = SYNC_TIMEOUT_S) -> None:
        """
        Args:
            port: a pyserial URL or device name.
            flasher: a flasher module name forcing that flasher, or an object with
                ``available``/``flash`` (tests pass a fake); default: the target's list.
            baudrate: the firmware's UART rate (115200 in every board family).
            open_port: opens the port (:func:`harness.transport.open_url`).
            sync_timeout_s: how long a freshly reset board may take to answer.
        """
        self.port = port
        self._flasher = flasher
        self.baudrate = baudrate
        self._open_port = open_port
        self.sync_timeout_s = sync_timeout_s

    def flasher_for(self, target: TargetDescriptor) -> tuple[str, Flasher]:
        """The flasher this runner would use for ``target`` (FlashError says why none)."""
        if self._flasher is None:
            return select(target)
        if isinstance(self._flasher, str):
            return select(target, (self._flasher,))
        why = self._flasher.available(target)
        if why is not None:
            raise FlashError(f"flasher for {target.name}: {why}")
        return type(self._flasher).__name__, self._flasher

    def run(self, elf: Path, target: TargetDescriptor, job: RunJob, timeout_s: float = 120.0) -> RunRecord:
        start = time.monotonic()
        try:
            _, flasher = self.flasher_for(target)
            flasher.flash(elf, target, self.port)
        except TinyhilError as e:
            return failed(self.name, target, elf, e)
        deadline = time.monotonic() + timeout_s
        try:
            port = self._open_port(self.port, baudrate=self.baudrate, timeout=0.2)
        except (serial.SerialException, OSError, ValueError) as e:
            return failed(self.name, target, elf, f"cannot open serial port {self.port}: {e}")
        dut = Dut(port, timeout_s=max(1.0, deadline - time.monotonic()))
        try:
            dut.sync(min(self.sync_timeout_s, max(1.0, deadline - time.monotonic())))
            counter, hz = self._counter(dut, firmware_build_id(elf))
            raw = drive(dut, job, max(1.0, deadline - time.monotonic()), booted=True)
            return RunRecord(runner=self.name, target=target.name, elf=elf, counter=counter,
                             units_per_tick=1, timer_hz=hz if counter == "timer" else 0,
                             wall_s=time.monotonic() - start, transcript=tuple(dut.transcript),
                             **raw)  # type: ignore[arg-type]
        except TinyhilError as e:
            return failed(self.name, target, elf, f"board on {self.port}: {e}", dut.transcript)
        except (serial.SerialException, OSError) as e:
            return failed(self.name, target, elf,
                          f"board on {self.port}: serial connection lost mid-run ({e})", dut.transcript)
        finally:
            port.close()

    @staticmethod
    def _counter(dut: Dut, expect_build: str | None = None) -> tuple[str, int]:
        """("cycles" | "timer", ticks per second) from the firmware's ``th-info%``,
        which must name ``expect_build`` when given (the image just flashed)."""
        values = parse_values(dut.command("th-info"))
        kind, hz = values.get("th-counter"), values.get("th-counter-hz", "")
        if kind not in ("cycles", "timer") or not hz.isdigit() or int(hz) == 0:
            raise DutProtocolError(f"'th-info%' reply does not name the counter: {values}")
        dut.build = values.get("th-build", "")
        if expect_build is not None and dut.build != expect_build:
            raise DutProtocolError(f"the board runs build {dut.build or '(none)'}, not the image flashed "
                                   f"(build {expect_build}): did the flash or the reset fail?")
        return kind, int(hz)


def available_flasher(target: TargetDescriptor) -> str | None:
    """None when some flasher of ``target`` is usable here, else every reason."""
    try:
        select(target)
    except FlashError as e:
        return str(e)
    return None


__all__ = ["BoardRunner", "available_flasher", "load"]


def _host_check(target: TargetDescriptor, port: str | None, system: "System") -> tuple[bool, list[str]]:
    notes = [] if port else ["needs --port"]
    no_flasher = available_flasher(target)
    if no_flasher:
        notes.append(no_flasher)
    return not notes, notes


def _create(targets: list[TargetDescriptor], port: str | None) -> BoardRunner:
    from harness.errors import ToolMissingError

    assert port is not None
    for t in targets:
        no_flasher = available_flasher(t)
        if no_flasher:
            raise ToolMissingError(no_flasher)
    return BoardRunner(port)


def _register() -> None:
    from harness.runners import RunnerKind, register

    register(RunnerKind("board", "chip", "board", True, _host_check, _create,
                        "a physical board over a serial port (DWT cycles)"))


_register()
