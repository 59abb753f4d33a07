"""Shared fixtures: where ../shared lives, and a bit-exactness helper."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.datasets import random_samples
from harness.engines.builtin.check import CheckResult, check_model
from harness.model import load_model

REPO = Path(__file__).resolve().parents[1]
def _shared() -> Path:
    """TINYHIL_SHARED, else ../shared, else what `tinyhil models fetch` fetched (same layout)."""
    if os.environ.get("TINYHIL_SHARED"):
        return Path(os.environ["TINYHIL_SHARED"])
    if (REPO.parent / "shared" / "models").is_dir():
        return REPO.parent / "shared"
    from harness.models import cache_root

    return cache_root()


SHARED = _shared()
MODELS = SHARED / "models" / "mlperf_tiny"
DATASETS = SHARED / "datasets"


def pytest_configure(config: pytest.Config) -> None:
    """The default test session runs firmware under QEMU. As `tinyhil bench` does,
    install arm-none-eabi-gcc/newlib and qemu-system-arm from Debian when they are
    missing and we are root there; elsewhere the qemu tests skip, naming the command."""
    from harness.build import find_qemu, find_toolchain
    from harness.errors import ToolMissingError

    try:
        find_toolchain()
        find_qemu()
    except ToolMissingError:
        pass
    # RISC-V (esp32c3 under QEMU's riscv32 virt): riscv64-unknown-elf-gcc +
    # picolibc and qemu-system-misc, the same way.
    try:
        find_toolchain(name="riscv64-unknown-elf")
        find_qemu(qemu_system="riscv32")
    except ToolMissingError:
        pass


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--board", metavar="TARGET",
                     help="run the `board` tests on a physical board of this target (e.g. stm32f746)")
    parser.addoption("--board-port", metavar="URL",
                     help="the board's serial port for --board (/dev/ttyACM0, rfc2217://host:port)")


@pytest.fixture
def shared_models() -> Path:
    if not MODELS.is_dir():
        pytest.skip(f"MLPerf Tiny models not found at {MODELS} (set TINYHIL_SHARED)")
    return MODELS


@pytest.fixture
def shared_datasets() -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"datasets not found at {DATASETS} (set TINYHIL_SHARED)")
    return DATASETS


def check_synthetic(raw: bytes, tmp_path: Path, name: str = "synth", count: int = 8, seed: int = 0) -> CheckResult:
    """Write ``raw`` as a .tflite, run it through the builtin engine and TFLM, assert equality."""
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(raw)
    model = load_model(path)
    result = check_model(model, random_samples(model, count, seed))
    assert result.ok, f"{name}: max abs diff {result.max_abs_diff} on {result.mismatched_samples[:5]}"
    return result


@pytest.fixture(scope="session")
def arm_tools() -> tuple[str, str]:
    """arm-none-eabi-gcc and qemu-system-arm; installed from Debian when we are root
    there (as `tinyhil bench` does), else the test skips with the install command."""
    from harness.build import find_qemu, find_toolchain
    from harness.errors import ToolMissingError

    try:
        return str(find_toolchain().gcc), str(find_qemu())
    except ToolMissingError as e:
        pytest.skip(str(e))
