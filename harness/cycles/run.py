"""``tinyhil cycles``: any bare-metal ELF under QEMU with the timing model.

The ELF is built for the target's QEMU machine; semihosting is on (its output
and the UART's go to the caller's terminal); the run ends at semihosting exit,
when ``until`` is reached, or at the timeout (then it is an error: the figures
of an unfinished run are not reported as if complete).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence

from harness.cycles import (Breakdown, CoreTable, CycleReport, MemorySystem, Watch, elf_symbols, model_label,
                            parse_report, plugin_config, plugin_path, resolve_symbols)
from harness.errors import RunnerError, UserInputError
from harness.targets import TargetDescriptor


@dataclass(frozen=True)
class FunctionFigures:
    name: str
    calls: int
    instructions_per_call: float
    est_cycles_per_call: float
    breakdown_per_call: dict[str, float]


@dataclass(frozen=True)
class CyclesResult:
    functions: tuple[FunctionFigures, ...]
    total: Breakdown
    cycle_model: str
    report: CycleReport
    wall_s: float
    exit_code: int

    def to_json(self) -> dict[str, object]:
        return {
            "functions": [{"name": f.name, "calls": f.calls, "instructions_per_call": f.instructions_per_call,
                           "est_cycles_per_call": f.est_cycles_per_call, "breakdown_per_call": f.breakdown_per_call}
                          for f in self.functions],
            "total": {"instructions": self.total.instructions, "est_cycles": self.total.cycles,
                      "breakdown": self.total.as_dict(), "dual_issue_saved": self.report.dual_saved},
            "classes": {name: {"kind": kind, "count": count, "est_cycles": cycles}
                        for name, (kind, count, cycles) in sorted(self.report.classes.items(),
                                                                 key=lambda kv: -kv[1][2])},
            "unclassified_mnemonics": self.report.unknown,
            "cycle_model": self.cycle_model,
        }


def run_cycles(elf: Path, target: TargetDescriptor, table: CoreTable, memory: MemorySystem,
               functions: Sequence[str] = (), until: str | None = None, timeout_s: float = 300.0,
               qemu: str | None = None, passthrough: IO[str] | None = None) -> CyclesResult:
    """Run ``elf`` to its end with the model; per named function (inclusive) and in total."""
    from harness.build import find_qemu
    from harness.runners.qemu import private_dir, qemu_command

    if not elf.is_file():
        raise UserInputError(f"{elf}: no such ELF file")
    if target.qemu is None:
        raise UserInputError(f"target {target.name} has no [qemu] section: tinyhil cycles runs ELFs under QEMU")
    with open(elf, "rb") as f:
        if f.read(4) != b"\x7fELF":
            raise UserInputError(f"{elf}: not an ELF file")
    watches: list[Watch] = resolve_symbols(elf, functions)
    until_addr = None
    if until is not None:
        symbols = elf_symbols(elf)
        if until not in symbols:
            raise UserInputError(f"{elf}: no function symbol {until!r} for --until")
        until_addr = symbols[until]
    binary = qemu or str(find_qemu(qemu_system=target.qemu.system))
    work = private_dir()
    try:
        report_path = work / "cycles.txt"
        cfg = work / "cycles.cfg"
        cfg.write_text(plugin_config(table, memory, report_path, watches, (), until_addr))
        out = passthrough if passthrough is not None else sys.stdout
        cmd = qemu_command(binary, elf, target, "stdio", extra=["-plugin", f"{plugin_path()},cfg={cfg}"])
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace")
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # QEMU exits cleanly; the plugin writes its summary
            try:
                stdout, stderr = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            out.write(stdout)
            raise RunnerError(f"{elf.name} did not finish within {timeout_s:g} s (no semihosting exit"
                              f"{', --until ' + until + ' not reached' if until else ''}); give --timeout or "
                              "--until SYMBOL") from None
        wall = time.monotonic() - start
        out.write(stdout)
        out.flush()
        try:
            rep = parse_report(report_path.read_text())
        except OSError:
            rep = CycleReport()
        if not rep.complete or rep.total is None:
            last = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {proc.returncode}"
            raise RunnerError(f"QEMU with the cycle model did not complete on {elf.name}: {last}")
        figures = []
        for w in watches:
            calls = rep.calls.get(w.name, [])
            n = len(calls)
            figures.append(FunctionFigures(
                w.name, n,
                sum(c.instructions for c in calls) / n if n else 0.0,
                sum(c.cycles for c in calls) / n if n else 0.0,
                {k: sum(c.as_dict()[k] for c in calls) / n for k in calls[0].as_dict()} if n else {}))
        return CyclesResult(tuple(figures), rep.total, model_label(table), rep, wall, proc.returncode)
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["CyclesResult", "FunctionFigures", "run_cycles"]
