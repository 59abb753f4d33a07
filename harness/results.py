"""Result rows: one JSON line per (model, target, engine, recipe) run.

Reports and regressions are computed from these rows, never from logs. A
failed run is a row with ``status = "failed"`` and an ``error``, and no numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness import __version__
from harness.errors import UserInputError

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "results"


@dataclass(frozen=True)
class ResultRow:
    """Everything DESIGN.md asks a result row to carry."""

    benchmark: str
    model: str
    model_sha256: str
    target: str
    runner: str
    engine: str
    engine_version: str
    compiler: str
    cflags: str
    recipe: str
    status: str  # "ok" or "failed"
    error: str
    proxy: str  # what the run was hosted on, when not the target chip itself
    instructions: int | None
    cycles: int | None
    est_cycles: int | None
    latency_ms: float | None
    latency_source: str
    cpi: float | None  # est_cycles / instructions: the timing model's effective cycles per instruction
    cpi_source: str  # the timing model and the memory system it assumed
    energy_uj: float | None
    power_mw: float | None
    power_source: str
    flash_bytes: int | None
    flash_code_bytes: int | None
    flash_weights_bytes: int | None
    flash_other_bytes: int | None
    ram_bytes: int | None
    ram_static_bytes: int | None
    ram_arena_bytes: int | None
    ram_db_buffer_bytes: int | None
    ram_stack_bytes: int | None
    output_matches_reference: bool | None
    accuracy: float | None  # on target (firmware), by accuracy_metric
    runs: int
    git_revision: str
    timestamp: str
    # Accuracy mode (--accuracy): the same metric from the host interpreter, and
    # whether every firmware prediction equalled the interpreter's.
    accuracy_reference: float | None = None
    accuracy_metric: str = ""  # "top1", "auc", "anomaly_score_mean", ...
    accuracy_samples: int | None = None
    predictions_match_reference: bool | None = None
    # Per-layer profile (--profile): one dict per op, in execution order, with
    # keys index, op, output_shape, macs, count (instructions or cycles, per
    # latency_source's counter), macs_per_count; profile_overhead is the measured
    # per-layer timer overhead in the same units.
    layers: list[dict[str, Any]] | None = None
    profile_overhead: int | None = None
    # The engine's kernels ("ref" or "cmsis-nn" for tflm, "" for builtin) and its
    # own arena figure when it measures one at run time (TFLM's arena_used_bytes()).
    kernels: str = ""
    arena_used_bytes: int | None = None
    # The build id the firmware named in its boot banner (the build's cache key,
    # checked against the ELF that was started before the session began).
    firmware_build: str = ""
    # The timing model (harness/cycles): its name and version, and where the
    # est_cycles of one inference went (issue, branch, fetch_stall, data_stall, and
    # the plugin's own instruction count of the same calls).
    cycle_model: str = ""
    cycle_breakdown: dict[str, int] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=False)


def column_names() -> list[str]:
    return [f.name for f in fields(ResultRow)]


def git_revision(repo: Path = REPO) -> str:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def engine_version() -> str:
    return f"tinyhil-{__version__}"


def default_results_path() -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return RESULTS_DIR / f"bench-{stamp}.jsonl"


def write_rows(rows: Iterable[ResultRow], path: Path) -> Path:
    """Write rows as JSON lines, atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    with tmp.open("w") as f:
        for row in rows:
            f.write(row.to_json() + "\n")
    tmp.replace(path)
    return path


def write_csv(rows: Iterable[ResultRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=column_names())
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
    tmp.replace(path)
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


REQUIRED_FIELDS = ("benchmark", "target", "engine", "status")


def engine_label(row: dict[str, Any]) -> str:
    """The engine with its kernels when it has a choice of them: ``builtin``, ``tflm cmsis-nn``."""
    kernels = row.get("kernels") or ""
    return f"{row['engine']} {kernels}" if kernels else str(row["engine"])


def row_key(row: dict[str, Any]) -> tuple[str, str, str, str]:
    """What a result is of: (benchmark, target, engine (+ kernels), recipe)."""
    return (str(row["benchmark"]), str(row["target"]), engine_label(row), str(row.get("recipe") or "none"))


def load_row_files(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Read result rows from JSON-lines files, checked, for reports and regressions.

    Rows written before a field existed get that field's default (so old history
    stays readable); fields this version does not know are kept as they are. A
    missing file, a line that is not a JSON object, or a row without benchmark,
    target, engine or status is a UserInputError naming the file and line.
    """
    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise UserInputError(f"{path}: result rows file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserInputError(f"{path}: cannot read result rows: {e}") from e
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserInputError(f"{path}:{n}: not a JSON line ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise UserInputError(f"{path}:{n}: expected a JSON object (one result row), got {type(row).__name__}")
            missing = [k for k in REQUIRED_FIELDS if not isinstance(row.get(k), str) or not row.get(k)]
            if missing:
                raise UserInputError(f"{path}:{n}: not a result row: no {', '.join(missing)}")
            rows.append(with_defaults(row))
    return rows


def with_defaults(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with every ResultRow field present: a field added since the row was
    written gets its default (None when it has none); unknown fields are kept."""
    defaults = {f.name: (f.default if f.default is not MISSING else None) for f in fields(ResultRow)}
    return {**defaults, **row}
