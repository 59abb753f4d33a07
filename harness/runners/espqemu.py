"""Espressif's QEMU for the ESP32: find the one the user installed, make the flash image it boots.

Espressif's fork of QEMU (github.com/espressif/qemu; ESP-IDF installs it with
``idf_tools.py install qemu-xtensa``) has the ``esp32`` machine: the chip's ROM
(its ``esp32-v3-rom.bin`` comes with that QEMU), UART0, the clock tree, an SPI
flash. It is in no package registry and tinyhil never builds or vendors it: it
uses the ``qemu-system-xtensa`` named with ``--qemu-xtensa PATH`` (or
``TINYHIL_QEMU_XTENSA``), else the one on PATH, and checks that it has the
machine (Debian's ``qemu-system-xtensa`` has none).

The machine boots like a devkit: the ROM reads an esptool image from flash
(``esptool elf2image``, at ``[chip] flash_offset``: 0x1000 on the ESP32), loads
its segments into SRAM and jumps to the entry. ``-kernel`` does not start it.
The runner (:mod:`harness.runners.qemu`) passes the image as
``-drive file=...,if=mtd,format=raw``; everything else is the same QEMU session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from harness.errors import RunnerError, ToolMissingError, UserInputError
from harness.targets import TargetDescriptor

ENV = "TINYHIL_QEMU_XTENSA"
PROGRAM = "qemu-system-xtensa"
FLASH_BYTES = 4 * 1024 * 1024  # the devkits' 4 MB flash; QEMU takes 2, 4, 8 or 16 MB
HOW_TO_GET = ("Espressif's QEMU: install it with ESP-IDF's tools (`python $IDF_PATH/tools/idf_tools.py install "
              "qemu-xtensa`) or build github.com/espressif/qemu, then name it with --qemu-xtensa PATH or "
              f"{ENV} (Debian's {PROGRAM} has no ESP32 machine)")


@lru_cache(maxsize=8)
def machines(qemu: str) -> frozenset[str]:
    """The machine names ``qemu -machine help`` lists (empty when it does not run)."""
    try:
        out = subprocess.run([qemu, "-machine", "help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(line.split()[0] for line in out.splitlines()[1:] if line.strip())


def _named(value: str) -> Path:
    """``--qemu-xtensa``/TINYHIL_QEMU_XTENSA: the program, or a directory holding it (or its bin/)."""
    path = Path(value).expanduser()
    for candidate in (path, path / PROGRAM, path / "bin" / PROGRAM):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise UserInputError(f"{ENV}={value} (or --qemu-xtensa): no {PROGRAM} there "
                         "(give the program or the directory holding it)")


def _on_path() -> list[Path]:
    """Every qemu-system-xtensa on PATH, in order (Debian's may come before Espressif's)."""
    found: list[Path] = []
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        hit = shutil.which(PROGRAM, path=directory) if directory else None
        if hit and Path(hit).resolve() not in {p.resolve() for p in found}:
            found.append(Path(hit))
    return found


def find_qemu_xtensa(machine: str = "esp32") -> Path:
    """Espressif's qemu-system-xtensa with ``machine``: ``TINYHIL_QEMU_XTENSA`` (set by
    ``--qemu-xtensa``), else the first on PATH that has the machine. ToolMissingError
    says how to get one."""
    named = os.environ.get(ENV)
    candidates = [_named(named)] if named else _on_path()
    for qemu in candidates:
        if machine in machines(str(qemu)):
            return qemu
    if not candidates:
        raise ToolMissingError(f"{PROGRAM} not found: the {machine} target runs under {HOW_TO_GET}")
    listed = ", ".join(str(q) for q in candidates)
    raise ToolMissingError(f"{listed}: no {machine} machine (`{PROGRAM} -machine help`): "
                           f"the {machine} target runs under {HOW_TO_GET}")


def flash_image(elf: Path, target: TargetDescriptor) -> Path:
    """The whole SPI flash the chip boots from: the esptool image of ``elf`` at the
    chip's flash offset, erased (0xFF) elsewhere. Made next to the ELF once."""
    from harness.runners.flashers.esptool import esptool_command

    chip = target.chip
    if chip is None or not chip.esptool_chip:
        raise RunnerError(f"{target.path.name}: [qemu] boot = \"rom\" needs [chip] esptool_chip and flash_offset")
    out = elf.with_name(f"{elf.stem}.{chip.esptool_chip}-flash.bin")
    if out.is_file() and out.stat().st_mtime_ns >= elf.stat().st_mtime_ns:
        return out
    with tempfile.TemporaryDirectory(dir=elf.parent, prefix=".esptool-") as tmp:
        app = Path(tmp) / "app.bin"
        cmd = [*esptool_command(chip.esptool_chip), "elf2image", "--flash-mode", "dio", "--flash-freq", "40m",
               "--flash-size", "4MB", "-o", str(app), str(elf)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RunnerError(f"esptool elf2image did not run: {e}") from None
        if proc.returncode != 0:
            if "No module named esptool" in proc.stderr:
                raise ToolMissingError("esptool is not installed in tinyhil's Python: pip install esptool")
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise RunnerError(f"esptool elf2image failed on {elf} (exit {proc.returncode}): {tail}")
        data = app.read_bytes()
        if chip.flash_offset + len(data) > FLASH_BYTES:
            raise RunnerError(f"the image of {elf} ({len(data)} bytes) does not fit the 4 MB flash")
        image = b"\xff" * chip.flash_offset + data
        tmp_out = Path(tmp) / "flash.bin"
        tmp_out.write_bytes(image + b"\xff" * (FLASH_BYTES - len(image)))
        os.replace(tmp_out, out)
    return out
