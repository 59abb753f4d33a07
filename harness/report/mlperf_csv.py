"""CSV in the shape of the MLPerf Tiny results table, plus tinyhil's own columns.

MLPerf Tiny publishes one line per system and benchmark with the system name,
its processor (and frequency), the software (inference framework), and per
benchmark the latency in ms, the energy in µJ and the accuracy. Here:

    system          the target (MLPerf: System Name / Board Name)
    processor       the core the firmware was built for (MLPerf: Processor)
    processor_mhz   the clock the latency was computed with (MLPerf: Processor Frequency)
    engine          inference engine + version (MLPerf: Software / Inference Framework)
    benchmark       kws, vww, ic, ad or the model's name
    latency_ms, energy_uj, accuracy (+ accuracy_metric, accuracy_reference)

and how many inputs the accuracy is over: ``accuracy_samples`` (run),
``accuracy_dataset_samples`` (the dataset holds; empty for rows before schema 2),
``accuracy_inputs`` as the report shows it ("200/1000", "200 inputs"), and
``accuracy_from``: the timestamp of the earlier, fuller run the accuracy comes from
when the newest run of the key was a partial one (empty otherwise). Then what MLPerf
Tiny does not publish: where the latency comes from (``latency_source``: est_cycles
or cycles), instructions, cycles, est_cycles, flash and RAM (bytes, with their
splits) and the target's capacity of each, the runner and core-proxy note, and the
row's provenance. A failed row keeps its status and error and has no numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from harness.report import cells
from harness.report.load import Report

COLUMNS = [
    "system", "processor", "processor_mhz", "engine", "engine_version", "recipe", "benchmark", "model",
    "status", "latency_ms", "latency_source", "energy_uj", "accuracy", "accuracy_metric",
    "accuracy_reference", "accuracy_samples", "accuracy_dataset_samples", "accuracy_inputs", "accuracy_from",
    "instructions", "cycles", "est_cycles",
    "flash_bytes", "flash_code_bytes", "flash_weights_bytes", "flash_other_bytes",
    "ram_bytes", "ram_static_bytes", "ram_arena_bytes", "ram_stack_bytes",
    "flash_capacity_bytes", "ram_capacity_bytes",
    "output_matches_reference", "runner", "proxy", "error", "git_revision", "timestamp",
]
INT_COLUMNS = {"accuracy_samples", "accuracy_dataset_samples", "instructions", "cycles", "est_cycles",
               "flash_bytes", "flash_code_bytes", "flash_weights_bytes", "flash_other_bytes", "ram_bytes",
               "ram_static_bytes", "ram_arena_bytes", "ram_stack_bytes", "flash_capacity_bytes", "ram_capacity_bytes"}
FLOAT_COLUMNS = {"processor_mhz", "latency_ms", "energy_uj", "accuracy", "accuracy_reference"}


def _line(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {c: row.get(c) for c in COLUMNS}
    out.update(system=row["target"], processor=cells.processor(row), processor_mhz=cells.clock_mhz(row),
               recipe=row.get("recipe") or "none")
    for c in INT_COLUMNS | FLOAT_COLUMNS:
        if c != "processor_mhz":
            out[c] = cells.number(row, c)
    for c, digits in (("latency_ms", 4), ("energy_uj", 2)):
        if out[c] is not None:
            out[c] = round(out[c], digits)
    for memory in ("flash", "ram"):  # the row's own, else the target descriptor's (rows before schema 2)
        out[f"{memory}_capacity_bytes"] = cells.capacity(row, memory)[0]
    out["accuracy_inputs"] = cells.accuracy_inputs(row) if out["accuracy"] is not None else ""
    earlier = row.get("accuracy_from")
    out["accuracy_from"] = str(earlier.get("timestamp") or "") if isinstance(earlier, dict) else ""
    if not cells.ok(row):
        out["output_matches_reference"] = None
        out["latency_source"] = ""
    return out


def table(report: Report) -> pd.DataFrame:
    """The newest row per key as the CSV's columns, ints as ints, a missing number empty."""
    frame = pd.DataFrame([_line(r) for r in report.latest_rows()], columns=COLUMNS)
    for c in INT_COLUMNS:
        frame[c] = frame[c].astype("Int64")
    for c in FLOAT_COLUMNS:
        frame[c] = frame[c].astype("Float64")
    return frame


def write(report: Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table(report).to_csv(path, index=False)
    return path
