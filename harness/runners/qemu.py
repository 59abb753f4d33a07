"""QEMU runner: deterministic instruction counts on emulated Cortex-M boards.

QEMU runs with ``-icount shift=0`` (one guest instruction = 1 ns of virtual
time, so a board timer's ticks convert exactly to instructions and repeat run
to run). The UART is a TCP server that waits for us (``server=on,wait=on``),
so no early output is lost, and the DUT protocol runs over pyserial's
``socket://`` URL. A firmware that hangs or crashes is killed at the deadline
and becomes a failed record, never a number.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import serial

from harness.dut import Dut
from harness.errors import RunnerError, TinyhilError
from harness.runners.base import RunJob, RunRecord, drive, failed
from harness.targets import TargetDescriptor

# Retries when the free port we picked is taken before QEMU binds it.
_PORT_ATTEMPTS = 5


def free_port() -> int:
    """A TCP port free right now; QEMU may still lose a race for it (we retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def qemu_command(qemu: str, elf: Path, target: TargetDescriptor, port: int) -> list[str]:
    if target.qemu is None:
        raise RunnerError(f"target {target.name} has no [qemu] section: it cannot run under QEMU")
    return [
        qemu, "-M", target.qemu.machine,
        "-display", "none", "-monitor", "none",
        "-icount", "shift=0",  # deterministic: 1 instruction = 1 ns virtual time
        "-semihosting-config", "enable=on,target=native",
        "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on",
        "-kernel", str(elf),
    ]


class QemuRunner:
    """Runs firmware under qemu-system-arm; counts are `instructions`."""

    name = "qemu"

    def __init__(self, qemu: str | None = None) -> None:
        self._qemu = qemu

    def _qemu_path(self) -> str:
        if self._qemu is None:
            from harness.build import find_qemu

            self._qemu = str(find_qemu())
        return self._qemu

    def _start(self, elf: Path, target: TargetDescriptor,
               deadline: float) -> tuple[subprocess.Popen[bytes], serial.SerialBase]:
        """Start QEMU and connect to its UART; the first connection is the real one
        (in wait mode QEMU holds the guest until it, so no output is lost)."""
        last = ""
        for _ in range(_PORT_ATTEMPTS):
            port = free_port()
            proc = subprocess.Popen(qemu_command(self._qemu_path(), elf, target, port),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    return proc, serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0.2)
                except serial.SerialException:
                    time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                raise RunnerError(f"QEMU did not open its UART socket on port {port} in time")
            last = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
            if "Address already in use" not in last:
                break
        machine = target.qemu.machine if target.qemu else "?"
        reason = last.strip().splitlines()[-1] if last.strip() else "no message"
        raise RunnerError(f"QEMU ({machine}) failed to start: {reason}")

    def run(self, elf: Path, target: TargetDescriptor, job: RunJob, timeout_s: float = 120.0) -> RunRecord:
        start = time.monotonic()
        deadline = start + timeout_s
        try:
            proc, port = self._start(elf, target, deadline)
        except TinyhilError as e:
            return failed(self.name, target, elf, e)
        dut: Dut | None = None
        try:
            dut = Dut(port, timeout_s=max(1.0, deadline - time.monotonic()))
            raw = drive(dut, job, max(1.0, deadline - time.monotonic()))
            assert target.qemu is not None
            return RunRecord(runner=self.name, target=target.name, elf=elf, counter="instructions",
                             units_per_tick=target.qemu.instructions_per_tick,
                             wall_s=time.monotonic() - start, transcript=tuple(dut.transcript),
                             **raw)  # type: ignore[arg-type]
        except (TinyhilError, serial.SerialException, OSError) as e:
            crashed = proc.poll()
            why = str(e) if crashed is None else f"QEMU exited with status {crashed}: {e}"
            return failed(self.name, target, elf, why, dut.transcript if dut else ())
        finally:
            port.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
