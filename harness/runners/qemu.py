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


def qemu_command(qemu: str, elf: Path, target: TargetDescriptor, port: int, icount: bool = True) -> list[str]:
    """The QEMU command line; ``icount=False`` only for runs that count nothing (accuracy)."""
    if target.qemu is None:
        raise RunnerError(f"target {target.name} has no [qemu] section: it cannot run under QEMU")
    # RISC-V virt would otherwise boot OpenSBI first; the firmware is the whole machine.
    bios = ["-bios", "none"] if target.qemu.system == "riscv32" else []
    return [
        qemu, "-M", target.qemu.machine, *bios,
        "-display", "none", "-monitor", "none",
        # deterministic: 1 instruction = 1 ns virtual time
        *(["-icount", "shift=0"] if icount else []),
        "-semihosting-config", "enable=on,target=native",
        # nodelay: without it Nagle holds each reply's tail until the client's
        # delayed ACK (~40 ms a command).
        "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on",
        "-kernel", str(elf),
    ]


def _no_delay(uart: serial.SerialBase) -> None:
    """TCP_NODELAY on our end too: a streamed input (th-batch) goes out at once."""
    sock = getattr(uart, "_socket", None)  # pyserial's socket:// keeps it there
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class QemuRunner:
    """Runs firmware under qemu-system-arm or -riscv32 (by the target's core); counts are `instructions`."""

    name = "qemu"

    def __init__(self, qemu: str | None = None) -> None:
        # An explicit binary serves the targets of its own system (its name
        # ends in qemu-system-<system>); the others are looked up (and installed).
        self._qemu: dict[str, str] = {}
        if qemu is not None:
            system = Path(qemu).name.rpartition("qemu-system-")[2] or "arm"
            self._qemu[system if system in ("arm", "riscv32") else "arm"] = qemu

    def _qemu_path(self, target: TargetDescriptor) -> str:
        system = target.qemu.system if target.qemu else "arm"
        if system not in self._qemu:
            from harness.build import find_qemu

            self._qemu[system] = str(find_qemu(qemu_system=system))
        return self._qemu[system]

    def _start(self, elf: Path, target: TargetDescriptor, deadline: float,
               icount: bool = True) -> tuple[subprocess.Popen[bytes], serial.SerialBase]:
        """Start QEMU and connect to its UART; the first connection is the real one
        (in wait mode QEMU holds the guest until it, so no output is lost)."""
        last = ""
        for _ in range(_PORT_ATTEMPTS):
            port = free_port()
            proc = subprocess.Popen(qemu_command(self._qemu_path(target), elf, target, port, icount),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    uart = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0.2)
                    _no_delay(uart)
                    return proc, uart
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
            # A run that measures nothing (an accuracy batch) runs without -icount:
            # outputs do not depend on timing, and icount costs ~25% speed and each
            # UART interrupt a full exit of the CPU loop.
            proc, port = self._start(elf, target, deadline, icount=job.measure or job.profile)
        except TinyhilError as e:
            return failed(self.name, target, elf, e)
        dut: Dut | None = None
        try:
            dut = Dut(port, timeout_s=max(1.0, deadline - time.monotonic()))
            raw = drive(dut, job, max(1.0, deadline - time.monotonic()))
            assert target.qemu is not None
            return RunRecord(runner=self.name, target=target.name, elf=elf,
                             counter="instructions" if job.measure or job.profile else "",
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
