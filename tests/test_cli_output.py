"""Output for people and for scripts: tables that fit 100 columns without cutting a number,
progress as plain lines in a log, --json rows on stdout, partial accuracy runs named."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from harness.cli.bench import accuracy_table, bench_table, engines_table, layers_table
from harness.cli.progress import PlainProgress
from harness.results import SCHEMA_VERSION
from tests.rows import KWS_M4, failed, row

# The widest cells the MLPerf Tiny suite produces: VWW/IC counts on the longest target
# name, two engines, a does-not-fit row, a long benchmark stem.
WIDE = [
    row(benchmark="vww", target="nucleo-l4r5zi", instructions=16_528_800, est_cycles=123_785_073,
        latency_ms=1063.82, flash_bytes=264_499, ram_bytes=85_708, energy_uj=1_221_061.0),
    row(benchmark="ic", target="stm32f746", instructions=119_970_240, est_cycles=117_490_727, latency_ms=80.98,
        energy_uj=26_722.0),
    failed(benchmark="kws_ref_model_float32_int8", target="cortex-m55"),
    row(benchmark="ad", status="does_not_fit", target="stm32f405", instructions=None, est_cycles=None,
        latency_ms=None, energy_uj=None, ram_bytes=None, ram_stack_bytes=None),
]


def render(table: Table, width: int = 100) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(table)
    return buf.getvalue()


def numbers(text: str) -> set[str]:
    return set(re.findall(r"\d[\d,]*(?:\.\d+)?", text))


@pytest.mark.parametrize("rows", [WIDE, WIDE + [row(KWS_M4, engine="tflm", kernels="cmsis-nn",
                                                    engine_version="tflm-0123456789ab kernels=cmsis-nn")]])
def test_bench_table_fits_100_columns_and_cuts_no_number(rows: list[object]) -> None:
    text = render(bench_table(rows))  # type: ignore[arg-type]
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "…" not in text
    for n in ("16,528,800", "123,785,073", "1063.82", "258.3", "83.7", "1,221,061", "119,970,240"):
        assert n in text, (n, text)
    assert "does not fit" in text.replace("\n", " ") or "does not" in text


def test_engines_accuracy_and_layers_tables_fit_100_columns() -> None:
    builtin = row(KWS_M4, instructions=4_945_200, arena_used_bytes=None, ram_arena_bytes=16_000)
    tflm = row(KWS_M4, engine="tflm", kernels="cmsis-nn", instructions=16_485_600, ram_arena_bytes=None,
               arena_used_bytes=23_456, engine_version="tflm-0123456789ab kernels=cmsis-nn")
    layer = {"index": 12, "op": "DEPTHWISE_CONV_2D", "output_shape": [1, 25, 5, 64], "macs": 1_440_000,
             "count": 1_234_567, "macs_per_count": 1.166, "est_cycles": 2_345_678, "macs_per_est_cycle": 0.614}
    acc = row(KWS_M4, accuracy=0.915, accuracy_reference=0.915, accuracy_metric="top1", accuracy_samples=200,
              accuracy_dataset_samples=1000, predictions_match_reference=True)
    for table in (engines_table([builtin, tflm]), accuracy_table([acc]),
                  layers_table(row(KWS_M4, layers=[layer] * 3, profile_overhead=40))):
        text = render(table)
        assert max(len(line) for line in text.splitlines()) <= 100, text
        assert "…" not in text, text
    text = render(engines_table([builtin, tflm]))
    assert "16,485,600" in text and "x3.33" in text
    assert "91.5 % (200/1000)" in render(accuracy_table([acc]))
    text = render(layers_table(row(KWS_M4, layers=[layer], profile_overhead=40)))
    assert {"1,440,000", "1,234,567", "2,345,678", "DEPTHWISE_CONV_2D"} <= numbers(text) | {"DEPTHWISE_CONV_2D"}


def test_plain_progress_writes_one_line_per_step_and_counts_each_tenth() -> None:
    buf = io.StringIO()
    progress = PlainProgress(Console(file=buf, width=200, color_system=None))
    overall = progress.add_task("bench", total=2)
    for i in range(1, 413):  # the TFLM library build's note per compiled file
        progress.update(overall, description=f"kws on cortex-m4: TFLM library (ref kernels): {i}/412 files compiled")
    progress.update(overall, description="kws on cortex-m4: running \\[qemu]")
    progress.update(overall, description="kws on cortex-m4: running \\[qemu]")  # the same step again
    inputs = progress.add_task("  kws on cortex-m4: accuracy inputs", total=1000)
    for i in range(1001):
        progress.update(inputs, completed=i)
    progress.advance(overall)
    lines = buf.getvalue().splitlines()
    library = [ln for ln in lines if "TFLM library" in ln]
    assert 10 <= len(library) <= 12 and library[-1].endswith("412/412 files compiled (0/2)")
    assert sum("running [qemu]" in ln for ln in lines) == 2  # the step, then its advance to 1/2
    counts = [ln for ln in lines if "accuracy inputs" in ln]
    assert len(counts) == 11 and counts[-1].endswith("(1,000/1,000)")
    assert all(re.match(r"\[ *\d+\.\ds\] ", ln) for ln in lines)


def test_plain_progress_never_reuses_a_removed_tasks_id() -> None:
    """With --jobs, per-case lines come and go: a new one must not take a live one's id
    (a removed task's id reused once sent one case's notes to another, then a KeyError)."""
    buf = io.StringIO()
    progress = PlainProgress(Console(file=buf, width=200, color_system=None))
    overall = progress.add_task("bench", total=3)
    a = progress.add_task("  kws on cortex-m4")
    b = progress.add_task("  vww on cortex-m4")
    progress.remove_task(a)
    c = progress.add_task("  ic on cortex-m4")
    assert len({overall, a, b, c}) == 4
    progress.update(b, description="  vww on cortex-m4: running under qemu")
    progress.update(c, description="  ic on cortex-m4: running under qemu")
    lines = buf.getvalue().splitlines()
    assert lines[-2].endswith("vww on cortex-m4: running under qemu") and lines[-1].endswith("ic on cortex-m4: "
                                                                                              "running under qemu")


def test_bench_json_rows_on_stdout_and_plain_progress_on_stderr(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_models: Path,
        arm_tools: tuple[str, str]) -> None:
    """The real bench (AD, cortex-m4) with --json: stdout is only JSON lines, one per row,
    carrying schema_version; stderr (not a terminal here) has the plain progress lines
    and the table."""
    from harness.cli import main

    out = tmp_path / "rows.jsonl"
    with pytest.raises(SystemExit) as e:
        main(["bench", "--target", "cortex-m4", "--model", "ad", "--json", "--out", str(out)])
    captured = capsys.readouterr()
    assert e.value.code == 0, captured.err
    lines = captured.out.splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["schema_version"] == SCHEMA_VERSION and doc["benchmark"] == "ad" and doc["status"] == "ok"
    assert doc["instructions"] > 100_000 and doc["flash_capacity_bytes"] == 4 * 1024 * 1024
    assert json.loads(out.read_text().splitlines()[-1]) == doc  # the same row as the file's
    assert re.search(r"^\[ *\d+\.\ds\] bench \(0/1\)$", captured.err, re.M)
    assert "ad on cortex-m4: done (1/1)" in captured.err
    assert f"{doc['instructions']:,}" in captured.err  # the table went to stderr


def test_accuracy_without_any_dataset_is_exit_2_naming_dataset(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_models: Path) -> None:
    from harness.cli import main

    with pytest.raises(SystemExit) as e:
        main(["bench", "--target", "cortex-m4", "--model", "vww", "--model", "ic", "--accuracy",
              "--out", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "--dataset DIR" in err and "vww, ic" in err
    assert not (tmp_path / "r.jsonl").exists() or not (tmp_path / "r.jsonl").read_text()
