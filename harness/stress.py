"""Benches at once on a busy host: the stress benchmark of the emulator connections.

``tinyhil stress`` first runs each case (model x target) alone on an idle host
for its reference row, then for each round starts ``jobs`` complete ``tinyhil
bench`` processes at the same instant, with ``hogs`` busy-loop processes keeping
every core loaded. A bench fails the stress when its process fails, its row is
not ok, or its instruction count, est. cycles or firmware build differs from the idle run's
(counts under ``-icount shift=0``, and the timing model's est. cycles computed from
them, do not depend on load, so any difference is a crossed wire or a lost byte). It is a
benchmark command that prints numbers, not a timed test.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from harness.errors import RunnerError

Progress = Callable[[str], None]


@dataclass(frozen=True)
class StressCase:
    model: str  # kws, vww, ic, ad or a .tflite path
    target: str


@dataclass
class CaseTally:
    """What one case did over the rounds."""

    case: StressCase
    idle_instructions: int | None = None
    idle_est_cycles: int | None = None
    idle_build: str = ""
    runs: int = 0
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)


@dataclass
class StressReport:
    jobs: int
    rounds: int
    hogs: int
    accuracy: bool
    tallies: list[CaseTally]
    load_avg: float = 0.0  # 1-minute load average at the end of the rounds

    @property
    def failed(self) -> int:
        return sum(len(t.failures) for t in self.tallies)

    @property
    def benches(self) -> int:
        return sum(t.runs for t in self.tallies)


def _hog() -> None:  # pragma: no cover - runs in a child process until killed
    while True:
        pass


def _bench_cmd(case: StressCase, out: Path, extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "bench", "--target", case.target, "--model", case.model,
            "--out", str(out), *extra]


def _row(out: Path) -> dict[str, object] | None:
    try:
        lines = [ln for ln in out.read_text().splitlines() if ln.strip()]
    except OSError:
        return None
    return json.loads(lines[-1]) if lines else None


def _verdict(tally: CaseTally, proc: subprocess.CompletedProcess[str], out: Path, accuracy: bool) -> str:
    """'' when this bench is as good as the idle one, else why not."""
    row = _row(out)
    if row is None:
        tail = (proc.stderr or "").strip().splitlines()
        return f"no row (exit {proc.returncode}): {tail[-1] if tail else 'no message'}"
    if row.get("status") != "ok":
        return f"failed row: {row.get('error')}"
    if proc.returncode != 0:
        return f"exit {proc.returncode} with an ok row"
    if tally.idle_instructions is not None and row.get("instructions") != tally.idle_instructions:
        return f"instructions {row.get('instructions')} != idle {tally.idle_instructions}"
    if tally.idle_est_cycles is not None and row.get("est_cycles") != tally.idle_est_cycles:
        return f"est. cycles {row.get('est_cycles')} != idle {tally.idle_est_cycles}"
    if tally.idle_build and row.get("firmware_build") != tally.idle_build:
        return f"firmware build {row.get('firmware_build')} != idle {tally.idle_build}"
    if accuracy and row.get("predictions_match_reference") is not True:
        return "accuracy predictions differ from the host interpreter's"
    return ""


def run_stress(cases: Sequence[StressCase], jobs: int, rounds: int, hogs: int, accuracy: bool = False,
               timeout_s: float = 600.0, progress: Progress | None = None,
               on_bench: Callable[[], None] | None = None) -> StressReport:
    """Idle reference runs, then ``rounds`` x ``jobs`` benches at once under ``hogs`` CPU hogs.

    With ``accuracy`` every bench is an ``--accuracy`` run and the host
    interpreter's cached outputs are removed before each round, so it computes
    them in the bench process while the firmware sessions run.
    """
    note = progress or (lambda _m: None)
    extra = ["--accuracy"] if accuracy else []
    tallies = [CaseTally(c) for c in cases]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="tinyhil-stress-") as tmp:
        work = Path(tmp)
        for i, tally in enumerate(tallies):
            note(f"idle run: {tally.case.model} on {tally.case.target}")
            out = work / f"idle-{i}.jsonl"
            proc = subprocess.run(_bench_cmd(tally.case, out, extra), capture_output=True, text=True,
                                  timeout=timeout_s, env=env)
            why = _verdict(tally, proc, out, accuracy)
            if why:
                raise RunnerError(f"the idle run of {tally.case.model} on {tally.case.target} failed: {why}")
            row = _row(out) or {}
            tally.idle_instructions = row.get("instructions")  # type: ignore[assignment]
            tally.idle_est_cycles = row.get("est_cycles")  # type: ignore[assignment]
            tally.idle_build = str(row.get("firmware_build") or "")
        hog_procs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(hogs)]
        for h in hog_procs:
            h.start()
        try:
            for r in range(rounds):
                if accuracy:
                    from harness.firmware import cache_dir

                    shutil.rmtree(cache_dir() / "reference", ignore_errors=True)
                note(f"round {r + 1}/{rounds}: {jobs} benches at once, {hogs} hogs")
                started = []
                for j in range(jobs):
                    tally = tallies[(r * jobs + j) % len(tallies)]
                    out = work / f"r{r}-j{j}.jsonl"
                    popen = subprocess.Popen(_bench_cmd(tally.case, out, extra), stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True, env=env)
                    started.append((tally, out, popen, time.monotonic()))
                for tally, out, popen, t0 in started:
                    try:
                        stdout, stderr = popen.communicate(timeout=timeout_s)
                    except subprocess.TimeoutExpired:
                        popen.kill()
                        stdout, stderr = popen.communicate()
                    done = subprocess.CompletedProcess(popen.args, popen.returncode, stdout, stderr)
                    tally.runs += 1
                    tally.wall_s.append(time.monotonic() - t0)
                    why = _verdict(tally, done, out, accuracy)
                    if why:
                        tally.failures.append(f"round {r + 1}: {why}")
                    else:
                        tally.ok += 1
                    if on_bench is not None:
                        on_bench()
            load = os.getloadavg()[0]
        finally:
            for h in hog_procs:
                h.kill()
                h.join()
    return StressReport(jobs, rounds, hogs, accuracy, tallies, load)


__all__ = ["CaseTally", "StressCase", "StressReport", "run_stress"]
