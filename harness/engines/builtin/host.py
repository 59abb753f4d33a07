"""Compile the builtin engine's C for the host and run it on input sets."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.datasets import Sample
from harness.engines.builtin.codegen import GeneratedModel
from harness.errors import BuildError, TinyhilError, ToolMissingError
from harness.firmware import TEMPLATES, cache_dir

HOST_MAIN = TEMPLATES / "host" / "th_host_main.c"
# Warnings are errors: the generated code and kernels must build clean.
HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic-errors",
               "-Wno-error=overlength-strings")


def find_host_cc() -> str:
    for cc in ("gcc", "cc", "clang"):
        path = shutil.which(cc)
        if path:
            return path
    raise ToolMissingError("no host C compiler (gcc) on PATH: install it with `apt-get install gcc`")


def _run_cc(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or proc.stderr.strip():
        raise BuildError(f"host build of {what} failed", cmd, proc.stderr)


def _kernel_objects(compiler: str, kernels: list[Path], kernel_dir: Path) -> list[Path]:
    """Compile the kernel library once per (compiler, flags, sources); reuse after."""
    h = hashlib.sha256()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    h.update("\0".join([compiler, version, *HOST_CFLAGS]).encode())
    for path in sorted([*kernels, *kernel_dir.glob("*.h")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    out = cache_dir() / "host-kernels" / h.hexdigest()[:24]
    objects = [out / (k.stem + ".o") for k in kernels]
    if all(o.exists() for o in objects):
        return objects
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        for src, obj in zip(kernels, objects):
            tmp_obj = Path(tmp) / obj.name
            _run_cc([compiler, *HOST_CFLAGS, f"-I{kernel_dir}", "-c", str(src), "-o", str(tmp_obj)],
                    f"kernel {src.name}")
            os.replace(tmp_obj, obj)  # atomic: a concurrent build sees all or nothing
    return objects


def build_host(gen: GeneratedModel, workdir: Path, cc: str | None = None) -> Path:
    """Write the generated sources into ``workdir`` and link a host executable."""
    compiler = cc or find_host_cc()
    generated = gen.write(workdir)
    exe = workdir / "th_host"
    sources = [str(p) for p in generated if p.suffix == ".c"] + [str(HOST_MAIN)]
    objects = [str(o) for o in _kernel_objects(compiler, gen.kernel_sources(), gen.kernel_dir)]
    # th_model.h, the engine ABI, is the common firmware's (firmware_templates/common).
    cmd = [compiler, *HOST_CFLAGS, f"-I{workdir}", f"-I{gen.kernel_dir}", f"-I{TEMPLATES / 'common'}", *sources,
           *objects, "-o", str(exe)]
    _run_cc(cmd, gen.model.path)
    return exe


def run_host(exe: Path, gen: GeneratedModel, samples: Sequence[Sample]) -> list[list[np.ndarray]]:
    """Run every sample through the host executable; outputs per sample."""
    specs_in = gen.model.input_tensors()
    payload = b"".join(
        np.ascontiguousarray(a, dtype=t.numpy_dtype).tobytes()
        for s in samples for a, t in zip(s.inputs, specs_in)
    )
    proc = subprocess.run([str(exe)], input=payload, capture_output=True)
    if proc.returncode != 0:
        raise TinyhilError(f"host run of {gen.model.path} failed (exit {proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    outs_t = gen.model.output_tensors()
    per_sample = sum(t.nbytes for t in outs_t)
    if len(proc.stdout) != per_sample * len(samples):
        raise TinyhilError(f"host run of {gen.model.path} wrote {len(proc.stdout)} bytes, "
                           f"expected {per_sample * len(samples)}")
    results: list[list[np.ndarray]] = []
    for k in range(len(samples)):
        pos = k * per_sample
        arrays = []
        for t in outs_t:
            arrays.append(np.frombuffer(proc.stdout[pos:pos + t.nbytes], dtype=t.numpy_dtype).reshape(t.shape))
            pos += t.nbytes
        results.append(arrays)
    return results
