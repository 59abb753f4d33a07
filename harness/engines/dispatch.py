"""Which engine builds a bench case's firmware: the registry's engines (harness.engines).

``--engine builtin,tflm --kernels ref,cmsis-nn`` becomes a list of
:class:`EngineSpec` (``builtin``, ``tflm`` ref, ``tflm`` cmsis-nn); for each,
:func:`check_model` finds user mistakes (an op the engine lacks, missing TFLM
trees) before anything compiles, and :func:`build_image` returns the firmware
with the facts a result row names the engine by. No engine is named here: each
is looked up in the registry.
"""

from __future__ import annotations

from typing import Sequence

from harness import engines
from harness.engines import BuiltImage, EngineSpec, Progress
from harness.errors import UserInputError
from harness.model import Model
from harness.runners.base import RunRecord, Runner
from harness.targets import TargetDescriptor

BUILTIN = EngineSpec("builtin")


def _split(values: Sequence[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def parse_engines(names: Sequence[str], kernels: Sequence[str] = (),
                  tflm_src: str | None = None) -> list[EngineSpec]:
    """``--engine`` and ``--kernels`` values (comma lists, repeatable) as specs, in order.

    Kernels apply to the engines that have a choice of them (the first is the default);
    asking for kernels no chosen engine has is a mistake.
    """
    chosen = [engines.get(n) for n in dict.fromkeys(_split(names) or ["builtin"])]
    kern = _split(kernels)
    offered = {k for e in chosen for k in e.kernels}
    every = sorted({k for n in engines.names() for k in engines.get(n).kernels})
    for k in kern:
        if k not in every:
            raise UserInputError(f"--kernels {k!r}: expected one of {', '.join(every)}")
        if k not in offered:
            users = [n for n in engines.names() if k in engines.get(n).kernels]
            raise UserInputError(f"--kernels {k} selects {' or '.join(users)}'s kernels: add --engine "
                                 f"{users[0]}")
    specs: list[EngineSpec] = []
    for e in chosen:
        if e.kernels:
            mine = [k for k in kern if k in e.kernels] or [e.kernels[0]]
            specs += [EngineSpec(e.name, k, tflm_src) for k in dict.fromkeys(mine)]
        else:
            specs.append(EngineSpec(e.name))
    return specs


def check_model(spec: EngineSpec, model: Model, targets: Sequence[TargetDescriptor] = ()) -> None:
    """Raise the user's mistakes for ``spec`` on ``model`` (and ``targets``) before any compile."""
    engines.get(spec.name).check(spec, model, targets)


def build_image(spec: EngineSpec, model: Model, target: TargetDescriptor, runner: Runner,
                timeout_s: float, progress: Progress | None = None) -> BuiltImage:
    """The firmware of ``model`` on ``target`` for ``spec`` (cached builds are reused)."""
    return engines.get(spec.name).build(spec, model, target, runner, timeout_s, progress or (lambda _m: None))


def explain(spec: EngineSpec, record: RunRecord) -> RunRecord:
    """A failed run's invoke status in the engine's words."""
    return engines.get(spec.name).explain(spec, record)


__all__ = ["BUILTIN", "BuiltImage", "EngineSpec", "build_image", "check_model", "explain", "parse_engines"]
