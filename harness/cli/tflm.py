"""`tinyhil tflm fetch`: the TFLM engine's source trees."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from harness.cli.common import add_fetch_options, console, err_console


def cmd_tflm_fetch(args: argparse.Namespace) -> int:
    """Clone TFLM and its third-party trees at the pinned commits (tinyhil tflm fetch)."""
    from harness.engines.tflm.trees import DEFAULT_URL_TEMPLATE, PINNED, fetch_trees

    trees = fetch_trees(Path(args.dest) if args.dest else None, args.url_template or DEFAULT_URL_TEMPLATE,
                        progress=lambda m: err_console.print(escape(m), highlight=False), force=args.force)
    for pin in PINNED:
        console.print(escape(f"{pin.name:13} {pin.commit}  {trees.path(pin.name)}"), highlight=False)
    return 0


def register(sub: Any) -> None:
    """Add this module's subcommand(s) to the `tinyhil` parser."""
    tflm = sub.add_parser("tflm", help="the TensorFlow Lite Micro engine's source trees")
    tflm_sub = tflm.add_subparsers(dest="tflm_command", required=True)
    fetch = tflm_sub.add_parser("fetch", help="clone TFLM and its third-party code at the pinned commits")
    add_fetch_options(fetch, "trees", "~/.cache/tinyhil/tflm")
    fetch.set_defaults(func=cmd_tflm_fetch)
