"""Compile TFLM into a static library for one core, cached.

The file list mirrors what TFLM's Makefile compiles into
``libtensorflow-microlite.a`` for ``TARGET=cortex_m_generic``
(``tensorflow/lite/micro/tools/make/{Makefile,sources.inc}``):

* the TfLite core it shares (every ``.cc``/``.c`` under ``tensorflow/`` outside
  ``tensorflow/lite/micro`` and ``tensorflow/lite/experimental``, without
  ``tensorflow/lite/array.cc``);
* ``tensorflow/lite/micro/*.cc`` and its ``arena_allocator``, ``memory_planner``
  and ``tflite_bridge`` directories, without tests and benchmarks;
* the kernels listed in ``sources.inc`` (``MICROLITE_CC_KERNEL_SRCS``), read from
  the tree itself; with ``--kernels cmsis-nn`` each one that has a file of the
  same name in ``kernels/cmsis_nn/`` is replaced by it (TFLM's
  ``specialize_files.py``), and CMSIS-NN's ``Source/**.c`` (int8/int16 only, as
  TFLM builds it: ``ARM_NN_ENABLE_F16=0``, ``ARM_NN_ENABLE_F32=0``) is added;
* ``cortex_m_generic/debug_log.cc`` instead of ``debug_log.cc`` (the log goes to
  a callback the firmware registers).

Not compiled: the signal-processing kernels (``signal/``, which need kissfft) and
``cortex_m_generic/micro_time.cc`` (a DWT timer that needs CMSIS device headers;
tinyhil times with the board's timer, TFLM's own timing stays the generic stub).

Flags are TFLM's (``-DTF_LITE_STATIC_MEMORY``, no RTTI or exceptions, C++17,
``-funsigned-char`` as cortex_m_generic sets it, ...) with the target core's
``-mcpu``/FPU flags, all at ``-O2``: TFLM's Makefile builds its core at ``-Os``
and its kernels at ``-O2``; tinyhil benchmarks everything at ``-O2`` (at ``-Os``
the reference kernels are 2-5x slower). The library is cached by the compiler,
the flags, the kernels and the content of every source and header it is built
from, so a second bench compiles nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.build import System, ensure_tool
from harness.firmware import cache_dir
from harness.engines.tflm.trees import TflmTrees
from harness.errors import BuildError, UserInputError

KERNELS = ("ref", "cmsis-nn")

OPT_LEVEL = "-O2"
# TFLM's Makefile COMMON_FLAGS (+ cortex_m_generic's PLATFORM_FLAGS), warnings left out,
# for BUILD_TYPE=release_with_logs (-DNDEBUG), the build type TFLM's Makefile suggests
# for benchmarking: the default build keeps every TFLITE_DCHECK, and the reference
# kernels' Offset() checks made KWS 4.6x slower on Cortex-M4 (199 M instructions, not 43 M).
COMMON_FLAGS = (
    "-fno-unwind-tables", "-fno-asynchronous-unwind-tables", "-ffunction-sections",
    "-fdata-sections", "-fmessage-length=0", "-fomit-frame-pointer", "-funsigned-char",
    "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DTF_LITE_MCU_DEBUG_LOG", "-DNDEBUG",
)
CXX_FLAGS = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
C_FLAGS = ("-std=c17",)
# OPTIMIZED_KERNEL_DIR=cmsis_nn adds -DCMSIS_NN; ext_libs/cmsis_nn.inc the rest.
CMSIS_NN_FLAGS = ("-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0")

# gcc 12 (Debian's arm-none-eabi 12.2) if-converts float conversions into IT blocks
# on MVE cores and emits `vcvtne.f32.s32`, which its assembler rejects ("syntax error":
# TFLM's resize_nearest_neighbor.cc on -mcpu=cortex-m55). No if-conversion, no IT-block VCVT.
MVE_WORKAROUND_FLAGS = ("-fno-if-conversion", "-fno-if-conversion2")

# arm-none-eabi-g++ comes with gcc-arm-none-eabi; its C++ headers and libstdc++ do not.
CXX_PACKAGES = ("libstdc++-arm-none-eabi-newlib",)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TflmLibrary:
    """A built (or cached) TFLM static library and what code linking it must share."""

    archive: Path
    key: str
    kernels: str
    core_flags: tuple[str, ...]
    cxxflags: tuple[str, ...]  # language flags and defines the glue must be compiled with
    include_dirs: tuple[Path, ...]
    sources: int  # files compiled into it
    build_seconds: float  # of the build that made it (also when this call was a cache hit)
    cache_hit: bool


def core_flags_of(cflags: tuple[str, ...]) -> tuple[str, ...]:
    """The machine flags (-mcpu, -mthumb, -mfloat-abi, -mfpu, ...) out of a firmware's flags."""
    return tuple(f for f in cflags if f.startswith("-m"))


def ensure_cxx(gcc: Path, install: bool = True) -> Path:
    """arm-none-eabi-g++ with its C++ headers (apt-installed like the C toolchain when allowed)."""
    gxx = gcc.with_name(gcc.name.replace("gcc", "g++"))

    def usable(_program: str) -> str | None:
        try:
            probe = subprocess.run([str(gxx), "-x", "c++", "-fsyntax-only", "-"], input="#include <new>\n",
                                   capture_output=True, text=True)
        except OSError:
            return None
        return str(gxx) if probe.returncode == 0 else None

    return ensure_tool(f"{gxx.name} with the C++ library", CXX_PACKAGES, install, System(which=usable))


def include_dirs(trees: TflmTrees, kernels: str) -> tuple[Path, ...]:
    dirs = [trees.tflm, trees.path("flatbuffers") / "include", trees.path("gemmlowp"), trees.path("ruy")]
    if kernels == "cmsis-nn":
        dirs += [trees.path("cmsis-nn"), trees.path("cmsis-nn") / "Include"]
    return tuple(dirs)


def _kernel_list(tflm: Path) -> list[str]:
    """MICROLITE_CC_KERNEL_SRCS from the tree's own sources.inc."""
    inc = tflm / "tensorflow/lite/micro/tools/make/sources.inc"
    try:
        text = inc.read_text()
    except OSError as e:
        raise BuildError(f"cannot read TFLM's kernel list {inc}: {e.strerror}") from e
    m = re.search(r"^MICROLITE_CC_KERNEL_SRCS\s*:=\s*\\\n((?:.*\\\n)*.*\n)", text, re.M)
    files = re.findall(r"\$\(TENSORFLOW_ROOT\)(\S+\.cc)", m.group(1)) if m else []
    if not files:
        raise BuildError(f"{inc}: no MICROLITE_CC_KERNEL_SRCS list found (a TFLM layout tinyhil does not know)")
    return files


def _skip(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name.endswith("_test.cc") or name.endswith("benchmark.cc")


def library_sources(trees: TflmTrees, kernels: str) -> list[Path]:
    """Every file the library compiles, in a fixed order."""
    if kernels not in KERNELS:
        raise UserInputError(f"--kernels {kernels!r}: expected one of {', '.join(KERNELS)}")
    tflm = trees.tflm
    core: list[str] = []
    for p in sorted((tflm / "tensorflow").rglob("*")):
        rel = p.relative_to(tflm).as_posix()
        if p.suffix not in (".cc", ".c") or not p.is_file() or _skip(rel):
            continue
        if rel.startswith(("tensorflow/lite/micro/", "tensorflow/lite/experimental/")):
            continue
        if rel == "tensorflow/lite/array.cc":  # excluded under TF_LITE_STATIC_MEMORY
            continue
        core.append(rel)
    for sub in ("", "arena_allocator/", "memory_planner/", "tflite_bridge/"):
        for p in sorted((tflm / "tensorflow/lite/micro" / sub).glob("*.cc")):
            rel = p.relative_to(tflm).as_posix()
            if not _skip(rel):
                core.append(rel)
    # cortex_m_generic's DebugLog (a callback) replaces the stdio one.
    core = ["tensorflow/lite/micro/cortex_m_generic/debug_log.cc"
            if r == "tensorflow/lite/micro/debug_log.cc" else r for r in core]
    files = [tflm / r for r in core]
    cmsis_dir = tflm / "tensorflow/lite/micro/kernels/cmsis_nn"
    for rel in _kernel_list(tflm):
        special = cmsis_dir / Path(rel).name
        files.append(special if kernels == "cmsis-nn" and special.is_file() else tflm / rel)
    if kernels == "cmsis-nn":
        nn = trees.path("cmsis-nn")
        for p in sorted((nn / "Source").rglob("*.c")):
            if p.name.endswith(("_f16.c", "_f32.c")) or p.name == "arm_nntables_flt.c":
                continue
            files.append(p)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise BuildError(f"TFLM sources missing from {tflm}: {', '.join(missing[:5])}")
    return files


def _tree_relative(path: Path, trees: TflmTrees) -> str:
    """``<tree>/<path inside it>``: the same wherever the trees live."""
    for name, root in trees.paths:
        try:
            return f"{name}/" + path.relative_to(root).as_posix()
        except ValueError:
            continue
    return path.as_posix()


def _fingerprint(files: list[Path], dirs: tuple[Path, ...], trees: TflmTrees) -> str:
    """sha256 over every compiled file and every header the include dirs offer."""
    h = hashlib.sha256()
    headers: set[Path] = set()
    for d in dirs:
        sub = d / "tensorflow" if (d / "tensorflow").is_dir() else d
        headers.update(p for p in sub.rglob("*.h") if p.is_file())
    for p in [*files, *sorted(headers)]:
        h.update(_tree_relative(p, trees).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _object_name(path: Path, trees: TflmTrees) -> str:
    return _tree_relative(path, trees).replace("/", "__").rsplit(".", 1)[0] + ".o"


def build_library(trees: TflmTrees, kernels: str, core_flags: tuple[str, ...], gcc: Path, compiler: str,
                  progress: Progress | None = None, jobs: int | None = None,
                  root: Path | None = None) -> TflmLibrary:
    """Compile TFLM for ``core_flags`` with ``kernels``, or return the cached library.

    Args:
        trees: the located source trees.
        kernels: "ref" (TFLM's reference kernels) or "cmsis-nn".
        core_flags: the target's machine flags (-mcpu, -mthumb, FPU and ABI).
        gcc: arm-none-eabi-gcc (g++ and ar are found next to it).
        compiler: its version string (part of the cache key).
        progress: called with a line per step (the first build takes minutes).
        jobs: parallel compiler processes (default: the CPU count).
        root: the cache directory (default ``~/.cache/tinyhil/tflm-lib``).

    Raises:
        BuildError: a compile or the archive step failed (command and stderr tail).
    """
    say = progress or (lambda _m: None)
    files = library_sources(trees, kernels)
    dirs = include_dirs(trees, kernels)
    extra = CMSIS_NN_FLAGS if kernels == "cmsis-nn" else ()
    if any(f.startswith("-mcpu=cortex-m55") or f.startswith("-mcpu=cortex-m85") for f in core_flags):
        extra = (*extra, *MVE_WORKAROUND_FLAGS)
    cxxflags = (*CXX_FLAGS, *COMMON_FLAGS, *extra)
    cflags = (*C_FLAGS, *COMMON_FLAGS, *extra)
    ensure_cxx(gcc)
    h = hashlib.sha256()
    for part in (compiler, OPT_LEVEL, *core_flags, "|", *cxxflags, "|", *cflags, "|", kernels,
                 _fingerprint(files, dirs, trees)):
        h.update(part.encode() + b"\0")
    key = h.hexdigest()[:24]
    out_dir = (root or cache_dir() / "tflm-lib") / key
    archive = out_dir / "libtflm.a"
    manifest = out_dir / "manifest.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    # One build per key at a time: a second bench (or test run) waits for the first.
    with (out_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if archive.is_file() and manifest.is_file():
            seconds = float(json.loads(manifest.read_text()).get("build_seconds", 0.0))
            say(f"TFLM library ({kernels} kernels, {' '.join(core_flags)}): cached ({archive})")
            return TflmLibrary(archive, key, kernels, core_flags, cxxflags, dirs, len(files), seconds, True)
        return _build(files, trees, kernels, core_flags, cxxflags, cflags, dirs, gcc, compiler, key,
                      out_dir, jobs, say)


def _build(files: list[Path], trees: TflmTrees, kernels: str, core_flags: tuple[str, ...],
           cxxflags: tuple[str, ...], cflags: tuple[str, ...], dirs: tuple[Path, ...], gcc: Path,
           compiler: str, key: str, out_dir: Path, jobs: int | None, say: Progress) -> TflmLibrary:
    gxx = gcc.with_name(gcc.name.replace("gcc", "g++"))
    ar = gcc.with_name(gcc.name.replace("gcc", "ar"))
    archive = out_dir / "libtflm.a"
    manifest = out_dir / "manifest.json"
    includes = [f"-I{d}" for d in dirs]
    start = time.monotonic()
    workers = max(1, jobs or os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix="build-") as tmp:
        objs = [Path(tmp) / _object_name(f, trees) for f in files]
        if len(set(objs)) != len(objs):
            raise BuildError("two TFLM sources map to the same object name")

        def compile_one(src: Path, obj: Path) -> None:
            is_cxx = src.suffix == ".cc"
            cmd = [str(gxx if is_cxx else gcc), *core_flags, OPT_LEVEL, *(cxxflags if is_cxx else cflags),
                   *includes, "-c", str(src), "-o", str(obj)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError(f"TFLM library: compiling {src} failed (exit {proc.returncode})",
                                 cmd, proc.stderr)

        say(f"TFLM library ({kernels} kernels): compiling {len(files)} files with {workers} processes "
            "(minutes, once; cached after)")
        done = 0
        # Threads only wait on compiler processes, so `workers` compilers run at once.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: set[Future[None]] = {pool.submit(compile_one, s, o) for s, o in zip(files, objs)}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    err = fut.exception()
                    if err is not None:
                        for p in pending:
                            p.cancel()
                        raise err
                    done += 1
                say(f"TFLM library ({kernels} kernels): {done}/{len(files)} files compiled")
        tmp_archive = Path(tmp) / "libtflm.a"
        cmd = [str(ar), "rcs", str(tmp_archive), *map(str, objs)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError("TFLM library: ar failed", cmd, proc.stderr)
        seconds = time.monotonic() - start
        info = {"kernels": kernels, "core_flags": list(core_flags), "cxxflags": list(cxxflags),
                "cflags": list(cflags), "opt": OPT_LEVEL, "compiler": compiler, "files": len(files),
                "build_seconds": round(seconds, 1),
                "commits": {name: trees.commit(name) for name, _ in trees.paths}}
        os.replace(tmp_archive, archive)
        manifest.write_text(json.dumps(info, indent=1) + "\n")  # last: marks the library complete
    say(f"TFLM library ({kernels} kernels): built in {seconds:.0f} s ({archive})")
    return TflmLibrary(archive, key, kernels, core_flags, cxxflags, dirs, len(files), seconds, False)
