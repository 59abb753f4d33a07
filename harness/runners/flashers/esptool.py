"""esptool (`pip install esptool`): ESP32 family over the board's own serial port.

The ELF becomes an ESP image (`esptool elf2image`), written where the
chip's ROM loader looks (``[chip] flash_offset``), then the chip is reset
through the USB-serial bridge's DTR/RTS lines.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from harness.targets import TargetDescriptor

TIMEOUT_S = 180.0


def available(target: TargetDescriptor) -> str | None:
    if importlib.util.find_spec("esptool") is None:
        return "esptool not installed (pip install esptool)"
    if target.chip is None or not target.chip.esptool_chip:
        return f"no esptool_chip in {target.path.name} [chip]"
    return None


def esptool_command(chip: str) -> list[str]:
    """esptool for ``chip``, run by tinyhil's own Python (a dependency: no PATH lookup)."""
    return [sys.executable, "-m", "esptool", "--chip", chip]


def commands(elf: Path, target: TargetDescriptor, port: str) -> list[list[str]]:
    assert target.chip is not None
    image = elf.with_suffix(".esp.bin")
    esptool = esptool_command(target.chip.esptool_chip)
    return [
        [*esptool, "elf2image", "--output", str(image), str(elf)],
        [*esptool, "--port", port, "--before", "default_reset", "--after", "hard_reset",
         "write_flash", f"{target.chip.flash_offset:#x}", str(image)],
    ]


def flash(elf: Path, target: TargetDescriptor, port: str) -> None:
    from harness.runners.flashers import FlashError

    for step, cmd in zip(("elf2image", "write_flash"), commands(elf, target, port)):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise FlashError(f"esptool {step} did not finish within {TIMEOUT_S:.0f} s") from e
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise FlashError(f"esptool {step} failed (exit {proc.returncode}): {tail}")
