"""The `tinyhil` command line: one module per subcommand (each registers its parser); only main() exits."""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Callable, Sequence

from rich.markup import escape

from harness import __version__
from harness.cli import (bench, build, compare, cycles, engine, mlperf, models, perf, regress,  # noqa: F401
                         report, stress, targets, tflm)
from harness.cli.common import console, err_console
from harness.errors import TinyhilError

# One module per subcommand; each registers its parser(s). The order is the help's.
SUBCOMMANDS = (bench, build, compare, perf, cycles, stress, targets, report, regress, tflm, models, engine, mlperf)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyhil", description=__doc__)
    parser.add_argument("--version", action="version", version=f"tinyhil {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C: finally blocks run (a labgrid
    place is released, an emulator closed) and the rows written so far stay."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        code = func(args)
    except TinyhilError as e:
        if args.debug:
            traceback.print_exc()
        err_console.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        code = e.exit_code
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        code = 130
    except BrokenPipeError:  # `tinyhil bench --json | head -1`: the reader has gone, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.exit(code)


if __name__ == "__main__":
    main()


__all__ = ["build_parser", "console", "err_console", "main"]
