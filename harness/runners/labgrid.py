"""labgrid runner: boards of a lab's farm, shared through a labgrid coordinator.

A lab exports its boards' serial ports (and power, USB, flashing hardware) with
``labgrid-exporter``; a ``labgrid-coordinator`` knows them and who holds which
*place*. tinyhil talks to the coordinator with labgrid's own client
(``labgrid-client``, from ``pip install 'tinyhil[labgrid]'``):

1. it acquires a place (``--place NAME``, repeatable: several places run cases
   at once, each case on the next free one; ``--coordinator HOST:PORT``, else
   ``LG_COORDINATOR``);
2. it reads the place's NetworkSerialPort (the exporter's ser2net) and speaks
   the DUT protocol over it as ``rfc2217://host:port``, exactly like the board
   runner (:class:`harness.runners.board.BoardRunner`), flashing the image first
   with the target's flasher on that port (``--labgrid-flash flasher``, what an
   ESP32's esptool does over RFC 2217), or not at all when the place already
   runs the image (``--labgrid-flash none``: the firmware must name the build
   tinyhil made, which ``th-info`` checks);
3. it releases the place on every way out: a finished case, a failed one, an
   exception, Ctrl-C, SIGTERM (turned into KeyboardInterrupt by the CLI).

Counts are the board's: ``cycles`` from a cycle counter, or ``timer`` ticks.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import RunnerError, ToolMissingError, UserInputError
from harness.runners.base import RunJob, RunRecord, failed
from harness.targets import TargetDescriptor

if TYPE_CHECKING:  # pragma: no cover
    from harness.build import System

CLIENT = "labgrid-client"
INSTALL = "pip install 'tinyhil[labgrid]'"
_HOST = re.compile(r"'cls': 'NetworkSerialPort'.*?'host': '([^']+)'.*?'port': (\d+)", re.S)
_HOST_FIRST = re.compile(r"'host': '([^']+)'.*?'port': (\d+)", re.S)


def find_client() -> str:
    """labgrid-client next to this Python (the [labgrid] extra), else on PATH."""
    here = Path(sys.executable).with_name(CLIENT)
    if here.is_file():
        return str(here)
    found = shutil.which(CLIENT)
    if found is None:
        raise ToolMissingError(f"{CLIENT} not found: {INSTALL}")
    return found


class _Preloaded:
    """``--labgrid-flash none``: the place runs the image already (``th-info`` checks the build)."""

    def available(self, target: TargetDescriptor) -> str | None:
        return None

    def flash(self, elf: Path, target: TargetDescriptor, port: str) -> None:
        return None


class LabgridRunner:
    """Runs each case on a free place of ``places``, acquired for the case and released after."""

    name = "labgrid"
    build_variant = "board"

    def __init__(self, places: list[str], coordinator: str, flash: str = "flasher", client: str | None = None,
                 timeout_s: float = 60.0) -> None:
        if not places:
            raise UserInputError("--runner labgrid needs --place NAME (a place of the coordinator's)")
        if flash not in ("flasher", "none"):
            raise UserInputError(f"--labgrid-flash {flash!r}: expected flasher or none")
        self.places = list(places)
        self.coordinator = coordinator
        self.flash = flash
        self.client = client or find_client()
        self.timeout_s = timeout_s
        self._free: queue.Queue[str] = queue.Queue()
        for p in self.places:
            self._free.put(p)

    def _lg(self, place: str, *args: str) -> str:
        cmd = [self.client, "-x", self.coordinator, "-p", place, *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s,
                                  env={**os.environ, "LG_COORDINATOR": self.coordinator})
        except subprocess.TimeoutExpired:
            raise RunnerError(f"labgrid: `{' '.join(cmd[1:])}` did not answer within {self.timeout_s:.0f} s "
                              f"(is the coordinator at {self.coordinator} up?)") from None
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise RunnerError(f"labgrid: place {place}: {' '.join(args)} failed: {tail}")
        return proc.stdout

    def serial_url(self, place: str) -> str:
        """The acquired place's NetworkSerialPort as a pyserial URL."""
        shown = self._lg(place, "show")
        m = _HOST.search(shown) or _HOST_FIRST.search(shown)
        if m is None:
            raise RunnerError(f"labgrid: place {place} has no NetworkSerialPort (export the board's serial port "
                              "with a RawSerialPort or USBSerialPort in the exporter's config)")
        raw = re.search(r"'protocol': 'raw'", shown)
        # ign_set_control: ser2net on a port without modem lines (a pty) never confirms
        # SET_CONTROL, and pyserial would wait for it.
        return f"socket://{m.group(1)}:{m.group(2)}" if raw else f"rfc2217://{m.group(1)}:{m.group(2)}?ign_set_control"

    def release(self, place: str) -> None:
        """Release ``place``, with SIGINT/SIGTERM held back until it is done (then delivered):
        an interrupt must not cut the release short. A place not held is no error."""
        import signal
        import threading

        held = {signal.SIGINT, signal.SIGTERM}
        main = threading.current_thread() is threading.main_thread()
        if main:
            signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            self._lg(place, "release")
        except RunnerError as e:
            if "not acquired" not in str(e):
                print(f"warning: {e}", file=sys.stderr)
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

    def run(self, elf: Path, target: TargetDescriptor, job: RunJob, timeout_s: float = 120.0) -> RunRecord:
        from harness.runners.board import BoardRunner

        place = self._free.get()  # a case waits for a free place
        try:
            # From the acquire on, the place is released whatever happens (an interrupt
            # during the acquire itself may leave it acquired at the coordinator).
            try:
                self._lg(place, "acquire")
                url = self.serial_url(place)
                board = BoardRunner(url, flasher=_Preloaded() if self.flash == "none" else None)
                record = board.run(elf, target, job, timeout_s)
            except RunnerError as e:
                record = failed(self.name, target, elf, e)
            finally:
                self.release(place)
            error = f"place {place}: {record.error}" if record.error else ""
            return replace(record, runner=self.name, error=error)
        finally:
            self._free.put(place)


def _host_check(target: TargetDescriptor, port: str | None, system: "System") -> tuple[bool, list[str]]:
    try:
        find_client()
    except ToolMissingError as e:
        return False, [str(e)]
    return True, ["needs --place"]


def _create(targets: list[TargetDescriptor], port: str | None) -> LabgridRunner:
    places = [p for p in os.environ.get("TINYHIL_LABGRID_PLACES", "").split(",") if p]
    coordinator = os.environ.get("LG_COORDINATOR", "127.0.0.1:20408")
    return LabgridRunner(places, coordinator, os.environ.get("TINYHIL_LABGRID_FLASH", "flasher"))


def _register() -> None:
    from harness.runners import RunnerKind, register

    register(RunnerKind("labgrid", "chip", "board", False, _host_check, _create,
                        "boards of a labgrid farm: places acquired through the coordinator, DUT protocol over "
                        "their NetworkSerialPort", parallel=True))


_register()
