"""Compile the builtin engine's C for the host and run it on input sets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.datasets import Sample
from harness.engines.builtin.codegen import TEMPLATES, GeneratedModel
from harness.errors import BuildError, TinyhilError, ToolMissingError

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


def build_host(gen: GeneratedModel, workdir: Path, cc: str | None = None) -> Path:
    """Write the generated sources into ``workdir`` and link a host executable."""
    compiler = cc or find_host_cc()
    generated = gen.write(workdir)
    exe = workdir / "th_host"
    sources = [str(p) for p in generated if p.suffix == ".c"]
    sources += [str(p) for p in gen.kernel_sources()] + [str(HOST_MAIN)]
    cmd = [compiler, *HOST_CFLAGS, f"-I{workdir}", f"-I{gen.kernel_dir}", *sources, "-o", str(exe)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or proc.stderr.strip():
        raise BuildError(f"host build of {gen.model.path} failed", cmd, proc.stderr)
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
