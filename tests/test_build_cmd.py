"""`tinyhil build`: the firmware written out for the MLPerf runner or a flasher, and its
m-lap-us in the target's estimated time under QEMU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.targets import find_target
from tests.test_firmware import QemuDut, needs_arm_gcc, needs_qemu


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def _laps_per_s(elf: Path, data: bytes, runs: int) -> float:
    """What the MLPerf runner computes: runs / (second m-lap-us - first m-lap-us)."""
    dut = QemuDut(find_target("cortex-m4"), elf)
    try:
        dut.command(f"db load {len(data)}")
        for pos in range(0, len(data), 31):  # the runner's 31-byte db commands
            lines = dut.command("db " + data[pos:pos + 31].hex())
        assert lines == ["m-load-done"]
        reply = dut.command(f"infer {runs} 1")
        laps = [int(line[len("m-lap-us-"):]) for line in reply if line.startswith("m-lap-us-")]
        assert any(line.startswith("m-results-[") for line in reply)
        return runs / ((laps[1] - laps[0]) / 1e6)
    finally:
        dut.close()


@pytest.mark.qemu
@needs_qemu
@needs_arm_gcc
def test_build_writes_the_image_and_lap_us_is_the_targets_time(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_models: Path, shared_datasets: Path) -> None:
    out = tmp_path / "ad"
    code, stdout, err = _run(capsys, "build", "--target", "cortex-m4", "--model", "ad", "-o", str(out), "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc == json.loads((out / "firmware.json").read_text())
    assert doc["mlperf_id"] == "ad01" and doc["input_wire"] == "float32" and doc["schema_version"] == 2
    assert (out / "firmware.hex").read_text().startswith(":") and (out / "firmware.bin").stat().st_size > 100_000
    assert "-kernel" in doc["qemu_command"] and doc["uart"]["protocol"].startswith("EEMBC/MLPerf Tiny DUT")
    lap = doc["lap_us"]
    assert lap["scaled"] and 1.0 < lap["cpi"] < 2.0 and lap["est_cycles"] > lap["instructions"] > 300_000
    # The runner's figure from the float32 window it sends equals clock / est. cycles within 1 %.
    clip = (shared_datasets / "ad01" / "normal_id_01_00000000_hist_librosa.bin").read_bytes()
    per_s = _laps_per_s(out / "firmware.elf", clip[:2560], 200)
    assert abs(per_s / lap["inferences_per_s"] - 1) < 0.01, (per_s, lap)

    # Without the scale: QEMU's virtual time, 1 instruction per ns.
    raw = tmp_path / "raw"
    code, _, err = _run(capsys, "build", "--target", "cortex-m4", "--model", "ad", "-o", str(raw),
                        "--lap-scale", "none")
    assert code == 0, err
    assert not json.loads((raw / "firmware.json").read_text())["lap_us"]["scaled"]
    per_s_1ghz = _laps_per_s(raw / "firmware.elf", clip[:2560], 200)
    assert abs(per_s_1ghz / (1e9 / lap["instructions"]) - 1) < 0.02, per_s_1ghz


def test_build_refuses_what_cannot_be_built(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            shared_models: Path) -> None:
    (tmp_path / "file").write_text("x")
    code, _, err = _run(capsys, "build", "--target", "cortex-m4", "--model", "kws", "-o", str(tmp_path / "file"))
    assert code == 2 and "not a directory" in err
    code, _, err = _run(capsys, "build", "--target", "cortex-m4", "--model", "kws", "-o", str(tmp_path / "o"),
                        "--energy", "--lap-scale", "none")
    assert code == 2 and "--energy is for a board (--runner board)" in err
    code, _, err = _run(capsys, "build", "--target", "cortex-m4", "--model", "kws", "-o", str(tmp_path / "o"),
                        "--lap-scale", "fast")
    assert code == 2 and "expected auto or none" in err


@needs_arm_gcc
def test_energy_build_for_a_board(capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_models: Path) -> None:
    """The board image with EnergyRunner's timestamp pin (stm32f746: PI3, Arduino D7) links
    warning-free without a board attached; its banner names the energy mode."""
    out = tmp_path / "e"
    code, stdout, err = _run(capsys, "build", "--target", "stm32f746", "--model", "kws", "--runner", "board",
                             "--energy", "-o", str(out), "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["energy_mode"] and doc["build_variant"] == "board" and not doc["lap_us"]["scaled"]
    assert "-DTH_ENERGY_MODE=1" in doc["cflags"] and "-DTH_TIMESTAMP_PIN=3" in doc["cflags"]
    assert "qemu_command" not in doc
    assert b"m-timestamp-mode-energy" in (out / "firmware.bin").read_bytes()
