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
from harness.report import svg
from tests.rows import KWS_M4, accuracy, failed, old_schema, row, suite, with_capacity, write, write_json

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


def _row_text(out: str, benchmark: str) -> str:
    """A terminal table row's cells with its wrapped continuation lines, as one line of words."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f" {benchmark} on "))
    block = [lines[start]]
    for line in lines[start + 1:]:
        if not line.startswith(" ") or not line.strip() or re.match(r"^ \S+ on ", line):
            break
        block.append(line)
    return " ".join(" ".join(block).split())


def test_terminal_table_shows_values_and_failed_rows(capsys: pytest.CaptureFixture[str], results: Path) -> None:
    code, out, err = _run(capsys, "report", str(results))
    assert code == 0, err
    kws = _row_text(out, "kws")
    assert "23,239,520" in kws and "138.33" in kws and " 40.0 " in kws  # the splits are in md/html/csv
    assert "top1 91.2 %" in kws and "(1000 inputs)" in kws  # the accuracy cell may wrap
    vww = _row_text(out, "vww")
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


# --- issue 16: responsive plots, a legend per panel, capacity, accuracy with its input count ---


def _section(page: str, title: str) -> str:
    m = re.search(rf"<section><h2>{re.escape(title)}</h2>(.*?)</section>", page, re.S)
    assert m, f"no section {title!r}"
    return m.group(1)


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", html, re.S)


def test_every_svg_is_responsive(results: Path) -> None:
    page = html_page.render(load_report([results]))
    tags = re.findall(r"<svg\b[^>]*>", page)
    assert len(tags) >= 8
    for tag in tags:
        assert re.search(r'viewBox="0 0 \d+ \d+"', tag), tag
        assert 'width="100%"' in tag, tag
        assert not re.search(r'\s(width|height)="[\d.]+(px)?"', tag), tag  # no fixed pixel size
        design = int(re.search(r'viewBox="0 0 (\d+)', tag).group(1))  # type: ignore[union-attr]
        assert f"max-width:{design}px" in tag and design <= 640, tag  # legible in a 700 px window
    assert "@media (max-width:" in page and "minmax(min(100%" in page


def test_each_panel_has_its_own_legend_for_its_colours(results: Path) -> None:
    page = html_page.render(load_report([results]))
    ignore = {svg.FREE, "#FDECEA", "white"}  # the headroom track (in the legend too), a failed row's band
    coloured = 0
    for title in ("Latency per model and target", "Flash and RAM", "Accuracy vs latency", "Per-layer profile"):
        charts = _svgs(_section(page, title))
        assert charts, title
        for chart in charts:
            legends = re.findall(r'<g class="legend">(.*?)</g>', chart, re.S)
            assert len(legends) == 1, f"{title}: {len(legends)} legends in one chart"
            named = set(re.findall(r'<rect[^>]*fill="(#[0-9A-Fa-f]{6})"', legends[0]))
            body = chart.replace(legends[0], "")
            used = set(re.findall(r'<(?:rect|circle)[^>]*fill="(#[0-9A-Fa-f]{6})"', body)) - ignore
            assert used <= named, f"{title}: colours {used - named} not in the chart's legend"
            coloured += bool(used)
    assert coloured == 7  # latency: kws, ic, ad (vww failed); flash, RAM; top1; the kws profile
    # Within the memory panel, a colour means one thing: the flash and RAM legends share none.
    flash, ram = (re.search(r'<g class="legend">(.*?)</g>', c, re.S).group(1)  # type: ignore[union-attr]
                  for c in _svgs(_section(page, "Flash and RAM")))
    swatches = r'<rect[^>]*fill="(#\w+)"'
    assert set(re.findall(swatches, flash)) & set(re.findall(swatches, ram)) == {svg.FREE}
    assert "weights" in flash and "stack" in ram and "cortex-m4" not in flash


def test_flash_and_ram_drawn_against_capacity(tmp_path: Path) -> None:
    rows = [with_capacity(), with_capacity(benchmark="ad", flash_bytes=291_936, flash_weights_bytes=270_000,
                                           ram_static_bytes=150_000, ram_arena_bytes=140_000)]
    page = html_page.render(load_report([write(tmp_path / "r.jsonl", rows)]))
    memory = _section(page, "Flash and RAM")
    # kws: 9,888 + 24,368 + 6,752 B of flash = 40.0 KiB of 1,024; RAM 17,640 + 420 B of 128 KiB.
    assert "40.0 of 1,024 KiB (3.9 % of flash)" in memory and "17.6 of 128 KiB (13.8 % of RAM)" in memory
    assert "of 128 KiB (114.8 % of RAM, over by" in memory  # ad's static RAM does not fit: said, in red
    assert memory.count(f'fill="{svg.FREE}" stroke="{svg.FREE_EDGE}"><title>') == 4  # a track per row and memory
    assert "free (headroom)" in memory and "capacity unknown" not in memory


def test_capacity_of_old_rows_from_the_descriptor_or_unknown(tmp_path: Path) -> None:
    f = write_json(tmp_path / "old.jsonl", [old_schema(KWS_M4), old_schema(row(target="mychip"))])
    memory = _section(html_page.render(load_report([f])), "Flash and RAM")
    assert "40.0 of 4,096 KiB (1.0 % of flash)" in memory  # cortex-m4's descriptor: 4 MiB
    assert "Capacity of cortex-m4 from the target descriptor as it is now" in memory
    assert "40.0 KiB (capacity unknown)" in memory and "Capacity of mychip unknown" in memory
    text = mlperf_csv.write(load_report([f]), tmp_path / "r.csv").read_text()
    lines = {r["system"]: r for r in csv.DictReader(text.splitlines())}
    assert lines["cortex-m4"]["flash_capacity_bytes"] == str(4096 * 1024)
    assert lines["mychip"]["ram_capacity_bytes"] == ""


def _partial_report(tmp_path: Path) -> Path:
    return write(tmp_path / "r.jsonl", [accuracy(value=0.915, samples=200, dataset=1000),
                                        accuracy(benchmark="ad", value=0.92)])


def test_partial_accuracy_shows_its_input_count_everywhere(capsys: pytest.CaptureFixture[str],
                                                           tmp_path: Path) -> None:
    f = _partial_report(tmp_path)
    code, out, err = _run(capsys, "report", str(f), "--csv", str(tmp_path / "r.csv"), "--md", str(tmp_path / "r.md"),
                          "--html", str(tmp_path / "r.html"))
    assert code == 0, err
    kws, ad = _row_text(out, "kws"), _row_text(out, "ad")
    assert "91.5 %" in kws and "(200/1000)" in kws and "92.0 %" in ad and "(1000/1000)" in ad
    assert "a < b is a partial run" in out
    md = (tmp_path / "r.md").read_text()
    assert "top1 91.5 % (200/1000)" in md and "top1 92.0 % (1000/1000)" in md
    page = (tmp_path / "r.html").read_text()
    assert "91.5&nbsp;%&nbsp;(200/1000)" in _section(page, "Results")  # the table cell, kept on one line
    assert "a partial run (--limit)" in page  # its tooltip
    assert "kws (200/1000)" in _section(page, "Accuracy vs latency")  # next to the point
    lines = {r["benchmark"]: r for r in csv.DictReader((tmp_path / "r.csv").read_text().splitlines())}
    assert lines["kws"]["accuracy"] == "0.915" and lines["kws"]["accuracy_inputs"] == "200/1000"
    assert lines["kws"]["accuracy_samples"] == "200" and lines["kws"]["accuracy_dataset_samples"] == "1000"
    assert lines["ad"]["accuracy_inputs"] == "1000/1000" and lines["kws"]["accuracy_from"] == ""


def test_newer_partial_run_does_not_replace_a_full_runs_accuracy(capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    d = tmp_path / "results"
    write(d / "a.jsonl", [accuracy(value=0.92, timestamp="2026-11-20T00:00:00+00:00", git_revision="aaaaaaa")])
    write(d / "b.jsonl", [accuracy(value=0.875, samples=200, timestamp="2026-11-23T00:00:00+00:00",
                                   instructions=22_000_000, git_revision="bbbbbbb")])
    report = load_report([d])
    (r,) = report.latest_rows()
    assert r["accuracy"] == 0.92 and r["accuracy_samples"] == 1000  # the full run's accuracy
    assert r["instructions"] == 22_000_000 and r["git_revision"] == "bbbbbbb"  # the newest run's other numbers
    assert r["accuracy_from"]["timestamp"] == "2026-11-20T00:00:00+00:00"
    assert cells.accuracy_short(r) == f"top1 92.0 % (1000/1000) {cells.EARLIER}"
    note = next(n for n in cells.notes([r]) if n.startswith(cells.EARLIER))
    assert "run of 2026-11-20 00:00 (git aaaaaaa)" in note and "87.5 % (200/1000)" in note
    assert "91.5" not in markdown.render(report) and "top1 92.0 % (1000/1000)" in markdown.render(report)
    assert mlperf_csv.table(report)["accuracy_from"][0] == "2026-11-20T00:00:00+00:00"
    code, out, _ = _run(capsys, "report", str(d))
    flat = " ".join(out.split())  # the table cell may wrap
    assert code == 0 and "87.5 % (200/1000)" in flat  # the note names the newest partial run
    assert "92.0 %" in flat and "(1000/1000)" in flat  # and the cell shows the full one


@pytest.mark.parametrize("newer, expected", [
    (accuracy(value=0.93, timestamp="2026-11-23T00:00:00+00:00"), 0.93),  # a newer full run replaces it
    (accuracy(value=0.93, samples=1200, dataset=1200, timestamp="2026-11-23T00:00:00+00:00"), 0.93),  # more inputs
    (accuracy(value=0.9, samples=200, model_sha256="ff" * 32, timestamp="2026-11-23T00:00:00+00:00"), 0.9),  # model
    (row(timestamp="2026-11-23T00:00:00+00:00"), None),  # no accuracy: the newest row as it is
    (failed(accuracy(samples=200), timestamp="2026-11-23T00:00:00+00:00"), None),  # failed: no numbers
])
def test_accuracy_selection_cases(tmp_path: Path, newer: object, expected: float | None) -> None:
    d = tmp_path / "results"
    write(d / "a.jsonl", [accuracy(value=0.92, timestamp="2026-11-20T00:00:00+00:00")])
    write(d / "b.jsonl", [newer])  # type: ignore[list-item]
    (r,) = load_report([d]).latest_rows()
    assert (r["accuracy"] if r["status"] == "ok" else None) == expected and r["accuracy_from"] is None


def test_old_rows_without_schema_2_fields_still_render(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = [old_schema(accuracy(value=0.9, samples=200)), old_schema(failed(benchmark="vww"))]
    f = write_json(tmp_path / "old.jsonl", rows)
    code, out, err = _run(capsys, "report", str(f), "--csv", str(tmp_path / "r.csv"), "--md", str(tmp_path / "r.md"),
                          "--html", str(tmp_path / "r.html"))
    assert code == 0, err
    kws, flat = _row_text(out, "kws"), " ".join(out.split())
    assert "90.0 %" in kws and "(200" in kws and "whether it was a partial run is unknown" in flat
    assert "top1 90.0 % (200 inputs)" in (tmp_path / "r.md").read_text()
    page = (tmp_path / "r.html").read_text()
    assert "90.0&nbsp;%&nbsp;(200&nbsp;inputs)" in page and "kws (200 inputs)" in page
    lines = {r["benchmark"]: r for r in csv.DictReader((tmp_path / "r.csv").read_text().splitlines())}
    assert lines["kws"]["accuracy_inputs"] == "200 inputs" and lines["kws"]["accuracy_dataset_samples"] == ""
    assert lines["vww"]["status"] == "failed" and lines["vww"]["accuracy_inputs"] == ""
