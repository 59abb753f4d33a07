"""Result rows: one JSON line per (model, target, engine, recipe) run.

Reports and regressions are computed from these rows, never from logs. A
failed run is a row with ``status = "failed"`` and an ``error``, and no numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import stat
import subprocess
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness import __version__
from harness.errors import TinyhilError, UserInputError

REPO = Path(__file__).resolve().parents[1]

# The row format's version: 1 = the rows before the field existed (no
# schema_version); 2 adds schema_version, accuracy_dataset_samples and the
# target's flash/RAM capacity. Raised whenever a field changes meaning or goes.
SCHEMA_VERSION = 2


def results_dir() -> Path:
    """Where rows go by default: ``./results`` in the current directory (a user's
    project, not the installed package), or ``TINYHIL_RESULTS``."""
    return Path(os.environ.get("TINYHIL_RESULTS") or Path.cwd() / "results")


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
    # How many inputs the accuracy run's dataset holds (accuracy_samples is how many
    # were run: fewer means a partial run, --limit), and the target's flash and RAM
    # (the headroom the report draws).
    accuracy_dataset_samples: int | None = None
    flash_capacity_bytes: int | None = None
    ram_capacity_bytes: int | None = None
    # A sharded suite (bench --shard i/N, harness/shard.py): which shard ran the row, the
    # whole suite's id (the same in every shard) and its number of cases, so a merge of
    # the shards' rows can tell that every case is there once.
    shard: str = ""
    suite_id: str = ""
    suite_cases: int | None = None
    schema_version: int = SCHEMA_VERSION

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


def default_results_path(kind: str = "bench") -> Path:
    """A new file name under results/, unique per run (time, process id, a random tag)."""
    import secrets

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return results_dir() / f"{kind}-{stamp}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"


def check_output_path(path: Path, option: str) -> Path:
    """``path`` as an output the rows can be appended to, checked before any work.

    A regular file is appended to, a symlink is written through to its target, a new
    file is created (its parent directories too); anything else (a directory, a FIFO,
    a device, a socket) is refused. The file is opened for appending once here, so a
    read-only place, a parent that is a file or a missing permission is found now.

    Raises:
        UserInputError: naming the option, the path and what is wrong (exit 2).
    """
    target = path.resolve() if path.is_symlink() else path
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserInputError(f"{option} {path}: {parent} is not a directory")
            break
    try:
        st = target.stat()
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UserInputError(f"{option} {path}: cannot be used as an output ({e.strerror})") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise UserInputError(f"{option} {path}: is {kind}; give a regular file (rows are appended to it)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.close(fd)
    except OSError as e:
        raise UserInputError(f"{option} {path}: cannot write there ({e.strerror})") from None
    return target


class RowWriteError(TinyhilError):
    """Writing a finished row failed (a full disk, a lost mount): the rows before it stay."""

    exit_code = 1


class RowSink:
    """Appends each finished row to a JSON-lines file (and optionally a CSV file) at once:
    written, flushed and fsynced under an exclusive lock, so a crash or Ctrl-C keeps every
    row that finished and two benches writing one file both land.

    Open it after the input checks and before the work (``check_output_path`` runs then).
    """

    def __init__(self, path: Path, csv_path: Path | None = None) -> None:
        self.path = check_output_path(path, "--out")
        self.csv_path = check_output_path(csv_path, "--csv") if csv_path is not None else None
        self.written = 0

    @staticmethod
    def _append(path: Path, text: str) -> None:
        import fcntl

        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = text.encode()
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)  # releases the lock

    def append(self, row: ResultRow) -> None:
        """Write ``row`` now; a failure is a RowWriteError naming the file (earlier rows stay)."""
        try:
            self._append(self.path, row.to_json() + "\n")
        except OSError as e:
            raise RowWriteError(f"cannot write the row of {row.benchmark} on {row.target} to {self.path} "
                                f"({e.strerror}); the {self.written} row(s) before it are there") from None
        if self.csv_path is not None:
            try:
                self._append(self.csv_path, _csv_text(row, header=self.csv_path.stat().st_size == 0))
            except OSError as e:
                raise RowWriteError(f"cannot write the row of {row.benchmark} on {row.target} to "
                                    f"{self.csv_path} ({e.strerror})") from None
        self.written += 1


def _csv_text(row: ResultRow, header: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=column_names())
    if header:
        writer.writeheader()
    writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in asdict(row).items()})
    return buf.getvalue()


def write_rows(rows: Iterable[ResultRow], path: Path) -> Path:
    """Append rows to ``path`` as JSON lines (each flushed and fsynced; see RowSink)."""
    sink = RowSink(path)
    for row in rows:
        sink.append(row)
    return sink.path


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
    defaults["schema_version"] = 1  # a row without the field predates it
    return {**defaults, **row}
