"""The `tinyhil` command line: tables on success, one clear line on user mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_engine_check_prints_table(capsys: pytest.CaptureFixture[str], shared_models: Path,
                                   shared_datasets: Path) -> None:
    code, out, err = _run(capsys, "engine", "check", str(shared_models / "ad01_int8.tflite"),
                          "--inputs", str(shared_datasets / "ad01"), "--limit", "30")
    assert code == 0, err
    assert "ad01_int8" in out and "264,192" in out  # MACs
    row = next(line for line in out.splitlines() if "ad01" in line)
    cells = [c.strip() for c in row.split("│")]
    assert cells[9] == "0"  # max abs diff


def test_engine_check_bad_file_is_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"\x00" * 64)
    code, _, err = _run(capsys, "engine", "check", str(bad))
    assert code == 2
    assert "broken.tflite: not a TFLite flatbuffer" in err
    assert "Traceback" not in err


def test_engine_check_dataset_mismatch(capsys: pytest.CaptureFixture[str], shared_models: Path,
                                       shared_datasets: Path) -> None:
    code, _, err = _run(capsys, "engine", "check", str(shared_models / "ad01_int8.tflite"),
                        "--inputs", str(shared_datasets / "kws01"))
    assert code == 2
    assert "490 bytes" in err and "Traceback" not in err


