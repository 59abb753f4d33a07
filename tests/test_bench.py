"""`tinyhil bench` end to end under QEMU, and its errors for bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.bench import fixed_input, input_bytes
from harness.build import build_firmware
from harness.engines.builtin import generate
from harness.model import load_model
from harness.cli import main
from harness.reference import Reference
from harness.runners.base import RunJob
from harness.runners.qemu import QemuRunner
from harness.targets import find_target


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.mark.qemu
def test_bench_kws_on_cortex_m4(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                shared_models: Path, arm_tools: tuple[str, str]) -> None:
    out_file = tmp_path / "rows.jsonl"
    code, out, err = _run(capsys, "bench", "--target", "cortex-m4", "--model", "kws",
                          "--out", str(out_file), "--csv", str(tmp_path / "rows.csv"))
    assert code == 0, err
    (row,) = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert row["status"] == "ok" and row["output_matches_reference"] is True
    assert row["benchmark"] == "kws" and row["target"] == "cortex-m4" and row["runner"] == "qemu"
    assert row["instructions"] > 2_656_768  # at least one instruction per MAC
    assert row["cycles"] is None and row["latency_source"] == "est_cycles"
    assert row["flash_weights_bytes"] >= 24_000 and row["ram_arena_bytes"] == 16_000
    assert 0 < row["ram_stack_bytes"] < 8192
    assert re.search(r"^ kws +cortex-m4 +%s " % f"{row['instructions']:,}", out, re.M)
    assert (tmp_path / "rows.csv").read_text().startswith("benchmark,")


@pytest.mark.qemu
def test_bench_out_directory_gets_a_file_inside(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                shared_models: Path, arm_tools: tuple[str, str]) -> None:
    code, out, err = _run(capsys, "bench", "--target", "cortex-m4", "--model", "ad", "--out", str(tmp_path))
    assert code == 0, err
    (written,) = list(tmp_path.glob("bench-*.jsonl"))
    (row,) = [json.loads(line) for line in written.read_text().splitlines()]
    assert row["benchmark"] == "ad" and row["status"] == "ok"


def test_bench_out_under_a_file_is_refused_before_running(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                          shared_models: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    code, _, err = _run(capsys, "bench", "--target", "cortex-m4", "--model", "ad",
                        "--out", str(blocker / "rows.jsonl"))
    assert code == 2 and "is not a directory" in err and "Traceback" not in err


@pytest.mark.qemu
def test_instruction_counts_repeat_exactly(shared_models: Path, shared_datasets: Path,
                                           arm_tools: tuple[str, str]) -> None:
    target = find_target("cortex-m4")
    model = load_model(shared_models / "kws_ref_model.tflite")
    image = build_firmware(generate(model), target)
    sample = fixed_input(model, shared_datasets / "kws01")
    runner = QemuRunner(arm_tools[1])
    records = [runner.run(image.elf, target, RunJob(input_bytes(model, sample)), 120) for _ in range(5)]
    assert all(r.ok for r in records), [r.error for r in records]
    counts = {r.count_per_inference for r in records}
    assert len(counts) == 1, counts
    expected = b"".join(o.tobytes() for o in Reference(model).run(sample.inputs))
    assert all(r.output == expected for r in records)


@pytest.mark.qemu
def test_hung_firmware_is_a_failed_row_not_a_number(tmp_path: Path, shared_models: Path,
                                                    arm_tools: tuple[str, str]) -> None:
    target = find_target("cortex-m4")
    model = load_model(shared_models / "kws_ref_model.tflite")
    image = build_firmware(generate(model), target)
    sample = fixed_input(model, None)
    # A deadline far too short for the work (10^5 inferences: minutes, however fast the
    # kernels get): the runner must kill QEMU and say so.
    record = QemuRunner(arm_tools[1]).run(image.elf, target, RunJob(input_bytes(model, sample), runs=100_000), 1.0)
    assert not record.ok and record.count_per_inference == 0
    assert "no answer" in record.error or "in time" in record.error


@pytest.mark.parametrize("argv,message", [
    (["--target", "stm32f999"], "unknown target 'stm32f999'"),
    (["--model", "missing.tflite"], "missing.tflite: cannot read model file"),
    (["--model", "nonsense"], "not an MLPerf Tiny name"),
])
def test_bench_bad_input_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, _, err = _run(capsys, "bench", *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1


def test_bench_corrupt_and_unsupported_models_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from harness.synth import ModelBuilder

    bad = tmp_path / "corrupt.tflite"
    bad.write_bytes(b"TFL3" * 10)
    code, _, err = _run(capsys, "bench", "--model", str(bad))
    assert code == 2 and "corrupt.tflite" in err

    b = ModelBuilder()
    x = b.tensor("x", [1, 8], scale=0.1)
    y = b.tensor("y", [1, 8], scale=1 / 256, zero_point=-128)
    b.op("LOGISTIC", [x], [y])
    sig = tmp_path / "sigmoid.tflite"
    sig.write_bytes(b.build([x], [y]))
    code, _, err = _run(capsys, "bench", "--model", str(sig))
    assert code == 2 and "operator #0 LOGISTIC is not supported by the 'builtin' engine" in err


@pytest.mark.qemu
def test_a_model_that_does_not_fit_is_a_row_and_the_suite_goes_on(capsys: pytest.CaptureFixture[str],
                                                                   tmp_path: Path, shared_models: Path,
                                                                   arm_tools: tuple[str, str]) -> None:
    """A chip comparison's normal result: VWW does not fit 64 KB of flash, KWS (49 KB) after
    it still runs; both rows are written; exit 1 (a row did not pass), not 2."""
    tiny = tmp_path / "tiny64k.toml"
    tiny.write_text((Path(__file__).resolve().parents[1] / "targets" / "cortex-m4.toml").read_text()
                    .replace('name = "cortex-m4"', 'name = "tiny64k"')
                    .replace("size_kb = 4096 }  # SSRAM1 (code)", "size_kb = 64 }")
                    .replace('{ name = "code", origin = 0x00000000, size_kb = 4096 }',
                             '{ name = "code", origin = 0x00000000, size_kb = 64 }'))
    out = tmp_path / "rows.jsonl"
    code, stdout, err = _run(capsys, "bench", "--target", str(tiny), "--model", "vww", "--model", "kws",
                             "--out", str(out))
    assert code == 1, err
    assert "does not fit: vww on tiny64k: vww_96_int8 does not fit tiny64k: FLASH overflowed by" in err
    assert "Traceback" not in err
    # Rows are written as cases finish (--jobs: in any order).
    by_model = {r["benchmark"]: r for r in map(json.loads, out.read_text().splitlines())}
    vww, kws = by_model["vww"], by_model["kws"]
    assert vww["status"] == "does_not_fit" and "FLASH overflowed by" in vww["error"]
    assert vww["instructions"] is None and vww["latency_ms"] is None
    assert kws["status"] == "ok" and kws["instructions"] > 0
