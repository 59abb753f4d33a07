"""Inference engines: each turns a Model into a firmware, behind one protocol.

An engine is a module that implements :class:`Engine` and registers itself by name
(``register(MyEngine())`` at import); :data:`ENGINE_MODULES` lists the modules the
registry imports. The bench never branches on an engine's name: it asks the
registry (:func:`get`) and calls ``check``, ``build`` and ``explain``. Adding an
engine is one module here plus its C templates (docs/architecture.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

if TYPE_CHECKING:
    from harness.build import FirmwareImage
    from harness.model import Model
    from harness.runners.base import RunRecord, Runner
    from harness.targets import TargetDescriptor

Progress = Callable[[str], None]

# The modules that register an engine, imported on first use of the registry.
ENGINE_MODULES = ("harness.engines.builtin.engine", "harness.engines.tflm.engine")


@dataclass(frozen=True)
class EngineSpec:
    """One engine configuration a bench runs."""

    name: str  # a registered engine's name: "builtin", "tflm"
    kernels: str = ""  # an engine's kernel choice (tflm: "ref" or "cmsis-nn"); "" when it has none
    tflm_src: str | None = None  # --tflm-src (else TINYHIL_TFLM_SRC, else the fetch cache)

    @property
    def label(self) -> str:
        return f"{self.name} {self.kernels}" if self.kernels else self.name


@dataclass(frozen=True)
class BuiltImage:
    """A firmware and how the result row names its engine."""

    image: FirmwareImage
    engine: str
    engine_version: str
    kernels: str
    arena_used_bytes: int | None  # the engine's own arena figure when it measures one (TFLM)


class Engine(Protocol):
    """What the bench needs of an engine."""

    name: str
    kernels: tuple[str, ...]  # its kernel choices (the first is the default); () when none
    profiles: bool  # can build a per-layer profiling firmware (--profile)

    def check(self, spec: EngineSpec, model: Model, targets: Sequence[TargetDescriptor]) -> None:
        """Raise the user's mistakes (an op it lacks, a missing source tree) before any compile."""

    def build(self, spec: EngineSpec, model: Model, target: TargetDescriptor, runner: Runner,
              timeout_s: float, progress: Progress) -> BuiltImage:
        """The firmware of ``model`` on ``target`` (cached builds are reused)."""

    def explain(self, spec: EngineSpec, record: RunRecord) -> RunRecord:
        """A failed run's invoke status in the engine's words (or the record as is)."""


_REGISTRY: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Make ``engine`` available under its name (an engine module calls this at import)."""
    _REGISTRY[engine.name] = engine
    return engine


def _load() -> None:
    for module in ENGINE_MODULES:
        importlib.import_module(module)


def names() -> tuple[str, ...]:
    _load()
    return tuple(_REGISTRY)


def get(name: str) -> Engine:
    """The registered engine ``name``; an unknown name is the user's mistake."""
    from harness.errors import UserInputError

    _load()
    if name not in _REGISTRY:
        raise UserInputError(f"--engine {name!r}: expected one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


__all__ = ["BuiltImage", "Engine", "EngineSpec", "ENGINE_MODULES", "get", "names", "register"]
