"""OpenOCD (`apt-get install openocd`): program, verify, reset, exit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.targets import TargetDescriptor

TIMEOUT_S = 120.0


def available(target: TargetDescriptor) -> str | None:
    if shutil.which("openocd") is None:
        return "openocd not found (apt-get install openocd)"
    if target.chip is None or not target.chip.openocd_config:
        return f"no openocd_config in {target.path.name} [chip]"
    return None


def command(elf: Path, target: TargetDescriptor) -> list[str]:
    assert target.chip is not None
    return ["openocd", "-f", target.chip.openocd_config,
            "-c", f"program {elf} verify reset exit"]


def flash(elf: Path, target: TargetDescriptor, port: str) -> None:
    from harness.runners.flashers import FlashError

    try:
        proc = subprocess.run(command(elf, target), capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise FlashError(f"openocd did not finish within {TIMEOUT_S:.0f} s") from e
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise FlashError(f"openocd failed (exit {proc.returncode}): {tail}")
