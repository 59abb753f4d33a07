"""What every subcommand shares: the consoles and where rows go."""

from __future__ import annotations

from pathlib import Path

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
