"""Which engine builds a bench case's firmware: builtin, or TFLM with ref or CMSIS-NN kernels.

``--engine builtin,tflm --kernels ref,cmsis-nn`` becomes a list of
:class:`EngineSpec` (``builtin``, ``tflm`` ref, ``tflm`` cmsis-nn); for each,
:func:`check_model` finds user mistakes (an op the engine lacks, missing TFLM
trees) before anything compiles, and :func:`build_image` returns the firmware
with the facts a result row names the engine by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from harness.build import FirmwareImage
from harness.errors import UserInputError
from harness.model import Model
from harness.runners.base import RunRecord, Runner
from harness.targets import TargetDescriptor

ENGINES = ("builtin", "tflm")
KERNELS = ("ref", "cmsis-nn")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EngineSpec:
    """One engine configuration a bench runs."""

    name: str  # "builtin" or "tflm"
    kernels: str = ""  # tflm: "ref" or "cmsis-nn"; "" for builtin
    tflm_src: str | None = None  # --tflm-src (else TINYHIL_TFLM_SRC, else the fetch cache)

    @property
    def label(self) -> str:
        return f"{self.name} {self.kernels}" if self.kernels else self.name


BUILTIN = EngineSpec("builtin")


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def parse_engines(engines: Sequence[str], kernels: Sequence[str] = (),
                  tflm_src: str | None = None) -> list[EngineSpec]:
    """``--engine`` and ``--kernels`` values (comma lists, repeatable) as specs, in order.

    Kernels apply to tflm (default ref); asking for kernels without tflm is a mistake.
    """
    names = _split(engines) or ["builtin"]
    kern = _split(kernels)
    for n in names:
        if n not in ENGINES:
            raise UserInputError(f"--engine {n!r}: expected one of {', '.join(ENGINES)}")
    for k in kern:
        if k not in KERNELS:
            raise UserInputError(f"--kernels {k!r}: expected one of {', '.join(KERNELS)}")
    if kern and "tflm" not in names:
        raise UserInputError("--kernels selects TFLM's kernels: add --engine tflm")
    specs: list[EngineSpec] = []
    for n in dict.fromkeys(names):
        if n == "tflm":
            specs += [EngineSpec("tflm", k, tflm_src) for k in dict.fromkeys(kern or ["ref"])]
        else:
            specs.append(EngineSpec(n))
    return specs


@dataclass(frozen=True)
class BuiltImage:
    """A firmware and how the result row names its engine."""

    image: FirmwareImage
    engine: str
    engine_version: str
    kernels: str
    arena_used_bytes: int | None  # the engine's own arena figure when it measures one (TFLM)


def check_model(spec: EngineSpec, model: Model, targets: Sequence[TargetDescriptor] = ()) -> None:
    """Raise the user's mistakes for ``spec`` on ``model`` (and ``targets``) before any compile."""
    if spec.name == "builtin":
        from harness.engines.builtin import generate

        generate(model)
        return
    from harness.engines.tflm.codegen import check_ops, resolver_methods
    from harness.engines.tflm.firmware import check_target
    from harness.engines.tflm.trees import find_trees

    trees = find_trees(spec.tflm_src, (spec.kernels,))
    check_ops(model, resolver_methods(trees.tflm))
    for target in targets:
        check_target(target)


def build_image(spec: EngineSpec, model: Model, target: TargetDescriptor, runner: Runner,
                timeout_s: float, progress: Progress | None = None) -> BuiltImage:
    """The firmware of ``model`` on ``target`` for ``spec`` (cached builds are reused)."""
    from harness.build import build_firmware

    note = progress or (lambda _m: None)
    if spec.name == "builtin":
        from harness.engines.builtin import generate
        from harness.results import engine_version

        note("generating C")
        gen = generate(model)
        note("building firmware")
        return BuiltImage(build_firmware(gen, target), "builtin", engine_version(), "", None)
    from harness.engines.tflm.firmware import build_tflm_firmware
    from harness.engines.tflm.trees import find_trees

    trees = find_trees(spec.tflm_src, (spec.kernels,))
    built = build_tflm_firmware(model, target, spec.kernels, trees, runner, timeout_s, note)
    return BuiltImage(built.image, "tflm", built.engine_version, spec.kernels, built.arena_used_bytes)


def explain(spec: EngineSpec, record: RunRecord) -> RunRecord:
    """A failed run's invoke status in the engine's words."""
    if spec.name == "tflm":
        from harness.engines.tflm.firmware import explain as tflm_explain

        return tflm_explain(record)
    return record
