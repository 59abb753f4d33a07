"""Target descriptors: `targets/*.toml` loaded and checked into frozen dataclasses.

A descriptor is data, not code: core, clock, the real chip's memory, how QEMU
hosts it, the board family whose C support it uses, and the figures (with
their sources) behind the latency and energy estimates. Optional tables say
how the other runners host it: ``[chip]`` (the real chip's build and its
flashers, for boards), ``[renode]`` (the Renode platform and UART),
``[labgrid]`` (the places of a labgrid farm that have the chip); any
runner's table may instead hold only ``unsupported = "why"``. Every field is checked
once here; unknown keys are rejected, and errors name the file and the field:

    DescriptorError: targets/foo.toml: memory.ram_kb: expected integer, got "320k"
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from harness.cycles import CORES_DIR, CycleModelError, MemorySystem, parse_memory_system
from harness.errors import UserInputError
from harness.firmware import TEMPLATES, package_data

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TARGETS_DIR = package_data("targets")
FLASHERS_DIR = Path(__file__).resolve().parent / "runners" / "flashers"

@dataclass(frozen=True)
class Core:
    """A CPU core: its firmware architecture, compiler and cycle counter."""

    arch: str  # firmware_templates/arch/<arch>: startup, CPU helpers, cycle counter
    toolchain: str  # a key of harness.build.TOOLCHAINS
    cflags: tuple[str, ...]  # -mcpu/-march, ABI, FPU
    cycle_counter: str  # the hardware cycle counter on silicon, "" when the core has none
    mve: bool = False  # Helium (M-profile Vector Extension): the builtin engine's --isa mve kernels


def _cortex_m(mcpu: str, fpu: tuple[str, ...], dwt: bool, mve: bool = False) -> Core:
    return Core("cortex-m", "arm-none-eabi", (f"-mcpu={mcpu}", "-mthumb", *fpu),
                "DWT CYCCNT" if dwt else "", mve)


CORES = {
    "cortex-m0plus": _cortex_m("cortex-m0plus", (), False),
    "cortex-m3": _cortex_m("cortex-m3", (), True),
    "cortex-m4": _cortex_m("cortex-m4", ("-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), True),
    "cortex-m7": _cortex_m("cortex-m7", ("-mfloat-abi=hard", "-mfpu=fpv5-d16"), True),
    "cortex-m33": _cortex_m("cortex-m33", ("-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"), True),
    # -mcpu=cortex-m55 alone means +mve.fp and the FPv5 double-precision FPU
    # (__ARM_FEATURE_MVE 3, __ARM_FEATURE_DSP 1); Debian's newlib links it from
    # its v8-m.main+dp/hard multilib (the v8.1-m.main+mve one needs -march).
    "cortex-m55": _cortex_m("cortex-m55", ("-mfloat-abi=hard",), True, mve=True),
    # ESP32-C3's core. RV32IMC with Zicsr, spelled for ISA spec 2.2 (where I
    # includes Zicsr) because Debian's multilib list maps only "rv32imc" to its
    # rv32im/ilp32 picolibc and libgcc, not "rv32imc_zicsr": same code either way.
    # Its cycle counter on silicon is Espressif's performance counter CSR (mpccr).
    "rv32imc": Core("riscv", "riscv64-unknown-elf", ("-march=rv32imc", "-mabi=ilp32", "-misa-spec=2.2"),
                    "mpccr (ESP32-C3) / mcycle"),
    # ESP32 (LX6) and ESP32-S3 (LX7): ESP-IDF's compilers carry each chip's core configuration.
    "xtensa-lx6": Core("xtensa", "xtensa-esp32-elf", ("-mlongcalls",), "CCOUNT"),
    "xtensa-lx7": Core("xtensa", "xtensa-esp32s3-elf", ("-mlongcalls",), "CCOUNT"),
}

def runner_tables() -> dict[str, str]:
    """Registered runner name -> the descriptor table that enables it (harness.runners)."""
    from harness import runners

    return {k.name: k.table for k in runners.kinds()}


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
    # timer's rate turns its ticks into instructions (e.g. 25 MHz -> 40; the
    # ESP32's CCOUNT at 240 MHz -> 25/6, written "25/6" in the descriptor).
    instructions_per_tick: int | Fraction
    # When the QEMU machine is not the target chip itself, this says what it is.
    proxy: str = ""
    system: str = "arm"  # qemu-system-<system>, from the core's architecture
    # "kernel": the emulator build, loaded with -kernel. "rom": the machine is the
    # chip itself (Espressif's QEMU): the board build ([chip] layout, clock setup)
    # boots through the chip's ROM from an esptool flash image (harness/runners/espqemu.py).
    boot: str = "kernel"


@dataclass(frozen=True)
class ChipBuild:
    """The real chip's firmware (board and Renode runs) and how to flash it.

    A target whose QEMU machine is a core proxy (stm32f746 on mps2-an500) has
    other board support and another flash address on silicon; the sizes stay
    the descriptor's ``[memory]``.
    """

    family: str  # firmware_templates/boards/<family>
    defines: tuple[tuple[str, str], ...]
    flash: MemoryRegion
    ram: MemoryRegion
    flashers: tuple[str, ...]  # harness/runners/flashers/<name>.py, tried in order
    pyocd_target: str = ""  # pyOCD's target name (`pyocd list --targets`)
    openocd_config: str = ""  # an OpenOCD config file, e.g. board/stm32f7discovery.cfg
    esptool_chip: str = ""  # esptool's --chip
    flash_offset: int = 0  # where esptool writes the image


@dataclass(frozen=True)
class RenodeHost:
    """How Renode hosts the target's chip build."""

    platform: str  # a .repl path inside Renode, e.g. platforms/boards/stm32f7_discovery-bb.repl
    uart: str  # the peripheral the DUT protocol speaks on, e.g. sysbus.usart1
    # Peripherals the chip has and the platform lacks (a .repl snippet loaded after it),
    # e.g. the STM32F746 platform's missing TIM2, the firmware's timer.
    repl: str = ""


@dataclass(frozen=True)
class Power:
    """Active power used for the energy estimate, and where the figure comes from."""

    active_mw: float | None  # None: no datasheet figure, so no energy estimate (the source says why)
    source: str


@dataclass(frozen=True)
class CycleModelSpec:
    """The timing model of a target (``[cycle_model]``): the core's timing table
    (harness/cycles/cores/<table>.toml) and the memory system in the QEMU build's
    address map; ``unsupported`` says why a target has none."""

    table: str
    memory: MemorySystem
    source: str
    unsupported: str = ""


# Board families with EnergyRunner's timestamp pin (th_board.h, TH_ENERGY_MODE): the
# GPIO ports each has (firmware_templates/common/th_stm32_timestamp.h and the family's file).
ENERGY_FAMILIES = {"stm32f4": "ABCDEFGHI", "stm32f7": "ABCDEFGHIJK", "stm32l4": "ABCDEFGHI"}
ENERGY_DRIVES = ("open-drain", "push-pull")


@dataclass(frozen=True)
class EnergyPin:
    """EnergyRunner's energy-mode timestamp pin (``[energy]``): in an energy build
    (``-DTH_ENERGY_MODE``) th_timestamp() pulls it low instead of printing m-lap-us,
    and the energy monitor timestamps the falling edges. On the real chip ([chip])."""

    port: str  # GPIO port letter, "A".."K"
    pin: int  # 0..15
    source: str  # where the pin comes from (the board's user manual)
    drive: str = "open-drain"  # or "push-pull" (-DTH_TIMESTAMP_PUSH_PULL)

    @property
    def name(self) -> str:
        """The pin as ST writes it, e.g. "PF13"."""
        return f"P{self.port}{self.pin}"

    @property
    def defines(self) -> tuple[tuple[str, str], ...]:
        """The chip build's -D for the pin: TH_TIMESTAMP_PORT (0 = A) and TH_TIMESTAMP_PIN."""
        out = [("TH_TIMESTAMP_PORT", str(ord(self.port) - ord("A"))), ("TH_TIMESTAMP_PIN", str(self.pin))]
        if self.drive == "push-pull":
            out.append(("TH_TIMESTAMP_PUSH_PULL", "1"))
        return tuple(out)


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
    cycle_model: CycleModelSpec
    qemu: QemuHost | None
    chip: ChipBuild | None = None
    renode: RenodeHost | None = None
    energy: EnergyPin | None = None  # [energy]: EnergyRunner's timestamp pin on the real chip
    # Why a runner cannot host this target, from the descriptor's
    # `unsupported = "..."` in that runner's table (or the table's absence).
    unsupported: tuple[tuple[str, str], ...] = ()
    # The tables of runners this module does not parse itself (a registered runner's
    # own table, read by that runner): (table name, its raw contents).
    runner_data: tuple[tuple[str, Any], ...] = ()
    # [labgrid] places: the labgrid places (of a coordinator's) that have this chip, for
    # --runner labgrid without --place.
    labgrid_places: tuple[str, ...] = ()

    @property
    def arch(self) -> str:
        return CORES[self.core].arch

    @property
    def toolchain(self) -> str:
        return CORES[self.core].toolchain

    @property
    def core_flags(self) -> tuple[str, ...]:
        return CORES[self.core].cflags

    @property
    def mcpu(self) -> str:
        """The core as the compiler names it (-mcpu= or -march= value)."""
        flag = CORES[self.core].cflags[0]
        return flag.split("=", 1)[1] if "=" in flag else flag

    @property
    def has_cycle_counter(self) -> bool:
        return bool(CORES[self.core].cycle_counter)

    @property
    def builtin_isa(self) -> str:
        """The instruction set the builtin engine's kernels use on this core
        (harness.engines.builtin.codegen.ISAS): "mve" where the core has Helium."""
        return "mve" if CORES[self.core].mve else ""

    @property
    def runners(self) -> tuple[str, ...]:
        """Runners the descriptor supports (whether their tools are here is harness.hosting's job)."""
        present = {"qemu": self.qemu is not None, "renode": self.renode is not None, "chip": self.chip is not None}
        present.update({t: True for t, _ in self.runner_data})
        unsupported = dict(self.unsupported)
        return tuple(r for r, table in runner_tables().items() if present.get(table) and r not in unsupported)

    def why_not(self, runner: str) -> str:
        """The descriptor's reason ``runner`` cannot host this target ("" when it can)."""
        if runner in self.runners:
            return ""
        table = runner_tables().get(runner, runner)
        return dict(self.unsupported).get(runner, f"no [{table}] table in {self.path.name}")

    def chip_target(self) -> "TargetDescriptor":
        """This target as built for the real chip (board and Renode runs)."""
        if self.chip is None:
            raise DescriptorError(f"{self.path}: no [chip] table: {self.why_not('board')}")
        defines = self.chip.defines + (self.energy.defines if self.energy is not None else ())
        return replace(self, board_family=self.chip.family, board_defines=defines,
                       flash=self.chip.flash, ram=self.chip.ram)




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


def _ratio(t: _Fields, key: str) -> int | Fraction:
    """A positive integer, or an exact ratio written as a string "p/q" (e.g. "25/6")."""
    value = t.table.get(key)
    if isinstance(value, str):
        t.used.add(key)
        try:
            ratio = Fraction(value.replace(" ", ""))
        except (ValueError, ZeroDivisionError):
            raise t.fail(key, f'expected an integer or a ratio "p/q", got {value!r}') from None
        if ratio <= 0:
            raise t.fail(key, f"must be positive, got {value!r}")
        return ratio.numerator if ratio.denominator == 1 else ratio
    return int(t.positive(key))


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
    family = _family(board)
    defines = _defines(board)
    board.done()

    memory = f.sub("memory")
    assert memory is not None
    flash, ram = _memory(memory, "flash"), _memory(memory, "ram")
    memory.done()

    power_t = f.sub("power")
    assert power_t is not None
    active_mw = power_t.positive("active_mw", float) if "active_mw" in power_t.table else None
    power = Power(active_mw, power_t.get("source", str))
    power_t.done()

    if "cost_model" in f.table:
        raise f.fail("cost_model", "replaced by [cycle_model]: the timing model's memory regions (wait "
                                   "states, caches) and core table; see docs/cycle-model.md")
    cm_t = f.sub("cycle_model", required=False)
    if cm_t is None and not (CORES_DIR / f"{core}.toml").is_file():
        cm_t = _Fields(p, {"unsupported": f"no timing table for core {core} (harness/cycles/cores)"}, "cycle_model.")
    if cm_t is None:
        # No memory timing given: the core's table over the descriptor's flash and RAM, zero wait.
        cm_t = _Fields(p, {"regions": [
            {"name": "flash", "origin": flash.origin, "size_kb": flash.size // 1024},
            {"name": "ram", "origin": ram.origin, "size_kb": ram.size // 1024}],
            "source": "no [cycle_model] in the descriptor: zero-wait-state flash and RAM assumed"}, "cycle_model.")
    if "unsupported" in cm_t.table:
        cycle_model = CycleModelSpec("", MemorySystem(()), "", cm_t.get("unsupported", str))
    else:
        try:
            memory_system = parse_memory_system(cm_t.table, str(p))
        except CycleModelError as e:
            raise DescriptorError(str(e)) from e
        cycle_model = CycleModelSpec(cm_t.get("core", str, core), memory_system, cm_t.get("source", str))
        for key in ("regions", "caches"):
            cm_t.get(key, list if key == "regions" else dict, None)
    cm_t.done()

    unsupported: list[tuple[str, str]] = []

    def host_table(key: str, runner: str) -> _Fields | None:
        """A runner's table, or None (recording its `unsupported = "why"` if it says so)."""
        t = f.sub(key, required=False)
        if t is not None and "unsupported" in t.table:
            unsupported.append((runner, t.get("unsupported", str)))
            t.done()
            return None
        return t

    qemu = None
    qemu_t = host_table("qemu", "qemu")
    if qemu_t is not None:
        system = {"cortex-m": "arm", "riscv": "riscv32", "xtensa": "xtensa"}.get(CORES[core].arch)
        if system is None:
            raise qemu_t.fail("machine", f"QEMU hosts no {CORES[core].arch} core here; "
                                         'say why with unsupported = "..." instead')
        boot = qemu_t.get("boot", str, "kernel")
        if boot not in ("kernel", "rom"):
            raise qemu_t.fail("boot", f'must be "kernel" or "rom", got {boot!r}')
        if (boot == "rom") != (system == "xtensa"):
            raise qemu_t.fail("boot", 'boot = "rom" is for Espressif\'s Xtensa machines (an esptool image '
                                      "through the chip's ROM), and those boot only that way")
        qemu = QemuHost(qemu_t.get("machine", str), _ratio(qemu_t, "instructions_per_tick"),
                        qemu_t.get("proxy", str, ""), system, boot)
        qemu_t.done()

    if qemu is not None and qemu.boot == "rom" and "chip" not in f.table:
        raise DescriptorError(f'{p}: [qemu] boot = "rom" runs the [chip] build: add a [chip] table')

    chip = None
    chip_t = host_table("chip", "board")
    if chip_t is not None:
        flashers = chip_t.get("flashers", list)
        if not flashers or not all(isinstance(x, str) for x in flashers):
            raise chip_t.fail("flashers", f"expected a non-empty array of flasher names, got {flashers!r}")
        known = sorted(p.stem.replace("_", "-") for p in FLASHERS_DIR.glob("*.py") if p.stem != "__init__")
        for x in flashers:
            if x not in known:
                raise chip_t.fail("flashers", f"unknown flasher {x!r} (known: {', '.join(known)})")
        chip = ChipBuild(
            family=_family(chip_t), defines=_defines(chip_t),
            flash=MemoryRegion(chip_t.get("flash_origin", int, flash.origin),
                               chip_t.get("flash_kb", int, flash.size // 1024) * 1024),
            ram=MemoryRegion(chip_t.get("ram_origin", int, ram.origin),
                             chip_t.get("ram_kb", int, ram.size // 1024) * 1024),
            flashers=tuple(flashers), pyocd_target=chip_t.get("pyocd_target", str, ""),
            openocd_config=chip_t.get("openocd_config", str, ""),
            esptool_chip=chip_t.get("esptool_chip", str, ""),
            flash_offset=chip_t.get("flash_offset", int, 0))
        chip_t.done()

    renode = None
    renode_t = host_table("renode", "renode")
    if renode_t is not None:
        renode = RenodeHost(renode_t.get("platform", str), renode_t.get("uart", str), renode_t.get("repl", str, ""))
        renode_t.done()
        if chip is None:
            raise renode_t.fail("platform", "Renode runs the chip build: the descriptor needs a [chip] table")

    labgrid_places: tuple[str, ...] = ()
    labgrid_t = f.sub("labgrid", required=False)
    if labgrid_t is not None:
        places = labgrid_t.get("places", list)
        if not places or not all(isinstance(x, str) and x.strip() for x in places):
            raise labgrid_t.fail("places", f"expected a non-empty array of labgrid place names, got {places!r}")
        labgrid_places = tuple(places)
        labgrid_t.done()
        if chip is None:
            raise labgrid_t.fail("places", "a labgrid place runs the chip build: the descriptor needs a [chip] table")

    energy = None
    energy_t = f.sub("energy", required=False)
    if energy_t is not None:
        energy = _energy_pin(energy_t, chip)
        energy_t.done()

    # Other registered runners' tables: kept as they are for that runner to read.
    runner_data = []
    for runner, table in runner_tables().items():
        if table in ("qemu", "renode", "chip") or table not in f.table:
            continue
        extra = f.sub(table)
        assert extra is not None
        if "unsupported" in extra.table:
            unsupported.append((runner, extra.get("unsupported", str)))
        else:
            runner_data.append((table, dict(extra.table)))

    target = TargetDescriptor(
        name=name, path=p, description=f.get("description", str, ""), core=core,
        clock_hz=clock_hz, board_family=family, board_defines=defines,
        flash=flash, ram=ram, power=power, cycle_model=cycle_model, qemu=qemu, chip=chip, renode=renode,
        energy=energy, unsupported=tuple(unsupported), runner_data=tuple(runner_data),
        labgrid_places=labgrid_places,
    )
    f.done()
    if p.stem != name:
        raise f.fail("name", f"{name!r} must match the file name {p.stem!r}")
    return target


def _family(t: _Fields) -> str:
    family: str = t.get("family", str)
    if not (TEMPLATES / "boards" / family).is_dir():
        raise t.fail("family", f"no board support in firmware_templates/boards/{family}")
    return family


def _defines(t: _Fields) -> tuple[tuple[str, str], ...]:
    out = []
    for k, v in t.get("defines", dict, {}).items():
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise t.fail(f"defines.{k}", f"expected string or integer, got {v!r}")
        out.append((k, hex(v) if isinstance(v, int) else v))
    return tuple(out)


_PIN = re.compile(r"P([A-Z])([0-9]{1,2})")


def _energy_pin(t: _Fields, chip: ChipBuild | None) -> EnergyPin:
    """``[energy]``: the timestamp pin, checked against the chip's board family."""
    text: str = t.get("timestamp_pin", str)
    source: str = t.get("source", str)
    drive: str = t.get("drive", str, "open-drain")
    m = _PIN.fullmatch(text.strip().upper())
    if m is None:
        raise t.fail("timestamp_pin", f'expected a GPIO pin like "PF13" (P, the port letter, the pin '
                                      f"number 0-15), got {text!r}")
    port, pin = m.group(1), int(m.group(2))
    if chip is None:
        raise t.fail("timestamp_pin", "the timestamp pin is on the real chip: the descriptor needs a [chip] table")
    ports = ENERGY_FAMILIES.get(chip.family)
    if ports is None:
        raise t.fail("timestamp_pin", f"board family {chip.family} has no energy-mode timestamp pin support "
                                      f"(families with it: {', '.join(ENERGY_FAMILIES)})")
    if port not in ports:
        raise t.fail("timestamp_pin", f"{text!r}: the {chip.family} family has no GPIO port {port} "
                                      f"(ports {ports[0]}-{ports[-1]})")
    if pin > 15:
        raise t.fail("timestamp_pin", f"{text!r}: pin {pin} does not exist (a GPIO port has pins 0-15)")
    if drive not in ENERGY_DRIVES:
        raise t.fail("drive", f"expected one of {', '.join(ENERGY_DRIVES)}, got {drive!r}")
    if not source.strip():
        raise t.fail("source", "empty: say where the pin comes from (the board's user manual)")
    return EnergyPin(port, pin, source, drive)


def energy_defines(target: TargetDescriptor) -> list[str]:
    """The compiler flags of an energy-mode build (``tinyhil build --energy``):
    ``-DTH_ENERGY_MODE=1`` and the timestamp pin's ``-DTH_TIMESTAMP_PORT/PIN``, for
    ``build_firmware(..., extra_cflags=energy_defines(target))`` of the target's chip
    or board build (``variant_target(target, "board")``). The pin's defines already
    in ``target.board_defines`` (the chip build carries them) are not repeated.

    Raises:
        UserInputError: the target has no ``[energy]`` timestamp pin.
    """
    if target.energy is None:
        raise UserInputError(
            f"{target.name}: no energy-mode timestamp pin: {target.path.name} has no [energy] table "
            '(timestamp_pin = "P<port><pin>", the GPIO the energy monitor timestamps); energy mode is '
            f"for board targets with one: {', '.join(t.name for t in _energy_targets()) or 'none'}")
    have = dict(target.board_defines)
    return ["-DTH_ENERGY_MODE=1", *(f"-D{k}={v}" for k, v in target.energy.defines if have.get(k) != v)]


def _energy_targets() -> list[TargetDescriptor]:
    try:
        return [t for t in available_targets() if t.energy is not None]
    except DescriptorError:
        return []


def available_targets(directory: Path = TARGETS_DIR) -> list[TargetDescriptor]:
    """Every descriptor tinyhil carries; none at all is a broken installation, not an
    empty list (a wheel built without its package data)."""
    found = [load_target(p) for p in sorted(directory.glob("*.toml"))]
    if not found:
        raise DescriptorError(f"no target descriptors (*.toml) in {directory}: this tinyhil installation is "
                              "incomplete; reinstall it (pip install --force-reinstall tinyhil)")
    return found


def find_target(name_or_path: str, directory: Path = TARGETS_DIR) -> TargetDescriptor:
    """A target by name (targets/<name>.toml) or by descriptor path."""
    if name_or_path.endswith(".toml"):
        return load_target(name_or_path)
    path = directory / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.toml")))
        raise DescriptorError(f"unknown target {name_or_path!r} (known: {known}; or give a .toml path)")
    return load_target(path)
