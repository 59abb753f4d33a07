"""`--json` on `tinyhil targets` and `tinyhil perf`: JSON lines on stdout, nothing else there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.engines.builtin.scratch import scratch_bytes
from harness.model import load_model
from harness.results import SCHEMA_VERSION
from harness.targets import available_targets
from tests import rows as factory


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    """Exit code, every stdout line parsed as JSON (a line that is not JSON fails), stderr."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), [json.loads(line) for line in out.splitlines()], err


def test_targets_json_one_object_per_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, records, err = _run(capsys, "targets", "--json")
    assert code == 0, err
    known = {t.name: t for t in available_targets()}
    assert [r["name"] for r in records] == list(known)
    for r in records:
        t = known[r["name"]]
        assert r["schema_version"] == SCHEMA_VERSION
        assert (r["core"], r["clock_hz"], r["flash_bytes"], r["ram_bytes"]) == (
            t.core, t.clock_hz, t.flash.size, t.ram.size)
        assert r["description"] == t.description
        runners = [h["runner"] for h in r["runners_here"]] + [h["runner"] for h in r["runners_not_here"]]
        assert "qemu" in runners and "board" in runners
        assert all(h["reason"] for h in r["runners_not_here"])  # a runner not here says why
    m4 = next(r for r in records if r["name"] == "cortex-m4")
    assert m4["clock_hz"] == 168_000_000 and m4["qemu_machine"] == "mps2-an386"
    assert any("not a chip" in h["reason"] for h in m4["runners_not_here"] if h["runner"] == "board")
    assert m4["energy_timestamp_pin"] is None
    f746 = next(r for r in records if r["name"] == "stm32f746")
    assert f746["energy_timestamp_pin"]["pin"] == "PI3" and f746["energy_timestamp_pin"]["drive"] == "open-drain"
    assert "targets" not in err  # no table anywhere


def _perf_rows(path: Path) -> Path:
    """KWS and AD on cortex-m4: builtin and TFLM (CMSIS-NN) rows, as the bench writes them."""
    kws = factory.row(benchmark="kws", instructions=1_000_000, est_cycles=1_000_000)
    ad = factory.row(benchmark="ad", model="ad01_int8", instructions=400_000, est_cycles=400_000,
                     flash_bytes=290_000)
    tflm = {"engine": "tflm", "kernels": "cmsis-nn"}
    rows = [kws, factory.row(kws, instructions=4_000_000, flash_bytes=80_000, **tflm),
            ad, factory.row(ad, instructions=300_000, flash_bytes=300_000, **tflm)]
    factory.write(path, rows)
    # TFLM's arena figure: a field of the tflm rows the factory row leaves unset; its
    # firmware's stack high-water differs from builtin's (420).
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for r in lines:
        if r["engine"] == "tflm":
            r["arena_used_bytes"] = 30_000
            r["ram_stack_bytes"] = 1_000
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_perf_json_lines_from_rows(capsys: pytest.CaptureFixture[str], shared_models: Path,
                                   tmp_path: Path) -> None:
    rows = _perf_rows(tmp_path / "rows.jsonl")
    code, records, err = _run(capsys, "perf", "--rows", str(rows), "--model", "kws", "--model", "ad", "--json")
    assert code == 0, err
    kws, ad, goals = records
    assert all(r["schema_version"] == SCHEMA_VERSION for r in records)
    assert [r["kind"] for r in records] == ["perf", "perf", "goals"]
    assert (kws["benchmark"], kws["target"], kws["engine"], kws["compared_to"]) == (
        "kws", "cortex-m4", "builtin", "tflm cmsis-nn")
    assert kws["builtin_instructions"] == 1_000_000 and kws["tflm_cmsis_instructions"] == 4_000_000
    assert kws["instructions_ratio"] == 0.25 and kws["instructions_ok"] is True
    assert kws["macs"] > 2_000_000 and kws["builtin_flash"] == 41_008 and kws["tflm_flash"] == 80_000
    assert kws["flash_ok"] is True
    # Peak RAM, like with like: arena (+ builtin's kernel scratch) + stack high-water on both sides.
    scratch = (scratch_bytes(load_model(shared_models / "kws_ref_model.tflite")) + 3) // 4 * 4
    assert kws["builtin_peak_ram"] == 16_000 + scratch + 420 and kws["builtin_stack"] == 420
    assert (kws["tflm_peak_ram"], kws["tflm_arena_used"], kws["tflm_stack"]) == (31_000, 30_000, 1_000)
    assert kws["ram_ratio"] == kws["builtin_peak_ram"] / 31_000 and kws["ram_ok"] is True
    assert ad["benchmark"] == "ad" and ad["instructions_ratio"] == 400_000 / 300_000
    assert ad["instructions_ok"] is False and ad["macs"] == 264_192
    assert goals["goals_met"] is False and goals["ratio_goal"] == 0.8 and goals["lines"] == 2
    assert "builtin vs TFLM" in err  # the table went to stderr


@pytest.mark.qemu
def test_perf_json_runs_the_bench(capsys: pytest.CaptureFixture[str], shared_models: Path,
                                  arm_tools: tuple[str, str], tmp_path: Path) -> None:
    """AD on cortex-m4, builtin only (no TFLM trees at --tflm-src): the line names the
    builtin engine's numbers and no comparison."""
    code, records, err = _run(capsys, "perf", "--model", "ad", "--target", "cortex-m4", "--json",
                              "--tflm-src", str(tmp_path / "no-tflm"), "--out", str(tmp_path / "rows.jsonl"))
    assert code == 0, err
    line, goals = records
    assert (line["kind"], line["benchmark"], line["target"], line["engine"]) == ("perf", "ad", "cortex-m4", "builtin")
    assert line["builtin_instructions"] > 264_192 and line["builtin_flash"] > 270_880
    assert line["compared_to"] == "" and line["instructions_ok"] is None
    assert goals["kind"] == "goals" and goals["goals_met"] is False
    (row,) = [json.loads(r) for r in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert row["instructions"] == line["builtin_instructions"] and row["flash_bytes"] == line["builtin_flash"]
    assert "TFLM ref not run" in err
