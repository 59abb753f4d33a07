"""--shard I/N: stable, balanced subsets of a suite, and an exact merge of the shards' rows
(harness/shard.py; bench, regress --rows, report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.errors import UserInputError
from harness.shard import Shard, merge_problems, parse_shard, select, suite_id

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYHIL_SHARED", REPO.parent / "shared"))


@dataclass(frozen=True)
class _Target:
    name: str


@dataclass(frozen=True)
class _Engine:
    label: str


@dataclass(frozen=True)
class _Case:
    benchmark: str
    target: _Target
    engine: _Engine


def _suite() -> list[_Case]:
    return [_Case(b, _Target(t), _Engine(e)) for t in ("cortex-m4", "cortex-m7") for b in ("kws", "vww", "ic", "ad")
            for e in ("builtin", "tflm ref")]


@pytest.mark.parametrize("text", ["0/4", "5/4", "2", "a/b", "2/0", "-1/3"])
def test_bad_shards_are_exit_2(text: str) -> None:
    with pytest.raises(UserInputError, match=r"--shard .*expected i/N with 1 <= i <= N"):
        parse_shard(text)


def test_shards_cover_every_case_once_balanced_whatever_the_order() -> None:
    cases = _suite()
    for n in (1, 2, 3, 5, 16, 20):
        parts = [select(cases, Shard(i, n)) for i in range(1, n + 1)]
        assert sorted(repr(c) for p in parts for c in p) == sorted(map(repr, cases))  # each once
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1
        reordered = [select(list(reversed(cases)), Shard(i, n)) for i in range(1, n + 1)]
        assert [set(p) for p in parts] == [set(p) for p in reordered]  # stable: not the options' order
    assert suite_id(cases, (1, 0)) == suite_id(list(reversed(cases)), (1, 0)) != suite_id(cases, (3, 0))
    assert suite_id(cases, (1, 0)) != suite_id(cases[1:], (1, 0))


def _row(benchmark: str, shard: str, cases: int = 3, sid: str = "s1") -> dict[str, Any]:
    return {"benchmark": benchmark, "target": "cortex-m4", "engine": "builtin", "kernels": "", "recipe": "none",
            "status": "ok", "shard": shard, "suite_id": sid, "suite_cases": cases}


def test_merge_problems_name_duplicates_and_missing_shards() -> None:
    complete = [_row("kws", "1/2"), _row("ad", "1/2"), _row("ic", "2/2")]
    assert merge_problems(complete) == []
    assert merge_problems([{k: v for k, v in r.items() if k != "shard"} for r in complete[:1]]) == []  # unsharded
    (dup,) = merge_problems([*complete, _row("ic", "2/2")])
    assert "cortex-m4" in dup and "ic" in dup and "twice (shards 2/2 and 2/2)" in dup
    (missing,) = merge_problems(complete[:2])
    assert "rows for 2 of its 3 cases; no rows from shard 2/2" in missing
    (short,) = merge_problems(complete[1:])
    assert "rows for 2 of its 3 cases; a shard stopped early" in short
    mixed = merge_problems([_row("kws", "1/2"), _row("ad", "1/3"), _row("ic", "2/2")])
    assert any("different sizes" in p for p in mixed)
    assert merge_problems([_row("kws", "1/2", sid="a"), _row("kws", "1/2", sid="b", cases=1)]) == [
        "suite a: rows for 1 of its 3 cases; no rows from shard 2/2"]


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TINYHIL_RESULTS": str(tmp_path / "results"), "TINYHIL_SHARED": str(SHARED)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=900)


@pytest.mark.qemu
def test_two_shards_merge_into_one_verdict(tmp_path: Path) -> None:
    """A CI matrix in small: two shards of kws + ad on cortex-m4, each in its own results
    directory; regress over both rows files is one verdict; one shard alone, or one file
    twice, is named and fails."""
    if not (SHARED / "models" / "mlperf_tiny" / "kws_ref_model.tflite").exists():
        pytest.skip(f"MLPerf Tiny models not found under {SHARED} (set TINYHIL_SHARED)")
    files = []
    for i in (1, 2):
        (tmp_path / f"s{i}").mkdir()
        proc = _cli(tmp_path / f"s{i}", "bench", "--target", "cortex-m4", "--model", "kws", "--model", "ad",
                    "--shard", f"{i}/2", "--json")
        assert proc.returncode == 0, proc.stderr[-2000:]
        (row,) = [json.loads(ln) for ln in proc.stdout.splitlines()]
        assert row["shard"] == f"{i}/2" and row["suite_cases"] == 2 and row["status"] == "ok"
        (f,) = list((tmp_path / f"s{i}" / "results").glob("bench-*.jsonl"))
        files.append(f)
    rows = [json.loads(f.read_text()) for f in files]
    assert {r["benchmark"] for r in rows} == {"kws", "ad"} and rows[0]["suite_id"] == rows[1]["suite_id"]
    scope = ("--target", "cortex-m4", "--model", "kws", "--model", "ad", "--baseline",
             str(REPO / "results" / "baseline.json"))
    merged = _cli(tmp_path, "regress", *scope, "--rows", *map(str, files))
    assert merged.returncode == 0 and "no regressions" in merged.stdout, merged.stdout + merged.stderr
    alone = _cli(tmp_path, "regress", *scope, "--rows", str(files[0]))
    assert alone.returncode == 1 and "no rows from shard" in alone.stderr, alone.stderr
    twice = _cli(tmp_path, "regress", *scope, "--rows", str(files[0]), str(files[0]), str(files[1]))
    assert twice.returncode == 1 and "there twice" in twice.stderr, twice.stderr
    report = _cli(tmp_path, "report", str(files[0]))
    assert report.returncode == 0 and "warning: incomplete sharded suite" in report.stderr
