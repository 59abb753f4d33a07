"""`tinyhil compare`: recipes of one float model, each built and run through the bench.

Each recipe's model goes through :func:`harness.bench.run_case` (the path
``tinyhil bench --model PATH`` takes), with the accuracy mode's dataset run on
target and the host interpreter's outputs for the bit-exactness check, on each
engine asked for (builtin by default; ``--engine builtin,tflm`` adds TFLM's
firmware of the same file, e.g. its flash for a LUT model). A recipe that fails
(refused by its checks, an op the engine lacks, a failed run) becomes a failed
row with the reason; the other rows still run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from harness.bench import AccuracyPlan, BenchCase, accuracy_kind, run_case
from harness.datasets import Sample
from harness.engines import EngineSpec
from harness.engines.dispatch import BUILTIN
from harness.errors import DoesNotFitError, TinyhilError
from harness.model import Model, Tensor, load_model
from harness.recipes import Calibration, RecipeSpec, apply_recipe
from harness.recipes.quantize import read
from harness.results import ResultRow, engine_version, git_revision, now
from harness.runners.base import Runner
from harness.targets import TargetDescriptor

REFERENCE_RECIPE = "mlperf-ref"  # the recipe field of the MLPerf reference int8 model's row
BASELINE_RECIPE = "int8"  # deltas are against this row


@dataclass(frozen=True)
class Variant:
    """One row to run: a recipe's output model, or why there is none."""

    recipe: str
    model_path: Path | None
    error: str = ""
    file_weights_bytes: int | None = None  # constant bytes in the .tflite (LUT: indices + tables)
    file_bytes: int | None = None  # the whole .tflite


def file_weights_bytes(path: Path) -> int:
    """Bytes of the constant buffers the model's operators read, as stored in the file."""
    m = read(path.read_bytes())
    sg = m.subgraphs[0]
    used = {int(i) for op in sg.operators for i in (op.inputs if op.inputs is not None else []) if i >= 0}
    total = 0
    for i in used:
        buf = m.buffers[sg.tensors[i].buffer]
        if buf is not None and buf.data is not None:
            total += len(buf.data)
        elif buf is not None and int(getattr(buf, "size", 0) or 0) > 0:
            total += int(buf.size)
    return total


def make_variants(float_model: Path, specs: Sequence[RecipeSpec], calibration: Calibration | None,
                  reference: Path | None = None, progress: Callable[[str], None] | None = None) -> list[Variant]:
    """Apply every recipe (cached); a recipe that refuses gives a Variant with its error."""
    note = progress or (lambda _m: None)
    out = []
    if reference is not None:
        out.append(Variant(REFERENCE_RECIPE, reference, "", file_weights_bytes(reference), reference.stat().st_size))
    for spec in specs:
        note(f"{spec.name}: applying the recipe")
        try:
            path = apply_recipe(spec, float_model, calibration)
        except TinyhilError as e:
            out.append(Variant(spec.name, None, str(e)))
            continue
        except Exception as e:  # a tool's failure on one recipe must not lose the other rows
            out.append(Variant(spec.name, None, f"recipe failed: {type(e).__name__}: {e}"))
            continue
        out.append(Variant(spec.name, path, "", file_weights_bytes(path), path.stat().st_size))
    return out


def quantize_values(values: np.ndarray, t: Tensor) -> np.ndarray:
    """Float features -> the tensor's integer type (int8 or int16): round, add zero point, clamp."""
    if t.dtype == "float32" or t.quant is None:
        return np.asarray(values, np.float32).reshape(t.shape)
    info = np.iinfo(t.numpy_dtype)
    q = np.round(np.asarray(values, np.float32) / np.float32(t.quant.scale)) + t.quant.zero_point
    out: np.ndarray = np.clip(q, info.min, info.max).astype(t.numpy_dtype).reshape(t.shape)
    return out


def plan_for(benchmark: str, model: Model, samples: Sequence[Sample], source: Path | None) -> AccuracyPlan:
    """The accuracy plan of one variant: the dataset's float inputs quantized with its own input scale."""
    t = model.input_tensors()[0]
    mine = tuple(Sample(s.name, (quantize_values(s.features, t),), s.label, s.features)
                 for s in samples if s.features is not None)
    return AccuracyPlan(accuracy_kind(benchmark, model), mine, source)


def failed_row(benchmark: str, model: str, target: TargetDescriptor, runner: str, recipe: str,
               error: str, engine: EngineSpec = BUILTIN) -> ResultRow:
    """A row for a recipe that never reached the target: no numbers, the reason."""
    return ResultRow(
        benchmark=benchmark, model=model, model_sha256="", target=target.name, runner=runner,
        engine=engine.name, kernels=engine.kernels,
        engine_version=engine_version() if engine == BUILTIN else "", compiler="", cflags="", recipe=recipe,
        status="failed", error=error, proxy="", instructions=None, cycles=None, est_cycles=None,
        latency_ms=None, latency_source="", cpi=None, cpi_source="", energy_uj=None, power_mw=None,
        power_source="", flash_bytes=None, flash_code_bytes=None, flash_weights_bytes=None,
        flash_other_bytes=None, ram_bytes=None, ram_static_bytes=None, ram_arena_bytes=None,
        ram_db_buffer_bytes=None, ram_stack_bytes=None, output_matches_reference=None, accuracy=None,
        runs=0, git_revision=git_revision(), timestamp=now())


def run_variants(benchmark: str, float_model: Path, variants: Sequence[Variant], target: TargetDescriptor,
                 runner: Runner, samples: Sequence[Sample], dataset: Path | None, runs: int, warmup: int,
                 timeout_s: float, progress: Callable[[str], None] | None = None,
                 engines: Sequence[EngineSpec] = (BUILTIN,)) -> list[ResultRow]:
    """Build and run each variant on ``target`` with each engine; rows carry ``recipe`` and
    the float model's name."""
    return list(iter_variants(benchmark, float_model, variants, target, runner, samples, dataset, runs, warmup,
                              timeout_s, progress, engines=engines))


def iter_variants(benchmark: str, float_model: Path, variants: Sequence[Variant], target: TargetDescriptor,
                  runner: Runner, samples: Sequence[Sample], dataset: Path | None, runs: int, warmup: int,
                  timeout_s: float, progress: Callable[[str], None] | None = None,
                  jobs: int = 1, engines: Sequence[EngineSpec] = (BUILTIN,)) -> Iterator[ResultRow]:
    """:func:`run_variants`, each row yielded as soon as its variant is finished (a variant
    that does not fit the target is a ``does_not_fit`` row); ``jobs`` (variant, engine)
    cases at once (:func:`harness.suite.in_parallel`; ``progress`` is then called from its
    threads)."""
    from harness.suite import in_parallel

    note = progress or (lambda _m: None)
    several = len(engines) > 1

    def one(case: tuple[Variant, EngineSpec]) -> ResultRow:
        v, spec = case
        if v.model_path is None:
            return failed_row(benchmark, float_model.stem, target, runner.name, v.recipe, v.error, spec)
        try:
            model = load_model(v.model_path)
            plan = plan_for(benchmark, model, samples, dataset) if samples else None
            name = f"{v.recipe} ({spec.label})" if several else v.recipe

            def step(msg: str, recipe: str = name) -> None:
                note(f"{recipe}: {msg}")

            row = run_case(BenchCase(benchmark, v.model_path, None, target, spec), runner, runs, warmup,
                           timeout_s, step, accuracy=plan)
        except DoesNotFitError as e:
            return replace(failed_row(benchmark, float_model.stem, target, runner.name, v.recipe,
                                      str(e).splitlines()[0], spec), status="does_not_fit")
        except TinyhilError as e:
            return failed_row(benchmark, float_model.stem, target, runner.name, v.recipe, str(e), spec)
        except Exception as e:  # an engine bug on one recipe's model must not lose the other rows
            return failed_row(benchmark, float_model.stem, target, runner.name, v.recipe,
                              f"internal error building or running it: {type(e).__name__}: {e}", spec)
        model_name = row.model if v.recipe == REFERENCE_RECIPE else float_model.stem
        return replace(row, recipe=v.recipe, model=model_name)

    yield from in_parallel([(v, e) for v in variants for e in engines], one, jobs)


@dataclass(frozen=True)
class Delta:
    """A row's change against the int8 row, as a ratio (None when either side is missing)."""

    instructions: float | None
    flash: float | None
    ram: float | None
    energy: float | None
    accuracy_points: float | None  # percentage points (top1) or metric difference


def delta(row: ResultRow, base: ResultRow | None) -> Delta:
    def ratio(a: float | int | None, b: float | int | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b - 1

    if base is None or base.status != "ok" or row.status != "ok":
        return Delta(None, None, None, None, None)
    acc = None
    if row.accuracy is not None and base.accuracy is not None:
        acc = (row.accuracy - base.accuracy) * (100 if row.accuracy_metric == "top1" else 1)
    return Delta(ratio(row.instructions or row.cycles, base.instructions or base.cycles),
                 ratio(row.flash_bytes, base.flash_bytes), ratio(row.ram_bytes, base.ram_bytes),
                 ratio(row.energy_uj, base.energy_uj), acc)
