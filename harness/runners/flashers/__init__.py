"""Flashers: plain modules loaded by name, one per flashing tool.

Each module under this package exports two functions::

    available(target) -> str | None   # None when usable here, else why not
    flash(elf, target, port) -> None  # write the image and reset the chip; FlashError on failure

A target descriptor lists the flashers it can use in order (``[chip]
flashers``); :func:`select` takes the first one available here. Tests pass a
fake object with the same two functions instead of a module name.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from harness.errors import RunnerError
from harness.targets import TargetDescriptor

NAMES = tuple(sorted(p.stem.replace("_", "-") for p in Path(__file__).parent.glob("*.py")
                     if p.stem != "__init__"))


class FlashError(RunnerError):
    """A flasher could not write or reset the chip."""


class Flasher(Protocol):
    """What a flasher module (or a test's fake) provides."""

    def available(self, target: TargetDescriptor) -> str | None: ...

    def flash(self, elf: Path, target: TargetDescriptor, port: str) -> None: ...


def load(name: str) -> Flasher:
    """The flasher module called ``name`` (``st-flash`` is module ``st_flash``)."""
    if name not in NAMES:
        raise RunnerError(f"unknown flasher {name!r} (known: {', '.join(NAMES)})")
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    return module  # a module with the two functions


def select(target: TargetDescriptor, names: tuple[str, ...] | None = None) -> tuple[str, Flasher]:
    """The first of the target's flashers that is usable here.

    Raises:
        FlashError: none is, with every flasher's reason.
    """
    if target.chip is None:
        raise FlashError(f"{target.name} cannot run on a board: {target.why_not('board')}")
    reasons = []
    for name in names or target.chip.flashers:
        flasher = load(name)
        why = flasher.available(target)
        if why is None:
            return name, flasher
        reasons.append(f"{name}: {why}")
    raise FlashError(f"no flasher for {target.name} here ({'; '.join(reasons)})")


def objcopy_binary(elf: Path, target: TargetDescriptor) -> Path:
    """``elf`` as a raw binary next to it (for tools that take .bin), made with the target's objcopy."""
    import subprocess

    from harness.build import find_target_toolchain

    out = elf.with_suffix(".bin")
    tc = find_target_toolchain(target, install=False)
    proc = subprocess.run([str(tc.objcopy), "-O", "binary", str(elf), str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise FlashError(f"{tc.objcopy} -O binary {elf} failed: {proc.stderr.strip()}")
    return out
