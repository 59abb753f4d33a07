"""Result rows -> a Report: every row (the history) and the newest row per key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from harness.errors import UserInputError
from harness.results import engine_label, load_row_files, results_dir

# What a result is of; "engine_label" is the engine with its kernels (``tflm cmsis-nn``).
KEY = ["benchmark", "target", "engine_label", "recipe"]
# MLPerf Tiny's benchmarks first, in the bench's order; other models after, by name.
BENCHMARK_ORDER = ("kws", "vww", "ic", "ad")


@dataclass(frozen=True)
class Report:
    """What every format renders.

    ``history`` holds every row read (one per run and key), ``latest`` the newest
    row per (benchmark, target, engine, recipe), in display order, except that its
    accuracy may come from an earlier run over more inputs (see
    :func:`keep_fuller_accuracy`; ``accuracy_from`` then says which). Both keep the
    rows' own Python values (dtype object): ints stay ints and a missing number
    is None, never NaN.
    """

    history: pd.DataFrame
    latest: pd.DataFrame
    sources: tuple[Path, ...]

    def latest_rows(self) -> list[dict[str, Any]]:
        return records(self.latest)

    def history_rows(self) -> list[dict[str, Any]]:
        return records(self.history)


def default_inputs(directory: Path | None = None) -> list[Path]:
    """Every ``*.jsonl`` under ``directory`` (default ./results), oldest name first
    (bench-<time> names sort by time)."""
    return sorted((directory or results_dir()).glob("*.jsonl"))


def expand_inputs(paths: Sequence[Path]) -> list[Path]:
    """A directory stands for its ``*.jsonl`` files."""
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.glob("*.jsonl")) if p.is_dir() else [p])
    return out


def load_report(paths: Sequence[Path]) -> Report:
    """Read row files into a Report; no rows at all is a UserInputError."""
    files = expand_inputs(paths)
    if not files:
        where = ", ".join(str(p) for p in paths) or str(results_dir())
        raise UserInputError(f"no result rows files (*.jsonl) in {where}: run `tinyhil bench` first")
    rows: list[dict[str, Any]] = []
    for f in files:
        rows.extend({**r, "source": f.name} for r in load_row_files([f]))
    if not rows:
        raise UserInputError(f"no result rows in {', '.join(str(f) for f in files)}")
    history = pd.DataFrame(rows, dtype=object)
    history["recipe"] = history["recipe"].map(lambda r: r or "none")
    history["engine_label"] = [engine_label(r) for r in rows]
    history["time"] = pd.to_datetime(history["timestamp"], utc=True, errors="coerce", format="ISO8601")
    history["_order"] = range(len(history))
    history = history.sort_values(["time", "_order"], na_position="first", kind="stable")
    latest = keep_fuller_accuracy(history, history.drop_duplicates(KEY, keep="last"))
    return Report(history.drop(columns="_order").reset_index(drop=True),
                  display_order(latest.drop(columns="_order")), tuple(files))


# The fields an accuracy run sets; they travel together from one row.
ACCURACY_FIELDS = ("accuracy", "accuracy_reference", "accuracy_metric", "accuracy_samples",
                   "accuracy_dataset_samples", "predictions_match_reference")


def _inputs(row: dict[str, Any]) -> int:
    n = row.get("accuracy_samples")
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def _has_accuracy(row: dict[str, Any]) -> bool:
    v = row.get("accuracy")
    return row.get("status") == "ok" and isinstance(v, (int, float)) and not isinstance(v, bool) \
        and not math.isnan(v)


def keep_fuller_accuracy(history: pd.DataFrame, latest: pd.DataFrame) -> pd.DataFrame:
    """``latest`` (the newest row per key), where a newest row's accuracy is over fewer
    inputs than an earlier run's of the same key, model (``model_sha256``) and metric:
    that row keeps its own other numbers (latency, flash, ...: they are the newest) but
    takes the accuracy fields from the earlier run with the most inputs (the newest of
    those), and ``accuracy_from`` describes both runs. So a partial run (``--limit``)
    never stands in for a full one. Rows whose newest run has no accuracy, or failed,
    are left as they are; a row that does not record its input count counts as 0 inputs.
    ``history`` must be in time order (oldest first)."""
    latest = latest.copy()
    latest["accuracy_from"] = None
    candidates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in records(history):
        if _has_accuracy(r):
            candidates.setdefault(tuple(str(r[k]) for k in KEY), []).append(r)
    for index, newest in zip(latest.index, records(latest)):
        if not _has_accuracy(newest):
            continue
        same = [r for r in candidates.get(tuple(str(newest[k]) for k in KEY), [])
                if r.get("model_sha256") == newest.get("model_sha256")
                and r.get("accuracy_metric") == newest.get("accuracy_metric")]
        best = max(reversed(same), key=_inputs, default=newest)  # the newest of the fullest runs
        if _inputs(best) <= _inputs(newest):
            continue
        for field in ACCURACY_FIELDS:
            latest.at[index, field] = best.get(field)
        latest.at[index, "accuracy_from"] = {
            "timestamp": best.get("timestamp"), "git_revision": best.get("git_revision"),
            "source": best.get("source"), "metric": newest.get("accuracy_metric"),
            "newest_accuracy": newest.get("accuracy"), "newest_samples": newest.get("accuracy_samples"),
            "newest_dataset_samples": newest.get("accuracy_dataset_samples")}
    return latest


def display_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by target, then benchmark (MLPerf Tiny order), engine, recipe."""
    rank = {b: i for i, b in enumerate(BENCHMARK_ORDER)}
    keyed = frame.assign(_b=frame["benchmark"].map(lambda b: (rank.get(b, len(rank)), b)))
    return keyed.sort_values(["target", "_b", "engine_label", "recipe"], kind="stable").drop(columns="_b") \
        .reset_index(drop=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts; NaN/NA/NaT become None."""
    return [{str(k): (None if _missing(v) else v) for k, v in rec.items()} for rec in frame.to_dict("records")]


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)
