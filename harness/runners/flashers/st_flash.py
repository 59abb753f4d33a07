"""st-flash from stlink-tools (`apt-get install stlink-tools`): ST-LINK probes, raw binary."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.targets import TargetDescriptor

TIMEOUT_S = 120.0


def available(target: TargetDescriptor) -> str | None:
    if shutil.which("st-flash") is None:
        return "st-flash not found (apt-get install stlink-tools)"
    return None


def command(binary: Path, target: TargetDescriptor) -> list[str]:
    assert target.chip is not None
    return ["st-flash", "--reset", "write", str(binary), f"{target.chip.flash.origin:#010x}"]


def flash(elf: Path, target: TargetDescriptor, port: str) -> None:
    from harness.runners.flashers import FlashError, objcopy_binary

    try:
        proc = subprocess.run(command(objcopy_binary(elf, target), target), capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise FlashError(f"st-flash did not finish within {TIMEOUT_S:.0f} s") from e
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise FlashError(f"st-flash failed (exit {proc.returncode}): {tail}")
