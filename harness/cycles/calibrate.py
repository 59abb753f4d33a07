"""Per-chip corrections of the timing model, fitted against a board's cycle counter.

``tinyhil calibrate --target T --port P`` (harness.cli) runs the microbenchmarks on
the board (DWT cycles) and under QEMU with the model, fits per-class cycle costs
and stores them as an override of the target's timing table:
``$TINYHIL_CALIBRATION_DIR/<target>.toml`` (default ``~/.config/tinyhil/cycles``).
Every later run on that target uses the override; its rows' ``cycle_model`` says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def calibration_dir() -> Path:
    base = os.environ.get("TINYHIL_CALIBRATION_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "tinyhil" / "cycles"


def override_path(target_name: str) -> Path:
    return calibration_dir() / f"{target_name}.toml"


def load_override(target_name: str, table: Any) -> dict[str, int]:
    """Class -> cycles of a stored calibration of ``target_name`` for this table, else {}."""
    from harness.cycles import CycleModelError

    path = override_path(target_name)
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CycleModelError(f"{path}: cannot read the calibration override ({e}); delete it or run "
                              "tinyhil calibrate again") from e
    if data.get("core") != table.core:
        raise CycleModelError(f"{path}: calibrated for core {data.get('core')!r}, the target's table is "
                              f"{table.core!r}; delete it or run tinyhil calibrate again")
    costs = data.get("classes", {})
    if not isinstance(costs, dict) or not all(isinstance(v, int) and v >= 0 for v in costs.values()):
        raise CycleModelError(f"{path}: [classes] must map class names to non-negative integer cycles")
    return {str(k): int(v) for k, v in costs.items()}
