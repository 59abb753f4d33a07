"""`tinyhil targets`: what targets exist and which runners host them."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.cli.common import console


def cmd_targets(args: argparse.Namespace) -> int:
    """List every target with the runners that can host it here, and why not where not."""
    from harness.hosting import hosting
    from harness.targets import available_targets

    table = Table(title="targets")
    for c in ("name", "core", "clock MHz", "flash KiB", "RAM KiB", "runs here", "not here, because", "notes"):
        table.add_column(c)
    for t in available_targets():
        hosts = hosting(t, args.port)
        here = "\n".join(h.runner + (f" ({t.qemu.machine})" if h.runner == "qemu" and t.qemu else "")
                         + (f": {h.reason}" if h.reason else "") for h in hosts if h.ok) or "-"
        why_not = "\n".join(f"{h.runner}: {h.reason}" for h in hosts if not h.ok) or "-"
        # Reasons carry install hints like `pip install 'tinyhil[board]'`: not rich markup.
        table.add_row(t.name, t.core, f"{t.clock_hz / 1e6:g}", str(t.flash.size // 1024),
                      str(t.ram.size // 1024), escape(here), escape(why_not),
                      escape(t.qemu.proxy if t.qemu and t.qemu.proxy else t.description))
    console.print(table)
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    targets = sub.add_parser("targets", help="list the targets and which runners can host them here")
    targets.add_argument("--port", help="a board's serial port, to check the board runner with it")
    targets.set_defaults(func=cmd_targets)
