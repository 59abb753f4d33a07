"""`tinyhil regress` and `tinyhil baseline update`: compare rows with a baseline, exit 1 on regressions."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

import harness.results
from harness.cli import build_parser, main
from harness.regress import compare, parse_tolerances, read_baseline, write_baseline
from harness.results import column_names, load_row_files
from tests.rows import failed, row, suite, write


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def _dicts(rows: list[harness.results.ResultRow]) -> list[dict[str, object]]:
    return [asdict(r) for r in rows]


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    path = tmp_path / "baseline.json"
    write_baseline(_dicts(suite()), path)
    return path


def test_nothing_changed_is_no_regression(capsys: pytest.CaptureFixture[str], baseline: Path,
                                          tmp_path: Path) -> None:
    rows = write(tmp_path / "run.jsonl", suite("2026-11-24T00:00:00+00:00"))
    code, out, err = _run(capsys, "regress", "--baseline", str(baseline), "--rows", str(rows))
    assert code == 0, out + err
    assert "no regressions" in out and "16 unchanged" in out  # accuracy: not in the baseline


def test_instruction_count_change_is_a_regression(capsys: pytest.CaptureFixture[str], baseline: Path,
                                                  tmp_path: Path) -> None:
    run = suite()
    run[0] = row(run[0], instructions=23_239_520 + 40)
    rows = write(tmp_path / "run.jsonl", run)
    code, out, err = _run(capsys, "regress", "--baseline", str(baseline), "--rows", str(rows))
    assert code == 1
    assert "kws on cortex-m4 (builtin): regression: instructions 23,239,520 -> 23,239,560 (+0.000172%)" in out
    assert "1 regression(s)" in err


def test_fewer_instructions_is_an_improvement_and_passes(capsys: pytest.CaptureFixture[str], baseline: Path,
                                                         tmp_path: Path) -> None:
    rows = write(tmp_path / "run.jsonl", suite(scale=0.9))
    code, out, _ = _run(capsys, "regress", "--baseline", str(baseline), "--rows", str(rows))
    assert code == 0 and "8 improvements" in " ".join(out.split())  # instructions and est. cycles


def test_tolerance_is_respected(capsys: pytest.CaptureFixture[str], baseline: Path, tmp_path: Path) -> None:
    rows = write(tmp_path / "run.jsonl", suite(scale=1.005))  # +0.5% instructions and est. cycles
    code, out, _ = _run(capsys, "regress", "--baseline", str(baseline), "--rows", str(rows),
                        "--tol", "instructions=1", "--tol", "est_cycles=1")
    assert code == 0 and "8 within tolerance" in out
    code, out, _ = _run(capsys, "regress", "--baseline", str(baseline), "--rows", str(rows),
                        "--tol", "instructions=1")  # est. cycles still at 0 %
    assert code == 1 and "4 regressions" in out and "4 within tolerance" in out


def test_est_cycles_compared_only_within_one_cycle_model(capsys: pytest.CaptureFixture[str], baseline: Path,
                                                         tmp_path: Path) -> None:
    """A new table version moves every estimate: not a regression, and the report says so."""
    rows = write(tmp_path / "run.jsonl", [row(r, est_cycles=(r.est_cycles or 0) * 2,
                                              cycle_model="tinyhil-cycles cortex-m4 v9 (plugin 00000000)")
                                          for r in suite()])
    code, out, _ = _run(capsys, "regress", "--baseline", str(baseline), "--rows", str(rows))
    assert code == 0, out
    assert "cycle_model differs from the baseline's" in out
    rows = write(tmp_path / "run2.jsonl", [row(r, est_cycles=(r.est_cycles or 0) + 1) for r in suite()])
    code, out, _ = _run(capsys, "regress", "--baseline", str(baseline), "--rows", str(rows))
    assert code == 1 and "4 regressions" in out


def test_flash_ram_and_accuracy() -> None:
    base = _dicts([row(accuracy=0.912, accuracy_metric="top1")])
    worse = _dicts([row(accuracy=0.905, accuracy_metric="top1", flash_bytes=41_100, ram_bytes=18_000)])
    result = compare(base, worse)
    verdicts = {c.what: c.verdict for c in result.changes}
    assert verdicts == {"instructions": "unchanged", "est_cycles": "unchanged", "flash": "regression",
                        "ram": "improvement", "accuracy": "regression"}
    # Accuracy tolerance in percentage points of a top-1 fraction: 0.912 -> 0.905 is 0.7 points.
    result = compare(base, worse, parse_tolerances(["accuracy=1", "flash=0.5"]))
    assert result.ok and {c.what: c.verdict for c in result.changes}["accuracy"] == "within tolerance"
    assert not compare(base, worse, parse_tolerances(["accuracy=0.5", "flash=0.5"])).ok
    # A baseline with accuracy, a run without: the metric was not measured, which is a regression.
    result = compare(base, _dicts([row()]))
    assert [(c.what, c.note) for c in result.regressions] == [("accuracy", "not measured in this run")]


def test_a_partial_accuracy_run_is_not_compared_with_a_full_one() -> None:
    """--limit 200 against a baseline over all 1000 inputs: a higher score over fewer
    inputs is not an improvement, and the run fails until the inputs match."""
    full = _dicts([row(accuracy=0.912, accuracy_metric="top1", accuracy_samples=1000, accuracy_dataset_samples=1000)])
    partial = _dicts([row(accuracy=0.95, accuracy_metric="top1", accuracy_samples=200, accuracy_dataset_samples=1000)])
    result = compare(full, partial)
    assert not result.ok
    (change,) = result.regressions
    assert change.what == "accuracy" and "over 200 inputs, the baseline's over 1000" in change.note
    same = _dicts([row(accuracy=0.912, accuracy_metric="top1", accuracy_samples=1000, accuracy_dataset_samples=1000)])
    assert compare(full, same).ok


def test_missing_key_is_a_regression(capsys: pytest.CaptureFixture[str], baseline: Path, tmp_path: Path) -> None:
    rows = write(tmp_path / "run.jsonl", suite()[:3])  # no ad
    code, out, _ = _run(capsys, "regress", "--baseline", str(baseline), "--rows", str(rows))
    assert code == 1
    assert "ad on cortex-m4 (builtin): regression: in the baseline, missing from this run" in out


def test_failed_row_is_a_regression(capsys: pytest.CaptureFixture[str], baseline: Path, tmp_path: Path) -> None:
    run = suite()
    run[1] = failed(run[1])
    rows = write(tmp_path / "run.jsonl", run)
    code, out, _ = _run(capsys, "regress", "--baseline", str(baseline), "--rows", str(rows))
    assert code == 1 and "vww on cortex-m4 (builtin): regression: failed: firmware did not answer" in out


def test_new_key_passes_and_scope_follows_target(baseline: Path) -> None:
    current = _dicts(suite() + [row(target="stm32f746")])
    result = compare(read_baseline(baseline), current)
    assert result.ok and [c.key for c in result.changes if c.verdict == "new"] == [
        ("kws", "stm32f746", "builtin", "none")]


def test_newest_row_per_key_is_compared(baseline: Path) -> None:
    old = suite("2026-11-01T00:00:00+00:00", scale=2.0)
    result = compare(read_baseline(baseline), _dicts(old + suite("2026-11-24T00:00:00+00:00")))
    assert result.ok


def test_baseline_update_round_trip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows_file = write(tmp_path / "bench.jsonl", list(reversed(suite())))
    out_file = tmp_path / "sub" / "baseline.json"
    code, out, err = _run(capsys, "baseline", "update", "--rows", str(rows_file), "--out", str(out_file))
    assert code == 0, err
    assert "4 rows" in out
    doc = json.loads(out_file.read_text())
    assert doc["format"] == "tinyhil-baseline" and doc["version"] == 1
    assert [r["benchmark"] for r in doc["rows"]] == ["ad", "ic", "kws", "vww"]  # sorted by key
    assert all(list(r) == column_names() for r in doc["rows"])  # ResultRow field order
    assert read_baseline(out_file) == sorted(load_row_files([rows_file]), key=lambda r: r["benchmark"])
    code, out, _ = _run(capsys, "regress", "--baseline", str(out_file), "--rows", str(rows_file))
    assert code == 0 and "no regressions" in out


def test_baseline_update_uses_the_newest_bench_file(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINYHIL_RESULTS", str(tmp_path))
    write(tmp_path / "bench-20261101T000000Z.jsonl", suite(scale=2.0))
    write(tmp_path / "bench-20261124T000000Z.jsonl", suite())
    code, out, _ = _run(capsys, "baseline", "update", "--out", str(tmp_path / "b.json"))
    assert code == 0 and "bench-20261124T000000Z.jsonl" in out
    assert read_baseline(tmp_path / "b.json")[2]["instructions"] == 23_239_520


def test_baseline_from_failed_rows_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows_file = write(tmp_path / "bench.jsonl", [failed()])
    code, _, err = _run(capsys, "baseline", "update", "--rows", str(rows_file), "--out", str(tmp_path / "b.json"))
    assert code == 2 and "cannot make a baseline from failed rows (kws/cortex-m4/builtin)" in err


@pytest.mark.parametrize("argv, message", [
    (["--tol", "latency=1"], "unknown metric 'latency' (known: instructions, est_cycles, flash, ram, accuracy)"),
    (["--tol", "instructions"], "expected METRIC=VALUE"),
    (["--tol", "flash=-1"], "must be a number >= 0"),
    (["--rows", "nope.jsonl"], "nope.jsonl: result rows file not found"),
])
def test_bad_options_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], baseline: Path,
                                         argv: list[str], message: str) -> None:
    rows = ["--rows", str(baseline.with_name("run.jsonl"))] if "--rows" not in argv else []
    write(baseline.with_name("run.jsonl"), suite())
    code, _, err = _run(capsys, "regress", "--baseline", str(baseline), *rows, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_bad_baseline_file_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = write(tmp_path / "run.jsonl", suite())
    for content, message in (("{", "not a baseline: invalid JSON"), ("[]", 'expected a JSON object with "format"'),
                             (None, "baseline not found")):
        path = tmp_path / "b.json"
        if content is None:
            path.unlink()
        else:
            path.write_text(content)
        code, _, err = _run(capsys, "regress", "--baseline", str(path), "--rows", str(rows))
        assert code == 2 and message in err


@pytest.mark.qemu
def test_regress_reruns_the_suite_and_catches_a_real_change(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        shared_models: Path, arm_tools: tuple[str, str]) -> None:
    """AD on cortex-m4 through the real bench: unchanged against its own baseline; then a
    baseline one instruction faster than the firmware (as if the engine had regressed)."""
    monkeypatch.setenv("TINYHIL_RESULTS", str(tmp_path / "results"))
    rows_file = tmp_path / "first.jsonl"
    code, _, err = _run(capsys, "bench", "--target", "cortex-m4", "--model", "ad", "--out", str(rows_file))
    assert code == 0, err
    base = tmp_path / "baseline.json"
    assert _run(capsys, "baseline", "update", "--rows", str(rows_file), "--out", str(base))[0] == 0

    code, out, err = _run(capsys, "regress", "--baseline", str(base))
    assert code == 0, out + err
    (history,) = list((tmp_path / "results").glob("bench-*.jsonl"))  # the rerun's rows, kept for the trend
    (rerun,) = load_row_files([history])
    assert rerun["benchmark"] == "ad" and rerun["status"] == "ok"

    doc = json.loads(base.read_text())
    doc["rows"][0]["instructions"] -= 1
    base.write_text(json.dumps(doc))
    code, out, err = _run(capsys, "regress", "--baseline", str(base), "--rows", str(history))
    assert code == 1 and "regression: instructions" in out


def test_tflm_kernels_are_separate_keys() -> None:
    base = _dicts([row(engine="tflm", kernels="ref", instructions=43_090_000),
                   row(engine="tflm", kernels="cmsis-nn", instructions=7_700_000)])
    run = _dicts([row(engine="tflm", kernels="ref", instructions=43_090_000),
                  row(engine="tflm", kernels="cmsis-nn", instructions=7_800_000)])
    (reg,) = compare(base, run).regressions
    assert reg.key == ("kws", "cortex-m4", "tflm cmsis-nn", "none") and reg.what == "instructions"


def test_anomaly_score_moving_either_way_is_a_regression() -> None:
    base = _dicts([row(benchmark="ad", accuracy=2.50, accuracy_metric="anomaly_score_mean")])
    for moved in (2.40, 2.60):
        run = _dicts([row(benchmark="ad", accuracy=moved, accuracy_metric="anomaly_score_mean")])
        (reg,) = compare(base, run).regressions
        assert reg.what == "accuracy" and "anomaly_score_mean moved" in reg.note
        assert compare(base, run, parse_tolerances(["accuracy=5"])).ok  # 5% of 2.50
    run = _dicts([row(benchmark="ad", accuracy=0.86, accuracy_metric="auc")])
    (reg,) = compare(base, run).regressions
    assert "accuracy metric changed from anomaly_score_mean to auc" in reg.note


def test_regress_accepts_every_bench_option() -> None:
    """regress reruns the suite through cmd_bench: every bench option must reach it
    (add new ones to cli._bench_run_options, not to the bench parser alone)."""
    bench = vars(build_parser().parse_args(["bench"]))
    regress = vars(build_parser().parse_args(["regress", "--baseline", "b.json"]))
    missing = set(bench) - set(regress) - {"out", "csv", "json", "func", "command"}  # output options
    assert not missing, f"bench options regress does not take: {sorted(missing)}"
