"""QEMU runner: deterministic instruction counts on emulated Cortex-M, RISC-V and ESP32 boards.

QEMU runs with ``-icount shift=0`` (one guest instruction = 1 ns of virtual
time, so a board timer's ticks convert exactly to instructions and repeat run
to run). The UART is a Unix socket server in a directory only this run can
write to (``server=on,wait=on``): QEMU holds the guest until we connect, no
other process can take or squat the address, and nothing is shared between
two runs on one host. The client end is a :class:`harness.transport.StreamPort`,
which keeps every byte the guest sends after the connection (pyserial's
``socket://`` handler throws away what arrived before ``open()`` returned: the
start of the boot banner on a busy host). The session then starts only after
the firmware's complete boot banner, with the build id of the ELF we started
(:func:`harness.dut.firmware_build_id`). A firmware that hangs or crashes is
killed at the deadline and becomes a failed record, never a number.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import serial

from harness.dut import Dut, firmware_build_id
from harness.errors import RunnerError, TinyhilError, ToolMissingError
from harness.runners.base import RunJob, RunRecord, drive, failed
from harness.targets import TargetDescriptor
from harness.transport import StreamPort, connect_unix

if TYPE_CHECKING:
    from harness.build import System
    from harness.cycles import CoreTable


def qemu_command(qemu: str, elf: Path, target: TargetDescriptor, uart: Path | int | str, icount: bool = True,
                 extra: Sequence[str] = ()) -> list[str]:
    """The QEMU command line, its UART a server that holds the guest until a client
    connects: a Unix socket at ``uart`` (a Path; what the runner uses), or TCP
    port ``uart`` on 127.0.0.1 (a number: QEMU standing in for a board at
    ``socket://``, in tests); a str is a chardev as is (``"stdio"``: `tinyhil
    cycles` passes the UART through). ``icount=False`` only for runs that count
    nothing (accuracy); ``extra`` goes before ``-kernel`` (e.g. a TCG plugin).
    A chip that boots through its ROM (``[qemu] boot = "rom"``, Espressif's QEMU)
    gets its flash image instead of ``-kernel`` (:func:`harness.runners.espqemu.flash_image`)."""
    if target.qemu is None:
        raise RunnerError(f"target {target.name} has no [qemu] section: it cannot run under QEMU")
    # RISC-V virt would otherwise boot OpenSBI first; the firmware is the whole machine.
    bios = ["-bios", "none"] if target.qemu.system == "riscv32" else []
    if target.qemu.boot == "rom":
        from harness.runners.espqemu import flash_image

        load = ["-drive", f"file={flash_image(elf, target)},if=mtd,format=raw"]
        semihosting = []
    else:
        load = ["-kernel", str(elf)]
        semihosting = ["-semihosting-config", "enable=on,target=native"]
    return [
        qemu, "-M", target.qemu.machine, *bios,
        "-display", "none", "-monitor", "none",
        # deterministic: 1 instruction = 1 ns virtual time
        *(["-icount", "shift=0"] if icount else []),
        *semihosting,
        # nodelay: without it Nagle holds each reply's tail until the client's
        # delayed ACK (~40 ms a command).
        "-serial", (f"tcp:127.0.0.1:{uart},server=on,wait=on,nodelay=on" if isinstance(uart, int)
                    else uart if isinstance(uart, str) else f"unix:{uart},server=on,wait=on"),
        *extra,
        *load,
    ]


def _dies_with_us() -> list[str]:
    """A prefix that kills QEMU when the tinyhil that started it dies (killed, not closed):
    util-linux's setpriv sets the parent-death signal, then execs QEMU. Without it a killed
    bench left its emulators running, guests waiting on their UARTs, forever."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv and sys.platform.startswith("linux") else []


def private_dir() -> Path:
    """A fresh directory only this user can enter (mode 0700), short enough for a
    Unix socket path (108 bytes): under $TMPDIR, else /tmp."""
    base = tempfile.gettempdir()
    if len(base) > 60:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="tinyhil-", dir=base))


class QemuSession:
    """One QEMU process and the connection to its UART; the caller closes it.

    ``port`` is connected before the guest runs its first instruction (wait=on),
    so the whole boot banner is there to read.
    """

    def __init__(self, cmd_for: Callable[[Path], list[str]], machine: str, deadline: float) -> None:
        self.dir = private_dir()
        self.uart = self.dir / "uart.sock"
        cmd = cmd_for(self.uart)
        self.stderr_path = self.dir / "qemu.stderr"
        with self.stderr_path.open("wb") as err:
            # stderr to a file: a chatty QEMU cannot block on a full pipe.
            self.proc = subprocess.Popen([*_dies_with_us(), *cmd], stdout=subprocess.DEVNULL, stderr=err,
                                         stdin=subprocess.DEVNULL)
        self.port: StreamPort | None = None
        try:
            self.port = self._connect(machine, deadline)
        except BaseException:
            self.close()
            raise

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def _connect(self, machine: str, deadline: float) -> StreamPort:
        while True:
            if self.proc.poll() is not None:
                last = self.stderr().strip()
                reason = last.splitlines()[-1] if last else f"exit status {self.proc.returncode}, no message"
                raise RunnerError(f"QEMU ({machine}) failed to start: {reason}")
            try:
                return connect_unix(self.uart)
            except OSError:
                if time.monotonic() > deadline:
                    raise RunnerError(f"QEMU ({machine}) did not open its UART socket in time") from None
                time.sleep(0.02)

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
        if self.proc.poll() is None:
            # SIGTERM: QEMU shuts down cleanly and a cycle-model plugin writes its summary.
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class QemuRunner:
    """Runs firmware under qemu-system-arm, -riscv32 or Espressif's -xtensa (by the target's core);
    counts are `instructions`."""

    name = "qemu"

    def __init__(self, qemu: str | None = None, cycle_model: bool = True,
                 cycle_table: "CoreTable | None" = None) -> None:
        self.cycle_model = cycle_model  # run measured sessions with the timing model's plugin
        self.cycle_table = cycle_table  # a CoreTable instead of the target's (calibration)
        # An explicit binary serves the targets of its own system (its name
        # ends in qemu-system-<system>); the others are looked up (and installed).
        self._qemu: dict[str, str] = {}
        if qemu is not None:
            system = Path(qemu).name.rpartition("qemu-system-")[2] or "arm"
            self._qemu[system if system in ("arm", "riscv32", "xtensa") else "arm"] = qemu

    def _qemu_path(self, target: TargetDescriptor) -> str:
        system = target.qemu.system if target.qemu else "arm"
        if system not in self._qemu:
            from harness.build import find_qemu

            machine = target.qemu.machine if target.qemu else ""
            self._qemu[system] = str(find_qemu(qemu_system=system, machine=machine))
        return self._qemu[system]

    def start(self, elf: Path, target: TargetDescriptor, deadline: float, icount: bool = True,
              extra: Sequence[str] = ()) -> QemuSession:
        """QEMU on ``elf`` with its UART connected (the guest starts when we connect)."""
        qemu = self._qemu_path(target)
        machine = target.qemu.machine if target.qemu else "?"
        if target.qemu is not None and target.qemu.boot == "rom":
            from harness.runners.espqemu import flash_image

            flash_image(elf, target)  # made (and failing) here, before a session exists
        return QemuSession(lambda uart: qemu_command(qemu, elf, target, uart, icount, extra), machine, deadline)

    def _plugin(self, elf: Path, target: TargetDescriptor, job: RunJob, work: Path) -> tuple[list[str], Path, str]:
        """QEMU arguments that load the timing model for a measured session, its report
        file and the model's label; nothing when the target has no model."""
        from harness.cycles import load_target_model, model_label, plugin_config, plugin_path, resolve_symbols

        spec = target.cycle_model
        if not self.cycle_model or not (job.measure or job.profile) or spec.unsupported or not spec.table:
            return [], work / "none", ""
        table = self.cycle_table if self.cycle_table is not None else load_target_model(target)
        watches = resolve_symbols(elf, ["tinyhil_invoke"])
        marks = []
        if job.profile:
            from harness.cycles import elf_symbols, Watch

            symbols = elf_symbols(elf)
            marks = [Watch(n, symbols[n]) for n in ("th_profile_begin", "th_profile_end") if n in symbols]
        report = work / "cycles.txt"
        cfg = work / "cycles.cfg"
        cfg.write_text(plugin_config(table, spec.memory, report, watches, marks))
        return ["-plugin", f"{plugin_path()},cfg={cfg}"], report, model_label(table)

    def run(self, elf: Path, target: TargetDescriptor, job: RunJob, timeout_s: float = 120.0) -> RunRecord:
        start = time.monotonic()
        deadline = start + timeout_s
        work = private_dir()
        try:
            # What the firmware must say it is before the session starts.
            expect = firmware_build_id(elf)
            extra, report, label = self._plugin(elf, target, job, work)
            # A run that measures nothing (an accuracy batch) runs without -icount:
            # outputs do not depend on timing, and icount costs ~25% speed and each
            # UART interrupt a full exit of the CPU loop.
            session = self.start(elf, target, deadline, icount=job.measure or job.profile, extra=extra)
        except TinyhilError as e:
            shutil.rmtree(work, ignore_errors=True)
            return failed(self.name, target, elf, e)
        dut: Dut | None = None
        try:
            assert session.port is not None
            dut = Dut(session.port, timeout_s=max(1.0, deadline - time.monotonic()))
            raw = drive(dut, job, max(1.0, deadline - time.monotonic()), expect_build=expect)
            assert target.qemu is not None
            record = RunRecord(runner=self.name, target=target.name, elf=elf,
                               counter="instructions" if job.measure or job.profile else "",
                               units_per_tick=target.qemu.instructions_per_tick,
                               wall_s=time.monotonic() - start, transcript=tuple(dut.transcript),
                               **raw)  # type: ignore[arg-type]
        except (TinyhilError, serial.SerialException, OSError) as e:
            crashed = session.proc.poll()
            why = str(e) if crashed is None else f"QEMU exited with status {crashed}: {e}"
            session.close()
            shutil.rmtree(work, ignore_errors=True)
            return failed(self.name, target, elf, why, dut.transcript if dut else ())
        session.close()
        try:
            return with_cycle_report(record, report, label, job) if label else record
        finally:
            shutil.rmtree(work, ignore_errors=True)


def with_cycle_report(record: RunRecord, report: Path, label: str, job: RunJob) -> RunRecord:
    """The record with the timing model's figures: the mean of the timed runs' calls of
    tinyhil_invoke (the warm-up calls come first and are left out), and per layer of a
    profiled inference the cycles from one th_profile_begin mark to the next."""
    from dataclasses import replace

    from harness.cycles import parse_report

    try:
        rep = parse_report(report.read_text())
    except OSError:
        return replace(record, error=f"the cycle model wrote no report ({report.name})")
    calls = rep.calls.get("tinyhil_invoke", [])
    fields: dict[str, object] = {"cycle_model": label}
    if job.measure:
        timed = calls[job.warmup:job.warmup + job.runs] if len(calls) >= job.warmup + job.runs else []
        if not timed:
            return replace(record, error=f"the cycle model saw {len(calls)} calls of tinyhil_invoke, "
                                         f"expected {job.warmup + job.runs}")
        fields["est_cycles"] = round(sum(c.cycles for c in timed) / len(timed))
        fields["cycle_breakdown"] = {k: round(sum(c.as_dict()[k] for c in timed) / len(timed))
                                     for k in timed[0].as_dict()} | {
            "instructions": round(sum(c.instructions for c in timed) / len(timed))}
        if rep.inside and calls:
            fields["cycle_classes"] = {k: v / len(calls) for k, v in rep.inside.items()}
    if job.profile and rep.marks:
        begins = [m for m in rep.marks if m[0] == "th_profile_begin"]
        ends = [m for m in rep.marks if m[0] == "th_profile_end"]
        layers = record.profile.layers if record.profile else ()
        n = len(layers)
        if n and len(begins) >= n and ends:
            # the inference's marks come first (th-profile's calibration pairs follow)
            stamps = [b[2] for b in begins[:n]]
            last_end = next((e[2] for e in ends if e[2] > stamps[-1]), stamps[-1])
            fields["layer_est_cycles"] = tuple(b - a for a, b in zip(stamps, stamps[1:] + [last_end]))
    return replace(record, **fields)  # type: ignore[arg-type]


def _host_check(target: TargetDescriptor, port: str | None, system: "System") -> tuple[bool, list[str]]:
    from harness.build import QEMU_SYSTEMS
    from harness.hosting import tool

    if target.qemu is None:
        return False, []
    if target.qemu.system == "xtensa":
        from harness.runners.espqemu import find_qemu_xtensa

        try:
            return True, [f"Espressif's QEMU: {find_qemu_xtensa(target.qemu.machine)}"]
        except ToolMissingError as e:
            return False, [str(e)]
    ok, note = tool(f"qemu-system-{target.qemu.system}", QEMU_SYSTEMS[target.qemu.system], "", system)
    return ok, [note] if note else []


def _create(targets: list[TargetDescriptor], port: str | None) -> QemuRunner:
    from harness.build import find_qemu

    for system, machine in sorted({(t.qemu.system, t.qemu.machine) for t in targets if t.qemu}):
        find_qemu(qemu_system=system, machine=machine)
    return QemuRunner()


def _register() -> None:
    from harness.runners import RunnerKind, register

    register(RunnerKind("qemu", "qemu", "emulator", False, _host_check, _create,
                        "QEMU with -icount: exact instruction counts and the timing model's est. cycles",
                        parallel=True))


_register()
