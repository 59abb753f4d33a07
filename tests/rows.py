"""Literal result rows for report and regression tests (no toolchain, no QEMU)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.results import ResultRow, write_rows

# A cortex-m4 KWS row as `tinyhil bench` wrote it (builtin engine, QEMU; compiler and cflags shortened).
KWS_M4 = ResultRow(
    benchmark="kws", model="kws_ref_model", model_sha256="aeea4368" * 8, target="cortex-m4", runner="qemu",
    engine="builtin", engine_version="tinyhil-0.1.0", compiler="arm-none-eabi-gcc (15:12.2.rel1-1) 12.2.1",
    cflags="-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2", recipe="none", status="ok",
    error="", proxy="", instructions=23_239_520, cycles=None, est_cycles=23_239_520,
    latency_ms=138.3304761904762, latency_source="est_cycles", cpi=1.0,
    cpi_source="tinyhil-cycles cortex-m4 v2 (plugin 2c7e3e00); memory: zero-wait-state memory",
    cycle_model="tinyhil-cycles cortex-m4 v2 (plugin 2c7e3e00)",
    energy_uj=18259.62285714286, power_mw=132.0, power_source="STM32F405 datasheet", flash_bytes=41_008,
    flash_code_bytes=9_888, flash_weights_bytes=24_368, flash_other_bytes=6_752, ram_bytes=18_060,
    ram_static_bytes=17_640, ram_arena_bytes=16_000, ram_db_buffer_bytes=490, ram_stack_bytes=420,
    output_matches_reference=True, accuracy=None, runs=1, git_revision="7bdc275",
    timestamp="2026-11-23T19:46:20+00:00",
)


def row(base: ResultRow = KWS_M4, **changes: Any) -> ResultRow:
    return replace(base, **changes)


def failed(base: ResultRow = KWS_M4, error: str = "firmware did not answer within 300 s (hung or crashed)",
           **changes: Any) -> ResultRow:
    """A failed row as the bench writes it: flash known, no timing, no stack."""
    return replace(base, status="failed", error=error, instructions=None, est_cycles=None, latency_ms=None,
                   energy_uj=None, ram_bytes=None, ram_stack_bytes=None, output_matches_reference=None, **changes)


def suite(timestamp: str = "2026-11-23T19:46:20+00:00", scale: float = 1.0, **changes: Any) -> list[ResultRow]:
    """kws, vww, ic, ad on cortex-m4 (instructions scaled by ``scale``)."""
    counts = {"kws": 23_239_520, "vww": 67_865_680, "ic": 83_746_280, "ad": 1_956_480}
    flash = {"kws": 41_008, "vww": 255_120, "ic": 94_512, "ad": 291_936}
    out = []
    for bench, n in counts.items():
        n = round(n * scale)
        out.append(row(benchmark=bench, model=f"{bench}_model", instructions=n, est_cycles=n,
                       latency_ms=n / 168e3, energy_uj=n / 168e3 * 132, flash_bytes=flash[bench],
                       timestamp=timestamp, **changes))
    return out


def write(path: Path, rows: list[ResultRow]) -> Path:
    return write_rows(rows, path)


# The fields schema_version 2 added: rows written before it lack them.
SCHEMA_2_FIELDS = ("schema_version", "accuracy_dataset_samples", "flash_capacity_bytes", "ram_capacity_bytes")


def accuracy(base: ResultRow = KWS_M4, value: float = 0.92, samples: int = 1000, dataset: int | None = 1000,
             **changes: Any) -> ResultRow:
    """A row of an accuracy run (--accuracy; fewer ``samples`` than ``dataset`` is a --limit run)."""
    return replace(base, accuracy=value, accuracy_reference=value, accuracy_metric="top1", accuracy_samples=samples,
                   accuracy_dataset_samples=dataset, predictions_match_reference=True, **changes)


def with_capacity(base: ResultRow = KWS_M4, flash: int = 1024 * 1024, ram: int = 128 * 1024,
                  **changes: Any) -> ResultRow:
    """A row carrying its target's flash and RAM sizes (default: an STM32F405's)."""
    return replace(base, flash_capacity_bytes=flash, ram_capacity_bytes=ram, **changes)


def old_schema(r: ResultRow) -> dict[str, Any]:
    """``r`` as a row written before schema_version 2 (a JSON object without its fields)."""
    import json

    data: dict[str, Any] = json.loads(r.to_json())
    for k in SCHEMA_2_FIELDS:
        del data[k]
    return data


def write_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Rows given as JSON objects (e.g. old_schema's), one a line."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
