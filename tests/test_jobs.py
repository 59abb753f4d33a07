"""--jobs: cases in parallel over the suite API (harness/suite.py run_suite, harness/cli/bench.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import suite
from harness.bench import BenchCase
from harness.errors import ToolMissingError, UserInputError
from harness.suite import SuiteEvent, SuiteOptions, run_suite
from harness.targets import find_target

SHARED = Path(os.environ.get("TINYHIL_SHARED", Path(__file__).resolve().parents[2] / "shared"))
MODELS = SHARED / "models" / "mlperf_tiny"


class _Runner:
    name = "qemu"


def _cases(n: int) -> list[BenchCase]:
    target = find_target("cortex-m4")
    return [BenchCase(f"m{i}", Path(f"m{i}.tflite"), None, target, None) for i in range(n)]  # type: ignore[arg-type]


def _fake_run_case(durations: dict[str, float], active: list[int], peak: list[int],
                   fail: str = "") -> Any:
    lock = threading.Lock()

    def run_case(case: BenchCase, runner: Any, runs: int, warmup: int, timeout_s: float, note: Any,
                 **_kw: Any) -> Any:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            note("building firmware")
            time.sleep(durations[case.benchmark])
            if case.benchmark == fail:
                raise ToolMissingError("qemu-system-arm vanished")
            return {"benchmark": case.benchmark}
        finally:
            with lock:
                active[0] -= 1

    return run_case


def test_jobs_run_cases_at_once_and_yield_each_as_it_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    durations = {"m0": 0.30, "m1": 0.05, "m2": 0.15, "m3": 0.05}
    active, peak = [0], [0]
    monkeypatch.setattr(suite, "run_case", _fake_run_case(durations, active, peak))
    events: list[SuiteEvent] = []
    inside = [0]

    def on_event(e: SuiteEvent) -> None:  # serialized: never two at once
        inside[0] += 1
        assert inside[0] == 1
        time.sleep(0.001)
        events.append(e)
        inside[0] -= 1

    start = time.monotonic()
    rows = list(run_suite(_cases(4), _Runner(), SuiteOptions(), on_event, jobs=2))  # type: ignore[arg-type]
    wall = time.monotonic() - start
    assert peak[0] == 2  # two at a time, never more
    assert sorted(r["benchmark"] for r in rows) == ["m0", "m1", "m2", "m3"]  # type: ignore[index]
    assert rows[0]["benchmark"] == "m1"  # type: ignore[index]  # the first to finish comes first
    assert wall < 0.5  # 0.30 + 0.15 in two lanes, not 0.55 in one
    assert {e.kind for e in events} == {"case", "note", "row"}
    assert sorted(e.index for e in events if e.kind == "row") == [0, 1, 2, 3]


def test_one_job_is_the_serial_order(monkeypatch: pytest.MonkeyPatch) -> None:
    active, peak = [0], [0]
    monkeypatch.setattr(suite, "run_case", _fake_run_case({"m0": 0.05, "m1": 0.0, "m2": 0.0}, active, peak))
    rows = list(run_suite(_cases(3), _Runner(), SuiteOptions(), jobs=1))  # type: ignore[arg-type]
    assert [r["benchmark"] for r in rows] == ["m0", "m1", "m2"] and peak[0] == 1  # type: ignore[index]


def test_a_case_that_raises_stops_new_ones_and_keeps_finished_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    durations = {"m0": 0.02, "m1": 0.10, "m2": 0.01, "m3": 0.01, "m4": 0.01}
    active, peak = [0], [0]
    monkeypatch.setattr(suite, "run_case", _fake_run_case(durations, active, peak, fail="m0"))
    got: list[Any] = []
    with pytest.raises(ToolMissingError, match="vanished"):
        for row in run_suite(_cases(5), _Runner(), SuiteOptions(), jobs=2):  # type: ignore[arg-type]
            got.append(row)
    assert [r["benchmark"] for r in got] == ["m1"]  # type: ignore[index]  # running when m0 failed: kept
    assert active[0] == 0  # nothing left running


def test_bad_jobs_are_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserInputError, match="--jobs 0"):
        list(run_suite(_cases(2), _Runner(), SuiteOptions(), jobs=0))  # type: ignore[arg-type]
    import argparse

    from harness.cli.bench import suite_jobs

    assert suite_jobs(argparse.Namespace(runner="qemu", jobs=None)) == (os.cpu_count() or 1)
    assert suite_jobs(argparse.Namespace(runner="board", jobs=None)) == 1
    with pytest.raises(UserInputError, match="--runner board hosts one firmware at a time"):
        suite_jobs(argparse.Namespace(runner="board", jobs=2))


def _bench(tmp_path: Path, jobs: int, name: str) -> tuple[list[dict[str, Any]], float]:
    env = {**os.environ, "TINYHIL_RESULTS": str(tmp_path / name), "TINYHIL_SHARED": str(SHARED)}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "bench", "--target", "cortex-m4", "--model", "kws",
                           "--model", "ad", "--jobs", str(jobs), "--json"], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(ln) for ln in proc.stdout.splitlines()], time.monotonic() - start


# What differs between two runs of the same case whatever the scheduling: times and ids.
VOLATILE = {"timestamp", "wall_s", "run_id", "git_revision", "host", "batch_s", "accuracy_s"}


@pytest.mark.qemu
def test_jobs_rows_equal_a_serial_runs_rows(tmp_path: Path) -> None:
    """Two cases under QEMU at once give the rows one at a time gives (counts are
    deterministic), each written to the results file as its case finishes."""
    if not (MODELS / "kws_ref_model.tflite").exists():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    serial, _ = _bench(tmp_path, 1, "serial")
    parallel, _ = _bench(tmp_path, 2, "parallel")

    def stable(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {r["benchmark"]: {k: v for k, v in r.items() if k not in VOLATILE and not k.endswith("_s")}
                for r in rows}

    assert stable(serial) == stable(parallel)
    assert {r["status"] for r in parallel} == {"ok"} and len(parallel) == 2
    (written,) = list((tmp_path / "parallel").glob("bench-*.jsonl"))
    assert sorted(json.loads(ln)["benchmark"] for ln in written.read_text().splitlines()) == ["ad", "kws"]


CHILD = """
import sys, time
from pathlib import Path
from harness.build import build_firmware
from harness.engines.builtin import generate
from harness.model import load_model
from harness.runners.qemu import QemuRunner
from harness.targets import find_target
target = find_target("cortex-m4")
image = build_firmware(generate(load_model(Path(sys.argv[1]))), target)
session = QemuRunner().start(image.elf, target, time.monotonic() + 30)
print(session.proc.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.qemu
def test_a_killed_tinyhil_takes_its_qemu_with_it(tmp_path: Path) -> None:
    """SIGKILL leaves no cleanup to run: QEMU dies with its parent all the same (setpriv's
    parent-death signal), not waiting on its UART forever."""
    model = MODELS / "ad01_int8.tflite"
    if not model.exists():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(model)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        qemu_pid = int(child.stdout.readline())
        os.kill(qemu_pid, 0)  # running
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(qemu_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(qemu_pid, 9)
    pytest.fail(f"QEMU (pid {qemu_pid}) outlived the tinyhil that started it")


@pytest.mark.qemu
@pytest.mark.slow
def test_killing_a_jobs_run_at_random_moments_leaves_only_complete_rows(tmp_path: Path) -> None:
    """SIGKILL a `bench --jobs 2` 20 times at random moments (seeded): every rows file holds
    only complete, parseable rows, and no QEMU it started outlives it."""
    import random
    import signal

    from harness.results import REQUIRED_FIELDS

    if not (MODELS / "kws_ref_model.tflite").exists():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    results = tmp_path / "results"
    env = {**os.environ, "TINYHIL_RESULTS": str(results), "TINYHIL_SHARED": str(SHARED)}
    cmd = [sys.executable, "-m", "harness.cli", "bench", "--target", "cortex-m4", "--model", "kws", "--model", "ad",
           "--model", "ic", "--jobs", "2"]
    subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, timeout=900)  # firmware cached after this
    rng = random.Random(20)
    before = set(results.glob("*.jsonl"))
    orphans_before = _orphan_qemus()
    for _ in range(20):
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(rng.uniform(0.3, 3.0))
        proc.send_signal(signal.SIGKILL)  # tinyhil only: its QEMUs must follow by themselves
        proc.wait()
    rows = 0
    for f in set(results.glob("*.jsonl")) - before:
        text = f.read_text()
        assert not text or text.endswith("\n"), f"{f.name}: a cut line"
        for line in text.splitlines():
            row = json.loads(line)
            assert all(row.get(k) for k in REQUIRED_FIELDS) and row["status"] == "ok"
            rows += 1
    time.sleep(1.0)
    assert rows > 0  # some runs got far enough to write
    assert _orphan_qemus() <= orphans_before


def _orphan_qemus() -> set[int]:
    """QEMUs whose parent has died (re-parented to init)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if "qemu-system" in cmdline and ppid == 1:
            found.add(int(proc.name))
    return found
