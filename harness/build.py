"""Build a firmware image: toolchain lookup, generated linker script, compile + link, cache.

The pipeline stage between an engine's generated C and a runner:

    GeneratedModel + TargetDescriptor ─► build_firmware() ─► FirmwareImage (an ELF)

Sources are the engine's generated files and kernels, ``firmware_templates/common``
(main loop, DUT protocol, timing, stack painting), the CPU architecture's startup
(``firmware_templates/arch/<arch>``: cortex-m, riscv) and the board family's drivers
(``firmware_templates/boards/<family>``). The linker script is written from the
descriptor's flash and RAM, the real chip's sizes, so a model that would not fit
the chip fails here even when the emulated board has more memory.

Images are cached by the sha256 of everything that goes into them (every source
text, the linker script, the flags, the compiler's version): building the same
thing twice compiles nothing the second time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Protocol, Sequence

from harness.firmware import TEMPLATES, IOSpec
from harness.firmware import cache_dir as tinyhil_cache_dir
from harness.errors import BuildError, DoesNotFitError, ToolMissingError, UserInputError
from harness.model import Model
from harness.targets import TargetDescriptor

COMMON_DIR = TEMPLATES / "common"
BOARDS_DIR = TEMPLATES / "boards"
ARCH_DIR = TEMPLATES / "arch"

STACK_BYTES = 8 * 1024
OPT_FLAGS = ("-std=c99", "-O2", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra")
LINK_FLAGS = ("--specs=nano.specs", "-nostartfiles", "-Wl,--gc-sections")
# A per-layer profiling build (bench --profile): th_profile.h turns the engine's
# TH_LAYER_BEGIN/END hooks into time stamps (firmware_templates/common).
PROFILE_CFLAGS = ("-DTH_PROFILE", "-include", "th_profile.h")

ARM_GCC_PACKAGES = ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi")
QEMU_PACKAGES = ("qemu-system-arm",)
# qemu-system-<system> -> the Debian packages that ship it.
# Debian's qemu-system-xtensa has no ESP32 machine: Espressif's is found by harness.runners.espqemu.
QEMU_SYSTEMS = {"arm": QEMU_PACKAGES, "riscv32": ("qemu-system-misc",), "xtensa": ()}

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- tools

@dataclass(frozen=True)
class ToolchainSpec:
    """A cross toolchain: its program prefix, where it comes from, how it links."""

    prefix: str  # e.g. "arm-none-eabi-" (gcc, objcopy, size follow it)
    packages: tuple[str, ...]  # Debian packages; () when Debian does not ship it
    ldflags: tuple[str, ...]
    hint: str = ""  # how to get it when it is not packaged
    specs: tuple[str, ...] = ()  # gcc specs files the C library must provide
    # When the compiler is not here: "lx106", Debian's Xtensa compiler with tinyhil's
    # libgcc helpers (harness/lx106.py), which runs on the ESP32's and ESP32-S3's cores.
    fallback: str = ""


TOOLCHAINS = {
    "arm-none-eabi": ToolchainSpec("arm-none-eabi-", ARM_GCC_PACKAGES, LINK_FLAGS),
    # picolibc is Debian's C library for bare-metal RISC-V (no newlib there).
    "riscv64-unknown-elf": ToolchainSpec(
        "riscv64-unknown-elf-", ("gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf"),
        ("--specs=picolibc.specs", "-nostartfiles", "-Wl,--gc-sections"), specs=("picolibc.specs",)),
    # Espressif's compilers for ESP32 (LX6) and ESP32-S3 (LX7) come with ESP-IDF only;
    # without them, Debian's lx106 compiler (call0 code, a subset of both cores).
    "xtensa-esp32-elf": ToolchainSpec(
        "xtensa-esp32-elf-", (), ("-nostartfiles", "-Wl,--gc-sections"),
        hint="install ESP-IDF and run its export.sh (Debian does not package it)", fallback="lx106"),
    "xtensa-esp32s3-elf": ToolchainSpec(
        "xtensa-esp32s3-elf-", (), ("-nostartfiles", "-Wl,--gc-sections"),
        hint="install ESP-IDF and run its export.sh (Debian does not package it)", fallback="lx106"),
}


@dataclass(frozen=True)
class Toolchain:
    """The cross compiler and its binutils."""

    gcc: Path
    objcopy: Path
    size: Path
    version: str  # first line of `gcc --version`
    ldflags: tuple[str, ...] = LINK_FLAGS


@dataclass(frozen=True)
class System:
    """What tool lookup may touch; tests replace it to check the logic without installing."""

    which: Callable[[str], str | None] = shutil.which
    euid: Callable[[], int] = os.geteuid
    os_release: Callable[[], str] = lambda: _read_text("/etc/os-release")
    run: Callable[[list[str]], int] = lambda cmd: subprocess.run(
        cmd, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}).returncode
    say: Callable[[str], None] = print


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _is_debian_like(os_release: str) -> bool:
    ids: set[str] = set()
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids.update(value.strip().strip('"').split())
    return bool(ids & {"debian", "ubuntu"})


def ensure_tool(program: str, packages: Sequence[str], install: bool = True,
                system: System | None = None) -> Path:
    """Find ``program`` on PATH, apt-installing ``packages`` when allowed.

    Installs only as root on Debian/Ubuntu with apt-get available, and prints the
    exact apt-get line first. Otherwise raises ToolMissingError whose message is
    the command to run.
    """
    sys_ = system or System()
    found = sys_.which(program)
    if found:
        return Path(found)
    pkgs = " ".join(packages)
    can_install = (install and sys_.euid() == 0 and _is_debian_like(sys_.os_release())
                   and sys_.which("apt-get") is not None)
    if can_install:
        cmd = ["apt-get", "install", "-y", *packages]
        sys_.say(f"{program} not found; installing: {' '.join(cmd)}")
        status = sys_.run(cmd)
        if status != 0:  # a fresh machine may have no package lists yet
            sys_.say("apt-get install failed; refreshing package lists: apt-get update")
            sys_.run(["apt-get", "update"])
            status = sys_.run(cmd)
        found = sys_.which(program)
        if status == 0 and found:
            return Path(found)
        raise ToolMissingError(
            f"{program} still missing after `{' '.join(cmd)}` (exit {status}); "
            f"install it with: sudo apt-get install {pkgs}")
    raise ToolMissingError(f"{program} not found: install it with `sudo apt-get install {pkgs}`")


def find_toolchain(install: bool = True, system: System | None = None,
                   name: str = "arm-none-eabi") -> Toolchain:
    """The cross compiler ``name`` (a key of TOOLCHAINS) with its C library.

    Debian-packaged toolchains (arm-none-eabi + newlib, riscv64-unknown-elf +
    picolibc) are installed via apt-get when missing and allowed; the others
    (ESP-IDF's xtensa compilers) fall back to Debian's lx106 compiler (harness/lx106.py) or raise
    ToolMissingError saying where to get them.
    """
    sys_ = system or System()
    spec = TOOLCHAINS[name]
    program = f"{spec.prefix}gcc"
    if not spec.packages:
        found = sys_.which(program)
        if not found and spec.fallback == "lx106":
            from harness import lx106

            try:
                return lx106.find_toolchain(install, sys_)
            except ToolMissingError as e:
                raise ToolMissingError(f"{program} not found ({spec.hint}), and no fallback: {e}") from None
        if not found:
            raise ToolMissingError(f"{program} not found ({spec.hint})")
        gcc = Path(found)
    else:
        gcc = ensure_tool(program, spec.packages, install, sys_)
        if spec.specs and not _has_specs(gcc, spec.specs):
            # The compiler without its C library (e.g. only gcc-riscv64-unknown-elf).
            lib = [p for p in spec.packages if "gcc" not in p]
            gcc = ensure_tool(spec.specs[0], lib, install, _SpecsLookup(sys_, gcc))
            gcc = Path(sys_.which(program) or gcc)
    binutils = {}
    for tool in ("objcopy", "size"):
        path = sys_.which(f"{spec.prefix}{tool}")
        binutils[tool] = Path(path) if path else gcc.with_name(f"{spec.prefix}{tool}")
    return Toolchain(gcc, binutils["objcopy"], binutils["size"], _gcc_version(gcc), spec.ldflags)


def _has_specs(gcc: Path, specs: Sequence[str]) -> bool:
    """Whether gcc finds every specs file (`-print-file-name` echoes the bare name if not)."""
    for name in specs:
        try:
            out = subprocess.run([str(gcc), f"-print-file-name={name}"], capture_output=True,
                                 text=True).stdout.strip()
        except OSError:
            return False
        if not os.path.isabs(out):
            return False
    return True


class _SpecsLookup(System):
    """A System whose `which` finds a specs file through gcc, so ensure_tool can install it."""

    def __init__(self, base: System, gcc: Path) -> None:
        super().__init__(which=lambda name: str(gcc) if _has_specs(gcc, [name]) else None,
                         euid=base.euid, os_release=base.os_release, run=base.run, say=base.say)


def find_target_toolchain(target: TargetDescriptor, install: bool = True,
                          system: System | None = None) -> Toolchain:
    """The cross compiler for ``target``'s core."""
    return find_toolchain(install, system, target.toolchain)


def _gcc_version(gcc: Path) -> str:
    try:
        out = subprocess.run([str(gcc), "--version"], capture_output=True, text=True).stdout
    except OSError as e:
        raise ToolMissingError(f"{gcc}: cannot run ({e.strerror})") from e
    return out.splitlines()[0].strip() if out else "unknown"


def find_qemu(install: bool = True, system: System | None = None, qemu_system: str = "arm",
              machine: str = "") -> Path:
    """qemu-system-<qemu_system> (arm, riscv32), installed via apt-get when missing and allowed;
    xtensa: Espressif's QEMU with ``machine``, which the user installs
    (:func:`harness.runners.espqemu.find_qemu_xtensa`)."""
    if qemu_system == "xtensa":
        from harness.runners.espqemu import find_qemu_xtensa

        return find_qemu_xtensa(machine or "esp32")
    return ensure_tool(f"qemu-system-{qemu_system}", QEMU_SYSTEMS[qemu_system], install, system)


# --------------------------------------------------------------------------- image

@dataclass(frozen=True)
class FirmwareImage:
    """A linked firmware for one model on one target, and how it was made."""

    elf: Path
    target: str
    model: str
    model_sha256: str
    engine: str
    compiler: str  # compiler version string
    cflags: tuple[str, ...]
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    cache_hit: bool
    build_id: str = ""  # the cache key; the firmware names it in its boot banner (m-th-build-[id])


def linker_script(target: TargetDescriptor, stack_bytes: int = STACK_BYTES) -> str:
    """The target's memory map as a GNU ld script.

    FLASH and RAM are the real chip's regions. .data is stored in FLASH and copied
    to RAM at reset, .bss is zeroed, and the stack (fixed size) sits at the top of
    RAM, bounded by ``__th_stack_bottom``/``__th_stack_top`` for stack painting.
    When .data + .bss + stack exceed RAM, ld reports the RAM overflow.

    On Xtensa (Espressif's chips, loaded into SRAM by the ROM) "FLASH" is the IRAM
    the code runs from, which takes only 32-bit loads: constants go to RAM with the
    data, and .data needs no copy (the ROM loads every segment where it runs).
    """
    ram_loaded = target.arch == "xtensa"
    rodata_region = "RAM" if ram_loaded else "FLASH"
    data_load = "" if ram_loaded else " AT > FLASH"
    # Xtensa's l32r loads literals from below the code: each file's literal pool first.
    text_inputs = "*(.literal .text .literal.* .text.*)" if target.arch == "xtensa" else "*(.text .text.*)"
    return f"""/* Generated by tinyhil for target {target.name}: the real chip's memory map. */
ENTRY(th_reset_handler)

MEMORY
{{
    FLASH (rx) : ORIGIN = {target.flash.origin:#010x}, LENGTH = {target.flash.size}
    RAM (rw) : ORIGIN = {target.ram.origin:#010x}, LENGTH = {target.ram.size}
}}

__th_stack_size = {stack_bytes};

SECTIONS
{{
    .text :
    {{
        KEEP(*(.th_vectors))
        {text_inputs}
        . = ALIGN(4);
    }} > FLASH

    .rodata :
    {{
        *(.rodata .rodata.* .srodata .srodata.*)
        . = ALIGN(4);
    }} > {rodata_region}

    .ARM.exidx :
    {{
        *(.ARM.exidx .ARM.exidx.* .gnu.linkonce.armexidx.*)
    }} > FLASH

    .data :
    {{
        . = ALIGN(4);
        __th_data_start = .;
        *(.data .data.* .sdata .sdata.*)
        . = ALIGN(4);
        __th_data_end = .;
    }} > RAM{data_load}
    __th_data_load = LOADADDR(.data);

    .bss (NOLOAD) :
    {{
        . = ALIGN(4);
        __th_bss_start = .;
        *(.bss .bss.* .sbss .sbss.* COMMON)
        . = ALIGN(4);
        __th_bss_end = .;
    }} > RAM

    /* At the top of RAM when everything fits; right after .bss (and past the
     * end of RAM, so ld reports the overflow) when it does not. */
    .stack ALIGN(MAX(__th_bss_end, ORIGIN(RAM) + LENGTH(RAM) - __th_stack_size), 8) (NOLOAD) :
    {{
        __th_stack_bottom = .;
        . = . + __th_stack_size;
        __th_stack_top = .;
    }} > RAM
}}
"""


_DTYPES = {"int8": "TH_DTYPE_INT8", "uint8": "TH_DTYPE_UINT8", "int16": "TH_DTYPE_INT16",
           "int32": "TH_DTYPE_INT32", "float32": "TH_DTYPE_FLOAT32"}


def _output_spec(io: IOSpec) -> str:
    dtype = _DTYPES.get(io.dtype, "TH_DTYPE_RAW")
    scale = io.scale if io.scale is not None and dtype not in ("TH_DTYPE_FLOAT32", "TH_DTYPE_RAW") else 1.0
    zero_point = io.zero_point if io.scale is not None and io.zero_point is not None else 0
    # Thousandths of the real value in Q32: (q - zp) * this >> 32, integer math in C.
    q32 = min(round(scale * 1000 * 2**32), 2**46)
    return f"{{{dtype}, {zero_point}, INT64_C({q32})}}"


class FirmwareSources(Protocol):
    """What an engine hands build_firmware for one model (the builtin engine's
    GeneratedModel, the tflm engine's TflmModel)."""

    @property
    def model(self) -> Model: ...
    @property
    def sources(self) -> dict[str, str]: ...  # generated C files: name -> text
    @property
    def kernel_dir(self) -> Path: ...  # the engine's templates (on the include path)
    @property
    def arena_bytes(self) -> int: ...
    @property
    def inputs(self) -> tuple[IOSpec, ...]: ...
    @property
    def outputs(self) -> tuple[IOSpec, ...]: ...
    def kernel_sources(self) -> list[Path]: ...  # the engine's C sources to compile


@dataclass(frozen=True)
class CxxPart:
    """C++ an engine adds to a firmware (the tflm engine): compiled with the target's
    g++ and the firmware's flags, then linked with the engine's static libraries."""

    engine: str  # the engine's name, for the FirmwareImage
    sources: dict[str, str]  # generated C++ files: name -> text
    templates: tuple[Path, ...]  # the engine's C++ glue files
    cxxflags: tuple[str, ...]  # language flags and defines the libraries were built with
    system_includes: tuple[Path, ...]  # third-party headers (-isystem: their warnings are not ours)
    libraries: tuple[Path, ...]  # static libraries, linked after the objects
    key: str  # identifies what the libraries were built from (part of the cache key)
    link_libs: tuple[str, ...] = ("-lstdc++", "-lm")


def config_header(gen: FirmwareSources) -> str:
    """th_config.h: the facts about the model that the common firmware is compiled with."""
    specs = ", ".join(_output_spec(io) for io in gen.outputs)
    return f"""/* Generated by tinyhil: build configuration for {gen.model.name}. */
#ifndef TH_CONFIG_H
#define TH_CONFIG_H

#include <stdint.h>

#define TH_INPUT_BYTES {sum(io.nbytes for io in gen.inputs)}u
#define TH_OUTPUT_BYTES {sum(io.nbytes for io in gen.outputs)}u
/* Per output: element type, zero point, scale * 1000 in Q32 (see th_dut.h). */
#define TH_OUTPUT_SPECS {{{specs}}}
{mlperf_defines(gen)}
#endif /* TH_CONFIG_H */
"""


def mlperf_defines(gen: FirmwareSources) -> str:
    """What makes the firmware the MLPerf Tiny DUT the official runner expects for the
    four reference models (harness/mlperf.py): the benchmark id, and how the
    EnergyRunner bytes become the input (uint8 - 128; float32 quantized, with the
    scales the ad01 score needs)."""
    from harness.mlperf import input_wire, mlperf_id

    ident = mlperf_id(gen.model)
    if ident is None:
        return ""
    lines = [f"/* MLPerf Tiny {ident} (harness/mlperf.py). */", f'#define TH_MLPERF_ID "{ident}"']
    wire = input_wire(gen.model)
    i, o = gen.inputs[0], gen.outputs[0]
    if wire == "uint8":
        lines.append("#define TH_INPUT_WIRE_UINT8 1")
    elif wire == "float32" and len(gen.inputs) == 1 and i.dtype == "int8" and o.dtype == "int8" \
            and i.nbytes == o.nbytes and i.scale and o.scale:
        lines += ["#define TH_INPUT_WIRE_FLOAT32 1", f"#define TH_INPUT_ELEMENTS {i.nbytes}u",
                  f"#define TH_INPUT_SCALE {float(i.scale)!r}f", f"#define TH_INPUT_ZERO_POINT {i.zero_point or 0}",
                  f"#define TH_OUTPUT_SCALE {float(o.scale)!r}f", f"#define TH_OUTPUT_ZERO_POINT {o.zero_point or 0}"]
    return "\n".join(lines) + "\n"


def _template_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".c", ".h")) if directory.is_dir() else []


def _arch_dir(target: TargetDescriptor) -> Path:
    arch = ARCH_DIR / target.arch
    if not arch.is_dir():
        raise BuildError(f"{target.name}: no startup code for core {target.core!r} in {arch}")
    return arch


def compile_flags(target: TargetDescriptor) -> tuple[str, ...]:
    """Compiler flags for ``target`` (without include paths)."""
    defines = tuple(f"-D{k}={v}" for k, v in target.board_defines)
    return (*target.core_flags, *OPT_FLAGS, *defines)


# How a firmware is built for each kind of host: the emulator build is the
# descriptor's [board]; Renode and boards run the real chip's build ([chip]);
# a board build also times with the core's cycle counter at the chip's real
# clock (the board family's clock setup). Nothing else differs.
BUILD_VARIANTS = ("emulator", "chip", "board")


def variant_target(target: TargetDescriptor, variant: str) -> TargetDescriptor:
    """``target`` as its ``variant`` build sees it (a runner's ``build_variant``).

    "emulator" is the descriptor as is; "chip" the ``[chip]`` board family,
    defines and memory origins; "board" the chip build plus the cycle counter
    and clock setup defines (``TH_COUNTER_CYCLES``, ``TH_CLOCK_SETUP``, ``TH_CPU_HZ``).
    A target whose QEMU machine is the chip itself (``[qemu] boot = "rom"``,
    Espressif's QEMU) runs the board build there: its "emulator" build is "board".
    """
    if variant == "emulator":
        if target.qemu is None or target.qemu.boot != "rom":
            return target
        variant = "board"
    if variant not in BUILD_VARIANTS:
        raise ValueError(f"unknown build variant {variant!r} (known: {', '.join(BUILD_VARIANTS)})")
    chip = target.chip_target()
    if variant == "chip":
        return chip
    extra = [("TH_CPU_HZ", f"{target.clock_hz}u"), ("TH_CLOCK_SETUP", "1")]
    if target.has_cycle_counter:
        extra.append(("TH_COUNTER_CYCLES", "1"))
    return replace(chip, board_defines=(*chip.board_defines, *extra))


MANIFEST = "manifest.json"
CACHED_FILES = ("firmware.elf", "firmware.ld", "firmware.map")


def warn(message: str) -> None:
    """One warning line on stderr (a corrupt cache entry being rebuilt)."""
    print(f"warning: {message}", file=sys.stderr)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cache_entry_ok(out_dir: Path) -> bool:
    """A complete cache entry: its manifest names every file with the hash it has now."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
        return all(manifest.get(name) == _sha256(out_dir / name) for name in CACHED_FILES)
    except (OSError, ValueError, AttributeError):
        return False


def build_firmware(gen: FirmwareSources, target: TargetDescriptor, cache_dir: Path | None = None,
                   progress: Progress | None = None, toolchain: Toolchain | None = None,
                   stack_bytes: int = STACK_BYTES, extra_cflags: Sequence[str] = (),
                   cxx: CxxPart | None = None) -> FirmwareImage:
    """Compile and link ``gen`` for ``target``, or return the cached image.

    Args:
        gen: an engine's generated model (the builtin engine's GeneratedModel).
        target: the target descriptor (core, board family, memory map).
        cache_dir: where images are kept (default ``~/.cache/tinyhil/firmware``,
            under ``TINYHIL_CACHE`` when set); one directory per cache key.
        progress: called with one line per step.
        toolchain: the cross compiler (default: ``find_toolchain()``).
        stack_bytes: the stack reserved at the top of RAM.
        extra_cflags: appended to the compiler flags (e.g. ``-DTH_TEST_COMMANDS``).
        cxx: the engine's C++ part and libraries, if it has one (the tflm engine).

    Raises:
        BuildError: the compiler failed or warned, or the model does not fit the
            target's flash or RAM (the message says by how many bytes).
    """
    say = progress or (lambda _msg: None)
    isa = getattr(gen, "isa", "")
    if isa and isa != target.builtin_isa:
        raise BuildError(f"{target.name}: the model's C was generated for {isa} kernels, which its core "
                         f"({target.core}) lacks: generate it with isa={target.builtin_isa!r}")
    tc = toolchain or find_target_toolchain(target)
    arch = _arch_dir(target)
    board = BOARDS_DIR / target.board_family
    if not board.is_dir():
        raise BuildError(f"{target.name}: no board support in {board}")

    # Every source text by the name it is compiled under, in a fixed order.
    generated = dict(gen.sources)
    generated["th_config.h"] = config_header(gen)
    templates: dict[str, Path] = {}
    kernel_files = [*gen.kernel_sources(), *sorted(gen.kernel_dir.glob("*.h"))]
    if cxx is not None:
        generated.update(cxx.sources)
        kernel_files += cxx.templates
    for path in [*kernel_files, *_template_files(COMMON_DIR), *_template_files(arch),
                 *_template_files(board)]:
        if path.name in templates or path.name in generated:
            raise BuildError(f"two firmware sources named {path.name}: "
                             f"{templates.get(path.name, 'generated')} and {path}")
        templates[path.name] = path
    script = linker_script(target, stack_bytes)
    cflags = (*compile_flags(target), *extra_cflags)
    ldflags = tc.ldflags

    h = hashlib.sha256()
    for part in (tc.version, "\0".join(cflags), "\0".join(ldflags), script):
        h.update(part.encode() + b"\0\0")
    for name in sorted(generated):
        h.update(f"gen/{name}\0".encode() + generated[name].encode() + b"\0\0")
    for name in sorted(templates):
        h.update(f"tpl/{name}\0".encode() + templates[name].read_bytes() + b"\0\0")
    if cxx is not None:
        for part in (cxx.key, *cxx.cxxflags, *map(str, cxx.system_includes), *cxx.link_libs):
            h.update(f"cxx/{part}\0".encode())
    key = h.hexdigest()[:32]

    root = cache_dir if cache_dir is not None else tinyhil_cache_dir() / "firmware"
    out_dir = root / key
    elf = out_dir / "firmware.elf"
    image = FirmwareImage(
        elf=elf, target=target.name, model=gen.model.name, model_sha256=gen.model.sha256,
        engine=cxx.engine if cxx else "builtin", compiler=tc.version, cflags=cflags, arena_bytes=gen.arena_bytes,
        input_bytes=sum(io.nbytes for io in gen.inputs),
        output_bytes=sum(io.nbytes for io in gen.outputs), cache_hit=True, build_id=key,
    )
    if _cache_entry_ok(out_dir):
        say(f"firmware for {gen.model.name} on {target.name}: cached ({elf})")
        return image
    if out_dir.exists() and (elf.exists() or (out_dir / MANIFEST).exists()):
        warn(f"cached firmware {out_dir} is incomplete or corrupt (its files do not match their "
             "manifest): rebuilding it")
        for name in (MANIFEST, *CACHED_FILES):
            (out_dir / name).unlink(missing_ok=True)

    # Files first, the entry's manifest last; a full or read-only cache is one line.
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix="build-") as tmp:
            work = Path(tmp)
            gen_dir = work / "gen"
            gen_dir.mkdir()
            for name, text in generated.items():
                (gen_dir / name).write_text(text)
            (work / "firmware.ld").write_text(script)
            sources = sorted([gen_dir / n for n in generated if n.endswith(".c")]
                             + [p for n, p in templates.items() if n.endswith(".c")],
                             key=lambda p: p.name)
            includes = [f"-I{d}" for d in (gen_dir, gen.kernel_dir, COMMON_DIR, arch, board)]
            objects = _compile_cxx(cxx, tc, cflags, includes, gen_dir, work) if cxx else []
            libs = [*map(str, cxx.libraries), *cxx.link_libs] if cxx else []
            tmp_elf = work / "firmware.elf"
            # The build id is the key itself (not part of it): th_dut.c prints it at boot.
            cmd = [str(tc.gcc), *cflags, f'-DTH_BUILD_ID="{key}"', *includes, *map(str, sources), *objects, *libs,
                   *ldflags, f"-T{work / 'firmware.ld'}", f"-Wl,-Map={work / 'firmware.map'}", "-o", str(tmp_elf)]
            say(f"compiling {len(sources)} sources for {target.name} ({target.mcpu})")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            overflow = _overflow(proc.stderr)
            if overflow:
                raise DoesNotFitError(f"{gen.model.name} does not fit {target.name}: {overflow} "
                                      f"(the real chip's limits from {target.path.name})")
            if proc.returncode != 0:
                raise BuildError(f"firmware build of {gen.model.name} for {target.name} failed "
                                 f"(exit {proc.returncode})", cmd, proc.stderr)
            if proc.stderr.strip():
                # The firmware and generated code must build warning-free.
                raise BuildError(f"firmware build of {gen.model.name} for {target.name} produced "
                                 "compiler warnings", cmd, proc.stderr)
            for name in CACHED_FILES:  # the ELF is firmware.elf in work too
                os.replace(work / name, out_dir / name)
            # Last: the manifest of the entry's files and their hashes; a hit checks it.
            manifest = work / MANIFEST
            manifest.write_text(json.dumps({name: _sha256(out_dir / name) for name in CACHED_FILES}, indent=1))
            os.replace(manifest, out_dir / MANIFEST)
    except OSError as e:
        raise BuildError(f"cannot write the firmware cache {out_dir} ({e.strerror}): free some space or set "
                         "TINYHIL_CACHE to a writable directory with room") from None
    say(f"firmware for {gen.model.name} on {target.name}: {elf}")
    return replace(image, cache_hit=False)


def check_cache_writable() -> Path:
    """The build cache (``TINYHIL_CACHE``, else ~/.cache/tinyhil), created and written to once
    before any work: a read-only or missing place is exit 2 now, not a traceback after minutes."""
    root = tinyhil_cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-check-"):
            pass
    except OSError as e:
        raise UserInputError(f"the build cache {root} is not writable ({e.strerror}): set TINYHIL_CACHE to a "
                             "writable directory") from None
    return root




def _compile_cxx(cxx: CxxPart, tc: Toolchain, cflags: tuple[str, ...], includes: list[str],
                 gen_dir: Path, work: Path) -> list[str]:
    """Compile an engine's C++ (generated and glue) with the firmware's flags; the objects."""
    gxx = tc.gcc.with_name(tc.gcc.name.replace("gcc", "g++"))
    flags = [f for f in cflags if not f.startswith("-std=")]
    system = [f"-isystem{d}" for d in cxx.system_includes]
    objects = []
    for src in [*(gen_dir / n for n in sorted(cxx.sources)), *cxx.templates]:
        if src.suffix != ".cc":
            continue
        obj = work / (src.stem + ".o")
        cmd = [str(gxx), *flags, *cxx.cxxflags, *includes, *system, "-c", str(src), "-o", str(obj)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or proc.stderr.strip():
            # Like the C part, the glue must build warning-free.
            raise BuildError(f"compiling {src.name} ({cxx.engine} engine) failed"
                             + ("" if proc.returncode else " with warnings"), cmd, proc.stderr)
        objects.append(str(obj))
    return objects


_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")


def _overflow(stderr: str) -> str:
    """ld's region overflows as "FLASH overflowed by N bytes; RAM ...", or ""."""
    seen: dict[str, int] = {}
    for region, n in _OVERFLOW.findall(stderr):
        seen[region] = max(seen.get(region, 0), int(n))
    return "; ".join(f"{r} overflowed by {n} bytes" for r, n in seen.items())
