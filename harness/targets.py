"""Target descriptors: `targets/*.toml` loaded and checked into frozen dataclasses.

A descriptor is data, not code: core, clock, the real chip's memory, how QEMU
hosts it, the board family whose C support it uses, and the figures (with
their sources) behind the latency and energy estimates. Every field is checked
once here; unknown keys are rejected, and errors name the file and the field:

    DescriptorError: targets/foo.toml: memory.ram_kb: expected integer, got "320k"
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TARGETS_DIR = Path(__file__).resolve().parents[1] / "targets"

CORES = {
    # core: (gcc -mcpu, FPU flags for gcc, has DWT cycle counter)
    "cortex-m0plus": ("cortex-m0plus", (), False),
    "cortex-m3": ("cortex-m3", (), True),
    "cortex-m4": ("cortex-m4", ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), True),
    "cortex-m7": ("cortex-m7", ("-mfloat-abi=hard", "-mfpu=fpv5-d16"), True),
    "cortex-m33": ("cortex-m33", ("-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"), True),
    "cortex-m55": ("cortex-m55", ("-mfloat-abi=hard",), True),
}


class DescriptorError(UserInputError):
    """A target descriptor file or field is wrong."""


@dataclass(frozen=True)
class MemoryRegion:
    """A memory region of the real chip (the linker script enforces its size)."""

    origin: int
    size: int  # bytes


@dataclass(frozen=True)
class QemuHost:
    """How QEMU hosts the target."""

    machine: str  # -M value
    # Under `-icount shift=0` one instruction is 1 ns of virtual time; the board
    # timer's rate turns its ticks into instructions (e.g. 25 MHz -> 40).
    instructions_per_tick: int
    # When the QEMU machine is not the target chip itself, this says what it is.
    proxy: str = ""


@dataclass(frozen=True)
class Power:
    """Active power used for the energy estimate, and where the figure comes from."""

    active_mw: float
    source: str


@dataclass(frozen=True)
class CostModel:
    """est_cycles = instructions x cpi; the factor and its source."""

    cpi: float
    source: str


@dataclass(frozen=True)
class TargetDescriptor:
    """One target: everything the build, the runners and the metrics need."""

    name: str
    path: Path
    description: str
    core: str
    clock_hz: int
    board_family: str  # firmware_templates/boards/<family>
    board_defines: tuple[tuple[str, str], ...]  # -D for the board family's C code
    flash: MemoryRegion
    ram: MemoryRegion
    power: Power
    cost: CostModel
    qemu: QemuHost | None

    @property
    def mcpu(self) -> str:
        return CORES[self.core][0]

    @property
    def fpu_flags(self) -> tuple[str, ...]:
        return CORES[self.core][1]

    @property
    def has_cycle_counter(self) -> bool:
        return CORES[self.core][2]

    @property
    def runners(self) -> tuple[str, ...]:
        return ("qemu",) if self.qemu else ()


class _Fields:
    """Typed access to one TOML table, naming file and dotted key on errors."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str = "") -> None:
        self.path, self.table, self.prefix = path, table, prefix
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, why: str) -> DescriptorError:
        return DescriptorError(f"{self.path}: {self._key(key)}: {why}")

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise self.fail(key, "missing (required)")
            return default
        value = self.table[key]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            names = {int: "integer", float: "number", str: "string", dict: "table", list: "array"}
            raise self.fail(key, f"expected {names.get(kind, kind.__name__)}, got {value!r}")
        return value

    def sub(self, key: str, required: bool = True) -> "_Fields | None":
        table = self.get(key, dict, ... if required else None)
        if table is None:
            return None
        return _Fields(self.path, table, f"{self._key(key)}.")

    def positive(self, key: str, kind: type = int) -> Any:
        value = self.get(key, kind)
        if value <= 0:
            raise self.fail(key, f"must be positive, got {value!r}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.fail(unknown[0], f"unknown key (known: {', '.join(sorted(self.used))})")


def _memory(f: _Fields, key: str) -> MemoryRegion:
    m = f.sub(key)
    assert m is not None
    region = MemoryRegion(m.get("origin", int), m.positive("size_kb") * 1024)
    m.done()
    return region


def load_target(path: str | Path) -> TargetDescriptor:
    """Load and check one descriptor file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except OSError as e:
        raise DescriptorError(f"{p}: cannot read target descriptor ({e.strerror})") from e
    except tomllib.TOMLDecodeError as e:
        raise DescriptorError(f"{p}: not valid TOML ({e})") from e

    f = _Fields(p, data)
    name = f.get("name", str)
    core = f.get("core", str)
    if core not in CORES:
        raise f.fail("core", f"unknown core {core!r} (known: {', '.join(CORES)})")
    clock_hz = int(f.positive("clock_mhz", float) * 1_000_000)

    board = f.sub("board")
    assert board is not None
    family = board.get("family", str)
    if not (TARGETS_DIR.parent / "firmware_templates" / "boards" / family).is_dir():
        raise board.fail("family", f"no board support in firmware_templates/boards/{family}")
    defines_table = board.get("defines", dict, {})
    defines = []
    for k, v in defines_table.items():
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise board.fail(f"defines.{k}", f"expected string or integer, got {v!r}")
        defines.append((k, hex(v) if isinstance(v, int) else v))
    board.done()

    memory = f.sub("memory")
    assert memory is not None
    flash, ram = _memory(memory, "flash"), _memory(memory, "ram")
    memory.done()

    power_t = f.sub("power")
    assert power_t is not None
    power = Power(power_t.positive("active_mw", float), power_t.get("source", str))
    power_t.done()

    cost_t = f.sub("cost_model")
    assert cost_t is not None
    cost = CostModel(cost_t.positive("cpi", float), cost_t.get("source", str))
    cost_t.done()

    qemu = None
    qemu_t = f.sub("qemu", required=False)
    if qemu_t is not None:
        qemu = QemuHost(qemu_t.get("machine", str), qemu_t.positive("instructions_per_tick"),
                        qemu_t.get("proxy", str, ""))
        qemu_t.done()

    target = TargetDescriptor(
        name=name, path=p, description=f.get("description", str, ""), core=core,
        clock_hz=clock_hz, board_family=family, board_defines=tuple(defines),
        flash=flash, ram=ram, power=power, cost=cost, qemu=qemu,
    )
    f.done()
    if p.stem != name:
        raise f.fail("name", f"{name!r} must match the file name {p.stem!r}")
    return target


def available_targets(directory: Path = TARGETS_DIR) -> list[TargetDescriptor]:
    return [load_target(p) for p in sorted(directory.glob("*.toml"))]


def find_target(name_or_path: str, directory: Path = TARGETS_DIR) -> TargetDescriptor:
    """A target by name (targets/<name>.toml) or by descriptor path."""
    if name_or_path.endswith(".toml"):
        return load_target(name_or_path)
    path = directory / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.toml")))
        raise DescriptorError(f"unknown target {name_or_path!r} (known: {known}; or give a .toml path)")
    return load_target(path)
