"""pyOCD (Python API; `pip install tinyhil[board]`): CMSIS-DAP, ST-LINK and J-Link probes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from harness.targets import TargetDescriptor


def available(target: TargetDescriptor) -> str | None:
    if importlib.util.find_spec("pyocd") is None:
        return "pyocd not installed (pip install 'tinyhil[board]')"
    if target.chip is None or not target.chip.pyocd_target:
        return f"no pyocd_target in {target.path.name} [chip]"
    return None


def flash(elf: Path, target: TargetDescriptor, port: str) -> None:
    """Program ``elf`` through the first probe pyOCD finds, then reset and run."""
    from harness.runners.flashers import FlashError

    from pyocd.core.helpers import ConnectHelper  # type: ignore[import-not-found, unused-ignore]
    from pyocd.flash.file_programmer import FileProgrammer  # type: ignore[import-not-found, unused-ignore]

    assert target.chip is not None
    try:
        with ConnectHelper.session_with_chosen_probe(target_override=target.chip.pyocd_target,
                                                     auto_open=True, blocking=False) as session:
            if session is None:
                raise FlashError("pyocd: no debug probe found (is the board plugged in?)")
            FileProgrammer(session).program(str(elf), file_format="elf")
            session.target.reset()
    except FlashError:
        raise
    except Exception as e:  # pyOCD's own errors have no common public root
        raise FlashError(f"pyocd: flashing {elf.name} to {target.chip.pyocd_target} failed: {e}") from e
