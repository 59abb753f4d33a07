"""What every subcommand shares: the consoles and where rows go."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console

from harness.errors import UserInputError

console = Console()
if not console.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    console = Console(width=160)
err_console = Console(stderr=True)


def _results_out(arg: str | None) -> Path:
    """Where the bench writes its rows, checked before minutes of work: a directory
    given to --out gets the default file name inside it."""
    from harness.results import default_results_path

    if not arg:
        return default_results_path()
    out = Path(arg)
    if out.is_dir():
        return out / default_results_path().name
    if out.parent.exists() and not out.parent.is_dir():
        raise UserInputError(f"--out {arg}: {out.parent} is not a directory")
    return out


def print_json_lines(records: Iterable[Any]) -> None:
    """``--json``: one JSON object per line on stdout, nothing else there (tables and
    progress go to stderr), flushed per line so a pipe sees each record as it comes."""
    for record in records:
        sys.stdout.write(json.dumps(record, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()
