"""ESP32 firmware with Debian's Xtensa compiler, and the libgcc helpers it lacks.

ESP-IDF's compilers (``xtensa-esp32-elf-gcc``, ``xtensa-esp32s3-elf-gcc``) come
with ESP-IDF only. Debian packages one Xtensa compiler, ``gcc-xtensa-lx106``
(the ESP8266's LX106 core, call0 ABI) with ``picolibc-xtensa-lx106-elf``. Its
instructions are a subset of the ESP32's LX6 and the ESP32-S3's LX7, and its
call0 code runs on them (tinyhil's startup takes over from the ROM loader;
``firmware_templates/arch/xtensa``). Its ``libgcc.a`` lacks 32-bit division,
64-bit multiply and divide and soft-float add/multiply/convert, which gcc
emits calls to, so an image linked against it alone jumps to address 0.

:func:`helper_library` fills the gap the way the plugin of the cycle model is
made: built here on first use, cached by what goes into it. The 32-bit and
soft-float helpers are gcc's own, ``libgcc/config/xtensa/lib1funcs.S`` and
``ieee754-{sf,df}.S`` from Debian's ``gcc-<major>-source`` package (the same
gcc release as the compiler), assembled for the LX106 options
(``firmware_templates/arch/xtensa/lx106/xtensa-config.h``); the 64-bit integer
helpers are a few lines of C (``th_libgcc_di.c``). Every member is archived
only when the compiler's libgcc does not define its symbols, so nothing is
defined twice.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import BuildError, ToolMissingError
from harness.firmware import TEMPLATES

if TYPE_CHECKING:
    from harness.build import System, Toolchain

PREFIX = "xtensa-lx106-elf-"
PACKAGES = ("gcc-xtensa-lx106", "picolibc-xtensa-lx106-elf")
HELPER_DIR = TEMPLATES / "arch" / "xtensa" / "lx106"
C_HELPERS = HELPER_DIR / "th_libgcc_di.c"
CONFIG_HEADER = HELPER_DIR / "xtensa-config.h"
# gcc's libgcc/config/xtensa/t-xtensa, LIB1ASMFUNCS: one object each (-DL<name>).
LIB1_MEMBERS = (
    "_mulsi3", "_divsi3", "_modsi3", "_udivsi3", "_umodsi3", "_umulsidi3", "_clz", "_clzsi2", "_ctzsi2",
    "_ffssi2", "_ashldi3", "_ashrdi3", "_lshrdi3", "_bswapsi2", "_bswapdi2",
    "_negsf2", "_addsubsf3", "_mulsf3", "_divsf3", "_cmpsf2", "_fixsfsi", "_fixsfdi", "_fixunssfsi",
    "_fixunssfdi", "_floatsisf", "_floatunsisf", "_floatdisf", "_floatundisf",
    "_negdf2", "_addsubdf3", "_muldf3", "_divdf3", "_cmpdf2", "_fixdfsi", "_fixdfdi", "_fixunsdfsi",
    "_fixunsdfdi", "_floatsidf", "_floatunsidf", "_floatdidf", "_floatundidf", "_truncdfsf2", "_extendsfdf2",
)
LIB1_SOURCES = ("lib1funcs.S", "ieee754-sf.S", "ieee754-df.S")
C_MEMBERS = ("muldi3", "udivdi3", "umoddi3", "divdi3", "moddi3")


def picolibc_specs(gcc: Path) -> Path:
    """picolibc's specs file for this compiler (Debian puts it beside the target's libraries)."""
    return gcc.resolve().parent.parent / "lib" / "xtensa-lx106-elf" / "picolibc.specs"


def _gcc_major(gcc: Path) -> str:
    out = subprocess.run([str(gcc), "-dumpversion"], capture_output=True, text=True).stdout.strip()
    return out.split(".")[0] if out else "12"


def source_tarball(major: str) -> Path | None:
    """Debian's gcc-<major>-source tarball, if that package is installed."""
    found = sorted(Path(f"/usr/src/gcc-{major}").glob(f"gcc-{major}*.tar.xz"))
    return found[0] if found else None


def find_source(gcc: Path, install: bool, system: "System") -> Path:
    """The gcc source tarball matching ``gcc``, apt-installing gcc-<major>-source when allowed."""
    from harness.build import ensure_tool

    major = _gcc_major(gcc)
    package = f"gcc-{major}-source"
    name = f"/usr/src/gcc-{major}/gcc-{major}*.tar.xz"

    def which(program: str) -> str | None:
        if program == name:
            found = source_tarball(major)
            return str(found) if found else None
        return system.which(program)

    try:
        return ensure_tool(name, (package,), install, replace(system, which=which))
    except ToolMissingError:
        raise ToolMissingError(
            f"the ESP32 build with Debian's xtensa-lx106-elf-gcc needs gcc's own Xtensa helpers "
            f"(Debian's lx106 libgcc lacks division and soft-float): sudo apt-get install {package}") from None


def _defined_symbols(nm: Path, path: Path) -> set[str]:
    out = subprocess.run([str(nm), "--defined-only", "-g", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise BuildError(f"{nm.name} could not read {path}", [str(nm), str(path)], out.stderr)
    return {parts[-1] for parts in (line.split() for line in out.stdout.splitlines()) if len(parts) >= 3}


def _extract(tarball: Path, dest: Path) -> None:
    """libgcc/config/xtensa's lib1funcs.S and ieee754-*.S out of the gcc source tarball."""
    wanted = {f"libgcc/config/xtensa/{n}" for n in LIB1_SOURCES}
    try:
        with tarfile.open(tarball, "r:xz") as tar:
            for member in tar:
                rel = member.name.partition("/")[2]
                if rel in wanted and member.isfile():
                    f = tar.extractfile(member)
                    assert f is not None
                    (dest / Path(rel).name).write_bytes(f.read())
                    wanted.discard(rel)
                    if not wanted:
                        return
    except (OSError, tarfile.TarError, EOFError) as e:
        raise BuildError(f"cannot read {tarball} ({e}): reinstall it with "
                         f"sudo apt-get install --reinstall {tarball.parent.name}-source") from None
    raise BuildError(f"{tarball} has no {', '.join(sorted(wanted))}: not a gcc source tarball with Xtensa support")


def helper_library(gcc: Path, tarball: Path, cache_dir: Path | None = None) -> Path:
    """The archive of helpers ``gcc``'s libgcc lacks, built on first use and cached."""
    from harness.firmware import cache_dir as default_cache

    nm = gcc.with_name(f"{PREFIX}nm")
    ar = gcc.with_name(f"{PREFIX}ar")
    version = subprocess.run([str(gcc), "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    stat = tarball.stat()
    h = hashlib.sha256()
    for part in (*version, tarball.name, str(stat.st_size), CONFIG_HEADER.read_text(), C_HELPERS.read_text(),
                 " ".join(LIB1_MEMBERS), " ".join(C_MEMBERS)):
        h.update(part.encode() + b"\0")
    key = h.hexdigest()[:16]
    root = (cache_dir or default_cache()) / "lx106-libgcc"
    lib = root / f"libtinyhil_lx106-{key}.a"
    if lib.is_file():
        return lib
    libgcc = Path(subprocess.run([str(gcc), "-print-libgcc-file-name"], capture_output=True,
                                 text=True).stdout.strip())
    have = _defined_symbols(nm, libgcc)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix="build-") as tmp:
        work = Path(tmp)
        _extract(tarball, work)
        (work / "xtensa-config.h").write_text(CONFIG_HEADER.read_text())
        jobs = [(m, ["-x", "assembler-with-cpp", f"-DL{m}", str(work / "lib1funcs.S")]) for m in LIB1_MEMBERS]
        jobs += [(f"_{m}", ["-std=c99", "-Wall", "-Wextra", f"-DTH_L_{m}", str(C_HELPERS)]) for m in C_MEMBERS]
        objects = []
        for member, args in jobs:
            obj = work / f"{member}.o"
            cmd = [str(gcc), "-c", "-O2", f"-I{work}", *args, "-o", str(obj)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or proc.stderr.strip():
                raise BuildError(f"libgcc helper {member} for {gcc.name} did not build", cmd, proc.stderr)
            symbols = _defined_symbols(nm, obj)
            if symbols and not symbols & have:  # only what libgcc lacks: nothing defined twice
                objects.append(str(obj))
        tmp_lib = work / lib.name
        cmd = [str(ar), "rcs", str(tmp_lib), *objects]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError("could not archive the lx106 libgcc helpers", cmd, proc.stderr)
        os.replace(tmp_lib, lib)
    return lib


def find_toolchain(install: bool, system: "System") -> "Toolchain":
    """Debian's lx106 compiler with picolibc and the helper archive, installed when allowed."""
    from harness.build import Toolchain, _gcc_version, ensure_tool

    gcc = ensure_tool(f"{PREFIX}gcc", PACKAGES, install, system)
    specs = picolibc_specs(gcc)
    if not specs.is_file():  # the compiler without its C library
        ensure_tool(str(specs), PACKAGES[1:], install,
                    replace(system, which=lambda p: p if Path(p).is_file() else None))
    lib = helper_library(gcc, find_source(gcc, install, system))
    ldflags = (f"--specs={specs}", "-nostartfiles", "-Wl,--gc-sections",
               "-Wl,--start-group", str(lib), "-lgcc", "-lc", "-Wl,--end-group")
    return Toolchain(gcc, gcc.with_name(f"{PREFIX}objcopy"), gcc.with_name(f"{PREFIX}size"),
                     f"{_gcc_version(gcc)} + tinyhil libgcc helpers ({lib.stem.rpartition('-')[2]})", ldflags)
