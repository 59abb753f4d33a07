"""The bench pipeline: model -> firmware -> run -> metrics -> result row.

Each stage is a function boundary with a dataclass in between; progress is
reported through a callback so this module stays free of terminal code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from harness.datasets import Sample, load_dataset, random_samples
from harness.engines.builtin import generate
from harness.errors import DatasetError, UserInputError
from harness.metrics import compute_metrics, elf_sizes
from harness.model import Model, load_model
from harness.reference import Reference
from harness.results import ResultRow, engine_version, git_revision, now
from harness.runners.base import RunJob, RunRecord, Runner
from harness.targets import TargetDescriptor

REPO = Path(__file__).resolve().parents[1]

# MLPerf Tiny v1.x benchmarks: short name -> (reference int8 model file, dataset dir).
MLPERF_TINY = {
    "kws": ("kws_ref_model.tflite", "kws01"),
    "vww": ("vww_96_int8.tflite", "vww01"),
    "ic": ("pretrainedResnet_quant.tflite", "ic01"),
    "ad": ("ad01_int8.tflite", "ad01"),
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchCase:
    """One model on one target."""

    benchmark: str  # MLPerf Tiny short name, or the model file's stem
    model_path: Path
    dataset_dir: Path | None
    target: TargetDescriptor


def shared_dir() -> Path | None:
    """Where the MLPerf Tiny models and datasets live, if anywhere."""
    candidates = [os.environ.get("TINYHIL_SHARED"), str(Path.cwd().parent / "shared"),
                  str(REPO.parent / "shared")]
    for c in candidates:
        if c and (Path(c) / "models" / "mlperf_tiny").is_dir():
            return Path(c)
    return None


def resolve_models(specs: Sequence[str], models_dir: Path | None = None) -> list[tuple[str, Path, Path | None]]:
    """``kws``/``vww``/``ic``/``ad`` or a .tflite path -> (benchmark, model, dataset dir)."""
    shared = shared_dir()
    base = models_dir or (shared / "models" / "mlperf_tiny" if shared else None)
    datasets = shared / "datasets" if shared else None
    out = []
    for spec in specs or list(MLPERF_TINY):
        if spec in MLPERF_TINY:
            filename, dataset = MLPERF_TINY[spec]
            if base is None or not (base / filename).exists():
                where = f" in {base}" if base else ""
                raise UserInputError(
                    f"MLPerf Tiny model '{spec}' ({filename}) not found{where}: pass --models-dir DIR "
                    "holding the MLPerf Tiny .tflite files, set TINYHIL_SHARED, or give a model "
                    "path with --model my.tflite")
            ds = datasets / dataset if datasets and (datasets / dataset).is_dir() else None
            out.append((spec, base / filename, ds))
        else:
            path = Path(spec)
            if path.suffix != ".tflite" and not path.exists():
                names = ", ".join(MLPERF_TINY)
                raise UserInputError(f"--model {spec!r}: not an MLPerf Tiny name ({names}) nor a .tflite file")
            out.append((path.stem, path, None))
    return out


def fixed_input(model: Model, dataset_dir: Path | None) -> Sample:
    """The input every bench run uses: the dataset's first sample, else seeded random."""
    if dataset_dir is not None:
        try:
            return load_dataset(dataset_dir, model, limit=1)[0]
        except DatasetError:
            pass  # e.g. only labels shipped (ic01, vww01): fall back to random
    return random_samples(model, 1, seed=0)[0]


def input_bytes(model: Model, sample: Sample) -> bytes:
    return b"".join(np.ascontiguousarray(a, dtype=t.numpy_dtype).tobytes()
                    for a, t in zip(sample.inputs, model.input_tensors()))


def run_case(case: BenchCase, runner: Runner, runs: int, warmup: int, timeout_s: float,
             progress: Progress | None = None) -> ResultRow:
    """Build, run and measure one case. User mistakes raise; run failures become failed rows."""
    from harness.build import build_firmware

    note = progress or (lambda _m: None)
    target = case.target
    model = load_model(case.model_path)
    note("generating C")
    gen = generate(model)
    note("building firmware")
    image = build_firmware(gen, target)
    sample = fixed_input(model, case.dataset_dir)
    note(f"running under {runner.name}")
    record = runner.run(image.elf, target, RunJob(input_bytes(model, sample), runs, warmup), timeout_s)
    expected = b"".join(o.tobytes() for o in Reference(model).run(sample.inputs))
    matches = record.output == expected if record.ok else None
    if record.ok and not matches:
        record = _mismatch(record, expected)
    sizes = elf_sizes(image.elf)
    m = compute_metrics(record, sizes, target)
    ok = record.ok
    return ResultRow(
        benchmark=case.benchmark, model=model.name, model_sha256=model.sha256, target=target.name,
        runner=runner.name, engine="builtin", engine_version=engine_version(),
        compiler=image.compiler, cflags=" ".join(image.cflags), recipe="none",
        status="ok" if ok else "failed", error=record.error,
        proxy=target.qemu.proxy if (target.qemu and runner.name == "qemu") else "",
        instructions=m.instructions if ok else None, cycles=m.cycles if ok else None,
        est_cycles=m.est_cycles if ok else None, latency_ms=m.latency_ms if ok else None,
        latency_source=m.latency_source, cpi=target.cost.cpi, cpi_source=target.cost.source,
        energy_uj=m.energy_uj if ok else None, power_mw=target.power.active_mw,
        power_source=m.power_source,
        flash_bytes=m.flash_bytes, flash_code_bytes=m.flash_code_bytes,
        flash_weights_bytes=m.flash_weights_bytes, flash_other_bytes=m.flash_other_bytes,
        ram_bytes=m.ram_bytes if ok else None, ram_static_bytes=m.ram_static_bytes,
        ram_arena_bytes=m.ram_arena_bytes, ram_db_buffer_bytes=m.ram_db_buffer_bytes,
        ram_stack_bytes=m.ram_stack_bytes if ok else None,
        output_matches_reference=matches, accuracy=None, runs=record.runs,
        git_revision=git_revision(), timestamp=now(),
    )


def _mismatch(record: RunRecord, expected: bytes) -> RunRecord:
    from dataclasses import replace

    return replace(record, error=(f"firmware output {record.output.hex()[:40]} differs from the "
                                  f"reference interpreter's {expected.hex()[:40]}"))
