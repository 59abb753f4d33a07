"""Baselines and regressions: compare result rows with a stored baseline.

Pure functions over result rows (dicts, as read from JSON lines); no terminal
code. A row is identified by (benchmark, target, engine, recipe). Per metric a
tolerance says how much worse a value may get before it is a regression:
relative (percent) for instructions, est. cycles (same cycle model only), flash and RAM, in points for accuracy
(:func:`accuracy_allowance`). A baseline key missing from the run, or a failed
row, is always a regression.

The baseline file (docs/reports-and-regressions.md) is one JSON object:
``{"format": "tinyhil-baseline", "version": 1, "created": ..., "rows": [...]}``
whose rows are whole result rows, sorted by key, with the ResultRow field order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness.errors import UserInputError
from harness.results import column_names, now, row_key, with_defaults

BASELINE_FORMAT = "tinyhil-baseline"
BASELINE_VERSION = 1

Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class Metric:
    """One compared quantity: the row field it reads and how its tolerance applies."""

    name: str  # as given to --tol
    field: str  # ResultRow field
    relative: bool  # tolerance in percent of the baseline value, else absolute
    lower_is_better: bool
    default_tolerance: float
    unit: str  # of the tolerance: "%" or the field's own units


METRICS = {m.name: m for m in (
    Metric("instructions", "instructions", relative=True, lower_is_better=True, default_tolerance=0.0, unit="%"),
    # The timing model's estimate: compared only between rows of the same cycle_model
    # (a new table version moves every estimate without the code changing).
    Metric("est_cycles", "est_cycles", relative=True, lower_is_better=True, default_tolerance=0.0, unit="%"),
    Metric("flash", "flash_bytes", relative=True, lower_is_better=True, default_tolerance=0.0, unit="%"),
    Metric("ram", "ram_bytes", relative=True, lower_is_better=True, default_tolerance=0.0, unit="%"),
    # In points: see accuracy_allowance().
    Metric("accuracy", "accuracy", relative=False, lower_is_better=False, default_tolerance=0.0, unit="points"),
)}
# Accuracy metrics stored as a fraction 0..1 where higher is better (harness/metrics.py).
FRACTION_METRICS = ("top1", "auc")


def accuracy_allowance(metric: str, baseline: float, points: float) -> float:
    """How far accuracy may move, in the row's units: a point is one percentage point
    (0.01) of a top-1 or AUC fraction, and 1% of the baseline value for any other
    metric (e.g. anomaly_score_mean, which has no better direction)."""
    return points / 100.0 if metric in FRACTION_METRICS else abs(baseline) * points / 100.0


def parse_tolerances(specs: Sequence[str]) -> dict[str, float]:
    """``["instructions=0.5", "accuracy=1"]`` -> every metric's tolerance (defaults filled in)."""
    tol = {name: m.default_tolerance for name, m in METRICS.items()}
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep:
            raise UserInputError(f"--tol {spec!r}: expected METRIC=VALUE, e.g. instructions=0.5")
        if name not in METRICS:
            raise UserInputError(f"--tol {spec!r}: unknown metric '{name}' (known: {', '.join(METRICS)})")
        try:
            number = float(value.rstrip("%"))
        except ValueError:
            raise UserInputError(f"--tol {spec!r}: '{value}' is not a number") from None
        if not math.isfinite(number) or number < 0:
            raise UserInputError(f"--tol {spec!r}: the tolerance must be a number >= 0")
        tol[name] = number
    return tol


@dataclass(frozen=True)
class Change:
    """One finding for one key: a metric that moved, or a row that is missing, failed or new."""

    key: Key
    what: str  # a metric name, or "row"
    verdict: str  # "regression", "improvement", "within tolerance", "unchanged", "new"
    baseline: float | None = None
    current: float | None = None
    note: str = ""

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def delta_pct(self) -> float | None:
        if self.delta is None or not self.baseline:
            return None
        return 100.0 * self.delta / abs(self.baseline)


@dataclass(frozen=True)
class Comparison:
    """Every finding of one run against one baseline."""

    changes: tuple[Change, ...]  # in key order; every compared metric, unchanged ones too
    keys_compared: int
    tolerances: dict[str, float]
    notes: tuple[str, ...] = ()  # e.g. a different compiler than the baseline's

    def count(self, verdict: str) -> int:
        return sum(1 for c in self.changes if c.verdict == verdict)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.verdict == "regression"]

    @property
    def improvements(self) -> list[Change]:
        return [c for c in self.changes if c.verdict == "improvement"]

    @property
    def ok(self) -> bool:
        return not self.regressions


def newest_per_key(rows: Iterable[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """One row per key: the newest by timestamp (later files win a tie)."""
    out: dict[Key, dict[str, Any]] = {}
    for row in rows:
        key = row_key(row)
        old = out.get(key)
        if old is None or str(row.get("timestamp") or "") >= str(old.get("timestamp") or ""):
            out[key] = row
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _judge(metric: Metric, base: float, cur: float, tol: float) -> str:
    worse = cur - base if metric.lower_is_better else base - cur
    if worse == 0:
        return "unchanged"
    if worse < 0:
        return "improvement"
    allowed = abs(base) * tol / 100.0 if metric.relative else tol
    return "within tolerance" if worse <= allowed else "regression"


def _judge_accuracy(key: Key, b: dict[str, Any], c: dict[str, Any], bv: float, cv: float, points: float) -> Change:
    metric, now_metric = str(b.get("accuracy_metric") or ""), str(c.get("accuracy_metric") or "")
    if metric != now_metric:
        return Change(key, "accuracy", "regression", bv, cv,
                      note=f"accuracy metric changed from {metric or '?'} to {now_metric or '?'}: not comparable")
    if cv == bv:
        return Change(key, "accuracy", "unchanged", bv, cv)
    if metric in FRACTION_METRICS and cv > bv:
        return Change(key, "accuracy", "improvement", bv, cv)
    verdict = "within tolerance" if abs(cv - bv) <= accuracy_allowance(metric, bv, points) else "regression"
    return Change(key, "accuracy", verdict, bv, cv, note="" if metric in FRACTION_METRICS else f"{metric} moved")


def compare(baseline: Iterable[dict[str, Any]], current: Iterable[dict[str, Any]],
            tolerances: dict[str, float] | None = None) -> Comparison:
    """Compare the newest current row per key with the baseline's row for that key."""
    tol = {**parse_tolerances([]), **(tolerances or {})}
    base = newest_per_key(baseline)
    cur = newest_per_key(current)
    changes: list[Change] = []
    for key in sorted(base.keys() | cur.keys()):
        b, c = base.get(key), cur.get(key)
        if c is None:
            changes.append(Change(key, "row", "regression", note="in the baseline, missing from this run"))
            continue
        if c.get("status") != "ok":
            changes.append(Change(key, "row", "regression", note=f"failed: {c.get('error') or 'no error given'}"))
            continue
        if b is None:
            changes.append(Change(key, "row", "new", note="not in the baseline"))
            continue
        if b.get("status") != "ok":
            changes.append(Change(key, "row", "improvement", note="failed in the baseline, ok now"))
            continue
        for name, metric in METRICS.items():
            bv, cv = _number(b.get(metric.field)), _number(c.get(metric.field))
            if bv is None:
                continue  # not measured for the baseline (e.g. accuracy without --accuracy)
            if name == "est_cycles" and b.get("cycle_model") != c.get("cycle_model"):
                continue  # another timing model: see the provenance note
            if cv is None:
                changes.append(Change(key, name, "regression", bv, None, note="not measured in this run"))
                continue
            if name == "accuracy" and b.get("accuracy_samples") != c.get("accuracy_samples"):
                # A --limit run is not the full run it would be compared with, nor the reverse.
                changes.append(Change(key, name, "regression", bv, cv, note=(
                    f"over {c.get('accuracy_samples')} inputs, the baseline's over {b.get('accuracy_samples')}: "
                    "not comparable; rerun with the baseline's inputs (or update the baseline)")))
            elif name == "accuracy":
                changes.append(_judge_accuracy(key, b, c, bv, cv, tol[name]))
            else:
                changes.append(Change(key, name, _judge(metric, bv, cv, tol[name]), bv, cv))
    return Comparison(tuple(changes), len(base.keys() | cur.keys()), dict(tol), tuple(_provenance_notes(base, cur)))


def _provenance_notes(base: dict[Key, dict[str, Any]], cur: dict[Key, dict[str, Any]]) -> list[str]:
    """Say when the baseline was built with other tools: differences may come from them."""
    notes = []
    for field in ("compiler", "cflags", "engine_version", "runner", "cycle_model"):
        was = {str(r.get(field)) for k, r in base.items() if k in cur}
        now_ = {str(r.get(field)) for k, r in cur.items() if k in base}
        if was and now_ and was != now_:
            notes.append(f"{field} differs from the baseline's: baseline {' | '.join(sorted(was))}; "
                         f"this run {' | '.join(sorted(now_))}")
    return notes


def baseline_document(rows: Iterable[dict[str, Any]], source: str = "") -> dict[str, Any]:
    """The baseline as a JSON-ready dict: newest row per key, sorted, fields in ResultRow order."""
    picked = newest_per_key(rows)
    failed = [k for k, r in picked.items() if r.get("status") != "ok"]
    if failed:
        names = ", ".join("/".join(k[:3]) for k in sorted(failed))
        raise UserInputError(f"cannot make a baseline from failed rows ({names}): fix them or leave them out")
    if not picked:
        raise UserInputError("cannot make a baseline from no rows")
    order = column_names()
    ordered = []
    for key in sorted(picked, key=lambda k: (k[1], k[0], k[2], k[3])):
        row = picked[key]
        known = {name: row.get(name) for name in order}
        extra = {name: row[name] for name in sorted(row) if name not in known}
        ordered.append({**known, **extra})
    return {"format": BASELINE_FORMAT, "version": BASELINE_VERSION, "created": now(), "source": source,
            "keys": ["benchmark", "target", "engine", "recipe"], "rows": ordered}


def write_baseline(rows: Iterable[dict[str, Any]], path: Path, source: str = "") -> dict[str, Any]:
    """Write a baseline file (atomically) and return what was written."""
    doc = baseline_document(rows, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return doc


def read_baseline(path: Path) -> list[dict[str, Any]]:
    """The rows of a baseline file; a wrong or damaged file is a UserInputError naming it."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserInputError(f"{path}: baseline not found (make one with `tinyhil baseline update --out {path}`)") \
            from None
    except json.JSONDecodeError as e:
        raise UserInputError(f"{path}: not a baseline: invalid JSON ({e.msg} at line {e.lineno})") from None
    except OSError as e:
        raise UserInputError(f"{path}: cannot read the baseline: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != BASELINE_FORMAT:
        raise UserInputError(f"{path}: not a baseline: expected a JSON object with \"format\": \"{BASELINE_FORMAT}\"")
    if doc.get("version") != BASELINE_VERSION:
        raise UserInputError(f"{path}: baseline version {doc.get('version')!r}; this tinyhil reads version "
                             f"{BASELINE_VERSION}")
    rows = doc.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UserInputError(f"{path}: baseline \"rows\" must be a list of result rows")
    for n, row in enumerate(rows):
        missing = [k for k in ("benchmark", "target", "engine", "status") if not row.get(k)]
        if missing:
            raise UserInputError(f"{path}: rows[{n}] is not a result row: no {', '.join(missing)}")
    return [with_defaults(r) for r in rows]


def in_scope(rows: Iterable[dict[str, Any]], targets: Sequence[str] = (),
             benchmarks: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The rows of the given targets and benchmarks (all of them when none are given)."""
    return [r for r in rows
            if (not targets or r["target"] in targets) and (not benchmarks or r["benchmark"] in benchmarks)]
