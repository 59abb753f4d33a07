"""The bench pipeline: model -> firmware -> run -> metrics -> result row.

Each stage is a function boundary with a dataclass in between; progress is
reported through a callback so this module stays free of terminal code.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from harness.build import variant_target
from harness.datasets import Sample, load_dataset, random_samples
from harness.engines.dispatch import BUILTIN, EngineSpec, build_image, explain
from harness.errors import DatasetError, TinyhilError, UserInputError
from harness.metrics import (LayerOp, anomaly_score, compute_metrics, elf_sizes, layer_rows,
                             predicted_class, roc_auc, top1_accuracy)
from harness.mlperf import input_wire
from harness.model import Model, load_model
from harness.reference import Reference
from harness.results import ResultRow, git_revision, now
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
InputProgress = Callable[[int, int], None]  # (inputs done, total) of an accuracy run


@dataclass(frozen=True)
class BenchCase:
    """One model on one target."""

    benchmark: str  # MLPerf Tiny short name, or the model file's stem
    model_path: Path
    dataset_dir: Path | None
    target: TargetDescriptor
    engine: EngineSpec = BUILTIN


def shared_dir() -> Path | None:
    """The first root in the lookup order (TINYHIL_SHARED, ../shared, the fetch cache;
    harness.models.search_roots) that holds models/mlperf_tiny, if any."""
    from harness.models import MODELS_SUBDIR, search_roots

    return next((r.path for r in search_roots() if (r.path / MODELS_SUBDIR).is_dir()), None)


def _dataset_dir(dataset: str, first: Path | None) -> Path | None:
    """``datasets/<dataset>`` under the model's own root when there, else under the first root
    in the lookup order that has it."""
    from harness.models import DATASETS_SUBDIR, search_roots

    for root in ([first] if first else []) + [r.path for r in search_roots()]:
        if (root / DATASETS_SUBDIR / dataset).is_dir():
            return root / DATASETS_SUBDIR / dataset
    return None


def _fetch_for(spec: str, offline: bool, progress: Progress | None) -> None:
    """An MLPerf Tiny model is nowhere: fetch them all into the cache (one line says so),
    or, ``offline``, the one-line error naming `tinyhil models fetch`."""
    from harness.models import FETCH_COMMAND, TINY_COMMIT, TINY_REPO, cache_root, display, fetch_models, \
        offline_error

    filename = MLPERF_TINY[spec][0]
    if offline:
        raise offline_error(f"MLPerf Tiny model '{spec}' ({filename})")
    say = progress or (lambda m: print(m, file=sys.stderr, flush=True))
    say(f"fetching the MLPerf Tiny models from {TINY_REPO}@{TINY_COMMIT[:7]} into {display(cache_root())} "
        f"({FETCH_COMMAND})")
    try:
        fetch_models()
    except TinyhilError as e:
        raise type(e)(f"{e} (the bench fetched because '{spec}' is nowhere else: `{FETCH_COMMAND} "
                      "--url-template T` takes a mirror, --models-dir DIR or TINYHIL_SHARED names a copy)") from e


def resolve_models(specs: Sequence[str], models_dir: Path | None = None, offline: bool = False,
                   progress: Progress | None = None) -> list[tuple[str, Path, Path | None]]:
    """``kws``/``vww``/``ic``/``ad`` or a .tflite path -> (benchmark, model, dataset dir).

    An MLPerf Tiny name is looked up in ``models_dir`` (--models-dir: only there), else
    in TINYHIL_SHARED, ../shared and the fetch cache, in that order (the first holding the
    file wins; its dataset comes from the same root when there). When it is in none of
    them the pinned files are fetched into the cache (``progress``, default stderr, gets
    one line saying so), unless ``offline``: then a one-line error names `tinyhil models fetch`.
    """
    from harness.models import MODELS_SUBDIR, search_roots

    out = []
    for spec in specs or list(MLPERF_TINY):
        if spec in MLPERF_TINY:
            filename, dataset = MLPERF_TINY[spec]
            if models_dir is not None:
                if not (models_dir / filename).exists():
                    raise UserInputError(
                        f"--models-dir {models_dir}: no {filename} (MLPerf Tiny '{spec}') there: pass a "
                        "directory holding the MLPerf Tiny .tflite files, drop --models-dir to use "
                        "TINYHIL_SHARED, ../shared or `tinyhil models fetch`'s cache, or give a model "
                        "path with --model my.tflite")
                root = models_dir.parent.parent if models_dir.parts[-2:] == MODELS_SUBDIR.parts else None
                out.append((spec, models_dir / filename, _dataset_dir(dataset, root)))
                continue
            hit = next((r.path for r in search_roots() if (r.path / MODELS_SUBDIR / filename).exists()), None)
            if hit is None:
                _fetch_for(spec, offline, progress)
                hit = next(r.path for r in search_roots() if (r.path / MODELS_SUBDIR / filename).exists())
            out.append((spec, hit / MODELS_SUBDIR / filename, _dataset_dir(dataset, hit)))
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


def input_job(model: Model, sample: Sample, **kwargs: Any) -> RunJob:
    """A RunJob loading ``sample``, sent over ``db`` as ``model``'s EnergyRunner bytes
    (harness/mlperf.py: the firmware converts them back to the input)."""
    return RunJob(input_bytes(model, sample), wire=input_wire(model), **kwargs)


# --------------------------------------------------------------------------- accuracy

@dataclass(frozen=True)
class AccuracyPlan:
    """The inputs an accuracy run infers on target and how their outputs are scored.

    ``kind`` is "top1" (classifiers: argmax against the label) or "anomaly"
    (autoencoders, MLPerf Tiny AD: per-window MSE between input features and
    output; AUC over clips when the labels hold both normal (0) and anomalous (1)
    clips, else the mean score). No samples means no dataset: ``unavailable`` says why.
    """

    kind: str
    samples: tuple[Sample, ...]
    source: Path | None
    unavailable: str = ""
    available: int = 0  # the inputs the dataset holds (more than len(samples) under --limit)


def accuracy_kind(benchmark: str, model: Model) -> str:
    """AD and any autoencoder (output as big as its input) are scored as anomalies."""
    ins, outs = model.input_tensors(), model.output_tensors()
    if benchmark == "ad" or (len(ins) == len(outs) == 1 and ins[0].num_elements == outs[0].num_elements):
        return "anomaly"
    return "top1"


def plan_accuracy(benchmark: str, model: Model, dataset_dir: Path | None, user_dataset: Path | None = None,
                  limit: int | None = None) -> AccuracyPlan:
    """The dataset an accuracy run uses: ``user_dataset`` (--dataset) or the benchmark's own.

    A user's dataset that cannot be used raises DatasetError (exit 2); a missing or
    label-only default dataset gives a plan without samples saying why.
    """
    kind = accuracy_kind(benchmark, model)
    source = user_dataset or dataset_dir
    if source is None:
        return AccuracyPlan(kind, (), None, f"no dataset for {benchmark}: give one with --dataset DIR "
                                            "(EnergyRunner layout: *.bin inputs + y_labels.csv)")
    if user_dataset is None and not any(source.glob("*.bin")):
        return AccuracyPlan(kind, (), source, f"no {benchmark} dataset available: {source} holds labels only "
                                              "(the inputs are not shipped); give one with --dataset DIR "
                                              "(*.bin in the model's input size + y_labels.csv)")
    every = load_dataset(source, model)
    samples = tuple(every[:limit] if limit is not None else every)
    unlabelled = [s.name for s in samples if s.label is None]
    if kind == "top1" and unlabelled:
        raise DatasetError(f"{source}: no label for {unlabelled[0]} ({len(unlabelled)} of {len(samples)} "
                           "inputs): y_labels.csv needs a line 'file,classes,label' per input")
    return AccuracyPlan(kind, samples, source, available=len(every))


@dataclass(frozen=True)
class AccuracyScore:
    """One metric over a dataset's outputs."""

    metric: str  # "top1" (fraction 0..1), "auc" or "anomaly_score_mean"
    value: float


def _first_output(model: Model, raw: bytes) -> np.ndarray:
    """The first output tensor's values (dequantized) from a run's raw output bytes."""
    t = model.output_tensors()[0]
    values = np.frombuffer(raw[:t.nbytes], dtype=t.numpy_dtype).astype(np.float64)
    if t.quant is not None and t.dtype != "float32":
        values = (values - t.quant.zero_point) * t.quant.scale
    return values


def _features(model: Model, sample: Sample) -> np.ndarray:
    """What an autoencoder's output is compared with: the float features, else the dequantized input."""
    if sample.features is not None:
        return sample.features
    t = model.input_tensors()[0]
    values = np.asarray(sample.inputs[0], dtype=np.float64)
    return (values - t.quant.zero_point) * t.quant.scale if t.quant is not None and t.dtype != "float32" else values


def score_accuracy(plan: AccuracyPlan, model: Model, outputs: Sequence[bytes]) -> AccuracyScore:
    """Score raw outputs (one per plan sample) by the plan's kind."""
    if plan.kind == "top1":
        predictions = [predicted_class(_first_output(model, raw)) for raw in outputs]
        labels = [s.label if s.label is not None else -1 for s in plan.samples]
        return AccuracyScore("top1", top1_accuracy(predictions, labels))
    scores = [anomaly_score(_features(model, s), _first_output(model, raw)) for s, raw in zip(plan.samples, outputs)]
    clips: dict[str, list[float]] = {}
    labels_by_clip: dict[str, int | None] = {}
    for s, score in zip(plan.samples, scores):
        clip = s.name.split("#", 1)[0]
        clips.setdefault(clip, []).append(score)
        labels_by_clip[clip] = s.label
    clip_labels = [labels_by_clip[c] for c in clips]
    if set(clip_labels) == {0, 1}:  # the reference's per-clip score: the mean over its windows
        return AccuracyScore("auc", roc_auc([float(np.mean(v)) for v in clips.values()],
                                            [int(x) for x in clip_labels if x is not None]))
    return AccuracyScore("anomaly_score_mean", float(np.mean(scores)))


def reference_outputs(model: Model, samples: Sequence[Sample]) -> list[bytes]:
    """The host interpreter's raw output bytes, one per sample.

    Kept in the cache (``~/.cache/tinyhil/reference``) under the model's, the inputs'
    and the interpreter's identity: the interpreter is deterministic, and on two CPUs
    its seconds for 1000 inputs would be taken from the emulator.
    """
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from harness.firmware import cache_dir

    try:
        interpreter = version("tflite-micro")
    except PackageNotFoundError:
        interpreter = "unknown"
    h = hashlib.sha256(f"{model.sha256}\0{interpreter}\0{len(samples)}\0".encode())
    for s in samples:
        h.update(input_bytes(model, s))
    path = cache_dir() / "reference" / f"{h.hexdigest()[:32]}.bin"
    size = sum(t.nbytes for t in model.output_tensors())
    if path.is_file() and path.stat().st_size == size * len(samples):
        data = path.read_bytes()
        return [data[i * size:(i + 1) * size] for i in range(len(samples))]
    ref = Reference(model)
    outputs = [b"".join(o.tobytes() for o in ref.run(s.inputs)) for s in samples]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    tmp.write_bytes(b"".join(outputs))
    os.replace(tmp, path)  # atomic: a concurrent run reads all or nothing
    return outputs


@dataclass(frozen=True)
class AccuracyOutcome:
    """Firmware against host over a plan's dataset."""

    firmware: AccuracyScore
    host: AccuracyScore
    samples: int
    first_mismatch: str  # "" when every output equals the host's


def compare_accuracy(plan: AccuracyPlan, model: Model, firmware: Sequence[bytes],
                     host: Sequence[bytes]) -> AccuracyOutcome:
    """Both scores, and the first input whose raw output bytes differ."""
    first = ""
    for i, (fw, ref) in enumerate(zip(firmware, host)):
        if fw != ref:
            first = (f"firmware output for input {plan.samples[i].name} (#{i} of {len(host)}) is "
                     f"{fw.hex()[:40]}, the reference interpreter's {ref.hex()[:40]}")
            break
    if not first and len(firmware) != len(host):
        first = f"{len(firmware)} firmware outputs for {len(host)} inputs"
    return AccuracyOutcome(score_accuracy(plan, model, firmware), score_accuracy(plan, model, host),
                           len(host), first)


# --------------------------------------------------------------------------- per-layer profile

def layer_ops(model: Model) -> list[LayerOp]:
    """The model's ops as the profile table names them."""
    return [LayerOp(op.index, op.name, tuple(model.tensors[op.outputs[0]].shape) if op.outputs else (), op.macs)
            for op in model.operators]


def profile_case(model: Model, target: TargetDescriptor, runner: Runner, sample: Sample, timeout_s: float,
                 progress: Progress | None = None) -> tuple[list[dict[str, Any]], int] | str:
    """Per-layer rows and the measured per-layer hook overhead (instructions, or cycles),
    from a profiling build of the builtin engine; or the run's error."""
    from harness.build import PROFILE_CFLAGS, build_firmware
    from harness.engines.builtin import generate

    note = progress or (lambda _m: None)
    note("building the profiling firmware")
    image = build_firmware(generate(model, target.builtin_isa), target, extra_cflags=PROFILE_CFLAGS)
    note(f"profiling under {runner.name}")
    record = runner.run(image.elf, target, input_job(model, sample, profile=True), timeout_s)
    if not record.ok or record.profile is None:
        return f"profile run: {record.error or 'no profile in the reply'}"
    prof = record.profile
    overhead = round(prof.pair_ticks * record.units_per_tick / prof.pairs) if prof.pairs else 0
    rows = layer_rows(layer_ops(model), prof.layers, record.units_per_tick)
    est = record.layer_est_cycles
    if est is not None and len(est) == len(rows):
        # The timing model's cycles over the same span as each layer's timer count.
        for row, cycles in zip(rows, est):
            row["est_cycles"] = cycles
            row["macs_per_est_cycle"] = (row["macs"] / cycles) if row["macs"] and cycles else None
    return rows, overhead


# --------------------------------------------------------------------------- one case

def run_case(case: BenchCase, runner: Runner, runs: int, warmup: int, timeout_s: float,
             progress: Progress | None = None, accuracy: AccuracyPlan | None = None,
             profile: bool = False, on_input: InputProgress | None = None) -> ResultRow:
    """Build, run and measure one case. User mistakes raise; run failures become failed rows.

    With ``accuracy`` (samples), every sample is inferred once on target, in one more
    firmware session after the measured one, and scored against the host interpreter's
    outputs, computed meanwhile; ``on_input`` follows the inputs. With ``profile``
    (builtin engine), a profiling build gives the per-layer counts.
    """
    note = progress or (lambda _m: None)
    target = case.target
    model = load_model(case.model_path)
    # Boards and Renode run the real chip's build (harness.build.variant_target).
    build_target = variant_target(target, getattr(runner, "build_variant", "emulator"))
    built = build_image(case.engine, model, build_target, runner, timeout_s, note)
    image = built.image
    sample = fixed_input(model, case.dataset_dir)
    samples = accuracy.samples if accuracy is not None else ()
    # The host reference runs while both firmware sessions do (QEMU is another process).
    # It once had to be joined before the accuracy session: with the interpreter
    # holding the GIL, the client opened the UART late and pyserial's open()
    # discarded the boot banner ("no answer from the device"). The transport keeps
    # every byte now (harness.transport), so the two overlap again.
    with ThreadPoolExecutor(max_workers=1) as pool:
        host_future = pool.submit(reference_outputs, model, samples) if samples else None
        note(f"running under {runner.name}")
        record = runner.run(image.elf, target, input_job(model, sample, runs=runs, warmup=warmup), timeout_s)
        fw_outputs: tuple[bytes, ...] = ()
        if samples and record.ok:
            # One more firmware session for the whole dataset; it counts nothing.
            note(f"accuracy: {len(samples)} inputs under {runner.name}")
            batch = runner.run(image.elf, target, RunJob(batch=tuple(input_bytes(model, s) for s in samples),
                                                         measure=False, on_batch_output=on_input), timeout_s)
            fw_outputs = batch.batch_outputs
            if not batch.ok:
                record = replace(record, error=f"accuracy run: {batch.error}")
        if host_future is not None:
            note(f"accuracy: the host interpreter on {len(samples)} inputs")
        host = host_future.result() if host_future is not None else []
    record = explain(case.engine, record)
    expected = b"".join(o.tobytes() for o in Reference(model).run(sample.inputs))
    matches = record.output == expected if record.ok else None
    if record.ok and not matches:
        record = _mismatch(record, expected)
    outcome = compare_accuracy(accuracy, model, fw_outputs, host) \
        if accuracy is not None and samples and record.ok else None
    if outcome is not None and outcome.first_mismatch:
        record = replace(record, error=(f"accuracy run: {outcome.first_mismatch} ({outcome.firmware.metric}: "
                                        f"firmware {outcome.firmware.value:.4g}, host {outcome.host.value:.4g})"))
    layers: list[dict[str, Any]] | None = None
    overhead: int | None = None
    from harness import engines

    if profile and engines.get(case.engine.name).profiles and record.ok:
        profiled = profile_case(model, build_target, runner, sample, timeout_s, note)
        if isinstance(profiled, str):
            record = replace(record, error=profiled)
        else:
            layers, overhead = profiled
    sizes = elf_sizes(image.elf)
    m = compute_metrics(record, sizes, target)
    ok = record.ok
    return ResultRow(
        benchmark=case.benchmark, model=model.name, model_sha256=model.sha256, target=target.name,
        runner=runner.name, engine=built.engine, engine_version=built.engine_version,
        compiler=image.compiler, cflags=" ".join(image.cflags), recipe="none",
        status="ok" if ok else "failed", error=record.error,
        proxy=target.qemu.proxy if (target.qemu and runner.name == "qemu") else "",
        instructions=m.instructions if ok else None, cycles=m.cycles if ok else None,
        est_cycles=m.est_cycles if ok else None, latency_ms=m.latency_ms if ok else None,
        latency_source=m.latency_source,
        cpi=round(m.est_cycles / m.instructions, 3) if ok and m.est_cycles and m.instructions else None,
        cpi_source=(f"{record.cycle_model}; memory: {target.cycle_model.source}" if record.cycle_model
                    else target.cycle_model.unsupported),
        cycle_model=record.cycle_model, cycle_breakdown=record.cycle_breakdown if ok else None,
        energy_uj=m.energy_uj if ok else None, power_mw=target.power.active_mw,
        power_source=m.power_source,
        flash_bytes=m.flash_bytes, flash_code_bytes=m.flash_code_bytes,
        flash_weights_bytes=m.flash_weights_bytes, flash_other_bytes=m.flash_other_bytes,
        ram_bytes=m.ram_bytes if ok else None, ram_static_bytes=m.ram_static_bytes,
        ram_arena_bytes=m.ram_arena_bytes, ram_db_buffer_bytes=m.ram_db_buffer_bytes,
        ram_stack_bytes=m.ram_stack_bytes if ok else None,
        output_matches_reference=matches, runs=record.runs,
        git_revision=git_revision(), timestamp=now(),
        kernels=built.kernels, arena_used_bytes=built.arena_used_bytes,
        firmware_build=record.firmware_build,
        flash_capacity_bytes=target.flash.size, ram_capacity_bytes=target.ram.size,
        **_accuracy_fields(accuracy, outcome, ok),
        layers=layers if ok else None, profile_overhead=overhead if ok else None,
    )


def _accuracy_fields(plan: AccuracyPlan | None, outcome: AccuracyOutcome | None, ok: bool) -> dict[str, Any]:
    """The row's accuracy columns: both scores when the run was scored and the row is ok
    (a failed row carries no numbers, but still says whether the outputs matched)."""
    if plan is None:
        return {"accuracy": None}
    if outcome is None:
        metric = "top1" if plan.kind == "top1" else "anomaly_score_mean"
        return {"accuracy": None, "accuracy_metric": metric, "accuracy_samples": len(plan.samples),
                "accuracy_dataset_samples": plan.available or None}
    fields: dict[str, Any] = {"accuracy": None, "accuracy_metric": outcome.firmware.metric,
                              "accuracy_samples": outcome.samples,
                              "accuracy_dataset_samples": plan.available or None,
                              "predictions_match_reference": not outcome.first_mismatch}
    if ok:
        fields.update(accuracy=outcome.firmware.value, accuracy_reference=outcome.host.value)
    return fields


def _mismatch(record: RunRecord, expected: bytes) -> RunRecord:
    from dataclasses import replace

    return replace(record, error=(f"firmware output {record.output.hex()[:40]} differs from the "
                                  f"reference interpreter's {expected.hex()[:40]}"))


def unbuilt_row(case: BenchCase, runner: str, status: str, error: str) -> ResultRow:
    """The row of a case that never ran (``does_not_fit``: the linker's overflow in bytes):
    no numbers, the reason in ``error``."""
    from harness.model import load_model as _load

    model = _load(case.model_path)
    target = case.target
    return ResultRow(
        benchmark=case.benchmark, model=model.name, model_sha256=model.sha256, target=target.name,
        runner=runner, engine=case.engine.name, engine_version="", compiler="", cflags="", recipe="none",
        status=status, error=error, proxy=target.qemu.proxy if (target.qemu and runner == "qemu") else "",
        instructions=None, cycles=None, est_cycles=None, latency_ms=None, latency_source="", cpi=None,
        cpi_source="", energy_uj=None, power_mw=target.power.active_mw, power_source=target.power.source,
        flash_bytes=None, flash_code_bytes=None, flash_weights_bytes=None, flash_other_bytes=None,
        ram_bytes=None, ram_static_bytes=None, ram_arena_bytes=None, ram_db_buffer_bytes=None,
        ram_stack_bytes=None, output_matches_reference=None, accuracy=None, runs=0,
        git_revision=git_revision(), timestamp=now(), kernels=case.engine.kernels,
        flash_capacity_bytes=target.flash.size, ram_capacity_bytes=target.ram.size,
    )
