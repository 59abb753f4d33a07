"""`tinyhil targets`: what targets exist and which runners host them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Sequence

from rich.markup import escape

from harness.cli.common import console, print_json_lines
from harness.cli.tables import compact_table

if TYPE_CHECKING:
    from harness.hosting import Hosting
    from harness.targets import TargetDescriptor


def cmd_targets(args: argparse.Namespace) -> int:
    """List every target with the runners that can host it here, and why not where not."""
    from harness.hosting import hosting
    from harness.targets import available_targets

    if args.json:  # stdout carries the JSON lines only, no table
        print_json_lines(target_record(t, hosting(t, args.port)) for t in available_targets())
        return 0
    table = compact_table("targets (--json: every field)", ["name!", "core!", "MHz#", "flash\nKiB#", "RAM\nKiB#",
                                                            "runs here", "not here, because", "notes"])
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


def target_record(t: TargetDescriptor, hosts: Sequence[Hosting]) -> dict[str, Any]:
    """One target as a ``--json`` object: its figures, and each runner here (with a note,
    e.g. what installs on first use) or not here (with the reason)."""
    from harness.results import SCHEMA_VERSION

    return {
        "schema_version": SCHEMA_VERSION,
        "name": t.name,
        "core": t.core,
        "clock_hz": t.clock_hz,
        "flash_bytes": t.flash.size,
        "ram_bytes": t.ram.size,
        "qemu_machine": t.qemu.machine if t.qemu else None,
        "proxy": t.qemu.proxy if t.qemu and t.qemu.proxy else None,
        "description": t.description,
        "energy_timestamp_pin": ({"pin": t.energy.name, "drive": t.energy.drive, "source": t.energy.source}
                                 if t.energy is not None else None),
        "runners_here": [{"runner": h.runner, "note": h.reason} for h in hosts if h.ok],
        "runners_not_here": [{"runner": h.runner, "reason": h.reason} for h in hosts if not h.ok],
    }


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    targets = sub.add_parser("targets", help="list the targets and which runners can host them here")
    targets.add_argument("--port", help="a board's serial port, to check the board runner with it")
    targets.add_argument("--json", action="store_true", help="one JSON object per target on stdout, no table")
    targets.set_defaults(func=cmd_targets)
