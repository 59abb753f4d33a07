"""`tinyhil report`: every format built from stored rows; failed rows shown as failed."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.report import load_report
from harness.report import cells, html_page, markdown, mlperf_csv
from tests.rows import KWS_M4, failed, row, suite, write

LAYERS = [
    {"index": 0, "op": "CONV_2D", "output_shape": [1, 25, 5, 64], "macs": 640_000, "count": 4_900_000,
     "macs_per_count": 0.13},
    {"index": 1, "op": "DEPTHWISE_CONV_2D", "output_shape": [1, 25, 5, 64], "macs": 72_000, "count": 551_000,
     "macs_per_count": 0.13},
    {"index": 2, "op": "SOFTMAX", "output_shape": [1, 12], "macs": 0, "count": 15_300, "macs_per_count": 0.0},
]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Two runs: an older one, and a newer one with a failed VWW, a tflm row, accuracy and a profile."""
    d = tmp_path / "results"
    write(d / "bench-20261120T000000Z.jsonl", suite("2026-11-20T00:00:00+00:00", scale=1.02))
    newer = suite("2026-11-23T19:46:20+00:00")
    newer[0] = row(newer[0], accuracy=0.912, accuracy_reference=0.913, accuracy_metric="top1",
                   accuracy_samples=1000, predictions_match_reference=False, layers=LAYERS, profile_overhead=52)
    newer[1] = failed(newer[1])
    newer.append(row(newer[2], engine="tflm", engine_version="tflm-abc", instructions=107_360_000,
                     est_cycles=107_360_000, latency_ms=639.05))
    write(d / "bench-20261123T194620Z.jsonl", newer)
    return d


def test_latest_row_per_key_and_history(results: Path) -> None:
    report = load_report([results])
    assert len(report.history) == 9 and len(report.latest) == 5
    latest = {(r["benchmark"], r["engine"]): r for r in report.latest_rows()}
    assert latest["kws", "builtin"]["instructions"] == 23_239_520  # the newer run, as an int
    assert latest["vww", "builtin"]["status"] == "failed"
    assert [r["benchmark"] for r in report.latest_rows()] == ["kws", "vww", "ic", "ic", "ad"]


def test_old_rows_without_new_fields_still_load(tmp_path: Path) -> None:
    data = json.loads(KWS_M4.to_json())
    for k in ("accuracy_reference", "accuracy_metric", "accuracy_samples", "predictions_match_reference",
              "layers", "profile_overhead"):
        del data[k]
    f = tmp_path / "old.jsonl"
    f.write_text(json.dumps(data) + "\n")
    (r,) = load_report([f]).latest_rows()
    assert r["layers"] is None and r["accuracy_metric"] == ""


def test_terminal_table_shows_values_and_failed_rows(capsys: pytest.CaptureFixture[str], results: Path) -> None:
    code, out, err = _run(capsys, "report", str(results))
    assert code == 0, err
    kws = next(line for line in out.splitlines() if line.startswith("│ kws"))
    assert "23,239,520" in kws and "138.33" in kws and "40.0 (9.7+23.8+6.6)" in kws
    assert "top1 91.2 % (1000 inputs)" in kws
    vww = next(line for line in out.splitlines() if line.startswith("│ vww"))
    assert "failed" in vww and not re.search(r"\d{2},\d{3}", vww)  # no numbers for a failed row
    assert "failed: vww / cortex-m4 / builtin: firmware did not answer" in out
    assert "not cycles" in out  # the count is named for its source


def test_csv_is_mlperf_tiny_shaped(results: Path, tmp_path: Path) -> None:
    path = mlperf_csv.write(load_report([results]), tmp_path / "r.csv")
    with path.open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames is not None
        assert reader.fieldnames[:7] == ["system", "processor", "processor_mhz", "engine", "engine_version",
                                         "recipe", "benchmark"]
        for col in ("latency_ms", "energy_uj", "accuracy", "instructions", "flash_bytes", "ram_bytes",
                    "latency_source"):
            assert col in reader.fieldnames
        lines = {(r["benchmark"], r["engine"]): r for r in reader}
    kws = lines["kws", "builtin"]
    assert kws["system"] == "cortex-m4" and kws["processor"] == "Cortex-M4" and kws["processor_mhz"] == "168.0"
    assert kws["instructions"] == "23239520" and kws["latency_ms"] == "138.3305"
    assert kws["accuracy"] == "0.912" and kws["accuracy_metric"] == "top1"
    assert kws["latency_source"] == "est_cycles" and kws["cycles"] == ""
    vww = lines["vww", "builtin"]
    assert vww["status"] == "failed" and "did not answer" in vww["error"]
    assert vww["latency_ms"] == vww["instructions"] == vww["flash_bytes"] == vww["energy_uj"] == ""
    assert lines["ic", "tflm"]["engine_version"] == "tflm-abc"


def test_markdown_table(results: Path) -> None:
    text = markdown.render(load_report([results]))
    assert "| benchmark | target | engine |" in text
    assert "| kws | cortex-m4 | builtin | 23,239,520 |" in text
    vww = next(line for line in text.splitlines() if line.startswith("| vww"))
    assert vww.endswith("**failed** |") and "255" not in vww
    assert "## Failed" in text and "vww / cortex-m4 / builtin: firmware did not answer" in text


def test_html_is_self_contained_with_plots(results: Path, tmp_path: Path) -> None:
    page = html_page.write(load_report([results]), tmp_path / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 8
    assert not re.search(r"https?://", page)
    for forbidden in ("<script", "<link", "@import", "url(", "<img", "<iframe"):
        assert forbidden not in page
    for heading in ("Latency per model and target", "Flash and RAM", "Accuracy vs latency", "Per-layer profile",
                    "Trend over history"):
        assert f"<h2>{heading}</h2>" in page
    assert "23,239,520" in page and "138.33 ms est." in page
    assert "#0 CONV_2D" in page and "DEPTHWISE_CONV_2D" in page and "timer overhead 52" in page
    assert "top1 vs latency" in page
    assert "-1.96% vs previous" in page  # kws: 23.70M -> 23.24M over the two runs
    failed_row = re.search(r'<tr class="failed">(.*?)</tr>', page)
    assert failed_row and ">failed<" in failed_row.group(1) and "255" not in failed_row.group(1)


def test_html_without_accuracy_or_profile_says_so(tmp_path: Path) -> None:
    f = write(tmp_path / "r.jsonl", suite())
    page = html_page.render(load_report([f]))
    assert "No row carries an accuracy yet" in page and "No row carries a per-layer profile" in page
    assert "One run per key so far" in page


def test_report_writes_every_format(capsys: pytest.CaptureFixture[str], results: Path, tmp_path: Path) -> None:
    code, out, err = _run(capsys, "report", str(results / "bench-20261123T194620Z.jsonl"),
                          "--csv", str(tmp_path / "a.csv"), "--md", str(tmp_path / "a.md"),
                          "--html", str(tmp_path / "a.html"))
    assert code == 0, err
    assert all((tmp_path / n).stat().st_size > 0 for n in ("a.csv", "a.md", "a.html"))


def test_cycles_keep_their_name() -> None:
    r = json.loads(row(instructions=None, est_cycles=None, cycles=30_000_000, latency_source="cycles",
                       latency_ms=30_000_000 / 168e3, runner="board").to_json())
    headers = [c.header for c in cells.table_columns([r])]
    assert "cycles" in headers and "instructions" not in headers and "latency\nms" in headers
    assert cells.counter(r) == ("cycles", 30_000_000) and cells.latency_basis(r) == ""


def test_proxy_note_is_shown() -> None:
    r = json.loads(row(target="stm32f746", proxy="core proxy: Cortex-M7 on mps2-an500").to_json())
    assert "stm32f746: core proxy: Cortex-M7 on mps2-an500" in cells.notes([r])


@pytest.mark.parametrize("content, message", [
    ("{not json\n", "bad.jsonl:1: not a JSON line"),
    ("[1, 2]\n", "bad.jsonl:1: expected a JSON object"),
    ('{"benchmark": "kws"}\n', "bad.jsonl:1: not a result row: no target, engine, status"),
])
def test_bad_rows_file_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          content: str, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    code, _, err = _run(capsys, "report", str(bad))
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_missing_or_empty_results_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "report", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "nope.jsonl: result rows file not found" in err
    code, _, err = _run(capsys, "report", str(tmp_path))
    assert code == 2 and "run `tinyhil bench` first" in err


def test_tflm_kernels_are_separate_results(tmp_path: Path) -> None:
    rows = [row(engine="tflm", kernels="ref", instructions=43_090_000),
            row(engine="tflm", kernels="cmsis-nn", instructions=7_700_000)]
    report = load_report([write(tmp_path / "r.jsonl", rows)])
    assert [cells.label(r) for r in report.latest_rows()] == ["kws / cortex-m4 / tflm cmsis-nn",
                                                              "kws / cortex-m4 / tflm ref"]
    assert "tflm cmsis-nn" in markdown.render(report)
