"""What every subcommand shares: the consoles and where rows go."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console

from harness.errors import UserInputError

# Piped or captured (CI, nohup, a log): tables are made to fit 100 columns, so a log
# gets them whole instead of squeezed into rich's default 80.
console = Console()
if not console.is_terminal:
    console = Console(width=100)
err_console = Console(stderr=True)
if not err_console.is_terminal:
    err_console = Console(stderr=True, width=100)


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


def add_fetch_options(fetch: Any, what: str, default_dest: str) -> None:
    """``--dest``, ``--url-template`` and ``--force`` of the commands that fetch pinned
    sources with git (tflm, models, mlperf)."""
    fetch.add_argument("--dest", help=f"where the {what} go (default {default_dest}, under TINYHIL_CACHE)")
    fetch.add_argument("--url-template", help="git URL of each repository from {repo} (owner/name), {owner} "
                                              "and {name}; default https://github.com/{repo}.git (a mirror: "
                                              "'/srv/mirror/{owner}+{name}.git')")
    fetch.add_argument("--force", action="store_true", help=f"fetch again even when the {what} are present")
