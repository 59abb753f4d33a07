"""Result rows that survive anything, and faults that are one clear line (issue 15).

Fault injection: outputs that are not regular files, two writers on one file,
read-only and full output and cache (a small tmpfs, skipped when it cannot be
mounted), Ctrl-C mid-suite, a truncated cached ELF, bad numbers, markup and
control bytes in messages.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from harness.cli import main
from harness.results import RowSink, RowWriteError, check_output_path
from tests.fakes import BytesPort
from tests.rows import KWS_M4

REPO = Path(__file__).resolve().parents[1]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


# ----------------------------------------------------------------- outputs that are not regular files

def test_fifo_device_and_directory_outputs_are_refused_and_left_alone(tmp_path: Path) -> None:
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    with pytest.raises(Exception, match="is a FIFO; give a regular file"):
        check_output_path(fifo, "--out")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    for device in ("/dev/null", "/dev/full"):
        with pytest.raises(Exception, match="is a device"):
            check_output_path(Path(device), "--out")
        assert stat.S_ISCHR(os.stat(device).st_mode)
    with pytest.raises(Exception, match="is a directory"):
        check_output_path(tmp_path, "--csv")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(Exception, match="is not a directory"):
        check_output_path(blocker / "rows.jsonl", "--out")


def test_bench_refuses_a_fifo_out_before_any_work(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINYHIL_CACHE", str(tmp_path / "cache"))
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    code, _, err = _run(capsys, "bench", "--model", "ad", "--out", str(fifo))
    assert code == 2 and "is a FIFO" in err and "Traceback" not in err
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert not (tmp_path / "cache" / "firmware").exists()  # nothing was built


def test_rows_append_through_a_symlink_and_to_an_existing_file(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text(KWS_M4.to_json() + "\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    sink = RowSink(link, tmp_path / "rows.csv")
    sink.append(replace(KWS_M4, benchmark="ad"))
    sink.append(replace(KWS_M4, benchmark="vww"))
    assert link.is_symlink()
    assert [json.loads(line)["benchmark"] for line in real.read_text().splitlines()] == ["kws", "ad", "vww"]
    csv_lines = (tmp_path / "rows.csv").read_text().splitlines()
    assert csv_lines[0].startswith("benchmark,") and len(csv_lines) == 3  # one header


def _writer(path: str, tag: str, count: int) -> None:
    sink = RowSink(Path(path))
    for i in range(count):
        sink.append(replace(KWS_M4, benchmark=f"{tag}{i}", error="x" * 3000))  # lines > PIPE_BUF


def test_concurrent_writers_on_one_file_both_land(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    procs = [multiprocessing.Process(target=_writer, args=(str(path), tag, 150)) for tag in ("a", "b", "c")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 450
    assert sorted(r["benchmark"] for r in rows) == sorted(f"{t}{i}" for t in "abc" for i in range(150))


def test_default_result_files_are_unique_per_run() -> None:
    from harness.results import default_results_path

    names = {default_results_path().name for _ in range(50)}
    assert len(names) == 50


# ----------------------------------------------------------------- read-only and full places (tmpfs)

@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, unmounted afterwards; skipped when this host cannot mount one."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _read_only(mnt: Path) -> None:
    proc = subprocess.run(["mount", "-o", "remount,ro", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot remount the tmpfs read-only: {proc.stderr.strip()}")


def test_a_full_output_keeps_the_rows_before_it(tmpfs: Path) -> None:
    sink = RowSink(tmpfs / "rows.jsonl")
    written = 0
    with pytest.raises(RowWriteError, match=r"No space left on device.*the \d+ row\(s\) before it are there"):
        for i in range(10_000):
            sink.append(replace(KWS_M4, benchmark=f"r{i}", error="x" * 2000))
            written += 1
    rows = [json.loads(line) for line in (tmpfs / "rows.jsonl").read_text().splitlines() if line.endswith("}")]
    assert written > 0 and len(rows) >= written


def test_read_only_out_and_cache_are_exit_2_before_work(capsys: pytest.CaptureFixture[str], tmpfs: Path,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmpfs / "cache").mkdir()
    _read_only(tmpfs)
    monkeypatch.setenv("TINYHIL_CACHE", str(tmp_path / "cache"))
    code, _, err = _run(capsys, "bench", "--model", "ad", "--out", str(tmpfs / "rows.jsonl"))
    assert code == 2 and "--out" in err and "Read-only file system" in err and "Traceback" not in err
    code, _, err = _run(capsys, "bench", "--model", "ad", "--csv", str(tmpfs / "rows.csv"),
                        "--out", str(tmp_path / "rows.jsonl"))
    assert code == 2 and "--csv" in err and "Read-only file system" in err
    monkeypatch.setenv("TINYHIL_CACHE", str(tmpfs / "cache"))
    code, _, err = _run(capsys, "bench", "--model", "ad", "--out", str(tmp_path / "rows.jsonl"))
    assert code == 2 and "the build cache" in err and "not writable" in err and "Traceback" not in err


@pytest.mark.qemu
def test_a_full_cache_is_one_line(capsys: pytest.CaptureFixture[str], tmpfs: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, shared_models: Path,
                                  arm_tools: tuple[str, str]) -> None:
    monkeypatch.setenv("TINYHIL_CACHE", str(tmpfs))
    code, _, err = _run(capsys, "bench", "--model", "ad", "--out", str(tmp_path / "rows.jsonl"))
    assert code == 1 and "cannot write the firmware cache" in err and "No space left on device" in err
    assert "Traceback" not in err


# ----------------------------------------------------------------- numbers checked before work

@pytest.mark.parametrize("option, value, message", [
    ("--runs", "0", "--runs 0: expected a number of timed inferences >= 1"),
    ("--runs", "-1", "--runs -1: expected"),
    ("--warmup", "-1", "--warmup -1: expected a number of untimed inferences >= 0"),
    ("--timeout", "0", "--timeout 0.0: expected a finite number of seconds > 0"),
    ("--timeout", "-5", "--timeout -5.0: expected"),
    ("--timeout", "nan", "--timeout nan: expected"),
    ("--timeout", "inf", "--timeout inf: expected"),
])
def test_bad_numbers_are_exit_2_before_any_build(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, option: str, value: str,
                                                 message: str) -> None:
    monkeypatch.setenv("TINYHIL_CACHE", str(tmp_path / "cache"))
    code, _, err = _run(capsys, "bench", "--model", "ad", option, value, "--out", str(tmp_path / "r.jsonl"))
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "r.jsonl").exists() and not (tmp_path / "cache").exists()
    assert math.isfinite(1.0)


# ----------------------------------------------------------------- Ctrl-C and the cache

@pytest.mark.qemu
def test_ctrl_c_mid_suite_keeps_the_finished_rows(tmp_path: Path, shared_models: Path,
                                                  arm_tools: tuple[str, str]) -> None:
    """AD finishes, then SIGINT arrives during the 1000-input KWS accuracy run: exit 130
    and AD's row is in the file, whole."""
    out = tmp_path / "rows.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "bench", "--model", "ad", "--model", "kws",
                             "--accuracy", "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    time.sleep(1.0)  # into the KWS case
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["benchmark"] for r in rows] == ["ad"] and rows[0]["status"] == "ok"
    assert "Traceback" not in err


@pytest.mark.qemu
def test_a_truncated_cached_elf_is_rebuilt_with_one_warning(tmp_path: Path, shared_models: Path,
                                                            arm_tools: tuple[str, str],
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    from harness.build import build_firmware
    from harness.engines.builtin import generate
    from harness.model import load_model
    from harness.targets import find_target

    gen = generate(load_model(shared_models / "ad01_int8.tflite"))
    target = find_target("cortex-m4")
    first = build_firmware(gen, target, cache_dir=tmp_path)
    data = first.elf.read_bytes()
    first.elf.write_bytes(data[: len(data) // 3])  # a crash mid-copy, a full disk
    capfd.readouterr()
    again = build_firmware(gen, target, cache_dir=tmp_path)
    assert not again.cache_hit and again.elf.read_bytes() == data
    err = capfd.readouterr().err
    assert err.count("warning:") == 1 and "incomplete or corrupt" in err
    assert build_firmware(gen, target, cache_dir=tmp_path).cache_hit  # and whole again


# ----------------------------------------------------------------- terminal safety

def test_messages_keep_their_brackets(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "bench", "--model", str(tmp_path / "my[board]model.tflite"))
    assert code == 2 and "my[board]model.tflite" in err


def test_device_bytes_are_shown_escaped() -> None:
    from harness.dut import Dut
    from harness.errors import DutProtocolError

    dut = Dut(BytesPort(b"\x1b[2J\x1b]0;pwned\x07garbage\xff\r\nm-ready\r\n"), timeout_s=1)
    with pytest.raises(DutProtocolError) as e:
        dut.read_until_ready()
    assert "\\x1b[2J\\x1b]0;pwned\\x07garbage\\xff" in str(e.value) and "\x1b" not in str(e.value)
