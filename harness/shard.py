"""Sharding a suite over CI jobs or machines, and merging the shards' rows exactly.

``bench --shard i/N`` runs a stable subset of the suite's cases: the cases sorted by
what they are of (benchmark, target, engine, kernels), every N-th from the i-th, so
the N shards of the same options cover each case once, balanced, whatever order the
options named them in. Each row carries its ``shard``, the ``suite_id`` (a hash of
every case of the whole suite and the options that change a number: the same in
every shard) and ``suite_cases``. :func:`merge_problems` checks merged rows: a case
present twice, or fewer cases than the suite has (a shard missing or cut short), is
named, and `tinyhil regress` fails on it (`tinyhil report` warns).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

from harness.errors import UserInputError

C = TypeVar("C")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``i/N`` with 1 <= i <= N; anything else is exit 2 naming --shard."""
    left, sep, right = text.partition("/")
    try:
        index, count = int(left), int(right)
    except ValueError:
        index = count = 0
    if not sep or count < 1 or not 1 <= index <= count:
        raise UserInputError(f"--shard {text!r}: expected i/N with 1 <= i <= N (e.g. --shard 2/4)")
    return Shard(index, count)


def case_key(case: Any) -> tuple[str, str, str]:
    """What a bench case is of, as its row's key says it (recipe aside)."""
    engine = getattr(case.engine, "label", "builtin") if case.engine is not None else "builtin"
    return (case.benchmark, case.target.name, engine)


def suite_id(cases: Sequence[Any], settings: Sequence[object]) -> str:
    """The same in every shard of one suite: its cases and the settings that change a number."""
    h = hashlib.sha256()
    for key in sorted(case_key(c) for c in cases):
        h.update("\0".join(key).encode() + b"\n")
    h.update(repr(tuple(settings)).encode())
    return h.hexdigest()[:16]


def select(cases: Sequence[C], shard: Shard) -> list[C]:
    """Shard ``shard``'s cases, in the suite's order."""
    ordered = sorted(range(len(cases)), key=lambda k: case_key(cases[k]))
    mine = set(ordered[shard.index - 1::shard.count])
    return [c for k, c in enumerate(cases) if k in mine]


def merge_problems(rows: Sequence[dict[str, Any]]) -> list[str]:
    """What is wrong with the merged rows of sharded suites: a case twice, or cases
    missing (with the shards that sent none). Rows from unsharded runs are not checked."""
    from harness.results import row_key

    suites: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("suite_id") and row.get("shard"):
            suites[str(row["suite_id"])].append(row)
    problems = []
    for sid, members in sorted(suites.items()):
        seen: dict[tuple[str, ...], str] = {}
        for row in members:
            key = row_key(row)
            if key in seen:
                problems.append(f"suite {sid}: {' / '.join(key)} is there twice (shards {seen[key]} and "
                                f"{row['shard']}): merge each shard's rows once")
            seen[key] = str(row["shard"])
        expected = max(int(r.get("suite_cases") or 0) for r in members)
        counts = {str(r["shard"]).partition("/")[2] for r in members}
        if len(counts) > 1:
            problems.append(f"suite {sid}: rows from shardings of different sizes ({', '.join(sorted(counts))})")
        if len(seen) < expected:
            count = int(next(iter(counts)) or 0)
            present = {int(str(r["shard"]).partition("/")[0]) for r in members}
            missing = [f"{i}/{count}" for i in range(1, min(count, expected) + 1) if i not in present]
            problems.append(f"suite {sid}: rows for {len(seen)} of its {expected} cases"
                            + (f"; no rows from shard {', '.join(missing)}" if missing else
                               "; a shard stopped early"))
    return problems


__all__ = ["Shard", "case_key", "merge_problems", "parse_shard", "select", "suite_id"]
