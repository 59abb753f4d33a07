"""Per-chip corrections of the timing model, fitted against a board's cycle counter.

``tinyhil calibrate --target T --port P`` (harness.cli) runs the microbenchmarks on
the board (DWT cycles) and under QEMU with the model, fits per-class cycle costs
and stores them as an override of the target's timing table:
``$TINYHIL_CALIBRATION_DIR/<target>.toml`` (default ``~/.config/tinyhil/cycles``).
Every later run on that target uses the override; its rows' ``cycle_model`` says so.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def calibration_dir() -> Path:
    base = os.environ.get("TINYHIL_CALIBRATION_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "tinyhil" / "cycles"


def override_path(target_name: str) -> Path:
    return calibration_dir() / f"{target_name}.toml"


def load_override(target_name: str, table: Any) -> dict[str, int]:
    """Class -> cycles of a stored calibration of ``target_name`` for this table, else {}."""
    from harness.cycles import CycleModelError

    path = override_path(target_name)
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CycleModelError(f"{path}: cannot read the calibration override ({e}); delete it or run "
                              "tinyhil calibrate again") from e
    if data.get("core") != table.core:
        raise CycleModelError(f"{path}: calibrated for core {data.get('core')!r}, the target's table is "
                              f"{table.core!r}; delete it or run tinyhil calibrate again")
    costs = data.get("classes", {})
    if not isinstance(costs, dict) or not all(isinstance(v, int) and v >= 0 for v in costs.values()):
        raise CycleModelError(f"{path}: [classes] must map class names to non-negative integer cycles")
    return {str(k): int(v) for k, v in costs.items()}


# --------------------------------------------------------------------------- the fit

MIN_SHARE = 0.01  # a class below 1% of every benchmark's cycles keeps its table cost
RIDGE = 0.002  # a slight pull towards the table's cost, so directions no benchmark sees stay put


def fit_costs(measured: list[float], estimated: list[float], inside: list[dict[str, float]],
              table_costs: dict[str, int]) -> dict[str, int]:
    """Per-class cycle costs that best explain ``measured`` (cycles per inference on the
    board) from the model's per-class counts.

    For benchmark i the model charged ``estimated[i]``, of which ``inside[i][k] x
    table_costs[k]`` came from class k's instructions at plain class cost; the rest
    (pipelining, dual issue, branch refills, stalls) is held fixed. Least squares on
    relative errors with a small ridge towards the table, costs rounded to whole cycles
    (the plugin charges integers) and never below 0.
    """
    import numpy as np

    n = len(measured)
    classes = sorted({k for d in inside for k, v in d.items()
                      if k in table_costs and any(d.get(k, 0) * table_costs[k] >= MIN_SHARE * est
                                                  for d, est in zip(inside, estimated))})
    if not classes or n == 0:
        return {}
    a = np.zeros((n + len(classes), len(classes)))
    b = np.zeros(n + len(classes))
    for i in range(n):
        rest = estimated[i] - sum(inside[i].get(k, 0) * table_costs[k] for k in classes)
        for j, k in enumerate(classes):
            a[i, j] = inside[i].get(k, 0) / measured[i]
        b[i] = (measured[i] - rest) / measured[i]
    for j, k in enumerate(classes):
        w = RIDGE / max(1, table_costs[k])
        a[n + j, j] = w
        b[n + j] = w * table_costs[k]
    x, *_ = np.linalg.lstsq(a, b, rcond=None)
    return {k: max(0, int(round(v))) for k, v in zip(classes, x)}


def write_override(target_name: str, core: str, costs: dict[str, int], note: str) -> Path:
    """Store fitted costs as the target's override (atomically)."""
    import os

    path = override_path(target_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# tinyhil calibrate: {note}", f'core = "{core}"', "[classes]"]
    lines += [f"{k} = {v}" for k, v in sorted(costs.items())]
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- the run

def microbenchmark_models(directory: Path) -> list[tuple[str, Path]]:
    """Single-kernel int8 models, each stressing another instruction mix (DSP MACs,
    byte loads and stores, compares and branches, multiplies): written with the
    schema's object API (harness.synth), the same on every run (fixed seed)."""
    import numpy as np

    from harness.synth import ModelBuilder

    rng = np.random.default_rng(1234)
    directory.mkdir(parents=True, exist_ok=True)
    out: list[tuple[str, Path]] = []

    def save(name: str, raw: bytes) -> None:
        path = directory / f"micro_{name}.tflite"
        path.write_bytes(raw)
        out.append((f"micro-{name}", path))

    b = ModelBuilder()  # 3x3 convolution: im2col + SIMD GEMM
    x = b.tensor("x", [1, 16, 16, 8], scale=0.05, zero_point=-3)
    w = b.const("w", rng.integers(-127, 128, (16, 3, 3, 8)), scales=[0.01] * 16, axis=0)
    bias = b.const("b", rng.integers(-500, 500, 16), dtype="int32", scales=[0.0005] * 16)
    y = b.tensor("y", [1, 16, 16, 16], scale=0.1, zero_point=2)
    b.op("CONV_2D", [x, w, bias], [y], padding="SAME", stride_w=1, stride_h=1)
    save("conv3x3", b.build(inputs=[x], outputs=[y]))

    b = ModelBuilder()  # depthwise 3x3: per-channel MACs, strided loads
    x = b.tensor("x", [1, 24, 24, 16], scale=0.05, zero_point=1)
    w = b.const("w", rng.integers(-127, 128, (1, 3, 3, 16)), scales=[0.01] * 16, axis=3)
    bias = b.const("b", rng.integers(-500, 500, 16), dtype="int32", scales=[0.0005] * 16)
    y = b.tensor("y", [1, 24, 24, 16], scale=0.1, zero_point=-2)
    b.op("DEPTHWISE_CONV_2D", [x, w, bias], [y], padding="SAME", stride_h=1, stride_w=1, depth_multiplier=1)
    save("depthwise3x3", b.build(inputs=[x], outputs=[y]))

    b = ModelBuilder()  # fully connected: long dot products
    x = b.tensor("x", [1, 512], scale=0.05, zero_point=0)
    w = b.const("w", rng.integers(-127, 128, (96, 512)), scales=0.01)
    bias = b.const("b", rng.integers(-500, 500, 96), dtype="int32", scales=0.0005)
    y = b.tensor("y", [1, 96], scale=0.2, zero_point=0)
    b.op("FULLY_CONNECTED", [x, w, bias], [y], fused_activation_function="NONE")
    save("fc", b.build(inputs=[x], outputs=[y]))

    b = ModelBuilder()  # average pooling: byte loads, adds, a divide per output
    x = b.tensor("x", [1, 32, 32, 16], scale=0.05, zero_point=-5)
    y = b.tensor("y", [1, 16, 16, 16], scale=0.05, zero_point=-5)
    b.op("AVERAGE_POOL_2D", [x], [y], padding="VALID", stride_w=2, stride_h=2, filter_width=2, filter_height=2)
    save("avgpool", b.build(inputs=[x], outputs=[y]))

    b = ModelBuilder()  # max pooling: compares and branches
    x = b.tensor("x", [1, 32, 32, 16], scale=0.05, zero_point=-5)
    y = b.tensor("y", [1, 16, 16, 16], scale=0.05, zero_point=-5)
    b.op("MAX_POOL_2D", [x], [y], padding="VALID", stride_w=2, stride_h=2, filter_width=2, filter_height=2)
    save("maxpool", b.build(inputs=[x], outputs=[y]))

    b = ModelBuilder()  # elementwise add: rescaling multiplies per byte
    x1 = b.tensor("x1", [1, 32, 32, 8], scale=0.05, zero_point=3)
    x2 = b.tensor("x2", [1, 32, 32, 8], scale=0.07, zero_point=-4)
    y = b.tensor("y", [1, 32, 32, 8], scale=0.1, zero_point=1)
    b.op("ADD", [x1, x2], [y], fused_activation_function="NONE")
    save("add", b.build(inputs=[x1, x2], outputs=[y]))

    b = ModelBuilder()  # elementwise multiply
    x1 = b.tensor("x1", [1, 32, 32, 8], scale=0.05, zero_point=3)
    x2 = b.tensor("x2", [1, 32, 32, 8], scale=0.07, zero_point=-4)
    y = b.tensor("y", [1, 32, 32, 8], scale=0.2, zero_point=1)
    b.op("MUL", [x1, x2], [y], fused_activation_function="NONE")
    save("mul", b.build(inputs=[x1, x2], outputs=[y]))

    b = ModelBuilder()  # mean over the spatial axes: long accumulations, a divide
    x = b.tensor("x", [1, 32, 32, 16], scale=0.03, zero_point=-20)
    ax = b.const("axis", np.array([1, 2], dtype=np.int32), dtype="int32", scales=None)
    y = b.tensor("y", [1, 16], scale=0.011, zero_point=3)
    b.op("MEAN", [x, ax], [y], keep_dims=False)
    save("mean", b.build(inputs=[x], outputs=[y]))

    b = ModelBuilder()  # requantize: a multiply and shift per byte
    x = b.tensor("x", [16, 257], scale=0.05, zero_point=-3)
    y = b.tensor("y", [16, 257], scale=0.02, zero_point=9)
    b.op("QUANTIZE", [x], [y])
    save("requantize", b.build(inputs=[x], outputs=[y]))

    b = ModelBuilder()  # pad: copies (loads and stores)
    x = b.tensor("x", [1, 30, 30, 16], scale=0.04, zero_point=2)
    pads = b.const("paddings", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], dtype=np.int32), dtype="int32",
                   scales=None)
    y = b.tensor("y", [1, 32, 32, 16], scale=0.04, zero_point=2)
    b.op("PAD", [x, pads], [y])
    save("pad", b.build(inputs=[x], outputs=[y]))

    b = ModelBuilder()  # softmax over a long row: exp by table, a divide
    x = b.tensor("x", [8, 256], scale=0.1, zero_point=0)
    y = b.tensor("y", [8, 256], scale=1 / 256, zero_point=-128)
    b.op("SOFTMAX", [x], [y], beta=1.0)
    save("softmax", b.build(inputs=[x], outputs=[y]))
    return out


@dataclass(frozen=True)
class CalibrationRow:
    benchmark: str
    board_cycles: int
    before: int  # the model's est. cycles with the table
    after: int  # with the fitted costs

    @staticmethod
    def error(est: int, truth: int) -> float:
        return est / truth - 1 if truth else 0.0


@dataclass(frozen=True)
class CalibrationResult:
    rows: tuple[CalibrationRow, ...]
    table_costs: dict[str, int]
    fitted: dict[str, int]
    path: Path | None  # where the override went (None: not written)


def run_calibration(target: Any, board: Any, benchmarks: list[tuple[str, Path]], timeout_s: float = 300.0,
                    progress: Any = None, write: bool = True, qemu: str | None = None) -> CalibrationResult:
    """Each benchmark on ``board`` (its cycle counter) and under QEMU with the target's
    table; fit per-class costs; rerun QEMU with them; store them unless ``write`` is False.

    Raises UserInputError when the board reports no hardware cycles (a timer-only part).
    """
    from dataclasses import replace

    from harness.bench import fixed_input, input_job
    from harness.build import build_firmware, variant_target
    from harness.cycles import load_core_table
    from harness.engines.builtin import generate
    from harness.errors import RunnerError, UserInputError
    from harness.model import load_model
    from harness.runners.base import RunJob
    from harness.runners.qemu import QemuRunner

    note = progress or (lambda _m: None)
    table = load_core_table(target.cycle_model.table)
    base = {c.name: c.cycles for c in table.classes}
    measured: list[float] = []
    estimated: list[float] = []
    inside: list[dict[str, float]] = []
    runs: list[tuple[str, Path, RunJob]] = []
    for name, model_path in benchmarks:
        model = load_model(model_path)
        gen = generate(model, target.builtin_isa)
        job = input_job(model, fixed_input(model, None))
        note(f"{name}: on the board")
        board_image = build_firmware(gen, variant_target(target, getattr(board, "build_variant", "board")))
        rec = board.run(board_image.elf, target, replace(job, runs=2, warmup=1), timeout_s)
        if not rec.ok:
            raise RunnerError(f"calibration run of {name} on the board failed: {rec.error}")
        if rec.counter != "cycles":
            raise UserInputError(f"the board reports {rec.counter or 'no'} counts, not hardware cycles: "
                                 "calibration needs a core cycle counter (DWT CYCCNT)")
        note(f"{name}: under QEMU with the model")
        image = build_firmware(gen, target)
        q = QemuRunner(qemu, cycle_table=table).run(image.elf, target, job, timeout_s)
        if not q.ok or q.est_cycles is None:
            raise RunnerError(f"calibration run of {name} under QEMU failed: {q.error or 'no est. cycles'}")
        measured.append(rec.count_per_inference)
        estimated.append(q.est_cycles)
        inside.append(dict(q.cycle_classes or {}))
        runs.append((name, image.elf, job))
    fitted = fit_costs(measured, estimated, inside, base)
    changed = {k: v for k, v in fitted.items() if v != base[k]}
    after_table = table.with_costs(changed)
    rows = []
    for (name, elf, job), truth, before in zip(runs, measured, estimated):
        note(f"{name}: under QEMU with the fitted costs")
        q = QemuRunner(qemu, cycle_table=after_table).run(elf, target, job, timeout_s)
        rows.append(CalibrationRow(name, int(truth), int(before), int(q.est_cycles or 0)))
    stored: Path | None = None
    if write:
        stored = write_override(target.name, table.core, changed,
                              f"{len(rows)} benchmarks on {target.name}, table {table.label}")
    return CalibrationResult(tuple(rows), base, changed, stored)
